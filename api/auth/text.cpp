#include "auth/text.h"

#include <fmt/format.h>

#include <cstdint>

namespace kcron::auth {

namespace {

constexpr std::size_t kMaxQuotedBytes = 64;

struct CivilDate {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

// Howard Hinnant's days_from_civil inverse (proleptic Gregorian calendar).
CivilDate civil_from_days(std::int64_t days) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<std::uint64_t>(days - era * 146097);
  const std::uint64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const std::uint64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::uint64_t month_index = (5 * day_of_year + 2) / 153;
  const auto day = static_cast<unsigned>(day_of_year - (153 * month_index + 2) / 5 + 1);
  const auto month = static_cast<unsigned>(month_index < 10 ? month_index + 3 : month_index - 9);
  const std::int64_t year = static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

}  // namespace

std::string quote_value(std::string_view text) {
  std::string out = "'";
  for (const char character : text.substr(0, kMaxQuotedBytes)) {
    const auto byte = static_cast<unsigned char>(character);
    if (byte >= 0x20 && byte < 0x7f && character != '\\')
      out += character;
    else
      out += fmt::format("\\x{:02x}", byte);
  }
  if (text.size() > kMaxQuotedBytes) out += "...";
  return out + "'";
}

std::string format_instant(std::chrono::system_clock::time_point instant) {
  const std::int64_t seconds = std::chrono::floor<std::chrono::seconds>(instant).time_since_epoch().count();
  constexpr std::int64_t kSecondsPerDay = 86400;
  const std::int64_t days = (seconds >= 0 ? seconds : seconds - (kSecondsPerDay - 1)) / kSecondsPerDay;
  const std::int64_t of_day = seconds - days * kSecondsPerDay;
  const CivilDate date = civil_from_days(days);
  if (date.year < 0 || date.year > 9999) return fmt::format("@{}", seconds);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", date.year, date.month, date.day, of_day / 3600, of_day / 60 % 60,
                     of_day % 60);
}

}  // namespace kcron::auth
