// The worker's loop, on the main thread: consume exec records into one waiting queue per priority
// band, at most `prefetch` per band (pausing a full band's partitions, and resuming only what it
// paused); a free slot thread takes the next job from the band the BandScheduler picks (weighted
// round robin, high first, with aging). The loop publishes the outcomes - result, retry command or
// dead letter, status and event records and the done marker - in one transaction with the
// consumed offsets. A job whose partition was revoked while it ran is not published: its new
// owner runs it again (execution is at least once), and a new owner skips the jobs whose done
// markers say they finished after the committed offset. Cancels of waiting and running jobs
// arrive on the control topic, which every worker reads without a group. Heartbeats go to the
// workers topic.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <array>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "core/band_scheduler.h"
#include "core/offset_tracker.h"
#include "core/retry_policy.h"
#include "core/runner.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/recovery_budget.h"
#include "kcron/service.h"
#include "kcron/topics.h"

namespace kcron::worker {

struct LoopSettings {
  kafka::Properties client;
  TopicNames names{"kcron."};
  std::vector<std::string> queues = {"default"};
  std::string instance_id = "worker-1";
  std::size_t slots = 4;
  std::size_t prefetch = 0;  // jobs fetched ahead per band while slots are busy; 0 = slots
  BandPolicy bands;          // which band a free slot serves
  Millis commit_interval{100};
  Millis transaction_timeout{10000};
  Millis recovery_timeout{300000};  // a new producer keeps retrying its transaction coordinator this long
  Millis drain_timeout{30000};
  Millis default_timeout{3600000};      // a job without its own timeout is stopped after this
  Millis max_poll_interval{300000};     // max.poll.interval.ms; the loop polls while jobs run
  Millis heartbeat_interval{5000};      // to the workers topic; 0 = none
  Millis cancel_lookback{600000};       // at start, control records this recent still apply
  Millis dedupe_lookback{6 * 3600000};  // done markers this recent are read on assignment
  std::int32_t exec_partitions = 12;
  std::size_t max_history = 10;  // failed attempts a retried job carries
  Backoff default_backoff;       // for jobs whose retry policy leaves a field unset
  bool emit_events = true;
};

class WorkerLoop final : public RdKafka::RebalanceCb {
 public:
  WorkerLoop(LoopSettings settings, const Runner& runner, Metrics& metrics, HttpEndpoint* http);
  ~WorkerLoop() override;

  // The executor of kafka jobs: checks the target topic; the record itself is produced in the
  // transaction that publishes the job's result, so it is written exactly once with it.
  Handler kafka_executor();

  Status run();
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

 private:
  enum class StopReason : int { kNone = 0, kTimeout = 1, kCancel = 2, kShutdown = 3 };

  // Shared by the main thread (which may ask it to stop) and the slot running the job.
  struct Control {
    std::atomic<bool> stop{false};
    std::atomic<int> reason{0};
    std::atomic<std::int64_t> started_ms{0};
    std::int64_t timeout_ms = 0;
    std::uint64_t epoch = 0;    // main thread only: the assignment the job is published under
    bool handed_back = false;   // main thread only: its partition's next owner runs it; never publish
    std::string cancel_reason;  // main thread only
    void request(StopReason why) {
      int expected = 0;
      reason.compare_exchange_strong(expected, static_cast<int>(why));
      stop = true;
    }
  };

  struct Task {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    v1::Execution execution;
    std::shared_ptr<Control> control;
    Band band = Band::kNormal;  // of its exec topic
    Instant fetched{};          // when it joined its band's waiting queue
    std::int64_t started_ms = 0;
    Outcome outcome;
    std::int64_t finished_ms = 0;
    v1::JobState final_state = v1::SUCCEEDED;  // SUCCEEDED, CANCELLED, FAILED (retried) or DEAD
    RetryDecision decision;
    bool reduced = false;  // publish without output, history or kafka record (see commit)
  };
  using TopicPartitionKey = std::pair<std::string, std::int32_t>;
  using RecordKey = std::tuple<std::string, std::int32_t, std::int64_t>;

  Status start();
  Status create_producer();
  Status create_consumer();
  Status start_control_consumer();
  // After a fence (producer or group membership) or an unknown commit outcome: finished outcomes
  // are kept as orphans, waiting jobs handed back, the consumer (and with `new_producer` the
  // producer, whose init_transactions resolves the open transaction) recreated. The new
  // assignment re-delivers uncommitted records: a done marker skips what did commit, an orphan
  // outcome publishes what did not, without running the job again. Within the recovery budget.
  Status reset_session(const std::string& why, bool new_producer);
  // Asks the main loop for reset_session (commit() may run inside a rebalance callback).
  void request_reset(const std::string& why, bool new_producer);
  void slot_main();
  void handle(RdKafka::Message& message);
  void wake_slots();
  void poll_control();
  void enforce_timeouts();
  void collect_finished();
  void finish_now(Task task, Outcome outcome);
  void decide(Task& task);
  void count_published(const Task& task);
  Status commit(bool force);
  std::size_t prefetch() const;
  // Sets the gauges and pauses the partitions of each band whose waiting queue is full (all of
  // them with `pause_all`), resuming the bands that have room; true when every band is paused.
  bool update_fetching(bool pause_all);
  void set_band_paused(Band band, bool paused);
  void resume_all(RdKafka::KafkaConsumer& consumer);
  // Takes every waiting job (none of them started) off its queue: they are handed back.
  void hand_back_waiting();
  // Removes a job that has not started from its waiting queue; false when a slot has it.
  bool take_waiting(const std::shared_ptr<Control>& control, Task& task);
  void forget(const Task& task);
  void append_outputs(const Task& task, std::vector<OutRecord>& out) const;
  void heartbeat(bool stopped);
  void load_done_markers(const std::vector<RdKafka::TopicPartition*>& partitions);
  bool remember_cancel(const std::string& job_id, std::int64_t at_ms);

  LoopSettings settings_;
  const Runner& runner_;
  Metrics& metrics_;
  HttpEndpoint* http_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::Producer> heartbeat_producer_;
  std::unique_ptr<RdKafka::Producer> metadata_producer_;  // topic checks from slot threads (producer_ may be replaced)
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::KafkaConsumer> control_consumer_;

  // Guarded by mutex_, shared with the slot threads.
  std::mutex mutex_;
  std::condition_variable wake_;
  bool wake_pending_ = false;  // jobs queued since the slots were last woken (consumer thread only)
  bool band_filled_ = false;   // this round filled a band's queue to prefetch (consumer thread only)
  static constexpr std::size_t kMaxTakenPerRound = 500;
  std::array<std::deque<Task>, kBandCount> waiting_;  // fetched, not started; by band_index, oldest first
  BandScheduler scheduler_;
  std::deque<Task> finished_;
  std::atomic<bool> stop_slots_{false};
  std::vector<std::thread> threads_;

  // Main thread only.
  std::size_t in_flight_ = 0;  // waiting, running or finished but not collected
  std::map<std::string, Band> band_of_topic_;
  std::vector<std::string> topics_;  // the exec topics this worker consumes
  std::uint64_t epoch_ = 0;
  std::map<TopicPartitionKey, OffsetTracker> owned_;
  std::map<TopicPartitionKey, std::set<std::int64_t>> done_offsets_;  // from done markers: skip these
  std::map<std::string, std::shared_ptr<Control>> active_;            // job id -> waiting or running
  // Jobs still on a slot, by exec record: after an eager rebalance hands a partition back to this
  // worker, its re-delivered records adopt them instead of starting them twice.
  std::map<RecordKey, std::shared_ptr<Control>> running_at_;
  std::map<RecordKey, Task> orphan_finished_;      // finished between a revoke and the re-delivery
  std::map<std::string, std::int64_t> cancelled_;  // job id -> when the cancel arrived
  std::deque<std::string> cancelled_order_;
  std::vector<Task> completed_;  // finished, not yet committed
  bool offsets_dirty_ = false;   // skipped records moved a position without an outcome
  int consecutive_aborts_ = 0;
  std::array<std::vector<RdKafka::TopicPartition*>, kBandCount> paused_;  // what this loop paused, by band
  std::chrono::steady_clock::time_point last_commit_;
  std::chrono::steady_clock::time_point last_heartbeat_;
  std::int64_t started_at_ms_ = 0;
  std::mt19937_64 random_{std::random_device{}()};
  Status fatal_;
  std::string reset_reason_;  // a reset_session the main loop owes
  bool reset_producer_ = false;
  RecoveryBudget budget_;

  // Topics a kafka job may write, checked once each (slot threads).
  std::mutex topics_mutex_;
  std::set<std::string> known_topics_;

  Counter& started_;
  Counter& succeeded_;
  Counter& failed_;
  Counter& retried_;
  Counter& dead_;
  Counter& cancelled_jobs_;
  Counter& timed_out_;
  Counter& dropped_;
  Counter& skipped_done_;
  Counter& commits_;
  Counter& aborts_;
  Counter& rebalances_;
  Counter& resets_;
  Gauge& running_;
  Gauge& slots_gauge_;
  std::array<Gauge*, kBandCount> waiting_gauges_{};
  Histogram& start_lag_;
  Histogram& duration_;
  kafka::LagSampler lag_;
};

}  // namespace kcron::worker
