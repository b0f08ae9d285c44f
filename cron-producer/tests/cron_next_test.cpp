// next_after in UTC: strictly-after semantics, the day-of-month/day-of-week rule, L, W and # at
// month edges, leap years, years, @every and never-firing expressions. Weekdays used below
// (2026): Jan 1 Thu, Feb 1 Sun, Mar 1 Sun, Apr 1 Wed, May 1 Fri, Jun 1 Mon, Jul 1 Wed, Aug 1 Sat.
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

TEST_CASE("when day-of-month and day-of-week are both restricted, a day matching either fires") {
  // Fridays in January 2026 are the 2nd, 9th, 16th; the 13th is a Tuesday.
  CHECK(fires("0 0 13 * FRI", "2026-01-01T00:00:00Z", 4) ==
        Fires{"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"});
  // */10 restricts day-of-month (1, 11, 21, 31) although it starts with *: only exactly * or ? do not.
  CHECK(fires("0 0 */10 * MON", "2025-12-31T12:00:00Z", 8) ==
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
