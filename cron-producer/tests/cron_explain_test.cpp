// explain(): plain English a user can check a schedule against.
#include "cron_test_support.h"

using namespace kcron::cron;
using namespace kcron::cron::testing;

TEST_CASE("explain says fixed times as clock times and the days in words") {
  struct Case {
    const char* expression;
    const char* explanation;
  };
  const std::vector<Case> cases = {
      {"0 9 * * MON-FRI", "at 09:00 on Monday through Friday"},
      {"0 9,17 * * *", "at 09:00 and 17:00"},
      {"30 0 9 * * *", "at 09:00:30"},
      {"5 4 * * 0", "at 04:05 on Sunday"},
      {"0 0 * * 5-7", "at 00:00 on Friday through Sunday"},
      {"0 12 * JAN,JUL SUN", "at 12:00 on Sunday in January and July"},
      {"0 0 1 */3 *", "at 00:00 on day 1 of the month in every 3rd month"},
      {"0 0 9 1,15 * *", "at 09:00 on days 1 and 15 of the month"},
      {"0 0 0 1 1 * 2027", "at 00:00 on day 1 of the month in January in 2027"},
  };
  for (const Case& check : cases) {
    INFO(check.expression);
    CHECK(expression(check.expression).explain() == check.explanation);
  }
}

TEST_CASE("explain says repeating schedules as intervals") {
  struct Case {
    const char* expression;
    const char* explanation;
  };
  const std::vector<Case> cases = {
      {"*/5 * * * *", "every 5 minutes"},
      {"* * * * *", "every minute"},
      {"* * * * * *", "every second"},
      {"*/10 * * * * *", "every 10 seconds"},
      {"0 * * * *", "at minute 0 of every hour"},
      {"30 */2 * * *", "at minute 30 of every 2nd hour"},
      {"*/15 9-17 * * MON-FRI", "every 15 minutes between 09:00 and 17:59 on Monday through Friday"},
      {"0,30 9-17 * * *", "at minutes 0 and 30 between 09:00 and 17:59"},
      {"10-50/7 * * * *", "every 7 minutes from minute 10 through 50"},
      {"0 8-18/2 * * *", "at minute 0 of every 2nd hour from 8 through 18"},
      {"*/10 */5 * * * *", "every 10 seconds of every 5th minute"},
      {"0,30 * * * * *", "at seconds 0 and 30 of every minute"},
  };
  for (const Case& check : cases) {
    INFO(check.expression);
    CHECK(expression(check.expression).explain() == check.explanation);
  }
}

TEST_CASE("explain names L, W and # days and the either-day rule") {
  struct Case {
    const char* expression;
    const char* explanation;
  };
  const std::vector<Case> cases = {
      {"0 0 L * *", "at 00:00 on the last day of the month"},
      {"0 0 L-3 * *", "at 00:00 on the day 3 days before the last day of the month"},
      {"0 0 LW * *", "at 00:00 on the last weekday of the month"},
      {"0 0 15W * *", "at 00:00 on the weekday nearest day 15 of the month"},
      {"0 0 1,L * *", "at 00:00 on day 1 and the last day of the month"},
      {"0 0 * * 5L", "at 00:00 on the last Friday of the month"},
      {"0 0 * * MON#2", "at 00:00 on the second Monday of the month"},
      {"0 0 * * 1#1,5L", "at 00:00 on the first Monday of the month and the last Friday of the month"},
      {"0 0 13 * FRI", "at 00:00 on day 13 of the month or on Friday"},
  };
  for (const Case& check : cases) {
    INFO(check.expression);
    CHECK(expression(check.expression).explain() == check.explanation);
  }
}

TEST_CASE("explain says whether a day must match both day fields or either, as cronie decides it") {
  struct Case {
    const char* expression;
    const char* explanation;
  };
  const std::vector<Case> cases = {
      // The example, and the same days written without a leading *.
      {"59 9-15 */15 * 5-6",
       "at minute 59 between 09:00 and 15:59 on days 1, 16 and 31 of the month if that day is a Friday or Saturday"},
      {"59 9-15 1-31/15 * 5-6",
       "at minute 59 between 09:00 and 15:59 on days 1, 16 and 31 of the month or on Friday through Saturday"},
      {"0 0 */2 * MON", "at 00:00 on every 2nd day of the month if that day is a Monday"},
      {"0 0 1-31/2 * MON", "at 00:00 on every 2nd day from 1 through 31 of the month or on Monday"},
      {"0 0 13 * */2", "at 00:00 on day 13 of the month if that day is a Sunday, Tuesday, Thursday or Saturday"},
      {"0 0 13 * 0-6/2", "at 00:00 on day 13 of the month or on Sunday, Tuesday, Thursday and Saturday"},
      {"0 0 */1 * 1-5", "at 00:00 on every day of the month if that day is a Monday, Tuesday, Wednesday, Thursday or Friday"},
      {"0 0 *,15 * MON", "at 00:00 on every day and day 15 of the month if that day is a Monday"},
      {"0 0 L * */3", "at 00:00 on the last day of the month if that day is a Sunday, Wednesday or Saturday"},
      {"0 0 */2 * 5L", "at 00:00 on every 2nd day of the month if that day is the last Friday of the month"},
      {"0 0 */10 * MON,5L",
       "at 00:00 on days 1, 11, 21 and 31 of the month if that day is a Monday or the last Friday of the month"},
      // An unrestricted field (exactly * or ?) adds nothing, whatever the other one is.
      {"0 0 */15 * *", "at 00:00 on days 1, 16 and 31 of the month"},
      {"0 0 */15 * ?", "at 00:00 on days 1, 16 and 31 of the month"},
      {"0 0 ? * */2", "at 00:00 on Sunday, Tuesday, Thursday and Saturday"},
      {"0 0 * * 1-5/2", "at 00:00 on Monday, Wednesday and Friday"},
      {"0 0 0 */15 * FRI 2027", "at 00:00 on days 1, 16 and 31 of the month if that day is a Friday in 2027"},
  };
  for (const Case& check : cases) {
    INFO(check.expression);
    CHECK(expression(check.expression).explain() == check.explanation);
  }
}

TEST_CASE("explain of the earlier day rule says either, for kcron schedule lint") {
  CHECK(expression("59 9-15 */15 * 5-6").with_day_rule(DayRule::kLegacy).explain() ==
        "at minute 59 between 09:00 and 15:59 on days 1, 16 and 31 of the month or on Friday through Saturday");
  CHECK(expression("0 0 */15 * *").with_day_rule(DayRule::kLegacy).explain() == "at 00:00 on days 1, 16 and 31 of the month");
}

TEST_CASE("explain expands macros and says how @every is anchored") {
  CHECK(expression("@yearly").explain() == "at 00:00 on day 1 of the month in January");
  CHECK(expression("@hourly").explain() == "at minute 0 of every hour");
  CHECK(expression("@daily").explain() == "at 00:00");
  CHECK(expression("@every 90s").explain() ==
        "every 1 minute and 30 seconds, counted from the schedule's start (the Unix epoch when it has none)");
  CHECK(expression("@every 1h30m").explain().starts_with("every 1 hour and 30 minutes, "));
  CHECK(expression("@every 500ms").explain().starts_with("every 500 milliseconds, "));
}
