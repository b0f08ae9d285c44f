// CronExpression::parse: fields, items, names, macros and @every, with errors that name the field
// and the value. Works on bytes only (no locale), so any input is safe.
#include <algorithm>
#include <array>
#include <cstdint>

#include "core/cron_expression.h"

namespace kcron::cron {

namespace {

constexpr std::size_t kMaxExpressionLength = 4096;

struct FieldBounds {
  int min;
  int max;
};

constexpr std::array<FieldBounds, kCronFieldCount> kBounds = {{
    {0, 59},                                                 // second
    {0, 59},                                                 // minute
    {0, 23},                                                 // hour
    {1, 31},                                                 // day-of-month
    {1, 12},                                                 // month
    {0, 7},                                                  // day-of-week (0 and 7 are Sunday)
    {CronExpression::kFirstYear, CronExpression::kLastYear}  // year
}};

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct Macro {
  std::string_view name;
  std::string_view expansion;
};
constexpr std::array<Macro, 7> kMacros = {{
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
}};

FieldBounds bounds(CronField field) {
  return kBounds[static_cast<std::size_t>(field)];
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
char to_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}
char to_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equals_ignoring_case(std::string_view left, std::string_view right) {
  return left.size() == right.size() &&
         std::equal(left.begin(), left.end(), right.begin(), [](char a, char b) { return to_upper(a) == to_upper(b); });
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_digit);
}

// A run of digits as a number, saturating far above any field's range.
std::int64_t digits_value(std::string_view digits) {
  std::int64_t value = 0;
  for (const char c : digits) value = std::min<std::int64_t>(value * 10 + (c - '0'), 1'000'000'000'000);
  return value;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string_view> split_whitespace(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t position = 0;
  while (position < text.size()) {
    while (position < text.size() && is_space(text[position])) ++position;
    const std::size_t start = position;
    while (position < text.size() && !is_space(text[position])) ++position;
    if (position > start) words.push_back(text.substr(start, position - start));
  }
  return words;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// A number or (month, day-of-week) a name, within the field's bounds.
Result<int> parse_value(CronField field, std::string_view token, std::string_view item) {
  const std::string_view name = field_name(field);
  const FieldBounds range = bounds(field);
  if (token.empty()) return make_error("{}: a value is missing in '{}'", name, item);
  if (all_digits(token)) {
    const std::int64_t value = digits_value(token);
    if (value < range.min || value > range.max) return make_error("{}: {} is outside {}-{}", name, token, range.min, range.max);
    return static_cast<int>(value);
  }
  if (field == CronField::kMonth) {
    for (std::size_t month = 0; month < kMonthNames.size(); ++month) {
      if (equals_ignoring_case(token, kMonthNames[month])) return static_cast<int>(month) + 1;
    }
    return make_error("{}: {} is not a month name", name, token);
  }
  if (field == CronField::kDayOfWeek) {
    for (std::size_t day = 0; day < kDayNames.size(); ++day) {
      if (equals_ignoring_case(token, kDayNames[day])) return static_cast<int>(day);
    }
    return make_error("{}: {} is not a day name", name, token);
  }
  return make_error("{}: {} is not a number", name, token);
}

Result<int> parse_step(CronField field, std::string_view token, std::string_view item) {
  const std::string_view name = field_name(field);
  const FieldBounds range = bounds(field);
  const int largest = range.max - range.min + 1;
  if (token.empty()) return make_error("{}: a step is missing after / in '{}'", name, item);
  if (!all_digits(token)) return make_error("{}: step {} is not a number", name, token);
  const std::int64_t step = digits_value(token);
  if (step < 1 || step > largest) return make_error("{}: step {} is outside 1-{}", name, token, largest);
  return static_cast<int>(step);
}

// Day-of-month items with letters: L, L-3, LW, 15W.
std::optional<Result<CronItem>> parse_day_of_month_special(std::string_view item) {
  const std::string_view name = field_name(CronField::kDayOfMonth);
  if (equals_ignoring_case(item, "L")) return Result<CronItem>(CronItem{CronItem::Kind::kLastDay, 0, 0, 1, 0});
  if (equals_ignoring_case(item, "LW")) return Result<CronItem>(CronItem{CronItem::Kind::kLastWeekday, 0, 0, 1, 0});
  if (item.size() > 2 && to_upper(item[0]) == 'L' && item[1] == '-') {
    const std::string_view offset = item.substr(2);
    if (!all_digits(offset)) return Result<CronItem>(make_error("{}: {} is not a number of days in '{}'", name, offset, item));
    const std::int64_t days = digits_value(offset);
    if (days > 30) return Result<CronItem>(make_error("{}: {} in {} is outside 0-30", name, offset, item));
    return Result<CronItem>(CronItem{CronItem::Kind::kLastDay, 0, 0, 1, static_cast<int>(days)});
  }
  if (item.size() > 1 && to_upper(item.back()) == 'W') {
    const std::string_view day = item.substr(0, item.size() - 1);
    if (!all_digits(day)) return Result<CronItem>(make_error("{}: {} needs a day number before W, e.g. 15W", name, item));
    auto value = parse_value(CronField::kDayOfMonth, day, item);
    if (!value) return Result<CronItem>(value.error());
    return Result<CronItem>(CronItem{CronItem::Kind::kNearestWeekday, *value, *value, 1, 0});
  }
  return std::nullopt;
}

// Day-of-week items with letters: 5L, FRIL, MON#2, 1#2.
std::optional<Result<CronItem>> parse_day_of_week_special(std::string_view item) {
  const std::string_view name = field_name(CronField::kDayOfWeek);
  if (equals_ignoring_case(item, "L")) {
    return Result<CronItem>(make_error("{}: L needs a day before it, e.g. 5L or FRIL for the last Friday", name));
  }
  if (const std::size_t hash = item.find('#'); hash != std::string_view::npos) {
    auto day = parse_value(CronField::kDayOfWeek, item.substr(0, hash), item);
    if (!day) return Result<CronItem>(day.error());
    const std::string_view ordinal = item.substr(hash + 1);
    if (!all_digits(ordinal)) return Result<CronItem>(make_error("{}: {} needs a number 1-5 after #, e.g. MON#2", name, item));
    const std::int64_t nth = digits_value(ordinal);
    if (nth < 1 || nth > 5) return Result<CronItem>(make_error("{}: {} in {} is outside 1-5", name, ordinal, item));
    return Result<CronItem>(CronItem{CronItem::Kind::kNthWeekday, *day, *day, 1, static_cast<int>(nth)});
  }
  if (item.size() > 1 && to_upper(item.back()) == 'L') {
    auto day = parse_value(CronField::kDayOfWeek, item.substr(0, item.size() - 1), item);
    if (!day) return Result<CronItem>(day.error());
    return Result<CronItem>(CronItem{CronItem::Kind::kLastOfWeekday, *day, *day, 1, 0});
  }
  return std::nullopt;
}

Result<CronItem> parse_item(CronField field, std::string_view item) {
  const std::string_view name = field_name(field);
  const FieldBounds range = bounds(field);
  if (item.empty()) return make_error("{}: an empty item in the list", name);
  if (item == "?") {
    if (field == CronField::kDayOfMonth || field == CronField::kDayOfWeek)
      return make_error("{}: ? must be the whole field", name);
    return make_error("{}: ? is only allowed in day-of-month and day-of-week", name);
  }
  if (field == CronField::kDayOfMonth) {
    if (auto special = parse_day_of_month_special(item)) return std::move(*special);
  }
  if (field == CronField::kDayOfWeek) {
    if (auto special = parse_day_of_week_special(item)) return std::move(*special);
  }

  const std::size_t slash = item.find('/');
  const std::string_view base = item.substr(0, slash);
  int step = 1;
  if (slash != std::string_view::npos) {
    auto parsed_step = parse_step(field, item.substr(slash + 1), item);
    if (!parsed_step) return parsed_step.error();
    step = *parsed_step;
  }
  if (base == "*") {
    return CronItem{CronItem::Kind::kEvery, range.min, field == CronField::kDayOfWeek ? 6 : range.max, step, 0};
  }
  if (const std::size_t dash = base.find('-'); dash != std::string_view::npos) {
    auto first = parse_value(field, base.substr(0, dash), item);
    if (!first) return first.error();
    auto last = parse_value(field, base.substr(dash + 1), item);
    if (!last) return last.error();
    // FRI-SUN: a day-of-week range may end on Sunday written as 0 or SUN.
    if (field == CronField::kDayOfWeek && *last == 0 && *first > 0) *last = 7;
    if (*first > *last)
      return make_error("{}: {} runs backwards ({} is after {})", name, base, base.substr(0, dash), base.substr(dash + 1));
    return CronItem{CronItem::Kind::kRange, *first, *last, step, 0};
  }
  auto value = parse_value(field, base, item);
  if (!value) return value.error();
  if (slash != std::string_view::npos) return CronItem{CronItem::Kind::kRange, *value, range.max, step, 0};
  return CronItem{CronItem::Kind::kValue, *value, *value, 1, 0};
}

// "1h30m", "90s", "500ms", "2d": a sum of whole numbers with units ms, s, m, h, d.
Result<Millis> parse_duration(std::string_view text) {
  constexpr std::int64_t kMaxMillis = std::int64_t{36'525} * 24 * 3600 * 1000;  // 100 years
  std::int64_t total = 0;
  std::size_t position = 0;
  if (text.empty()) return make_error("@every needs a duration, e.g. @every 90s");
  while (position < text.size()) {
    const std::size_t number_start = position;
    while (position < text.size() && is_digit(text[position])) ++position;
    if (position == number_start) return make_error("@every: {} is not a duration, e.g. 90s, 1h30m or 500ms", text);
    const std::int64_t amount = digits_value(text.substr(number_start, position - number_start));
    const std::size_t unit_start = position;
    while (position < text.size() && !is_digit(text[position])) ++position;
    std::string unit;
    for (const char c : text.substr(unit_start, position - unit_start)) unit.push_back(to_lower(c));
    std::int64_t unit_millis = 0;
    if (unit == "ms") {
      unit_millis = 1;
    } else if (unit == "s") {
      unit_millis = 1000;
    } else if (unit == "m") {
      unit_millis = 60'000;
    } else if (unit == "h") {
      unit_millis = 3'600'000;
    } else if (unit == "d") {
      unit_millis = 86'400'000;
    } else if (unit.empty()) {
      return make_error("@every: {} needs a unit after each number (ms, s, m, h or d)", text);
    } else {
      return make_error("@every: {} in {} is not a unit (use ms, s, m, h or d)", unit, text);
    }
    if (amount > kMaxMillis / unit_millis) return make_error("@every: {} is longer than 100 years", text);
    total += amount * unit_millis;
    if (total > kMaxMillis) return make_error("@every: {} is longer than 100 years", text);
  }
  if (total == 0) return make_error("@every: {} is not a positive duration", text);
  return Millis(total);
}

}  // namespace

std::string_view field_name(CronField field) {
  switch (field) {
    case CronField::kSecond:
      return "second";
    case CronField::kMinute:
      return "minute";
    case CronField::kHour:
      return "hour";
    case CronField::kDayOfMonth:
      return "day-of-month";
    case CronField::kMonth:
      return "month";
    case CronField::kDayOfWeek:
      return "day-of-week";
    case CronField::kYear:
      return "year";
  }
  return "field";
}

Status CronExpression::set_field(CronField field, std::string_view text) {
  FieldSpec& spec = fields_[index(field)];
  spec.text = std::string(text);
  spec.written = true;
  spec.items.clear();
  const FieldBounds range = bounds(field);
  if (text == "?") {
    if (field != CronField::kDayOfMonth && field != CronField::kDayOfWeek) {
      return make_error("{}: ? is only allowed in day-of-month and day-of-week", field_name(field));
    }
    spec.unrestricted = true;
    spec.star = true;
    spec.items.push_back(CronItem{CronItem::Kind::kEvery, range.min, field == CronField::kDayOfWeek ? 6 : range.max, 1, 0});
  } else {
    spec.unrestricted = text == "*";
    spec.star = text.starts_with('*');
    for (const std::string_view item_text : split(text, ',')) {
      auto item = parse_item(field, item_text);
      if (!item) return item.error();
      spec.items.push_back(*item);
    }
  }

  // Compile the items into the sets the search uses.
  auto mark = [&](int value) {
    const auto bit = static_cast<std::size_t>(value);
    switch (field) {
      case CronField::kSecond:
        seconds_.set(bit);
        break;
      case CronField::kMinute:
        minutes_.set(bit);
        break;
      case CronField::kHour:
        hours_.set(bit);
        break;
      case CronField::kDayOfMonth:
        days_of_month_.set(bit);
        break;
      case CronField::kMonth:
        months_.set(bit);
        break;
      case CronField::kDayOfWeek:
        days_of_week_.set(bit % 7);
        break;
      case CronField::kYear:
        years_.set(static_cast<std::size_t>(value - kFirstYear));
        break;
    }
  };
  for (const CronItem& item : spec.items) {
    switch (item.kind) {
      case CronItem::Kind::kEvery:
      case CronItem::Kind::kRange:
        for (int value = item.first; value <= item.last; value += item.step) mark(value);
        break;
      case CronItem::Kind::kValue:
        mark(item.first);
        break;
      case CronItem::Kind::kLastDay:
        last_day_offsets_.push_back(item.ordinal);
        break;
      case CronItem::Kind::kLastWeekday:
        last_weekday_of_month_ = true;
        break;
      case CronItem::Kind::kNearestWeekday:
        nearest_weekday_days_.set(static_cast<std::size_t>(item.first));
        break;
      case CronItem::Kind::kLastOfWeekday:
        last_of_weekday_.set(static_cast<std::size_t>(item.first % 7));
        break;
      case CronItem::Kind::kNthWeekday:
        nth_weekday_[static_cast<std::size_t>(item.ordinal - 1)].set(static_cast<std::size_t>(item.first % 7));
        break;
    }
  }
  if (field == CronField::kYear) any_year_ = spec.unrestricted;
  return Status::success();
}

Result<CronExpression> CronExpression::parse(std::string_view text) {
  const std::string_view trimmed = trim(text);
  if (trimmed.size() > kMaxExpressionLength) {
    return make_error("the expression is {} characters long, more than {}", trimmed.size(), kMaxExpressionLength);
  }
  CronExpression expression;
  expression.text_ = std::string(trimmed);
  std::vector<std::string_view> words = split_whitespace(trimmed);

  if (!words.empty() && words.front().starts_with('@')) {
    std::string macro;
    for (const char c : words.front()) macro.push_back(to_lower(c));
    if (macro == "@every") {
      if (words.size() != 2) return make_error("@every takes one duration, e.g. @every 90s or @every 1h30m");
      auto period = parse_duration(words[1]);
      if (!period) return period.error();
      expression.every_ = *period;
      return expression;
    }
    const auto found = std::find_if(kMacros.begin(), kMacros.end(), [&](const Macro& known) { return known.name == macro; });
    if (found == kMacros.end()) {
      return make_error(
          "{} is not a known macro (use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every)",
          words.front());
    }
    if (words.size() != 1) return make_error("{} takes nothing after it", words.front());
    words = split_whitespace(found->expansion);
  }

  static constexpr std::array<CronField, 5> kFiveFields = {CronField::kMinute, CronField::kHour, CronField::kDayOfMonth,
                                                           CronField::kMonth, CronField::kDayOfWeek};
  std::vector<CronField> order;
  if (words.size() == 5) {
    order.assign(kFiveFields.begin(), kFiveFields.end());
  } else if (words.size() == 6 || words.size() == 7) {
    order.push_back(CronField::kSecond);
    order.insert(order.end(), kFiveFields.begin(), kFiveFields.end());
    if (words.size() == 7) order.push_back(CronField::kYear);
  } else {
    return make_error("expected 5, 6 or 7 fields, got {}", words.size());
  }

  for (std::size_t position = 0; position < order.size(); ++position) {
    if (auto status = expression.set_field(order[position], words[position]); !status) return status.error();
  }
  if (!expression.fields_[index(CronField::kSecond)].written) {
    expression.fields_[index(CronField::kSecond)] =
        FieldSpec{"0", {CronItem{CronItem::Kind::kValue, 0, 0, 1, 0}}, false, false, false};
    expression.seconds_.set(0);
  }
  if (!expression.fields_[index(CronField::kYear)].written) {
    expression.fields_[index(CronField::kYear)] =
        FieldSpec{"*", {CronItem{CronItem::Kind::kEvery, kFirstYear, kLastYear, 1, 0}}, false, true, true};
  }
  const std::string& minute = expression.fields_[index(CronField::kMinute)].text;
  const std::string& hour = expression.fields_[index(CronField::kHour)].text;
  expression.follows_real_time_ = minute.starts_with('*') || hour.starts_with('*');
  return expression;
}

}  // namespace kcron::cron
