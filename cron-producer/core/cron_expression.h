// Cron expressions: the grammar (5, 6 or 7 fields, macros, @every), the next fire instant in an
// IANA time zone with the DST rule and cronie's day rule of docs/semantics.md, and a plain-English
// explanation. Pure schedule math: no Kafka, no storage, no clock of its own (callers pass the
// instant to search from). Grammar, day rule, DST rule and @every anchoring are documented in
// cron-producer/README.md.
#pragma once

#include <array>
#include <bitset>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time_zone.h"
#include "kcron/clock.h"
#include "kcron/result.h"

namespace kcron::cron {

// The fields in the order of a 7-field expression; 5-field expressions have no second and year,
// 6-field ones no year.
enum class CronField { kSecond, kMinute, kHour, kDayOfMonth, kMonth, kDayOfWeek, kYear };
inline constexpr std::size_t kCronFieldCount = 7;

// The name used in error messages and explanations: "day-of-week".
std::string_view field_name(CronField field);

// How the day-of-month and day-of-week fields combine. A field is a star when its text starts with
// `*` (`*`, `*/2`, `*,15`) or is `?`; a field is unrestricted when it is exactly `*` or `?`.
enum class DayRule {
  // cronie and Vixie cron (entry.c sets DOM_STAR / DOW_STAR from the first character; cron.c
  // matches `(dom_star || dow_star) ? (dom && dow) : (dom || dow)`): when either field is a star,
  // a day must match both; otherwise a day matching either fires. Every schedule runs by it.
  kCronie,
  // kcron before it followed cronie: a day matching either fires when neither field is
  // unrestricted, so `*/15` with `FRI` fired on every Friday. Kept only so `kcron schedule lint`
  // can show which stored schedules fire differently now.
  kLegacy,
};

// Where the two day rules part for one schedule: the next fires of each from the first day (in the
// schedule's zone) whose matching differs, and the day of the first fire only one of them has.
struct DayRuleChange {
  date::local_days first_day;
  std::vector<Instant> legacy;  // DayRule::kLegacy
  std::vector<Instant> cronie;  // DayRule::kCronie
};

// One comma-separated item of a field as written (names resolved to numbers), kept for explain().
struct CronItem {
  enum class Kind {
    kEvery,           // `*` or `*/step`
    kValue,           // `5`, `MON`
    kRange,           // `1-5`, `10-50/7`, `5/15` (= 5 to the field's maximum, step 15)
    kLastDay,         // day-of-month `L` or `L-offset`
    kLastWeekday,     // day-of-month `LW`: the last Monday-Friday of the month
    kNearestWeekday,  // day-of-month `15W`: the Monday-Friday nearest the 15th, within the month
    kLastOfWeekday,   // day-of-week `5L`, `FRIL`: the last Friday of the month
    kNthWeekday,      // day-of-week `MON#2`: the second Monday of the month
  };
  Kind kind = Kind::kValue;
  int first = 0;  // the value, or the first of a range; day-of-week 7 is kept as written
  int last = 0;
  int step = 1;
  int ordinal = 0;  // kNthWeekday: 1-5; kLastDay: days before the last
};

class CronExpression {
 public:
  // The year field's range, and the last year next_after() searches.
  static constexpr int kFirstYear = 1970;
  static constexpr int kLastYear = 2199;

  // Parses an expression or macro; a malformed one is an Error naming the field and the value
  // ("day-of-week: 8 is outside 0-7"). Never throws.
  static Result<CronExpression> parse(std::string_view text);

  // The first fire instant strictly after `after`, in `zone`. An expression with no fire instant
  // after `after` up to the end of kLastYear is an Error ("... never fires ..."). `every_anchor`
  // only matters for @every: it fires at every_anchor + k * period for every integer k.
  Result<Instant> next_after(Instant after, const TimeZone& zone = TimeZone::utc(), Instant every_anchor = Instant{}) const;

  // The schedule in plain English: "at 09:00 on Monday through Friday"; the day clause says how
  // the day fields combine ("on day 13 of the month or on Friday", "on days 1, 16 and 31 of the
  // month if that day is a Friday or Saturday").
  std::string explain() const;

  // This expression matching days by `rule`. Only `kcron schedule lint` asks for kLegacy; parse()
  // always gives kCronie.
  CronExpression with_day_rule(DayRule rule) const;
  DayRule day_rule() const { return day_rule_; }

  // Whether this schedule fires differently under kLegacy and kCronie after `after`, up to and
  // including `until`: nullopt when not, else where they part and the next `count` (at least 1)
  // fires of each from that day on. Cheap when the rules cannot differ (no day field is a star
  // that is not exactly `*`/`?`, or one field is exactly `*`/`?`); otherwise a month-by-month
  // scan up to `until` (at most the end of kLastYear).
  std::optional<DayRuleChange> compare_day_rules(Instant after, Instant until, const TimeZone& zone, std::size_t count) const;

  // The expression as given, without surrounding whitespace.
  const std::string& text() const { return text_; }
  // True when the minute or hour field starts with `*`: such a schedule fires at every matching
  // instant of real time, so in both passes of a repeated hour and never in a skipped one.
  bool follows_real_time() const { return follows_real_time_; }
  // The period of an @every schedule.
  std::optional<Millis> every() const { return every_; }
  // The items of a field as parsed (a 5-field expression has second `0` and year `*`).
  const std::vector<CronItem>& items(CronField field) const { return fields_[index(field)].items; }
  // Whether a field was written (false for the second and year of a 5-field expression).
  bool written(CronField field) const { return fields_[index(field)].written; }

 private:
  struct FieldSpec {
    std::string text;
    std::vector<CronItem> items;
    bool written = false;
    bool unrestricted = true;  // exactly `*` or `?`
    bool star = true;          // starts with `*`, or is `?`: cronie's DOM_STAR / DOW_STAR
  };

  static constexpr std::size_t index(CronField field) { return static_cast<std::size_t>(field); }
  static constexpr std::size_t kYearCount = kLastYear - kFirstYear + 1;

  Status set_field(CronField field, std::string_view text);
  // Whether a day must match both day fields under `rule` (else either field suffices).
  bool days_match_both(DayRule rule) const;
  // The days of a month (bit d = day d) that match the day-of-month and day-of-week fields.
  std::bitset<32> matching_days(int year, unsigned month, DayRule rule) const;
  // The first day from `from` through `through` whose match differs between the two rules.
  std::optional<date::local_days> first_day_rule_difference(date::local_days from, date::local_days through) const;
  // The first wall-clock time at or after `from` that matches every field, up to kLastYear.
  std::optional<date::local_seconds> next_wall_match(date::local_seconds from) const;
  Result<Instant> next_real_time(Instant after, const TimeZone& zone) const;
  Result<Instant> next_wall_time(Instant after, const TimeZone& zone) const;
  Result<Instant> next_every(Instant after, Instant anchor) const;
  Error never_fires(Instant after) const;

  std::string text_;
  std::array<FieldSpec, kCronFieldCount> fields_;
  std::optional<Millis> every_;
  bool follows_real_time_ = false;
  DayRule day_rule_ = DayRule::kCronie;

  std::bitset<60> seconds_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;              // bit d = day d of the month
  std::bitset<13> months_;                     // bit m = month m (1-12)
  std::bitset<7> days_of_week_;                // bit d = weekday d (0 = Sunday)
  std::bitset<kYearCount> years_;              // bit y = year kFirstYear + y
  bool any_year_ = true;                       // no year restriction (also before kFirstYear)
  std::vector<int> last_day_offsets_;          // `L` (0), `L-3` (3)
  bool last_weekday_of_month_ = false;         // `LW`
  std::bitset<32> nearest_weekday_days_;       // `15W`
  std::bitset<7> last_of_weekday_;             // `5L`
  std::array<std::bitset<7>, 5> nth_weekday_;  // `MON#2`: nth_weekday_[1] bit 1
};

}  // namespace kcron::cron
