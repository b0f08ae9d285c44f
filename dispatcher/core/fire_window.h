// How far ahead of its due instant the dispatcher commits a job's execution record (fire-ahead,
// docs/fire-ahead.md). The lead every job gets covers a commit and the worker's fetch (measured
// commit times, at least a floor); when much is coming due, the window widens so that the last
// job of a burst is committed before its instant at the fire rate measured here. Capped by
// W_max. Pure: the loop feeds it commit observations and the store's bucket counts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/delay_store.h"
#include "kcron/clock.h"

namespace kcron::dispatcher {

struct FireAheadSettings {
  // W_max: no execution record is committed earlier than this before its instant. 0: off (jobs
  // fire at their instant, as before fire-ahead).
  Millis max{5000};
  // The least lead a job gets (within max): a commit and the worker's fetch, with room for a slow one.
  Millis min_lead{500};
  // Records fired ahead and not yet due, per exec partition, at most (the workers hold them).
  std::size_t max_per_exec_partition = 20000;
  // The fire rate assumed until a full batch measured one (jobs/s of one dispatcher).
  double assumed_fire_rate = 20000;
};

class FireWindow {
 public:
  explicit FireWindow(FireAheadSettings settings) : settings_(settings) {}

  // A committed transaction that fired `fired` jobs; `took`: its commit; `cycle`: the batch's
  // whole duration (what one batch of fires costs, consuming and deciding included).
  void observe_commit(std::size_t fired, Millis took, Millis cycle);

  // The window at `now`, given what is coming due (the buckets from now's through now + max).
  // Each bucket's jobs are taken as due from its first instant and as queued behind every job of
  // the buckets before it: `need` = the lead + the time to fire all of them at the measured rate
  // (with a 1.5x margin). Once `need` reaches a bucket's start, the window is at least `need`
  // (through the bucket's end at most): a burst of N jobs starts firing about N / rate early.
  Millis window(Instant now, const std::vector<BucketCount>& upcoming, Millis bucket_width) const;

  // The lead from commit times alone: max(min_lead, 4 x the mean commit), capped by max.
  Millis lead() const;
  double fire_rate() const { return fire_rate_; }
  const FireAheadSettings& settings() const { return settings_; }

 private:
  FireAheadSettings settings_;
  double commit_ms_ = 0;  // moving mean of commit times
  double fire_rate_ = settings_.assumed_fire_rate;
};

}  // namespace kcron::dispatcher
