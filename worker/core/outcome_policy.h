// What comes of a finished attempt, decided without Kafka: how a stop request (timeout, cancel)
// changes its outcome, whether a failure is retried or DEAD, and the records that publish it in
// one transaction: the table "Outcome of an attempt -> records" in worker/README.md. Also what a
// worker does when transactions keep aborting: isolate one outcome, then publish it reduced.
// Pure: the instants are the attempt's, the random draw is a parameter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/attempt.h"
#include "core/retry_policy.h"
#include "kcron/out_record.h"
#include "kcron/topics.h"

namespace kcron::worker {

struct OutcomeSettings {
  TopicNames names{"kcron."};
  std::string worker_id = "worker-1";
  std::int32_t exec_partitions = 12;  // worker-done has as many partitions; a marker goes to its exec partition's
  std::size_t max_history = 10;       // failed attempts a retried job carries
  Backoff default_backoff;            // for jobs whose retry policy leaves a field unset
  bool emit_events = false;           // also write every transition to `events` (status holds the timeline)
  // Also write a done marker on worker-done. Off once every worker reads results as done markers
  // (the upgrade gate); a worker of an earlier release reads only worker-done.
  bool done_markers = true;
};

// Worker-written states order after every dispatcher state of the same attempt.
constexpr std::uint64_t kWorkerSequence = 1U << 20U;
// What a retried job and a dead letter keep of each earlier attempt's output and error.
constexpr std::size_t kHistoryTextBytes = 1024;
// Below the broker's default message.max.bytes (1 MB) with room for headers and batch overhead.
constexpr std::size_t kMaxPublishedRecordBytes = std::size_t{950} * 1024;
// A flow node's output its Completion carries for its children (docs/flows.md#data-between-nodes);
// a larger one is announced by its size only.
constexpr std::size_t kFlowOutputBytes = 4096;
// The dispatcher's default max_record_bytes: a retry over it would be REJECTED there, and the job
// would be neither retried nor dead.
constexpr std::size_t kMaxJobsRecordBytes = 900'000;

// The timeout of an attempt: the job's own, else the worker's default.
Millis attempt_timeout(const v1::Job& job, Millis default_timeout);

// The outcome of an attempt that was asked to stop: at its timeout it FAILED (retriable) "timed
// out after N ms"; cancelled it is CANCELLED. An attempt that succeeded before the request
// landed keeps its success. kNone and kShutdown leave the outcome as it is (a shut-down attempt is
// handed back, never published).
Outcome after_stop(Outcome outcome, StopReason reason, Millis timeout, std::string_view cancel_reason);

// A job cancelled before a slot took it.
Outcome cancelled_before_start(std::string_view reason);

class OutcomePolicy {
 public:
  explicit OutcomePolicy(OutcomeSettings settings);

  // SUCCEEDED and CANCELLED stand; a FAILED attempt is retried (FAILED, with its delay) while the
  // job's retries last and the failure is retriable, else DEAD. Backoff fields the job leaves
  // unset come from the settings. `unit_random` in [0, 1) is the jitter draw.
  Verdict decide(const v1::Job& job, const Outcome& outcome, double unit_random) const;

  // The records that publish a decided attempt, in one transaction with its offset: result,
  // status (and event), a Retry or a DeadLetter and a Completion on `jobs` as the table says, a
  // kafka job's record, and the done marker. When one of them could never be published (over
  // kMaxPublishedRecordBytes, or a retry over kMaxJobsRecordBytes) the attempt is marked
  // `reduced` and its reduced records are returned instead (see reduced_records).
  std::vector<OutRecord> publish(Attempt& attempt) const;

  // The records of `attempt` as is (reduced when attempt.reduced).
  std::vector<OutRecord> records(const Attempt& attempt) const;

  // True when every record fits the limits above.
  bool publishable(const std::vector<OutRecord>& records) const;

  // Main thread: whether outcomes also write a done marker on worker-done (the gate's answer).
  void set_done_markers(bool on) { settings_.done_markers = on; }
  bool done_markers() const { return settings_.done_markers; }

 private:
  // The form published when the full one cannot be: no output, history, payload or kafka record,
  // no retry. The job is DEAD with the reason (a job that succeeded stays SUCCEEDED unless it was
  // a kafka job, whose record was not written), and its offset moves on.
  Attempt reduced_form(const Attempt& attempt) const;

  OutcomeSettings settings_;
};

// How the next transaction publishes outcomes after `consecutive_aborts` aborts in a row: all of
// them; from kIsolateAfterAborts, one at a time, to find the one that cannot be published; from
// kReduceAfterAborts, that one reduced; past kGiveUpAfterAborts the worker stops (the broker's
// trouble, not a record's).
struct PublishPlan {
  std::size_t outcomes = 0;   // from the front of the finished outcomes
  bool reduce_first = false;  // publish that one reduced
};
constexpr int kIsolateAfterAborts = 3;
constexpr int kReduceAfterAborts = 6;
constexpr int kGiveUpAfterAborts = 20;
PublishPlan plan_publication(int consecutive_aborts, std::size_t waiting_outcomes);
constexpr bool give_up_after(int consecutive_aborts) {
  return consecutive_aborts > kGiveUpAfterAborts;
}

}  // namespace kcron::worker
