#include "core/time_zone.h"

#include <fmt/format.h>

#include <fstream>
#include <optional>

// date 3.0.1's ptz.h names `hh_mm_ss` unqualified under both `using namespace date` and
// `using namespace std::chrono`, which is ambiguous in C++20. This alias resolves it to date's.
namespace date {
template <class Duration>
using kcron_hh_mm_ss = hh_mm_ss<Duration>;
}  // namespace date
#define hh_mm_ss kcron_hh_mm_ss
#include <date/ptz.h>
#undef hh_mm_ss

namespace kcron::cron {

namespace {

// Where Debian's libdate-tz (built with USE_OS_TZDB) reads its zones from.
constexpr std::string_view kZoneInfoDir = "/usr/share/zoneinfo";
constexpr std::size_t kMaxZoneFileBytes = 1 << 20;

date::sys_info utc_period() {
  date::sys_info period{};
  period.begin = date::sys_days{date::year::min() / date::January / 1};
  period.end = date::sys_days{date::year::max() / date::December / 31};
  period.offset = std::chrono::seconds(0);
  period.save = std::chrono::minutes(0);
  period.abbrev = "UTC";
  return period;
}

// The POSIX TZ string that ends a version 2+ TZif file ("\n<rule>\n"), if any.
std::optional<std::string> footer_rule(const std::string& zone_name) {
  std::ifstream file(fmt::format("{}/{}", kZoneInfoDir, zone_name), std::ios::binary);
  if (!file) return std::nullopt;
  std::string bytes(kMaxZoneFileBytes, '\0');
  file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<std::size_t>(file.gcount()));
  if (bytes.size() < 6 || !bytes.starts_with("TZif") || bytes[4] < '2' || bytes.back() != '\n') return std::nullopt;
  const std::size_t start = bytes.rfind('\n', bytes.size() - 2);
  if (start == std::string::npos) return std::nullopt;
  std::string rule = bytes.substr(start + 1, bytes.size() - start - 2);
  if (rule.empty()) return std::nullopt;
  for (const char c : rule) {
    if (c < ' ' || c > '~') return std::nullopt;
  }
  return rule;
}

}  // namespace

// The zone's own rule string, used from the start of the last period its transitions describe.
struct TimeZone::RuleAfterLastTransition {
  Posix::time_zone rule;
  date::sys_seconds from;
  date::local_seconds from_wall;  // a day after `from`, in local time: before it, the file still decides
};

Result<TimeZone> TimeZone::locate(std::string_view name) {
  if (name == "UTC") return TimeZone::utc();
  TimeZone zone;
  try {
    zone.zone_ = date::locate_zone(name);
    zone.name_ = std::string(name);
    // Loads the zone's data now, so that later lookups cannot fail.
    const date::sys_info last = zone.zone_->get_info(date::sys_days{date::year::max() / date::January / 1});
    (void)zone.zone_->get_info(date::local_days{date::year(2000) / date::January / 1});
    if (auto rule_text = footer_rule(zone.zone_->name())) {
      try {
        Posix::time_zone rule(*rule_text);
        // The rule must agree with the file at the start of the period it takes over.
        if (rule.get_info(last.begin).offset == last.offset) {
          zone.later_rule_ = std::make_shared<const RuleAfterLastTransition>(RuleAfterLastTransition{
              std::move(rule), last.begin, date::local_seconds{last.begin.time_since_epoch()} + last.offset + date::days(1)});
        }
      } catch (const std::exception&) {
        // A rule string this library cannot read: the file's transitions alone decide.
      }
    }
  } catch (const std::exception& error) {
    const std::string_view reason = error.what();
    if (reason.ends_with("not found in timezone database")) {
      return make_error("time zone: {} is not a known IANA zone (e.g. Europe/Berlin, America/New_York, UTC)", name);
    }
    return make_error("time zone: {} cannot be loaded: {}", name, reason);
  }
  return zone;
}

date::sys_info TimeZone::period_at(date::sys_seconds instant) const {
  if (zone_ == nullptr) return utc_period();
  if (later_rule_ && instant >= later_rule_->from) return later_rule_->rule.get_info(instant);
  return zone_->get_info(instant);
}

date::local_info TimeZone::wall_time_info(date::local_seconds wall) const {
  if (zone_ == nullptr) return date::local_info{date::local_info::unique, utc_period(), {}};
  if (later_rule_ && wall >= later_rule_->from_wall) return later_rule_->rule.get_info(wall);
  return zone_->get_info(wall);
}

}  // namespace kcron::cron
