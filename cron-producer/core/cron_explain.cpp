// CronExpression::explain: the schedule in plain English, good enough for a user to check it
// ("at 09:00 on Monday through Friday", "every 5 minutes between 09:00 and 17:59"), including
// how the day fields combine ("or on Friday", "if that day is a Friday").
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bitset>

#include "core/cron_expression.h"

namespace kcron::cron {

namespace {

using Kind = CronItem::Kind;

constexpr std::array<std::string_view, 12> kMonths = {"January", "February", "March",     "April",   "May",      "June",
                                                      "July",    "August",   "September", "October", "November", "December"};
constexpr std::array<std::string_view, 7> kDays = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 5> kOrdinalWords = {"first", "second", "third", "fourth", "fifth"};

struct Unit {
  std::string_view singular;
  std::string_view plural;
};

Unit unit_of(CronField field) {
  switch (field) {
    case CronField::kSecond:
      return {"second", "seconds"};
    case CronField::kMinute:
      return {"minute", "minutes"};
    case CronField::kHour:
      return {"hour", "hours"};
    case CronField::kDayOfMonth:
      return {"day", "days"};
    case CronField::kMonth:
      return {"month", "months"};
    case CronField::kDayOfWeek:
      return {"day of the week", "days of the week"};
    case CronField::kYear:
      return {"year", "years"};
  }
  return {"", ""};
}

std::string ordinal(int number) {
  const int tens = number % 100;
  const int units = number % 10;
  std::string_view suffix = "th";
  if (tens < 11 || tens > 13) {
    if (units == 1) suffix = "st";
    if (units == 2) suffix = "nd";
    if (units == 3) suffix = "rd";
  }
  return fmt::format("{}{}", number, suffix);
}

std::string join_words(const std::vector<std::string>& parts) {
  std::string joined;
  for (std::size_t position = 0; position < parts.size(); ++position) {
    if (position > 0) joined += position + 1 == parts.size() ? " and " : ", ";
    joined += parts[position];
  }
  return joined;
}

std::string value_name(CronField field, int value) {
  if (field == CronField::kMonth && value >= 1 && value <= 12) return std::string(kMonths[static_cast<std::size_t>(value - 1)]);
  if (field == CronField::kDayOfWeek) return std::string(kDays[static_cast<std::size_t>(value % 7)]);
  return std::to_string(value);
}

// The values a plain item selects, in order.
std::vector<int> values_of_item(const CronItem& item) {
  std::vector<int> values;
  for (int value = item.first; value <= item.last; value += item.step) values.push_back(value);
  return values;
}

std::string describe_item(CronField field, const CronItem& item) {
  const Unit unit = unit_of(field);
  // A stepped day of the week is a handful of names: `*/2` is Sunday, Tuesday, Thursday and Saturday.
  const bool stepped = (item.kind == Kind::kEvery || item.kind == Kind::kRange) && item.step > 1;
  if (field == CronField::kDayOfWeek && stepped) {
    std::vector<std::string> names;
    for (const int value : values_of_item(item)) names.push_back(value_name(field, value));
    return join_words(names);
  }
  switch (item.kind) {
    case Kind::kEvery:
      return item.step == 1 ? fmt::format("every {}", unit.singular)
                            : fmt::format("every {} {}", ordinal(item.step), unit.singular);
    case Kind::kValue:
      return value_name(field, item.first);
    case Kind::kRange:
      if (item.step == 1) return fmt::format("{} through {}", value_name(field, item.first), value_name(field, item.last));
      return fmt::format("every {} {} from {} through {}", ordinal(item.step), unit.singular, value_name(field, item.first),
                         value_name(field, item.last));
    case Kind::kLastDay:
      if (item.ordinal == 0) return "the last day";
      if (item.ordinal == 1) return "the day before the last day";
      return fmt::format("the day {} days before the last day", item.ordinal);
    case Kind::kLastWeekday:
      return "the last weekday";
    case Kind::kNearestWeekday:
      return fmt::format("the weekday nearest day {}", item.first);
    case Kind::kLastOfWeekday:
      return fmt::format("the last {} of the month", value_name(field, item.first));
    case Kind::kNthWeekday:
      return fmt::format("the {} {} of the month", kOrdinalWords[static_cast<std::size_t>(item.ordinal - 1) % 5],
                         value_name(field, item.first));
  }
  return "";
}

std::string describe_items(CronField field, const std::vector<CronItem>& items) {
  std::vector<std::string> parts;
  parts.reserve(items.size());
  for (const CronItem& item : items) parts.push_back(describe_item(field, item));
  return join_words(parts);
}

bool only_values(const std::vector<CronItem>& items) {
  return std::all_of(items.begin(), items.end(), [](const CronItem& item) { return item.kind == Kind::kValue; });
}
bool only_plain(const std::vector<CronItem>& items) {
  return std::all_of(items.begin(), items.end(), [](const CronItem& item) {
    return item.kind == Kind::kValue || item.kind == Kind::kRange || item.kind == Kind::kEvery;
  });
}
bool is_every(const std::vector<CronItem>& items) {
  return items.size() == 1 && items.front().kind == Kind::kEvery;
}
bool is_every_step_one(const std::vector<CronItem>& items) {
  return is_every(items) && items.front().step == 1;
}

std::vector<int> values_of(const std::vector<CronItem>& items) {
  std::vector<int> values;
  for (const CronItem& item : items) values.push_back(item.first);
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

// The finest varying time field: "every 5 minutes", "at minutes 0 and 30", "every minute from 10 through 20".
std::string lead_clause(CronField field, const std::vector<CronItem>& items) {
  const Unit unit = unit_of(field);
  if (is_every(items)) {
    const int step = items.front().step;
    return step == 1 ? fmt::format("every {}", unit.singular) : fmt::format("every {} {}", step, unit.plural);
  }
  if (items.size() == 1 && items.front().kind == Kind::kRange) {
    const CronItem& range = items.front();
    const std::string every =
        range.step == 1 ? fmt::format("every {}", unit.singular) : fmt::format("every {} {}", range.step, unit.plural);
    return fmt::format("{} from {} {} through {}", every, unit.singular, range.first, range.last);
  }
  const bool plural = items.size() > 1 || items.front().kind != Kind::kValue;
  return fmt::format("at {} {}", plural ? unit.plural : unit.singular, describe_items(field, items));
}

// A coarser time field after a finer one: "of every 2nd hour", "between 09:00 and 17:59".
std::string follower_clause(CronField field, const std::vector<CronItem>& items) {
  const Unit unit = unit_of(field);
  if (is_every_step_one(items)) return "";
  if (is_every(items)) return fmt::format("of every {} {}", ordinal(items.front().step), unit.singular);
  if (field == CronField::kHour && items.size() == 1 && items.front().kind != Kind::kRange) {
    const int hour = items.front().first;
    return fmt::format("between {:02}:00 and {:02}:59", hour, hour);
  }
  if (field == CronField::kHour && items.size() == 1 && items.front().step == 1) {
    return fmt::format("between {:02}:00 and {:02}:59", items.front().first, items.front().last);
  }
  if (items.size() == 1 && items.front().kind == Kind::kRange) return "of " + describe_item(field, items.front());
  const bool plural = items.size() > 1 || items.front().kind != Kind::kValue;
  return fmt::format("of {} {}", plural ? unit.plural : unit.singular, describe_items(field, items));
}

// Day-of-month items with a step that selects at most this many days are said as the days:
// `*/15` is "days 1, 16 and 31", not "every 15th day".
constexpr std::size_t kMaxListedSteppedDays = 5;

std::vector<CronItem> list_small_steps(const std::vector<CronItem>& items) {
  std::vector<CronItem> listed;
  for (const CronItem& item : items) {
    const bool stepped = (item.kind == Kind::kEvery || item.kind == Kind::kRange) && item.step > 1;
    const std::vector<int> values = stepped ? values_of_item(item) : std::vector<int>{};
    if (!stepped || values.size() > kMaxListedSteppedDays) {
      listed.push_back(item);
      continue;
    }
    for (const int value : values) listed.push_back(CronItem{Kind::kValue, value, value, 1, 0});
  }
  return listed;
}

// "on days 1, 16 and 31 of the month", "on every 2nd day of the month", "on the last day of the month".
std::string day_of_month_clause(const std::vector<CronItem>& written) {
  const std::vector<CronItem> items = list_small_steps(written);
  if (is_every(items)) {
    const int step = items.front().step;
    return step == 1 ? "on every day of the month" : fmt::format("on every {} day of the month", ordinal(step));
  }
  const bool any_step =
      std::any_of(items.begin(), items.end(), [](const CronItem& item) { return item.kind == Kind::kEvery || item.step > 1; });
  if (only_plain(items) && !any_step) {
    const bool plural = items.size() > 1 || items.front().kind != Kind::kValue;
    return fmt::format("on {} {} of the month", plural ? "days" : "day", describe_items(CronField::kDayOfMonth, items));
  }
  std::vector<std::string> parts;
  for (const CronItem& item : items) {
    if (item.kind == Kind::kValue) {
      parts.push_back(fmt::format("day {}", item.first));
    } else if (item.kind == Kind::kRange && item.step == 1) {
      parts.push_back(fmt::format("days {} through {}", item.first, item.last));
    } else {
      parts.push_back(describe_item(CronField::kDayOfMonth, item));
    }
  }
  return fmt::format("on {} of the month", join_words(parts));
}

// The condition a day-of-week field puts on the days of the month when a day must match both:
// "if that day is a Friday or Saturday", "if that day is the last Friday of the month".
std::string day_of_week_condition(const std::vector<CronItem>& items) {
  std::bitset<7> weekdays;
  std::vector<std::string> parts;
  for (const CronItem& item : items) {
    if (item.kind == Kind::kEvery || item.kind == Kind::kRange || item.kind == Kind::kValue) {
      for (const int value : values_of_item(item)) weekdays.set(static_cast<std::size_t>(value % 7));
    } else {
      parts.push_back(describe_item(CronField::kDayOfWeek, item));
    }
  }
  std::string names;
  for (std::size_t day = 0, listed = 0; day < kDays.size(); ++day) {
    if (!weekdays.test(day)) continue;
    ++listed;
    if (listed > 1) names += listed == weekdays.count() ? " or " : ", ";
    names += kDays[day];
  }
  if (!names.empty()) parts.insert(parts.begin(), "a " + names);
  std::string condition;
  for (std::size_t position = 0; position < parts.size(); ++position) {
    if (position > 0) condition += " or ";
    condition += parts[position];
  }
  return "if that day is " + condition;
}

std::string duration_words(Millis period) {
  struct Part {
    std::int64_t millis;
    std::string_view singular;
    std::string_view plural;
  };
  static constexpr std::array<Part, 5> kParts = {{{86'400'000, "day", "days"},
                                                  {3'600'000, "hour", "hours"},
                                                  {60'000, "minute", "minutes"},
                                                  {1'000, "second", "seconds"},
                                                  {1, "millisecond", "milliseconds"}}};
  std::vector<std::string> words;
  std::int64_t left = period.count();
  for (const Part& part : kParts) {
    const std::int64_t count = left / part.millis;
    left %= part.millis;
    if (count > 0) words.push_back(fmt::format("{} {}", count, count == 1 ? part.singular : part.plural));
  }
  return join_words(words);
}

}  // namespace

std::string CronExpression::explain() const {
  if (every_) {
    return fmt::format("every {}, counted from the schedule's start (the Unix epoch when it has none)", duration_words(*every_));
  }
  const auto& seconds = items(CronField::kSecond);
  const auto& minutes = items(CronField::kMinute);
  const auto& hours = items(CronField::kHour);
  std::vector<std::string> clauses;

  // The time of day.
  const std::vector<int> second_values = values_of(seconds);
  const std::vector<int> minute_values = values_of(minutes);
  const std::vector<int> hour_values = values_of(hours);
  const bool fixed_times = only_values(seconds) && only_values(minutes) && only_values(hours) &&
                           second_values.size() * minute_values.size() * hour_values.size() <= 6;
  if (fixed_times) {
    const bool show_seconds = second_values.size() > 1 || second_values.front() != 0;
    std::vector<std::string> times;
    for (const int hour : hour_values) {
      for (const int minute : minute_values) {
        for (const int second : second_values) {
          times.push_back(show_seconds ? fmt::format("{:02}:{:02}:{:02}", hour, minute, second)
                                       : fmt::format("{:02}:{:02}", hour, minute));
        }
      }
    }
    clauses.push_back("at " + join_words(times));
  } else if (!(only_values(seconds) && second_values == std::vector<int>{0})) {
    clauses.push_back(lead_clause(CronField::kSecond, seconds));
    clauses.push_back(only_values(seconds) && is_every_step_one(minutes) ? "of every minute"
                                                                         : follower_clause(CronField::kMinute, minutes));
    clauses.push_back(follower_clause(CronField::kHour, hours));
  } else {
    clauses.push_back(lead_clause(CronField::kMinute, minutes));
    clauses.push_back(only_values(minutes) && is_every_step_one(hours) ? "of every hour"
                                                                       : follower_clause(CronField::kHour, hours));
  }

  // The days, and how the two fields combine (DayRule): an unrestricted field adds nothing.
  const auto& days_of_month = items(CronField::kDayOfMonth);
  const auto& days_of_week = items(CronField::kDayOfWeek);
  const bool by_day_of_month = !fields_[index(CronField::kDayOfMonth)].unrestricted;
  const bool by_day_of_week = !fields_[index(CronField::kDayOfWeek)].unrestricted;
  if (by_day_of_month && by_day_of_week) {
    // fmt, not "literal" + std::string: GCC 12 at -O3 reports a -Wrestrict false positive on that.
    clauses.push_back(days_match_both(day_rule_)
                          ? fmt::format("{} {}", day_of_month_clause(days_of_month), day_of_week_condition(days_of_week))
                          : fmt::format("{} or on {}", day_of_month_clause(days_of_month),
                                        describe_items(CronField::kDayOfWeek, days_of_week)));
  } else if (by_day_of_month) {
    clauses.push_back(day_of_month_clause(days_of_month));
  } else if (by_day_of_week) {
    clauses.push_back("on " + describe_items(CronField::kDayOfWeek, days_of_week));
  }

  if (!fields_[index(CronField::kMonth)].unrestricted) {
    clauses.push_back("in " + describe_items(CronField::kMonth, items(CronField::kMonth)));
  }
  if (!fields_[index(CronField::kYear)].unrestricted) {
    clauses.push_back("in " + describe_items(CronField::kYear, items(CronField::kYear)));
  }

  std::string explanation;
  for (const std::string& clause : clauses) {
    if (clause.empty()) continue;
    if (!explanation.empty()) explanation += ' ';
    explanation += clause;
  }
  return explanation;
}

}  // namespace kcron::cron
