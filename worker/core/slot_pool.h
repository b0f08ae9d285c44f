// The worker's slots: N threads, each taking the next waiting attempt from the band the
// BandScheduler picks and running it with the Runner. Within a band, tenants take turns (round
// robin by name over the tenants with a job waiting), and a tenant at its running-jobs cap waits
// ("held") until one of its jobs ends (docs/tenancy.md#limits). Every piece of state the slot threads share
// with the worker's main thread lives here, behind one mutex: the waiting queues (one per band,
// oldest first), the scheduler's credits, the finished attempts. The main thread enqueues, takes
// waiting attempts back (a cancel, a revoke) and collects the finished ones; it owns an attempt
// before it is enqueued and after it is collected. An attempt fired ahead of its instant
// (not_before later than now) waits apart, out of the bands' queues and counts, and joins its
// band when the clock reaches its instant: a slot waits for that instant, not for a poll.
// No I/O of its own; time from the clock.
#pragma once

#include <array>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/attempt.h"
#include "core/band_scheduler.h"
#include "core/runner.h"
#include "kcron/clock.h"

namespace kcron::worker {

class SlotPool {
 public:
  // `on_start` runs on a slot thread as it starts an attempt (metrics); it must be thread-safe.
  // `after_run` runs on the slot thread once the attempt ran (stopped before it started: not at all),
  // before the main thread can collect it: the worker stores large outputs there.
  SlotPool(std::size_t slots, BandPolicy policy, const Runner& runner, const Clock& clock,
           std::function<void(const Attempt&)> on_start = {}, std::function<void(Attempt&)> after_run = {});
  ~SlotPool();  // stop()
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  void start();
  // Stops the slots and joins them: each finishes the attempt it runs (its owner asks those to
  // stop first), and nothing that still waits is started. Idempotent; main thread.
  void stop();
  bool stopping() const;

  // Main thread. Queues an attempt in its band; returns how many wait in that band now. The slots
  // are woken by wake(), once per round of enqueues (a wake-up per job was most of the worker's CPU).
  // An attempt whose not_before is later than now waits for it apart (early()): it fills no band.
  std::size_t enqueue(Attempt attempt);
  // Wakes every slot to look at the clock again (a ManualClock moved; the system clock needs none).
  void poke();
  // Wakes one slot if anything was enqueued since the last call; a slot that takes an attempt
  // and sees more waiting wakes the next, so a round of quick jobs uses only the slots it needs.
  void wake();
  // Takes back an attempt no slot has started; none when a slot has it (or it is unknown).
  std::optional<Attempt> take_waiting(const AttemptControl& control);
  // Takes back every waiting attempt (none of them started), oldest first per band.
  std::vector<Attempt> take_all_waiting();
  // The attempts finished since the last call, with outcome, started and finished set.
  std::deque<Attempt> take_finished();
  // waiting(), held() and early() first move the early attempts whose instant has come to their
  // bands' queues: with every slot busy no slot does, and a due attempt must count in its band
  // (a full band pauses its fetching) instead of staying apart, where nothing bounds the fetch.
  std::array<std::size_t, kBandCount> waiting();
  // Of those, the ones no slot may take now: their tenant is at its running-jobs cap.
  std::array<std::size_t, kBandCount> held();
  // Attempts waiting for their instant (fired ahead); not in waiting().
  std::size_t early();

  // Main thread. The most jobs of each tenant (by name; "default" for the default tenant) that
  // may run at once in this pool; a tenant without an entry has no cap. Wakes the slots.
  void set_running_caps(std::map<std::string, std::size_t, std::less<>> caps);

 private:
  void slot_main();
  // Under mutex_: whether a slot may take anything, a band's count of takeable attempts and the
  // oldest of them, and which attempt of the picked band to take (the next tenant's oldest).
  bool anything_runnable() const;
  bool runnable(std::string_view tenant) const;
  std::size_t held_in(std::size_t band) const;
  std::size_t pick_in(std::size_t band);
  void count_waiting(const Attempt& attempt, std::size_t band, int delta);
  // Moves the early attempts whose instant has come to their bands' queues; returns how many.
  std::size_t promote_due(Instant now);
  void push_waiting(Attempt attempt);

  const std::size_t slots_;
  const Runner& runner_;
  const Clock& clock_;
  std::function<void(const Attempt&)> on_start_;
  std::function<void(Attempt&)> after_run_;

  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::array<std::deque<Attempt>, kBandCount> waiting_;  // by band_index, oldest first
  std::array<std::map<std::string, std::size_t, std::less<>>, kBandCount> waiting_by_tenant_;
  std::array<std::string, kBandCount> last_tenant_;  // served last in each band
  std::map<std::string, std::size_t, std::less<>> running_by_tenant_;
  std::map<std::string, std::size_t, std::less<>> caps_;
  BandScheduler scheduler_;
  std::deque<Attempt> finished_;
  std::multimap<Instant, Attempt> early_;  // by not_before
  bool timer_waiting_ = false;             // a slot sleeps until early_'s first instant, on timer_wake_
  std::condition_variable timer_wake_;
  bool stopping_ = false;

  // Main thread only.
  bool wake_pending_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace kcron::worker
