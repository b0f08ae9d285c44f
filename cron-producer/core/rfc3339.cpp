#include "core/rfc3339.h"

#include <date/date.h>
#include <fmt/format.h>

#include <optional>

namespace kcron::cron {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Reads exactly `count` digits at `position`, advancing it.
std::optional<int> read_digits(std::string_view text, std::size_t& position, std::size_t count) {
  if (position + count > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t offset = 0; offset < count; ++offset) {
    const char c = text[position + offset];
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  position += count;
  return value;
}

bool read_char(std::string_view text, std::size_t& position, std::string_view allowed) {
  if (position >= text.size() || allowed.find(text[position]) == std::string_view::npos) return false;
  ++position;
  return true;
}

}  // namespace

std::string format_rfc3339(Instant instant) {
  // RFC 3339 has four-digit years; date's day counts are 32-bit.
  const Instant first = date::sys_days(date::year(0) / date::January / 1);
  const Instant last = date::sys_days(date::year(10000) / date::January / 1);
  if (instant < first || instant >= last) return fmt::format("{} ms since the Unix epoch", to_epoch_ms(instant));
  const auto day = date::floor<date::days>(instant);
  const date::year_month_day ymd(day);
  const date::hh_mm_ss<Millis> clock(instant - day);
  const std::string date_and_time =
      fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), clock.hours().count(), clock.minutes().count(), clock.seconds().count());
  if (clock.subseconds().count() == 0) return date_and_time + "Z";
  return fmt::format("{}.{:03}Z", date_and_time, clock.subseconds().count());
}

Result<Instant> parse_rfc3339(std::string_view text) {
  auto invalid = [&] { return make_error("{} is not an RFC 3339 instant (e.g. 2026-03-01T09:00:00Z)", text); };
  std::size_t position = 0;
  const auto year = read_digits(text, position, 4);
  if (!year || !read_char(text, position, "-")) return invalid();
  const auto month = read_digits(text, position, 2);
  if (!month || !read_char(text, position, "-")) return invalid();
  const auto day = read_digits(text, position, 2);
  if (!day || !read_char(text, position, "Tt ")) return invalid();
  const auto hour = read_digits(text, position, 2);
  if (!hour || !read_char(text, position, ":")) return invalid();
  const auto minute = read_digits(text, position, 2);
  if (!minute || !read_char(text, position, ":")) return invalid();
  const auto second = read_digits(text, position, 2);
  if (!second) return invalid();

  int millis = 0;
  if (read_char(text, position, ".")) {
    const std::size_t start = position;
    while (position < text.size() && is_digit(text[position])) {
      if (position - start < 3) millis = millis * 10 + (text[position] - '0');
      ++position;
    }
    if (position == start) return invalid();
    for (std::size_t digits = position - start; digits < 3; ++digits) millis *= 10;
  }

  std::chrono::minutes offset(0);
  if (!read_char(text, position, "Zz")) {
    if (position >= text.size()) return invalid();
    const bool west = text[position] == '-';
    if (!read_char(text, position, "+-")) return invalid();
    const auto offset_hours = read_digits(text, position, 2);
    if (!offset_hours || !read_char(text, position, ":")) return invalid();
    const auto offset_minutes = read_digits(text, position, 2);
    if (!offset_minutes || *offset_hours > 23 || *offset_minutes > 59) return invalid();
    offset = std::chrono::minutes(*offset_hours * 60 + *offset_minutes);
    if (west) offset = -offset;
  }
  if (position != text.size()) return invalid();

  const date::year_month_day ymd{date::year(*year), date::month(static_cast<unsigned>(*month)),
                                 date::day(static_cast<unsigned>(*day))};
  if (!ymd.ok() || *hour > 23 || *minute > 59 || *second > 59) return invalid();
  return Instant(date::sys_days(ymd)) + std::chrono::hours(*hour) + std::chrono::minutes(*minute) +
         std::chrono::seconds(*second) + Millis(millis) - offset;
}

}  // namespace kcron::cron
