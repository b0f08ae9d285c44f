// Time for kcron: an injectable wall clock, so schedule and bucket logic can be tested by advancing
// a ManualClock instead of sleeping. All instants are milliseconds since the Unix epoch (UTC).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kcron {

using Millis = std::chrono::milliseconds;
using Instant = std::chrono::sys_time<Millis>;

constexpr Instant instant_from_ms(std::int64_t epoch_ms) {
  return Instant(Millis(epoch_ms));
}
constexpr std::int64_t to_epoch_ms(Instant instant) {
  return instant.time_since_epoch().count();
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Instant now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Instant now() const override { return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now()); }
  static SystemClock& instance() {
    static SystemClock clock;
    return clock;
  }
};

// The system clock moved by a fixed offset: the fault suite's worker whose clock is ahead or
// behind (KCRON_FAULT_CLOCK_OFFSET_MS, kcron/fault_points.h).
class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(Millis offset) : offset_(offset) {}
  Instant now() const override { return SystemClock::instance().now() + offset_; }

 private:
  Millis offset_;
};

// A clock that only moves when told to. Safe to read from other threads.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Instant start) : epoch_ms_(to_epoch_ms(start)) {}
  Instant now() const override { return instant_from_ms(epoch_ms_.load()); }
  void advance(Millis by) { epoch_ms_ += by.count(); }
  void set(Instant to) { epoch_ms_ = to_epoch_ms(to); }

 private:
  std::atomic<std::int64_t> epoch_ms_;
};

}  // namespace kcron
