// Which priority band a free slot serves next. Smooth weighted round robin over the bands that
// have waiting jobs (a tie goes to the higher band, so high is served first), except that a band
// whose oldest waiting job has waited at least the aging threshold is served before any other
// (the longest-waiting first), so no band starves. Pure: the caller passes what waits and the time.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "kcron/clock.h"
#include "kcron/priority.h"
#include "kcron/result.h"

namespace kcron::worker {

constexpr std::size_t kBandCount = kAllBands.size();

constexpr std::size_t band_index(Band band) {
  return static_cast<std::size_t>(band);
}

struct BandPolicy {
  // Share of picks each band gets while every band has jobs waiting, by band_index.
  std::array<std::int64_t, kBandCount> weights = {8, 4, 1};
  // A band whose oldest job has waited this long is served first; 0 turns aging off.
  std::chrono::milliseconds aging{30000};
};

constexpr std::int64_t kMaxBandWeight = 1000;

// Weights must be 1..kMaxBandWeight (a weight of 0 would starve its band without aging), the
// aging threshold not negative.
Status validate(const BandPolicy& policy);

// What one band has waiting: how many jobs, and when the oldest of them was fetched.
struct BandBacklog {
  std::size_t waiting = 0;
  Instant oldest_fetched{};
};
using BandBacklogs = std::array<BandBacklog, kBandCount>;

// Keeps the round-robin credits between picks. Not thread-safe: the worker calls it under the lock
// that guards its waiting queues.
class BandScheduler {
 public:
  explicit BandScheduler(BandPolicy policy);  // the policy passed validate()

  // The band to serve now, or none when nothing waits. An aged pick is outside the rotation: it
  // leaves the credits as they were. A band with nothing waiting has its credit reset, so it
  // cannot save up picks while it is empty.
  std::optional<Band> pick(const BandBacklogs& backlogs, Instant now);

  const BandPolicy& policy() const { return policy_; }
  std::int64_t credit(Band band) const { return credits_[band_index(band)]; }

 private:
  BandPolicy policy_;
  std::array<std::int64_t, kBandCount> credits_{};
};

}  // namespace kcron::worker
