// next_after in UTC: strictly-after semantics, the day-of-month/day-of-week rule (cronie's, checked
// against a transcription of cronie's matching, and compare_day_rules against the earlier rule),
// L, W and # at month edges, leap years, years, @every and never-firing expressions. Weekdays used below
// (2026): Jan 1 Thu, Feb 1 Sun, Mar 1 Sun, Apr 1 Wed, May 1 Fri, Jun 1 Mon, Jul 1 Wed, Aug 1 Sat.
#include <fmt/ranges.h>

#include <bitset>

#include "cron_test_support.h"

using namespace kcron;
using namespace kcron::cron;
using namespace kcron::cron::testing;

TEST_CASE("next_after returns the first fire strictly after the given instant") {
  CHECK(first_fire("0 9 * * *", "2026-03-01T09:00:00Z") == "2026-03-02T09:00:00Z");
  CHECK(first_fire("0 9 * * *", "2026-03-01T08:59:59.999Z") == "2026-03-01T09:00:00Z");
  CHECK(first_fire("0 9 * * *", "2026-03-01T09:00:00.001Z") == "2026-03-02T09:00:00Z");
  CHECK(first_fire("* * * * * *", "2026-03-01T09:00:00.500Z") == "2026-03-01T09:00:01Z");
  CHECK(first_fire("* * * * *", "2026-03-01T09:00:00Z") == "2026-03-01T09:01:00Z");
}

TEST_CASE("a search rolls over seconds, minutes, hours, days, months and years") {
  CHECK(first_fire("0 0 0 1 1 *", "2026-12-31T23:59:59.999Z") == "2027-01-01T00:00:00Z");
  CHECK(first_fire("59 59 23 31 12 *", "2026-12-31T23:59:59Z") == "2027-12-31T23:59:59Z");
  CHECK(first_fire("0 0 1 * *", "2026-01-31T12:00:00Z") == "2026-02-01T00:00:00Z");
  CHECK(first_fire("30 * * * * *", "2026-03-01T23:59:45Z") == "2026-03-02T00:00:30Z");
}

TEST_CASE("when neither day field starts with * or is ?, a day matching either fires") {
  // Fridays in January 2026 are the 2nd, 9th, 16th; the 13th is a Tuesday.
  CHECK(fires("0 0 13 * FRI", "2026-01-01T00:00:00Z", 4) ==
        Fires{"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"});
  // 1-31/10 is days 1, 11, 21 and 31 written without a leading *: either those days or a Monday.
  CHECK(fires("0 0 1-31/10 * MON", "2025-12-31T12:00:00Z", 8) ==
        Fires{"2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-11T00:00:00Z", "2026-01-12T00:00:00Z",
              "2026-01-19T00:00:00Z", "2026-01-21T00:00:00Z", "2026-01-26T00:00:00Z", "2026-01-31T00:00:00Z"});
  // Special days take part in the rule too: the last day of the month or any Monday.
  CHECK(fires("0 0 L * MON", "2026-01-25T12:00:00Z", 3) ==
        Fires{"2026-01-26T00:00:00Z", "2026-01-31T00:00:00Z", "2026-02-02T00:00:00Z"});
}

TEST_CASE("when only one of day-of-month and day-of-week is restricted, the other does not narrow it") {
  CHECK(fires("0 0 13 * *", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"});
  CHECK(fires("0 0 * * FRI", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"});
  CHECK(fires("0 0 13 * ?", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-13T00:00:00Z", "2026-02-13T00:00:00Z"});
  CHECK(fires("0 0 ? * FRI", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"});
}

TEST_CASE("when a day field starts with *, as in cronie, a day must match both fields") {
  // */10 is days 1, 11, 21 and 31, and the fields combine like cronie's DOM_STAR: those days that
  // are Mondays. 2026: May 11, Jun 1, Aug 31, Sep 21, Dec 21; 2027: Jan 11, Feb 1, Mar 1.
  CHECK(fires("0 0 */10 * MON", "2025-12-31T12:00:00Z", 8) ==
        Fires{"2026-05-11T00:00:00Z", "2026-06-01T00:00:00Z", "2026-08-31T00:00:00Z", "2026-09-21T00:00:00Z",
              "2026-12-21T00:00:00Z", "2027-01-11T00:00:00Z", "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"});
  // */2 and 1-31/2 are the same days; only the spelling decides. Mondays of March 2026: 2, 9, 16,
  // 23, 30; odd days: 1, 3, 5, ...
  CHECK(fires("0 0 */2 * MON", "2026-03-01T00:00:00Z", 3) ==
        Fires{"2026-03-09T00:00:00Z", "2026-03-23T00:00:00Z", "2026-04-13T00:00:00Z"});
  CHECK(fires("0 0 1-31/2 * MON", "2026-03-01T00:00:00Z", 5) == Fires{"2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z",
                                                                      "2026-03-05T00:00:00Z", "2026-03-07T00:00:00Z",
                                                                      "2026-03-09T00:00:00Z"});
  // The same in day-of-week: */2 (Sunday, Tuesday, Thursday, Saturday) with day 13 is the 13ths
  // that fall on those days; 0-6/2 is either. 13ths in 2026: Jan Tue, Feb Fri, Mar Fri, Apr Mon,
  // May Wed, Jun Sat, Jul Mon, Aug Thu, Sep Sun.
  CHECK(fires("0 0 13 * */2", "2026-01-01T00:00:00Z", 4) ==
        Fires{"2026-01-13T00:00:00Z", "2026-06-13T00:00:00Z", "2026-08-13T00:00:00Z", "2026-09-13T00:00:00Z"});
  CHECK(fires("0 0 13 * 0-6/2", "2025-12-31T12:00:00Z", 4) ==
        Fires{"2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-06T00:00:00Z"});
  // Both fields stars: odd days that are Sundays, Tuesdays, Thursdays or Saturdays (Mar 1 Sun, 3
  // Tue, 5 Thu, 7 Sat; 9, 11 and 13 are Monday, Wednesday and Friday; 15 Sun).
  CHECK(fires("0 0 */2 * */2", "2026-02-28T12:00:00Z", 5) == Fires{"2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z",
                                                                   "2026-03-05T00:00:00Z", "2026-03-07T00:00:00Z",
                                                                   "2026-03-15T00:00:00Z"});
  // A list counts by its first character: `*,15` is a star, `15,*` is not (and matches every day).
  CHECK(fires("0 0 *,15 * MON", "2026-03-01T00:00:00Z", 2) == Fires{"2026-03-02T00:00:00Z", "2026-03-09T00:00:00Z"});
  CHECK(fires("0 0 15,* * MON", "2026-03-01T00:00:00Z", 2) == Fires{"2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"});
  // */1 is every day, but a star: with a restricted day-of-week it is that day-of-week only.
  CHECK(fires("0 0 */1 * FRI", "2026-03-01T00:00:00Z", 2) == Fires{"2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z"});
}

TEST_CASE("L, W and # never start with *: they combine with a star in the other field by both, else by either") {
  // The last day of the month if it is a Sunday, Tuesday, Thursday or Saturday: Jan 31 2026 Sat,
  // Feb 28 Sat, Mar 31 Tue, Apr 30 Thu, May 31 Sun.
  CHECK(fires("0 0 L * */2", "2026-01-01T00:00:00Z", 3) ==
        Fires{"2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"});
  // The last Friday of the month if it is an odd day: Jan 30 no, Feb 27 yes, Mar 27 yes, Apr 24 no, May 29 yes.
  CHECK(fires("0 0 */2 * 5L", "2026-01-01T00:00:00Z", 3) ==
        Fires{"2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z", "2026-05-29T00:00:00Z"});
  // The weekday nearest the 15th if it is a Tuesday or Thursday (*/2 also names the weekend):
  // Jan 15 2026 is a Thursday; Feb-Aug it is a Monday, Wednesday or Friday; Sep 15 a Tuesday.
  CHECK(fires("0 0 15W * */2", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-15T00:00:00Z", "2026-09-15T00:00:00Z"});
  // Written 0-6/2, either: Saturday Jan 3, Sunday Jan 4.
  CHECK(fires("0 0 15W * 0-6/2", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"});
}

TEST_CASE("? is a star in cronie's sense, the same as *") {
  for (const char* day_of_week : {"MON", "*/2", "0-6/2", "5L"}) {
    INFO(day_of_week);
    CHECK(fires(fmt::format("0 0 ? * {}", day_of_week), "2026-03-01T00:00:00Z", 4) ==
          fires(fmt::format("0 0 * * {}", day_of_week), "2026-03-01T00:00:00Z", 4));
  }
  for (const char* day_of_month : {"15", "*/2", "1-31/2", "L"}) {
    INFO(day_of_month);
    CHECK(fires(fmt::format("0 0 {} * ?", day_of_month), "2026-03-01T00:00:00Z", 4) ==
          fires(fmt::format("0 0 {} * *", day_of_month), "2026-03-01T00:00:00Z", 4));
  }
}

TEST_CASE("6- and 7-field expressions and macros follow the same day rule") {
  CHECK(fires("0 0 0 */10 * MON", "2025-12-31T12:00:00Z", 2) == fires("0 0 */10 * MON", "2025-12-31T12:00:00Z", 2));
  CHECK(fires("0 0 0 */10 * MON 2026", "2025-12-31T12:00:00Z", 2) == fires("0 0 */10 * MON", "2025-12-31T12:00:00Z", 2));
  CHECK(fires("0 0 0 1-31/10 * MON *", "2025-12-31T12:00:00Z", 3) == fires("0 0 1-31/10 * MON", "2025-12-31T12:00:00Z", 3));
  // cronie sets DOW_STAR for @yearly and @monthly, DOM_STAR for @weekly and neither for @daily:
  // with every day of the other field set, each is the days its expansion names.
  CHECK(fires("@monthly", "2026-01-15T00:00:00Z", 2) == Fires{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"});
  CHECK(fires("@weekly", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"});
}

namespace {

// cronie's matching, written from entry.c and cron.c for plain fields (numbers, ranges, steps,
// `*`): a field's bits, DOM_STAR / DOW_STAR from the first character, and for each minute
// `(dom_star || dow_star) ? (dom && dow) : (dom || dow)`. A reference independent of the search.
struct CronieEntry {
  std::bitset<60> minute;
  std::bitset<24> hour;
  std::bitset<32> dom;
  std::bitset<13> month;
  std::bitset<8> dow;
  bool dom_star = false;
  bool dow_star = false;
};

template <std::size_t N>
std::bitset<N> cronie_field(std::string_view text, int low, int high) {
  std::bitset<N> bits;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string item(text.substr(start, comma - start));
    int first = low;
    int last = high;
    int step = 1;
    const std::size_t slash = item.find('/');
    const std::string range = item.substr(0, slash);
    if (slash != std::string::npos) step = std::stoi(item.substr(slash + 1));
    if (range != "*") {
      const std::size_t dash = range.find('-');
      first = std::stoi(range.substr(0, dash));
      last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
    }
    for (int value = first; value <= last; value += step) bits.set(static_cast<std::size_t>(value));
    start = comma + 1;
  }
  return bits;
}

CronieEntry cronie_entry(const std::vector<std::string>& fields) {
  CronieEntry entry;
  entry.minute = cronie_field<60>(fields[0], 0, 59);
  entry.hour = cronie_field<24>(fields[1], 0, 23);
  entry.dom_star = fields[2].front() == '*';
  entry.dom = cronie_field<32>(fields[2], 1, 31);
  entry.month = cronie_field<13>(fields[3], 1, 12);
  entry.dow_star = fields[4].front() == '*';
  entry.dow = cronie_field<8>(fields[4], 0, 7);
  if (entry.dow.test(0) || entry.dow.test(7)) entry.dow.set(0).set(7);
  return entry;
}

// Every minute from `from` up to `until` (UTC) that cronie runs `fields` at.
Fires cronie_fires(const std::vector<std::string>& fields, std::string_view from, std::string_view until) {
  const CronieEntry entry = cronie_entry(fields);
  Fires instants;
  const Instant end = at(until);
  for (auto minute = date::floor<std::chrono::minutes>(at(from)); minute < end; minute += std::chrono::minutes(1)) {
    const date::sys_days day = date::floor<date::days>(minute);
    const date::year_month_day ymd(day);
    const date::hh_mm_ss<std::chrono::minutes> time(minute - day);
    const auto dom = static_cast<std::size_t>(static_cast<unsigned>(ymd.day()));
    const auto dow = static_cast<std::size_t>(date::weekday(day).c_encoding());
    const bool day_matches = entry.dom_star || entry.dow_star ? entry.dom.test(dom) && entry.dow.test(dow)
                                                              : entry.dom.test(dom) || entry.dow.test(dow);
    if (entry.minute.test(static_cast<std::size_t>(time.minutes().count())) &&
        entry.hour.test(static_cast<std::size_t>(time.hours().count())) && entry.month.test(static_cast<unsigned>(ymd.month())) &&
        day_matches) {
      instants.push_back(format_rfc3339(Instant(minute)));
    }
  }
  return instants;
}

// kcron's fires of a 5-field expression from `from` up to `until`.
Fires fires_until(std::string_view text, std::string_view from, std::string_view until) {
  const CronExpression parsed = expression(text);
  Fires instants;
  Instant after = at(from) - Millis(1);
  for (int fired = 0; fired < 100'000; ++fired) {
    auto next = parsed.next_after(after, TimeZone::utc());
    if (!next || *next >= at(until)) break;
    instants.push_back(format_rfc3339(*next));
    after = *next;
  }
  return instants;
}

Fires texts_of(const std::vector<Instant>& instants) {
  Fires formatted;
  for (const Instant instant : instants) formatted.push_back(format_rfc3339(instant));
  return formatted;
}

}  // namespace

TEST_CASE("the issue's example fires as cronie fires it: 59 9-15 */15 * 5-6 on the 1st, 16th and 31st if a Friday or Saturday") {
  // 2026: Jan 16 is a Friday and Jan 31 a Saturday; no 1st, 16th or 31st of February, March or
  // April is a Friday or Saturday; May 1 is a Friday and May 16 a Saturday.
  Fires expected;
  for (const char* day : {"2026-01-16", "2026-01-31", "2026-05-01", "2026-05-16"}) {
    for (int hour = 9; hour <= 15; ++hour) expected.push_back(fmt::format("{}T{:02}:59:00Z", day, hour));
  }
  CHECK(fires_until("59 9-15 */15 * 5-6", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z") == expected);
  CHECK(cronie_fires({"59", "9-15", "*/15", "*", "5-6"}, "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z") == expected);
  // Spelled without the leading *, the same days fire on every Friday and Saturday as well.
  CHECK(fires("59 9-15 1-31/15 * 5-6", "2026-01-01T00:00:00Z", 8) ==
        Fires{"2026-01-01T09:59:00Z", "2026-01-01T10:59:00Z", "2026-01-01T11:59:00Z", "2026-01-01T12:59:00Z",
              "2026-01-01T13:59:00Z", "2026-01-01T14:59:00Z", "2026-01-01T15:59:00Z", "2026-01-02T09:59:00Z"});
}

TEST_CASE("cross-check: the day fields match cronie's matching minute by minute over two months") {
  const std::vector<std::vector<std::string>> expressions = {
      {"59", "9-15", "*/15", "*", "5-6"}, {"59", "9-15", "1-31/15", "*", "5-6"}, {"0", "12", "*/2", "*", "1-5"},
      {"0", "12", "1-31/2", "*", "1-5"},  {"30", "6", "*/10", "*", "*/2"},       {"30", "6", "1,15", "*", "0-6/2"},
      {"0", "0", "*", "*", "*/3"},        {"15", "3", "5-20", "*", "*"},         {"0", "*/6", "13", "*", "5"},
      {"0", "0", "*,13", "*", "5"},       {"0", "0", "13,*", "*", "5"},          {"0", "0", "*/7", "2", "0,7"},
  };
  for (const auto& fields : expressions) {
    const std::string text = fmt::format("{}", fmt::join(fields, " "));
    INFO(text);
    CHECK(fires_until(text, "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z") ==
          cronie_fires(fields, "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"));
  }
}

TEST_CASE("compare_day_rules finds where the earlier rule and cronie's part, with the next fires of each") {
  const TimeZone berlin = zone("Europe/Berlin");
  const Instant after = at("2026-01-01T00:00:00Z");
  const Instant until = at("2100-01-01T00:00:00Z");

  // Before: the 1st, 16th and 31st and every Friday and Saturday; now Jan 16 and 31. Berlin is
  // +01:00 in January. Thursday Jan 1 is the 1st, so the rules part that day.
  const auto change = expression("59 9-15 */15 * 5-6").compare_day_rules(after, until, berlin, 8);
  REQUIRE(change.has_value());
  CHECK(change->first_day == date::local_days(date::year(2026) / 1 / 1));
  CHECK(texts_of(change->legacy) == Fires{"2026-01-01T08:59:00Z", "2026-01-01T09:59:00Z", "2026-01-01T10:59:00Z",
                                          "2026-01-01T11:59:00Z", "2026-01-01T12:59:00Z", "2026-01-01T13:59:00Z",
                                          "2026-01-01T14:59:00Z", "2026-01-02T08:59:00Z"});
  CHECK(texts_of(change->cronie) == Fires{"2026-01-16T08:59:00Z", "2026-01-16T09:59:00Z", "2026-01-16T10:59:00Z",
                                          "2026-01-16T11:59:00Z", "2026-01-16T12:59:00Z", "2026-01-16T13:59:00Z",
                                          "2026-01-16T14:59:00Z", "2026-01-31T08:59:00Z"});
  // The cronie side is what the schedule does now, the legacy side what it did before.
  CHECK(texts_of(change->cronie) == fires("59 9-15 */15 * 5-6", "2026-01-01T00:00:00Z", 8, "Europe/Berlin"));
  const CronExpression before = expression("59 9-15 */15 * 5-6").with_day_rule(DayRule::kLegacy);
  CHECK(before.day_rule() == DayRule::kLegacy);
  CHECK(expression("59 9-15 */15 * 5-6").day_rule() == DayRule::kCronie);
  Fires legacy_fires;
  for (Instant from = after; legacy_fires.size() < 8;) {
    from = *before.next_after(from, berlin);
    legacy_fires.push_back(format_rfc3339(from));
  }
  CHECK(texts_of(change->legacy) == legacy_fires);

  // A day-of-week star parts them too: 13ths on Sun/Tue/Thu/Sat now, any such weekday before.
  // Jan 1 fires at `after` itself, which is not after it: Saturday Jan 3 is the first difference.
  const auto weekly = expression("0 0 13 * */2").compare_day_rules(after, until, TimeZone::utc(), 2);
  REQUIRE(weekly.has_value());
  CHECK(weekly->first_day == date::local_days(date::year(2026) / 1 / 3));
  CHECK(texts_of(weekly->legacy) == Fires{"2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"});
  CHECK(texts_of(weekly->cronie) == Fires{"2026-01-13T00:00:00Z", "2026-06-13T00:00:00Z"});
}

TEST_CASE("compare_day_rules reports a schedule that never fires under cronie's rule with no fires after") {
  // February 31 if it is a Sunday, Tuesday, Thursday or Saturday: never. Before, those weekdays of
  // February fired (Feb 1 2026 is a Sunday).
  const auto change =
      expression("0 0 31 2 */2").compare_day_rules(at("2026-01-01T00:00:00Z"), at("2100-01-01T00:00:00Z"), TimeZone::utc(), 2);
  REQUIRE(change.has_value());
  CHECK(texts_of(change->legacy) == Fires{"2026-02-01T00:00:00Z", "2026-02-03T00:00:00Z"});
  CHECK(change->cronie.empty());
  CHECK(change->first_day == date::local_days(date::year(2026) / 2 / 1));
  CHECK_FALSE(expression("0 0 31 2 */2").next_after(at("2026-01-01T00:00:00Z")).ok());
}

TEST_CASE("compare_day_rules skips the part of a day already past, and starts a later day at local midnight") {
  const Instant until = at("2100-01-01T00:00:00Z");
  // Friday 2026-01-02 16:00 in Berlin: that day's fires (09:59-15:59) are over under either rule, so
  // the first fire only one rule has is on Saturday the 3rd.
  const auto change =
      expression("59 9-15 */15 * 5-6").compare_day_rules(at("2026-01-02T15:00:00Z"), until, zone("Europe/Berlin"), 1);
  REQUIRE(change.has_value());
  CHECK(change->first_day == date::local_days(date::year(2026) / 1 / 3));
  CHECK(format_rfc3339(change->legacy.at(0)) == "2026-01-03T08:59:00Z");
  CHECK(format_rfc3339(change->cronie.at(0)) == "2026-01-16T08:59:00Z");
  // From Thursday Jan 15 in Berlin the rules agree on the 15th (no fire) and Friday the 16th (both
  // fire): the comparison starts at 00:00 on Saturday the 17th, so its midnight fire is in it and
  // the common fire of the 16th is not.
  const auto midnight =
      expression("0 0 */15 * 5-6").compare_day_rules(at("2026-01-15T12:00:00Z"), until, zone("Europe/Berlin"), 2);
  REQUIRE(midnight.has_value());
  CHECK(midnight->first_day == date::local_days(date::year(2026) / 1 / 17));
  CHECK(texts_of(midnight->legacy) == Fires{"2026-01-16T23:00:00Z", "2026-01-22T23:00:00Z"});
  CHECK(texts_of(midnight->cronie) == Fires{"2026-01-30T23:00:00Z", "2026-04-30T22:00:00Z"});
}

TEST_CASE("compare_day_rules reports no change where the rules agree") {
  const Instant after = at("2026-01-01T00:00:00Z");
  const Instant until = at("2100-01-01T00:00:00Z");
  // Neither field a star, or one exactly * or ?: both rules are the same rule.
  for (const char* text : {"0 0 13 * FRI", "0 0 1-31/15 * 5-6", "0 0 */15 * *", "0 0 * * */2", "0 0 ? * MON", "0 0 */2 * ?",
                           "@daily", "@weekly", "@monthly", "@every 90s", "0 0 L * MON", "0 0 0 1-31/2 * 1-5 *"}) {
    INFO(text);
    CHECK_FALSE(expression(text).compare_day_rules(after, until, TimeZone::utc(), 5).has_value());
  }
  // The rules differ but pick the same days: every day either way.
  CHECK_FALSE(expression("0 0 */1 * 0-6").compare_day_rules(after, until, TimeZone::utc(), 5).has_value());
  // A change after `until` is not reported: the earlier rule's next fire is Friday Jan 2 (Jan 1
  // fires at `after` itself).
  CHECK_FALSE(expression("0 0 */15 * 5-6").compare_day_rules(after, at("2026-01-01T23:59:59Z"), TimeZone::utc(), 5).has_value());
  CHECK(expression("0 0 */15 * 5-6").compare_day_rules(after, at("2026-01-02T00:00:00Z"), TimeZone::utc(), 5).has_value());
  // Extreme bounds neither crash nor overflow.
  const auto widest = expression("0 0 */15 * 5-6").compare_day_rules(Instant::min(), Instant::max(), zone("Europe/Berlin"), 1);
  REQUIRE(widest.has_value());
  // Searching starts at 0001-01-01T00:00Z, after Berlin's midnight (+00:53 then): Friday the 5th.
  CHECK(widest->first_day == date::local_days(date::year(1) / 1 / 5));
  CHECK_FALSE(expression("0 0 */15 * 5-6").compare_day_rules(at("2199-12-31T23:00:00Z"), Instant::max(), TimeZone::utc(), 1));
}

TEST_CASE("L is the last day of the month, February 29 in a leap year") {
  CHECK(fires("0 0 L * *", "2028-01-31T00:00:00Z", 3) ==
        Fires{"2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z", "2028-04-30T00:00:00Z"});
  CHECK(first_fire("0 0 L 2 *", "2026-01-01T00:00:00Z") == "2026-02-28T00:00:00Z");
}

TEST_CASE("L-3 is three days before the last day of the month") {
  CHECK(fires("0 0 L-3 * *", "2026-01-01T00:00:00Z", 3) ==
        Fires{"2026-01-28T00:00:00Z", "2026-02-25T00:00:00Z", "2026-03-28T00:00:00Z"});
  // L-30 is day 1 of a 31-day month and does not exist in shorter ones.
  CHECK(fires("0 0 L-30 * *", "2026-01-01T00:00:00Z", 2) == Fires{"2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z"});
  CHECK(first_fire("0 0 L-0 * *", "2026-01-01T00:00:00Z") == "2026-01-31T00:00:00Z");
}

TEST_CASE("LW is the last Monday-Friday of the month") {
  // Jan 31 is a Saturday -> Fri 30; Feb 28 a Saturday -> Fri 27; Mar 31 a Tuesday; Apr 30 a
  // Thursday; May 31 a Sunday -> Fri 29.
  CHECK(fires("0 0 LW * *", "2026-01-01T00:00:00Z", 5) == Fires{"2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z",
                                                                "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z",
                                                                "2026-05-29T00:00:00Z"});
}

TEST_CASE("15W is the Monday-Friday nearest the 15th") {
  // Jan 15 Thursday; Feb 15 Sunday -> Mon 16; Mar 15 Sunday -> Mon 16; Apr 15 Wednesday;
  // May 15 Friday; Jun 15 Monday; Jul 15 Wednesday; Aug 15 Saturday -> Fri 14.
  CHECK(fires("0 0 15W * *", "2026-01-01T00:00:00Z", 8) ==
        Fires{"2026-01-15T00:00:00Z", "2026-02-16T00:00:00Z", "2026-03-16T00:00:00Z", "2026-04-15T00:00:00Z",
              "2026-05-15T00:00:00Z", "2026-06-15T00:00:00Z", "2026-07-15T00:00:00Z", "2026-08-14T00:00:00Z"});
}

TEST_CASE("W never leaves its month: 1W on a Saturday is Monday the 3rd, 31W on a Sunday is Friday the 29th") {
  // Aug 1 2026 is a Saturday: Monday Aug 3, not Friday Jul 31. Feb 1 is a Sunday: Monday Feb 2.
  CHECK(first_fire("0 0 1W * *", "2026-07-02T00:00:00Z") == "2026-08-03T00:00:00Z");
  CHECK(first_fire("0 0 1W * *", "2026-01-02T00:00:00Z") == "2026-02-02T00:00:00Z");
  // May 31 is a Sunday -> Friday May 29; months without a 31st are skipped; Jul 31 is a Friday,
  // Aug 31 a Monday.
  CHECK(fires("0 0 31W * *", "2026-04-01T00:00:00Z", 3) ==
        Fires{"2026-05-29T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"});
}

TEST_CASE("5L and FRIL are the last Friday of the month") {
  // Jan 30; Feb 28 is a Saturday -> 27; Mar 31 is a Tuesday -> 27.
  const Fires last_fridays{"2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"};
  CHECK(fires("0 0 * * 5L", "2026-01-01T00:00:00Z", 3) == last_fridays);
  CHECK(fires("0 0 * * FRIL", "2026-01-01T00:00:00Z", 3) == last_fridays);
  CHECK(fires("0 0 * * fril", "2026-01-01T00:00:00Z", 3) == last_fridays);
}

TEST_CASE("MON#2 is the second Monday of the month, and #5 only fires in months that have a fifth") {
  // Mondays: Jan 5, 12; Feb 2, 9; Mar 2, 9.
  const Fires second_mondays{"2026-01-12T00:00:00Z", "2026-02-09T00:00:00Z", "2026-03-09T00:00:00Z"};
  CHECK(fires("0 0 * * MON#2", "2026-01-01T00:00:00Z", 3) == second_mondays);
  CHECK(fires("0 0 * * 1#2", "2026-01-01T00:00:00Z", 3) == second_mondays);
  // Fridays of January: 2, 9, 16, 23, 30; February to April have four; May: 1, 8, 15, 22, 29.
  CHECK(fires("0 0 * * FRI#5", "2026-01-01T00:00:00Z", 2) == Fires{"2026-01-30T00:00:00Z", "2026-05-29T00:00:00Z"});
  // A list of them: first Monday and last Friday.
  CHECK(fires("0 0 * * MON#1,5L", "2026-01-01T00:00:00Z", 3) ==
        Fires{"2026-01-05T00:00:00Z", "2026-01-30T00:00:00Z", "2026-02-02T00:00:00Z"});
}

TEST_CASE("February 29 fires only in leap years, and 2100 is not one") {
  CHECK(fires("0 0 29 2 *", "2026-03-01T00:00:00Z", 2) == Fires{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"});
  CHECK(fires("0 0 29 2 *", "2097-01-01T00:00:00Z", 1) == Fires{"2104-02-29T00:00:00Z"});
}

TEST_CASE("day 31 fires only in 31-day months") {
  CHECK(fires("0 0 31 * *", "2026-01-31T00:00:00Z", 4) ==
        Fires{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"});
}

TEST_CASE("@every fires at whole multiples of its period from the Unix epoch") {
  // 2026-03-01T00:00:00Z is epoch second 1772323200 = 90 * 19692480 = 5400 * 328208.
  CHECK(fires("@every 90s", "2026-03-01T00:00:00Z", 2) == Fires{"2026-03-01T00:01:30Z", "2026-03-01T00:03:00Z"});
  CHECK(fires("@every 1h30m", "2026-03-01T00:00:00Z", 2) == Fires{"2026-03-01T01:30:00Z", "2026-03-01T03:00:00Z"});
  // 1772323200 = 420 * 4219817 + 60, so the next multiple of 7 minutes is 360 s later.
  CHECK(fires("@every 7m", "2026-03-01T00:00:00Z", 2) == Fires{"2026-03-01T00:06:00Z", "2026-03-01T00:13:00Z"});
  CHECK(fires("@every 500ms", "2026-03-01T00:00:00.200Z", 2) == Fires{"2026-03-01T00:00:00.500Z", "2026-03-01T00:00:01Z"});
  // Before the epoch too.
  CHECK(first_fire("@every 1h", "1969-12-31T22:30:00Z") == "1969-12-31T23:00:00Z");
}

TEST_CASE("@every counts from the schedule's start when one is given, in both directions") {
  const CronExpression hourly = expression("@every 1h");
  const Instant start = at("2026-03-01T00:00:10Z");
  CHECK(format_rfc3339(*hourly.next_after(at("2026-03-01T05:00:00Z"), TimeZone::utc(), start)) == "2026-03-01T05:00:10Z");
  CHECK(format_rfc3339(*hourly.next_after(at("2026-03-01T00:00:00Z"), TimeZone::utc(), start)) == "2026-03-01T00:00:10Z");
  CHECK(format_rfc3339(*hourly.next_after(at("2026-02-28T21:30:00Z"), TimeZone::utc(), start)) == "2026-02-28T22:00:10Z");
  CHECK(format_rfc3339(*hourly.next_after(start, TimeZone::utc(), start)) == "2026-03-01T01:00:10Z");
}

TEST_CASE("@every is elapsed time and ignores the time zone") {
  CHECK(fires("@every 1h", "2026-03-29T00:30:00Z", 3, "Europe/Berlin") == fires("@every 1h", "2026-03-29T00:30:00Z", 3));
}

TEST_CASE("an expression that can never fire is reported as an error, not searched forever") {
  for (const char* text : {"0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 30 2 ?", "0 0 L-29 2 *", "0 0 0 1 1 * 2020",
                           "0 0 0 29 2 * 2100", "0 0 0 31W 2 *", "0 0 0 ? 2 MON#5 2026"}) {
    INFO(text);
    auto next = expression(text).next_after(at("2026-03-01T00:00:00Z"), zone("Europe/Berlin"));
    REQUIRE_FALSE(next.ok());
    CHECK(next.error().message() ==
          fmt::format("'{}' never fires after 2026-03-01T00:00:00Z (searched through the year 2199)", text));
  }
  // With day-of-week restricted too, February 30 is no obstacle: any Monday in February fires.
  CHECK(first_fire("0 0 30 2 MON", "2026-03-01T00:00:00Z") == "2027-02-01T00:00:00Z");
  // The last fire of a finite schedule, then the error.
  const CronExpression finite = expression("0 0 0 1 1 * 2027,2029");
  CHECK(format_rfc3339(*finite.next_after(at("2028-01-01T00:00:00Z"))) == "2029-01-01T00:00:00Z");
  CHECK_FALSE(finite.next_after(at("2029-01-01T00:00:00Z")).ok());
}

TEST_CASE("nothing fires after 2199, and extreme instants neither crash nor overflow") {
  CHECK_FALSE(expression("* * * * *").next_after(at("2200-01-02T00:00:00Z")).ok());
  CHECK(first_fire("* * * * *", "2199-12-31T23:58:30Z") == "2199-12-31T23:59:00Z");
  CHECK_FALSE(expression("* * * * *").next_after(at("2199-12-31T23:59:00Z")).ok());
  const Instant earliest = Instant::min();
  const Instant latest = Instant::max();
  for (const char* text : {"* * * * *", "0 0 1 1 *", "@every 1d", "@every 1ms", "0 0 0 1 1 * 1970"}) {
    INFO(text);
    const CronExpression parsed = expression(text);
    for (const char* zone_name : {"UTC", "Europe/Berlin"}) {
      const TimeZone located = zone(zone_name);
      CHECK_FALSE(parsed.next_after(latest, located).ok());
      CHECK_FALSE(parsed.next_after(latest, located, earliest).ok());
      auto from_earliest = parsed.next_after(earliest, located, latest);
      CHECK(from_earliest.ok());
    }
  }
  CHECK(format_rfc3339(*expression("0 0 0 1 1 * 1970").next_after(Instant::min())) == "1970-01-01T00:00:00Z");
}
