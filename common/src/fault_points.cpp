#include "kcron/fault_points.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace kcron::fault {
namespace {

std::atomic<bool> g_active{false};
std::mutex g_mutex;
std::vector<Point> g_points;
std::map<std::string, std::uint64_t, std::less<>> g_hits;

[[noreturn]] void die(std::string_view point) {
  spdlog::warn("event=fault_point point={} action=crash", point);
  spdlog::default_logger()->flush();
  std::raise(SIGKILL);
  std::abort();  // not reached
}

}  // namespace

Result<std::vector<Point>> parse(std::string_view spec) {
  std::vector<Point> points;
  while (!spec.empty()) {
    const auto comma = spec.find(',');
    std::string_view entry = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (entry.empty()) continue;
    Point point;
    if (const auto colon = entry.find(':'); colon != std::string_view::npos) {
      const auto action = entry.substr(colon + 1);
      if (action == "crash") {
        point.action = Action::kCrash;
      } else if (action == "crash_soon") {
        point.action = Action::kCrashSoon;
      } else if (action == "unknown") {
        point.action = Action::kUnknown;
      } else {
        return make_error("fault point '{}': unknown action '{}' (crash, crash_soon or unknown)", entry, action);
      }
      entry = entry.substr(0, colon);
    }
    if (const auto at = entry.find('@'); at != std::string_view::npos) {
      const auto number = entry.substr(at + 1);
      const auto parsed = std::from_chars(number.data(), number.data() + number.size(), point.nth);
      if (parsed.ec != std::errc() || parsed.ptr != number.data() + number.size() || point.nth == 0) {
        return make_error("fault point '{}': '@{}' is not a hit number >= 1", entry, number);
      }
      entry = entry.substr(0, at);
    }
    if (entry.empty()) return make_error("fault point without a name");
    point.name = std::string(entry);
    points.push_back(std::move(point));
  }
  return points;
}

Millis clock_offset_from_environment() {
  const char* value = std::getenv("KCRON_FAULT_CLOCK_OFFSET_MS");
  if (value == nullptr || *value == '\0') return Millis(0);
  char* end = nullptr;
  const long long offset = std::strtoll(value, &end, 10);
  if (end == value || *end != '\0') {
    spdlog::error("event=fault_clock_offset_invalid value=\"{}\" msg=\"not an integer; the clock is not moved\"", value);
    return Millis(0);
  }
  spdlog::warn("event=fault_clock_offset offset_ms={} msg=\"test-only: this program's clock is moved\"", offset);
  return Millis(offset);
}

void init_from_environment() {
  const char* value = std::getenv("KCRON_FAULT_POINTS");
  if (value == nullptr || *value == '\0') return;
  auto points = parse(value);
  if (!points) {
    spdlog::error("event=fault_points_invalid error=\"{}\"", points.error().message());
    return;
  }
  std::lock_guard lock(g_mutex);
  g_points = std::move(*points);
  g_active = !g_points.empty();
  spdlog::warn("event=fault_points_armed spec=\"{}\" msg=\"test-only fault injection is active\"", value);
}

bool armed() {
  return g_active.load(std::memory_order_relaxed);
}

Action hit(std::string_view point) {
  if (!g_active.load(std::memory_order_relaxed)) return Action::kNone;
  Action action = Action::kNone;
  {
    std::lock_guard lock(g_mutex);
    auto found = g_hits.find(point);
    if (found == g_hits.end()) found = g_hits.emplace(std::string(point), 0).first;
    const auto count = ++found->second;
    for (const auto& entry : g_points) {
      if (entry.name == point && entry.nth == count) action = entry.action;
    }
  }
  switch (action) {
    case Action::kCrash:
      die(point);
    case Action::kCrashSoon:
      spdlog::warn("event=fault_point point={} action=crash_soon", point);
      std::thread([name = std::string(point)] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        die(name);
      }).detach();
      return Action::kNone;
    case Action::kUnknown:
      spdlog::warn("event=fault_point point={} action=unknown", point);
      return Action::kUnknown;
    case Action::kNone:
      break;
  }
  return Action::kNone;
}

}  // namespace kcron::fault
