// One attempt of a job on this worker, from the exec record it came in to its decided outcome,
// and the stop request it shares with the slot that runs it. Plain data: the worker loop owns an
// Attempt while it waits and once it finished; a slot owns it while it runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "core/retry_policy.h"
#include "core/runner.h"
#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/priority.h"
#include "kcron/tenant.h"

namespace kcron::worker {

// Why an attempt was asked to stop early. kShutdown: the worker let go of it (a drain that timed
// out, its partition moved): it is handed back, never published.
enum class StopReason : int { kNone = 0, kTimeout = 1, kCancel = 2, kShutdown = 3 };

// Shared by the worker's main thread (which may ask the attempt to stop) and the slot running it.
struct AttemptControl {
  std::atomic<bool> stop{false};
  std::atomic<int> reason{0};  // a StopReason; the first request wins
  // Set by the slot that takes the attempt, started_at before started; false while it waits.
  std::atomic<bool> started{false};
  std::atomic<Instant> started_at{};
  // Set before the attempt is queued, read-only after.
  Millis timeout{0};
  std::string job_id;
  // Main thread only.
  std::uint64_t epoch = 0;    // the assignment the attempt is published under
  bool handed_back = false;   // its partition's next owner runs it: never publish
  std::string cancel_reason;  // of a cancel that reached it

  void request(StopReason why) {
    int expected = 0;
    reason.compare_exchange_strong(expected, static_cast<int>(why));
    stop = true;
  }
  StopReason stop_reason() const { return static_cast<StopReason>(reason.load()); }
};

// Where the exec record of an attempt was read.
struct ExecPosition {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  auto operator<=>(const ExecPosition&) const = default;
};

// What an attempt means for its job: SUCCEEDED, CANCELLED, FAILED (a retry follows) or DEAD.
struct Verdict {
  v1::JobState final_state = v1::SUCCEEDED;
  RetryDecision retry;  // for FAILED and DEAD: when the retry is due, or why it is dead
};

struct Attempt {
  ExecPosition source;
  v1::Execution execution;
  std::shared_ptr<AttemptControl> control;
  Band band = Band::kNormal;  // of its exec topic
  Instant fetched{};          // when it joined its band's waiting queue
  Instant not_before{};       // its due instant: a record fired ahead waits for it (docs/fire-ahead.md)
  Instant started{};          // on a slot
  Instant finished{};
  Outcome outcome;
  Verdict verdict;       // decided once it finished (OutcomePolicy::decide); publish only a decided attempt
  bool reduced = false;  // published without output, history or kafka record (OutcomePolicy::records)

  const std::string& job_id() const { return execution.job().id(); }
  // The job's tenant-scoped key (kcron/tenant.h): what names it in the worker's maps and on every topic.
  std::string job_key() const { return scoped_key(execution.job().tenant(), execution.job().id()); }
};

}  // namespace kcron::worker
