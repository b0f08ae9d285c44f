// The worker's loop, on the main thread: consume exec records into the SlotPool's waiting queues,
// at most `prefetch` per band (pausing a full band's partitions, resuming only what it paused);
// collect finished attempts, decide them (OutcomePolicy) and publish their records in one
// transaction with the consumed offsets. An attempt whose partition was revoked while it ran is
// not published: its new owner runs it again (execution is at least once), and a new owner skips
// the jobs whose done markers say they finished after the committed offset. Cancels arrive on the
// control topic; heartbeats go to the workers topic. What the loop itself does: run, handle a
// record, commit, rebalance, and recover or rejoin after a fence.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/attempt.h"
#include "core/band_scheduler.h"
#include "core/cancel_memory.h"
#include "core/offset_tracker.h"
#include "core/outcome_policy.h"
#include "core/runner.h"
#include "core/slot_pool.h"
#include "kafka/band_pauses.h"
#include "kafka/control_channel.h"
#include "kafka/done_markers.h"
#include "kafka/kafka_executor.h"
#include "kcron/clock.h"
#include "kcron/heartbeats.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/recovery_budget.h"
#include "kcron/service.h"
#include "kcron/tenant_output_watch.h"
#include "kcron/tenant_registry.h"
#include "kcron/topics.h"
#include "kcron/transaction.h"
#include "kcron/upgrade_gate.h"

namespace kcron::worker {

struct LoopSettings {
  kafka::Properties client;
  TopicNames names{"kcron."};
  std::vector<std::string> queues = {"default"};
  std::vector<std::string> programs;  // its exec allowlist, in its heartbeat
  std::vector<std::string> handlers;  // its registered handler names, in its heartbeat
  std::string instance_id = "worker-1";
  std::size_t slots = 4;
  std::size_t prefetch = 0;  // jobs fetched ahead per band while slots are busy; 0 = slots
  BandPolicy bands;          // which band a free slot serves
  Millis commit_interval{100};
  Millis transaction_timeout{10000};
  Millis recovery_timeout{300000};  // a new producer keeps retrying its transaction coordinator this long
  Millis drain_timeout{30000};
  Millis default_timeout{3600000};   // a job without its own timeout is stopped after this
  Millis max_poll_interval{300000};  // max.poll.interval.ms; the loop polls while jobs run
  Millis heartbeat_interval{5000};   // to the workers topic; 0 = none
  // Outcomes stop writing done markers (their results are read as such) once every dispatcher and
  // worker in the groups advertises `results-done` (kcron/upgrade_gate.h), asked this often; 0:
  // not asked, no markers from the start.
  Millis upgrade_check_interval{10000};
  Millis cancel_lookback{600000};       // at start, control records this recent still apply
  Millis dedupe_lookback{6 * 3600000};  // done markers this recent are read on assignment
  std::int32_t exec_partitions = 12;
  std::size_t max_history = 10;  // failed attempts a retried job carries
  Backoff default_backoff;       // for jobs whose retry policy leaves a field unset
  bool emit_events = false;      // also write every transition to `events` (status holds the timeline)
  // The tenant registry and what follows it (kcron/tenant_follower.h), called on the loop's thread
  // every round: a tenant's limits.max_running_jobs caps its jobs running at once in this worker.
  // Null/empty: no caps.
  const TenantRegistry* tenants = nullptr;
  std::function<void()> follow_tenants;
  // Runs on the slot thread once an attempt ran, before it is handed to the main thread to be
  // published: stores its large outputs (objects/store_outputs.h). Null: nothing.
  std::function<void(Attempt&)> after_run;
  // What kafka jobs may write (the tenants' allowed_kafka_topics, jobs.kafka_topics); kept
  // up to date by follow_tenants. Null: only kcron's and Kafka's own topics are refused.
  const TenantWalls* walls = nullptr;
  // A band pauses once this many times `prefetch` jobs wait in it, held ones included: a tenant at
  // its cap cannot make the worker fetch without bound.
  std::size_t max_held_factor = 8;
};

class WorkerLoop final : public RdKafka::RebalanceCb {
 public:
  WorkerLoop(LoopSettings settings, const Runner& runner, const Clock& clock, Metrics& metrics, HttpEndpoint* http);
  ~WorkerLoop() override;

  // The executor of kafka jobs (see KafkaJobExecutor); register it before run().
  Handler kafka_executor();

  Status run();
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

 private:
  TenantOutputWatch output_watch_{TopicNames("")};  // which tenants get copies on <prefix>out.<tenant>
  using TopicPartitionKey = std::pair<std::string, std::int32_t>;

  Status serve();  // run() without its exit bookkeeping
  Status start();
  Status create_producer();
  Status create_consumer();
  // Recover (`new_producer`: after a fenced producer or an unknown commit outcome) or rejoin
  // (after the consumer's group membership was fenced), in the words of kafka::LoopCounters:
  // finished outcomes are kept as orphans, waiting jobs handed back, the consumer (and to recover
  // the producer, whose init_transactions resolves the open transaction) recreated. The new
  // assignment re-delivers uncommitted records: a done marker skips what did commit, an orphan
  // outcome publishes what did not, without running the job again. Within the recovery budget.
  Status restart(const std::string& why, bool new_producer);
  // Asks the main loop for restart() (commit() may run inside a rebalance callback).
  void request_restart(const std::string& why, bool new_producer);
  void handle(RdKafka::Message& message);
  void on_cancel(const v1::Cancel& cancel, Instant arrived);
  void enforce_timeouts();
  void collect_finished();
  // Decides an attempt that ends without running (undecodable, cancelled before it started).
  void finish_now(Attempt attempt, Outcome outcome);
  void decide(Attempt& attempt);
  void count_published(const Attempt& attempt);
  Status commit(bool force);
  // Keeps the current assignment's orphans out: what finished is published now or kept by record.
  void orphan_completed();
  std::size_t prefetch() const;
  // Sets the gauges and pauses the partitions of each band whose waiting queue is full (all of
  // them with `pause_all`), resuming the bands that have room; true when every band is paused.
  bool update_fetching(bool pause_all);
  // Takes every waiting job (none of them started) off its queue: they are handed back.
  void hand_back_waiting();
  void forget(const Attempt& attempt);
  void heartbeat(bool stopped);
  Instant now() const { return clock_.now(); }

  LoopSettings settings_;
  const Clock& clock_;
  HttpEndpoint* http_;
  OutcomePolicy policy_;
  std::unique_ptr<FeatureWatch> done_gate_;  // results as done markers (null: not asked)
  KafkaJobExecutor kafka_jobs_;
  Heartbeats heartbeats_;
  ControlChannel control_;
  DoneMarkers done_markers_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<BandPauses> pauses_;
  // Shared with the slot threads: everything behind the pool's own lock.
  SlotPool slots_;

  // Main thread only.
  static constexpr std::size_t kMaxTakenPerRound = 500;
  bool band_filled_ = false;   // this round filled a band's queue to prefetch
  std::size_t in_flight_ = 0;  // waiting, running or finished but not collected
  std::map<std::string, Band> band_of_topic_;
  std::vector<std::string> topics_;  // the exec topics this worker consumes
  std::uint64_t epoch_ = 0;          // bumped at every assignment, revoke and reset
  std::map<TopicPartitionKey, OffsetTracker> owned_;
  // Job id -> its attempts waiting or running here (a cancel names a job id): a multimap, so an id
  // fired twice (two attempts of one job, or in future two tenants' jobs) reaches both.
  std::multimap<std::string, std::shared_ptr<AttemptControl>> active_;
  // Attempts waiting or on a slot, by exec record: timeouts and stop requests go through here;
  // after an eager rebalance hands a partition back to this worker, its re-delivered records
  // adopt them instead of starting them twice.
  std::map<ExecPosition, std::shared_ptr<AttemptControl>> running_at_;
  std::map<ExecPosition, Attempt> orphan_finished_;  // finished between a revoke and the re-delivery
  CancelMemory cancels_;
  std::vector<Attempt> completed_;  // decided, not yet committed
  bool offsets_dirty_ = false;      // skipped records moved a position without an outcome
  int consecutive_aborts_ = 0;
  std::chrono::steady_clock::time_point last_commit_;
  std::mt19937_64 random_{std::random_device{}()};
  std::optional<Error> failure_;  // a commit inside a rebalance callback failed for good: stop
  std::string restart_reason_;    // a restart the main loop owes
  bool restart_producer_ = false;
  bool abandoned_ = false;  // run() returned an error: nothing may be published any more
  RecoveryBudget budget_;

  Counter& started_;
  Counter& succeeded_;
  Counter& failed_;
  Counter& retried_;
  Counter& dead_;
  Counter& cancelled_jobs_;
  Counter& timed_out_;
  Counter& dropped_;
  Counter& skipped_done_;
  Gauge& running_;
  Gauge& early_gauge_;
  bool warned_long_hold_ = false;  // once per process
  // An exec record due this much later than the worker's clock says: the clocks disagree.
  static constexpr Millis kLongHold{60000};
  Gauge& slots_gauge_;
  std::array<Gauge*, kBandCount> waiting_gauges_{};
  std::array<Gauge*, kBandCount> held_gauges_{};
  std::uint64_t caps_generation_ = 0;  // of the registry the pool's running caps were taken from
  // Takes each tenant's running-jobs cap from the registry when it changed.
  void apply_running_caps();
  Histogram& start_lag_;
  Histogram& duration_;
  kafka::LoopCounters counters_;
  kafka::LagSampler lag_;
};

}  // namespace kcron::worker
