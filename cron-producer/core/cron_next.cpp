// CronExpression::next_after: a field-by-field search over wall-clock times (year, month, day,
// hour, minute, second; never second by second), mapped to instants by the DST rule:
//   - real-time schedules (minute or hour field starts with `*`) fire at every instant whose wall
//     time matches: each offset period of the zone maps its instants one-to-one onto a range of
//     wall times, so the search walks the periods; a skipped hour belongs to no period and a
//     repeated hour belongs to two;
//   - every other schedule fires each matching wall time once: a skipped one at the first instant
//     after the gap, a repeated one at its first occurrence.
// Days match by cronie's rule (DayRule::kCronie); compare_day_rules() sets it against kcron's
// earlier rule for `kcron schedule lint`.
#include <algorithm>

#include "core/cron_expression.h"
#include "core/rfc3339.h"

namespace kcron::cron {

namespace {

using std::chrono::seconds;

// More offset periods than any zone has between year 1 and kLastYear.
constexpr int kMaxPeriods = 100'000;
// More repeated wall times than a search can meet.
constexpr int kMaxRepeatedWallTimes = 100'000;
// compare_day_rules: days that differ but whose fires do not (their fires all before `after`, or a
// real-time schedule's only hour skipped by DST) before it gives up and reports no change.
constexpr int kMaxQuietDifferences = 1000;

template <std::size_t N>
int next_set(const std::bitset<N>& bits, int from) {
  for (int value = std::max(from, 0); value < static_cast<int>(N); ++value) {
    if (bits.test(static_cast<std::size_t>(value))) return value;
  }
  return -1;
}

date::local_seconds to_local(date::sys_seconds instant, seconds offset) {
  return date::local_seconds{instant.time_since_epoch() + offset};
}
date::sys_seconds to_sys(date::local_seconds wall, seconds offset) {
  return date::sys_seconds{wall.time_since_epoch() - offset};
}

// 0 = Sunday.
unsigned weekday_of(int year, unsigned month, unsigned day) {
  return date::weekday(date::sys_days(date::year(year) / date::month(month) / date::day(day))).c_encoding();
}

}  // namespace

CronExpression CronExpression::with_day_rule(DayRule rule) const {
  CronExpression copy = *this;
  copy.day_rule_ = rule;
  return copy;
}

bool CronExpression::days_match_both(DayRule rule) const {
  const FieldSpec& day_of_month = fields_[index(CronField::kDayOfMonth)];
  const FieldSpec& day_of_week = fields_[index(CronField::kDayOfWeek)];
  switch (rule) {
    case DayRule::kCronie:
      return day_of_month.star || day_of_week.star;
    case DayRule::kLegacy:
      return day_of_month.unrestricted || day_of_week.unrestricted;
  }
  return true;
}

std::bitset<32> CronExpression::matching_days(int year, unsigned month, DayRule rule) const {
  const unsigned last =
      static_cast<unsigned>(date::year_month_day_last(date::year(year), date::month_day_last(date::month(month))).day());
  const unsigned first_weekday = weekday_of(year, month, 1);
  auto weekday = [&](unsigned day) { return (first_weekday + day - 1) % 7; };

  std::bitset<32> by_day_of_month;
  for (unsigned day = 1; day <= last; ++day) {
    if (days_of_month_.test(day)) by_day_of_month.set(day);
  }
  for (const int offset : last_day_offsets_) {
    if (static_cast<unsigned>(offset) < last) by_day_of_month.set(last - static_cast<unsigned>(offset));
  }
  if (last_weekday_of_month_) {
    const unsigned last_weekday = weekday(last);
    by_day_of_month.set(last_weekday == 6 ? last - 1 : last_weekday == 0 ? last - 2 : last);
  }
  for (unsigned day = 1; day <= 31; ++day) {
    if (!nearest_weekday_days_.test(day) || day > last) continue;  // 31W does not fire in a 30-day month
    const unsigned day_weekday = weekday(day);
    unsigned nearest = day;
    if (day_weekday == 6) nearest = day == 1 ? 3 : day - 1;           // Saturday: Friday, or Monday the 3rd
    if (day_weekday == 0) nearest = day == last ? day - 2 : day + 1;  // Sunday: Monday, or Friday before
    by_day_of_month.set(nearest);
  }

  std::bitset<32> by_day_of_week;
  for (unsigned day = 1; day <= last; ++day) {
    if (days_of_week_.test(weekday(day))) by_day_of_week.set(day);
  }
  for (unsigned day_of_week = 0; day_of_week < 7; ++day_of_week) {
    if (last_of_weekday_.test(day_of_week)) by_day_of_week.set(last - (weekday(last) + 7 - day_of_week) % 7);
    const unsigned first_such_day = 1 + (day_of_week + 7 - first_weekday) % 7;
    for (unsigned nth = 0; nth < nth_weekday_.size(); ++nth) {
      const unsigned day = first_such_day + 7 * nth;
      if (nth_weekday_[nth].test(day_of_week) && day <= last) by_day_of_week.set(day);
    }
  }

  // An unrestricted field matches every day, so "both" with it is the other field alone.
  return days_match_both(rule) ? by_day_of_month & by_day_of_week : by_day_of_month | by_day_of_week;
}

std::optional<date::local_days> CronExpression::first_day_rule_difference(date::local_days from, date::local_days through) const {
  if (days_match_both(DayRule::kLegacy) == days_match_both(DayRule::kCronie)) return std::nullopt;
  const date::year_month_day first(from);
  const date::year_month_day last(through);
  date::year_month cursor = first.year() / first.month();
  const date::year_month end = last.year() / last.month();
  for (; cursor <= end && static_cast<int>(cursor.year()) <= kLastYear; cursor += date::months(1)) {
    const int year = static_cast<int>(cursor.year());
    const unsigned month = static_cast<unsigned>(cursor.month());
    if (!months_.test(month)) continue;
    if (!any_year_ && (year < kFirstYear || !years_.test(static_cast<std::size_t>(year - kFirstYear)))) continue;
    const std::bitset<32> differing = matching_days(year, month, DayRule::kLegacy) ^ matching_days(year, month, DayRule::kCronie);
    const unsigned first_day = cursor == first.year() / first.month() ? static_cast<unsigned>(first.day()) : 1;
    const unsigned last_day = cursor == end ? static_cast<unsigned>(last.day()) : 31;
    for (unsigned day = first_day; day <= last_day; ++day) {
      if (differing.test(day)) return date::local_days(cursor / date::day(day));
    }
  }
  return std::nullopt;
}

std::optional<DayRuleChange> CronExpression::compare_day_rules(Instant after, Instant until, const TimeZone& zone,
                                                               std::size_t count) const {
  if (every_ || days_match_both(DayRule::kLegacy) == days_match_both(DayRule::kCronie)) return std::nullopt;
  // The bounds of next_after, so the day arithmetic below stays in date's range.
  after = std::max<Instant>(after, date::sys_days(date::year(1) / date::January / 1));
  until = std::min<Instant>(until, date::sys_days(date::year(kLastYear + 1) / date::January / 1));
  if (after >= until) return std::nullopt;
  const CronExpression legacy = with_day_rule(DayRule::kLegacy);
  const CronExpression cronie = with_day_rule(DayRule::kCronie);
  auto local_day = [&](Instant instant) {
    const date::sys_seconds whole = date::floor<seconds>(instant);
    return date::floor<date::days>(to_local(whole, zone.period_at(whole).offset));
  };
  // The first instant whose wall-clock date is `day`.
  auto start_of = [&](date::local_days day) {
    const date::local_info info = zone.wall_time_info(day);
    if (info.result == date::local_info::nonexistent) return Instant(info.second.begin);
    return Instant(to_sys(day, info.first.offset));
  };
  auto fires = [&](const CronExpression& expression, Instant from) {
    std::vector<Instant> instants;
    while (instants.size() < std::max<std::size_t>(count, 1)) {
      auto next = expression.next_after(from, zone);
      if (!next || *next > until) break;
      instants.push_back(*next);
      from = *next;
    }
    return instants;
  };
  date::local_days day = local_day(after);
  const date::local_days through = local_day(until);
  for (int quiet = 0; quiet < kMaxQuietDifferences && day <= through; ++quiet) {
    const auto differing = first_day_rule_difference(day, through);
    if (!differing) return std::nullopt;
    // A fire at the very start of the day counts: next_after looks strictly after `from`.
    const Instant from = std::max(after, start_of(*differing) - Millis(1));
    DayRuleChange change{*differing, fires(legacy, from), fires(cronie, from)};
    if (change.legacy != change.cronie) {
      // The day of the first fire only one rule has (earlier fires of `differing` may be past).
      std::size_t same = 0;
      while (same < change.legacy.size() && same < change.cronie.size() && change.legacy[same] == change.cronie[same]) ++same;
      const Instant parting = same == change.legacy.size()   ? change.cronie[same]
                              : same == change.cronie.size() ? change.legacy[same]
                                                             : std::min(change.legacy[same], change.cronie[same]);
      change.first_day = local_day(parting);
      return change;
    }
    day = *differing + date::days(1);
  }
  return std::nullopt;
}

std::optional<date::local_seconds> CronExpression::next_wall_match(date::local_seconds from) const {
  const date::local_days from_day = date::floor<date::days>(from);
  const date::year_month_day from_date(from_day);
  const date::hh_mm_ss<seconds> from_time(from - from_day);
  int year = static_cast<int>(from_date.year());
  unsigned month = static_cast<unsigned>(from_date.month());
  unsigned day = static_cast<unsigned>(from_date.day());
  int hour = static_cast<int>(from_time.hours().count());
  int minute = static_cast<int>(from_time.minutes().count());
  int second = static_cast<int>(from_time.seconds().count());
  auto start_of_day = [&] { hour = minute = second = 0; };

  // Each pass moves the cursor forward to the next candidate of one field and starts over.
  while (year <= kLastYear) {
    if (!any_year_) {
      const int found = next_set(years_, year - kFirstYear);
      if (found < 0) return std::nullopt;
      if (found + kFirstYear != year) {
        year = found + kFirstYear;
        month = day = 1;
        start_of_day();
      }
    }
    const int found_month = next_set(months_, static_cast<int>(month));
    if (found_month < 0) {
      ++year;
      month = day = 1;
      start_of_day();
      continue;
    }
    if (static_cast<unsigned>(found_month) != month) {
      month = static_cast<unsigned>(found_month);
      day = 1;
      start_of_day();
    }
    const int found_day = next_set(matching_days(year, month, day_rule_), static_cast<int>(day));
    if (found_day < 0) {
      ++month;
      day = 1;
      start_of_day();
      continue;
    }
    if (static_cast<unsigned>(found_day) != day) {
      day = static_cast<unsigned>(found_day);
      start_of_day();
    }
    const int found_hour = next_set(hours_, hour);
    if (found_hour < 0) {
      ++day;
      start_of_day();
      continue;
    }
    if (found_hour != hour) {
      hour = found_hour;
      minute = second = 0;
    }
    const int found_minute = next_set(minutes_, minute);
    if (found_minute < 0) {
      ++hour;
      minute = second = 0;
      continue;
    }
    if (found_minute != minute) {
      minute = found_minute;
      second = 0;
    }
    const int found_second = next_set(seconds_, second);
    if (found_second < 0) {
      ++minute;
      second = 0;
      continue;
    }
    return date::local_days(date::year(year) / date::month(month) / date::day(day)) + std::chrono::hours(hour) +
           std::chrono::minutes(minute) + seconds(found_second);
  }
  return std::nullopt;
}

Result<Instant> CronExpression::next_after(Instant after, const TimeZone& zone, Instant every_anchor) const {
  // Bounds that keep every computation far from overflow: searching starts no earlier than year 1
  // and nothing fires after kLastYear (a day of slack for zones west of UTC).
  const Instant earliest = date::sys_days(date::year(1) / date::January / 1);
  const Instant latest = date::sys_days(date::year(kLastYear + 1) / date::January / 2);
  if (after >= latest) return never_fires(after);
  const Instant from = std::max(after, earliest);
  if (every_) return next_every(from, std::clamp(every_anchor, earliest - Millis(1), latest));
  return follows_real_time_ ? next_real_time(from, zone) : next_wall_time(from, zone);
}

Result<Instant> CronExpression::next_real_time(Instant after, const TimeZone& zone) const {
  date::sys_seconds instant = date::floor<seconds>(after) + seconds(1);
  for (int periods = 0; periods < kMaxPeriods; ++periods) {
    const date::sys_info period = zone.period_at(instant);
    const auto wall = next_wall_match(to_local(instant, period.offset));
    if (!wall) return never_fires(after);
    const date::sys_seconds fire = to_sys(*wall, period.offset);
    if (fire < period.end) return Instant(fire);
    instant = std::max(period.end, instant + seconds(1));  // always forward, whatever the zone data says
  }
  return never_fires(after);
}

Result<Instant> CronExpression::next_wall_time(Instant after, const TimeZone& zone) const {
  // Wall times map to fire instants in order (a skipped one to the end of its gap, a repeated one
  // to its first occurrence), and the wall time of `after` itself maps to `after` or earlier, so
  // the answer is the first matching wall time after it whose instant is still after `after`.
  const date::sys_seconds base = date::floor<seconds>(after);
  date::local_seconds from = to_local(base, zone.period_at(base).offset) + seconds(1);
  for (int repeated = 0; repeated < kMaxRepeatedWallTimes; ++repeated) {
    const auto wall = next_wall_match(from);
    if (!wall) return never_fires(after);
    const date::local_info info = zone.wall_time_info(*wall);
    // A skipped wall time fires at the first instant after the gap; any other at its first occurrence.
    const date::sys_seconds fire =
        info.result == date::local_info::nonexistent ? info.second.begin : to_sys(*wall, info.first.offset);
    if (fire > after) return Instant(fire);
    // Only a repeated wall time whose first occurrence is already past gets here: skip the rest
    // of the repeated range, which fired in its first pass.
    from = *wall + seconds(1);
    if (info.result == date::local_info::ambiguous) from = std::max(from, to_local(info.first.end, info.first.offset));
  }
  return never_fires(after);
}

Result<Instant> CronExpression::next_every(Instant after, Instant anchor) const {
  const std::int64_t period = every_->count();
  const std::int64_t since_anchor = (after - anchor).count();
  // The smallest k with anchor + k * period > after (floor division for instants before the anchor).
  std::int64_t periods = since_anchor / period;
  if (since_anchor % period != 0 && since_anchor < 0) --periods;
  ++periods;
  const Instant fire = anchor + Millis(periods * period);
  if (fire >= date::sys_days(date::year(kLastYear + 1) / date::January / 1)) return never_fires(after);
  return fire;
}

Error CronExpression::never_fires(Instant after) const {
  return make_error("'{}' never fires after {} (searched through the year {})", text_, format_rfc3339(after), kLastYear);
}

}  // namespace kcron::cron
