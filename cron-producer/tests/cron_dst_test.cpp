// Time zones and the DST rule of docs/semantics.md#time-zones-and-dst, with exact UTC instants. Transitions used (2026):
//   Europe/Berlin     spring Mar 29: 02:00 CET (+1) -> 03:00 CEST (+2) at 01:00Z, 02:00-02:59 skipped;
//                     fall   Oct 25: 03:00 CEST -> 02:00 CET at 01:00Z, 02:00-02:59 twice
//                            (first pass 00:00Z-00:59Z, second pass 01:00Z-01:59Z);
//   America/New_York  spring Mar 8:  02:00 EST (-5) -> 03:00 EDT (-4) at 07:00Z, 02:00-02:59 skipped;
//                     fall   Nov 1:  02:00 EDT -> 01:00 EST at 06:00Z, 01:00-01:59 twice
//                            (first pass 05:00Z-05:59Z, second pass 06:00Z-06:59Z);
//   Australia/Lord_Howe (a 30-minute shift) fall Apr 5: 02:00 (+11) -> 01:30 (+10:30) at 15:00Z on
//                     Apr 4; spring Oct 4: 02:00 (+10:30) -> 02:30 (+11) at 15:30Z on Oct 3.
// Each was derived from the zone's rules (last Sunday of March/October at 01:00 UTC in the EU;
// second Sunday of March and first Sunday of November at 02:00 local in the US; first Sunday of
// April/October at 02:00 local on Lord Howe) and checked with `zdump -v` and GNU date.
#include "cron_test_support.h"

using namespace kcron;
using namespace kcron::cron;
using namespace kcron::cron::testing;

TEST_CASE("a time zone is located by IANA name from the system tzdata") {
  const TimeZone berlin = zone("Europe/Berlin");
  CHECK(berlin.name() == "Europe/Berlin");
  CHECK(berlin.period_at(date::sys_days(date::year(2026) / 7 / 1)).offset == std::chrono::hours(2));
  CHECK(berlin.period_at(date::sys_days(date::year(2026) / 1 / 1)).offset == std::chrono::hours(1));
  CHECK(zone("America/New_York").period_at(date::sys_days(date::year(2026) / 1 / 1)).offset == std::chrono::hours(-5));
}

TEST_CASE("an unknown time zone is an error that names it") {
  auto unknown = TimeZone::locate("Mars/Olympus_Mons");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message() ==
        "time zone: Mars/Olympus_Mons is not a known IANA zone (e.g. Europe/Berlin, America/New_York, UTC)");
  CHECK_FALSE(TimeZone::locate("").ok());
  CHECK_FALSE(TimeZone::locate("../../etc/passwd").ok());
}

TEST_CASE("UTC is the default zone and needs no tzdata") {
  CHECK(TimeZone().name() == "UTC");
  CHECK(zone("UTC").name() == "UTC");
  CHECK(TimeZone().period_at(date::sys_days(date::year(2026) / 7 / 1)).offset == std::chrono::seconds(0));
  CHECK(first_fire("0 9 * * *", "2026-03-01T00:00:00Z", "UTC") == "2026-03-01T09:00:00Z");
}

TEST_CASE("Berlin spring-forward: a fixed-time schedule fires a skipped wall time once, at 03:00 CEST") {
  CHECK(fires("30 2 * * *", "2026-03-28T00:00:00Z", 3, "Europe/Berlin") ==
        Fires{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"});
  // Two skipped wall times (02:00 and 02:30) still fire only once.
  CHECK(fires("0,30 2 * * *", "2026-03-28T12:00:00Z", 3, "Europe/Berlin") ==
        Fires{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:30:00Z"});
  // A wall time right after the gap is not doubled by the skipped one before it.
  CHECK(fires("30 2,3 * * *", "2026-03-28T12:00:00Z", 3, "Europe/Berlin") ==
        Fires{"2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"});
}

TEST_CASE("Berlin spring-forward: a real-time schedule has no matches inside the skipped hour") {
  CHECK(fires("*/15 2 * * *", "2026-03-28T00:00:00Z", 5, "Europe/Berlin") == Fires{"2026-03-28T01:00:00Z", "2026-03-28T01:15:00Z",
                                                                                   "2026-03-28T01:30:00Z", "2026-03-28T01:45:00Z",
                                                                                   "2026-03-30T00:00:00Z"});
  // Hourly at :30 keeps firing every real hour: 01:30 CET, then 03:30 CEST.
  CHECK(fires("30 * * * *", "2026-03-28T23:00:00Z", 4, "Europe/Berlin") ==
        Fires{"2026-03-28T23:30:00Z", "2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"});
}

TEST_CASE("Berlin fall-back: a fixed-time schedule fires a repeated wall time once, at its first occurrence") {
  CHECK(fires("30 2 * * *", "2026-10-24T12:00:00Z", 2, "Europe/Berlin") == Fires{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"});
  CHECK(fires("0,30 2 * * *", "2026-10-24T12:00:00Z", 3, "Europe/Berlin") ==
        Fires{"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:00:00Z"});
  // Searching from inside the second pass does not fire the repeated time again.
  CHECK(first_fire("30 2 * * *", "2026-10-25T01:10:00Z", "Europe/Berlin") == "2026-10-26T01:30:00Z");
  CHECK(first_fire("30 2 * * *", "2026-10-25T00:45:00Z", "Europe/Berlin") == "2026-10-26T01:30:00Z");
}

TEST_CASE("Berlin fall-back: a real-time schedule fires in both passes of the repeated hour") {
  CHECK(fires("*/30 2 * * *", "2026-10-24T12:00:00Z", 5, "Europe/Berlin") == Fires{"2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z",
                                                                                   "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z",
                                                                                   "2026-10-26T01:00:00Z"});
  CHECK(fires("0 * * * *", "2026-10-24T22:00:00Z", 4, "Europe/Berlin") ==
        Fires{"2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"});
  // From inside the first pass, the second pass is still ahead.
  CHECK(first_fire("*/30 2 * * *", "2026-10-25T00:45:00Z", "Europe/Berlin") == "2026-10-25T01:00:00Z");
}

TEST_CASE("New York spring-forward: fixed-time fires once at 03:00 EDT, real-time skips the hour") {
  CHECK(fires("30 2 * * *", "2026-03-07T00:00:00Z", 3, "America/New_York") ==
        Fires{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"});
  CHECK(first_fire("0 2 * * *", "2026-03-07T12:00:00Z", "America/New_York") == "2026-03-08T07:00:00Z");
  CHECK(first_fire("*/30 2 * * *", "2026-03-07T12:00:00Z", "America/New_York") == "2026-03-09T06:00:00Z");
  CHECK(fires("0 * * * *", "2026-03-08T05:30:00Z", 3, "America/New_York") ==
        Fires{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"});
}

TEST_CASE("New York fall-back: fixed-time fires 01:30 once (EDT), real-time fires it in EDT and EST") {
  CHECK(fires("30 1 * * *", "2026-10-31T12:00:00Z", 2, "America/New_York") ==
        Fires{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"});
  CHECK(first_fire("30 1 * * *", "2026-11-01T05:45:00Z", "America/New_York") == "2026-11-02T06:30:00Z");
  CHECK(first_fire("30 1 * * *", "2026-11-01T06:10:00Z", "America/New_York") == "2026-11-02T06:30:00Z");
  CHECK(fires("*/20 1 * * *", "2026-11-01T04:00:00Z", 7, "America/New_York") ==
        Fires{"2026-11-01T05:00:00Z", "2026-11-01T05:20:00Z", "2026-11-01T05:40:00Z", "2026-11-01T06:00:00Z",
              "2026-11-01T06:20:00Z", "2026-11-01T06:40:00Z", "2026-11-02T06:00:00Z"});
  CHECK(fires("30 * * * *", "2026-11-01T04:00:00Z", 4, "America/New_York") ==
        Fires{"2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"});
  CHECK(first_fire("*/30 1 * * *", "2026-11-01T05:45:00Z", "America/New_York") == "2026-11-01T06:00:00Z");
}

TEST_CASE("Lord Howe's 30-minute shifts follow the same rule") {
  // Fall-back: 01:30-01:59 happens twice; fixed-time fires 01:45 once (+11), real-time twice.
  CHECK(fires("45 1 * * *", "2026-04-04T00:00:00Z", 2, "Australia/Lord_Howe") ==
        Fires{"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"});
  CHECK(fires("*/15 1 * * *", "2026-04-04T12:00:00Z", 7, "Australia/Lord_Howe") ==
        Fires{"2026-04-04T14:00:00Z", "2026-04-04T14:15:00Z", "2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z",
              "2026-04-04T15:00:00Z", "2026-04-04T15:15:00Z", "2026-04-05T14:30:00Z"});
  // Spring-forward: 02:00-02:29 is skipped; 02:15 fires once at 02:30 (+11).
  CHECK(fires("15 2 * * *", "2026-10-03T00:00:00Z", 2, "Australia/Lord_Howe") ==
        Fires{"2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"});
  // Real-time: only 02:30 and 02:45 of that hour exist.
  CHECK(fires("*/15 2 * * *", "2026-10-03T12:00:00Z", 3, "Australia/Lord_Howe") ==
        Fires{"2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z", "2026-10-04T15:00:00Z"});
}

TEST_CASE("a zone without DST fires at the same UTC time every day") {
  CHECK(fires("30 2 * * *", "2026-03-28T00:00:00Z", 3, "Asia/Tokyo") ==
        Fires{"2026-03-28T17:30:00Z", "2026-03-29T17:30:00Z", "2026-03-30T17:30:00Z"});
  CHECK(fires("0 9 * * *", "2026-10-24T12:00:00Z", 2, "Asia/Tokyo") == Fires{"2026-10-25T00:00:00Z", "2026-10-26T00:00:00Z"});
}

TEST_CASE("DST continues past 2037, where the zone files' explicit transitions end") {
  // Debian's TZif files list transitions up to 2037; after that the rule string at the end of the
  // file decides. zdump: Berlin springs forward on 2040-03-25 at 01:00Z, falls back on 2040-10-28
  // at 01:00Z; New York springs forward on 2050-03-13 at 07:00Z and falls back on 2050-11-06 at 06:00Z.
  CHECK(fires("30 2 * * *", "2040-03-23T12:00:00Z", 3, "Europe/Berlin") ==
        Fires{"2040-03-24T01:30:00Z", "2040-03-25T01:00:00Z", "2040-03-26T00:30:00Z"});
  CHECK(fires("30 2 * * *", "2040-10-27T12:00:00Z", 2, "Europe/Berlin") == Fires{"2040-10-28T00:30:00Z", "2040-10-29T01:30:00Z"});
  CHECK(first_fire("0 12 * * *", "2040-07-01T00:00:00Z", "Europe/Berlin") == "2040-07-01T10:00:00Z");
  CHECK(first_fire("0 2 * * *", "2050-03-12T12:00:00Z", "America/New_York") == "2050-03-13T07:00:00Z");
  CHECK(fires("*/30 1 * * *", "2050-11-06T04:50:00Z", 4, "America/New_York") ==
        Fires{"2050-11-06T05:00:00Z", "2050-11-06T05:30:00Z", "2050-11-06T06:00:00Z", "2050-11-06T06:30:00Z"});
}

TEST_CASE("cross-check: expressions x zones x instants against results derived by hand") {
  struct Case {
    const char* expression;
    const char* zone;
    const char* after;
    const char* expected;
  };
  const std::vector<Case> cases = {
      // Sunday 2026-03-01 -> Monday 09:00 CET (+1) = 08:00Z.
      {"0 9 * * MON-FRI", "Europe/Berlin", "2026-03-01T00:00:00Z", "2026-03-02T08:00:00Z"},
      // Friday 2026-03-06 10:00 EST; DST starts Sunday Mar 8, so Monday 09:00 is EDT (-4) = 13:00Z.
      {"0 9 * * MON-FRI", "America/New_York", "2026-03-06T15:00:00Z", "2026-03-09T13:00:00Z"},
      // New Year 2027 in Tokyo (+9, no DST) is 15:00Z on New Year's Eve.
      {"0 0 1 1 *", "Asia/Tokyo", "2026-03-01T00:00:00Z", "2026-12-31T15:00:00Z"},
      // July in London is BST (+1).
      {"0 12 * * *", "Europe/London", "2026-06-30T12:00:00Z", "2026-07-01T11:00:00Z"},
      // London springs forward at 01:00 GMT on Mar 29: 01:30 is skipped, fires at 02:00 BST = 01:00Z.
      {"30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
      // London falls back at 02:00 BST on Oct 25: 01:30 happens twice, the first (BST) is 00:30Z.
      {"30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
      // 2028 is a leap year; February is EST (-5) in New York.
      {"0 0 L 2 *", "America/New_York", "2028-01-01T00:00:00Z", "2028-02-29T05:00:00Z"},
      // Last Friday of January 2026 is the 30th; January is summer time (+11) on Lord Howe.
      {"0 0 * * 5L", "Australia/Lord_Howe", "2026-01-01T00:00:00Z", "2026-01-29T13:00:00Z"},
      // Kiritimati is +14: local midnight of Mar 2 is 10:00Z on Mar 1.
      {"0 0 * * *", "Pacific/Kiritimati", "2026-03-01T00:00:00Z", "2026-03-01T10:00:00Z"},
      // Pago Pago is -11: the last minute of 2026 there is 10:59Z on 2027-01-01.
      {"59 23 31 12 *", "Pacific/Pago_Pago", "2026-03-01T00:00:00Z", "2027-01-01T10:59:00Z"},
      // Kolkata is +5:30.
      {"0 9 * * *", "Asia/Kolkata", "2026-03-01T00:00:00Z", "2026-03-01T03:30:00Z"},
      // Kathmandu is +5:45: 00:00Z is 05:45 local, the next half hour is 06:00 local = 00:15Z.
      {"*/30 * * * *", "Asia/Kathmandu", "2026-03-01T00:00:00Z", "2026-03-01T00:15:00Z"},
      // Sydney falls back at 03:00 AEDT on Apr 5: 02:30 repeats, the first (AEDT, +11) is 15:30Z Apr 4.
      {"30 2 * * *", "Australia/Sydney", "2026-04-04T00:00:00Z", "2026-04-04T15:30:00Z"},
      // Sydney springs forward at 02:00 AEST on Oct 4: 02:30 is skipped, fires 03:00 AEDT = 16:00Z Oct 3.
      {"30 2 * * *", "Australia/Sydney", "2026-10-03T00:00:00Z", "2026-10-03T16:00:00Z"},
      // Sao Paulo has had no DST since 2019: -3 all year.
      {"0 0 * * *", "America/Sao_Paulo", "2026-10-31T12:00:00Z", "2026-11-01T03:00:00Z"},
      // Second Monday of March 2026 is the 9th, after New York's switch to EDT.
      {"0 8 * * MON#2", "America/New_York", "2026-03-01T00:00:00Z", "2026-03-09T12:00:00Z"},
      // 7-field, seconds and a year: 2027-06-15 12:34:56 CEST (+2).
      {"56 34 12 15 6 * 2027", "Europe/Berlin", "2026-03-01T00:00:00Z", "2027-06-15T10:34:56Z"},
      // @daily is fixed-time: New York midnight of Mar 8 is 05:00Z (EST), not affected by the 02:00 switch.
      {"@daily", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T05:00:00Z"},
  };
  for (const Case& check : cases) {
    INFO(check.expression << " in " << check.zone << " after " << check.after);
    CHECK(first_fire(check.expression, check.after, check.zone) == check.expected);
  }
}
