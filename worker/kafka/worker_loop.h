// The worker's loop, on the main thread: consume exec records only while a slot is free (pausing
// what it assigned otherwise, and resuming only what it paused), hand each job to a slot thread,
// and publish the outcomes - result, status and event records and the done marker - in one
// transaction with the consumed offsets. A job whose partition was revoked while it ran is not
// published: its new owner runs it again (execution is at least once).
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/offset_tracker.h"
#include "core/runner.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/service.h"
#include "kcron/topics.h"

namespace kcron::worker {

struct LoopSettings {
  kafka::Properties client;
  TopicNames names{"kcron."};
  std::vector<std::string> queues = {"default"};
  std::string instance_id = "worker-1";
  std::size_t slots = 4;
  Millis commit_interval{100};
  Millis transaction_timeout{10000};
  Millis drain_timeout{30000};
  std::int32_t exec_partitions = 12;
  bool emit_events = true;
};

class WorkerLoop final : public RdKafka::RebalanceCb {
 public:
  WorkerLoop(LoopSettings settings, const Runner& runner, Metrics& metrics, HttpEndpoint* http);
  ~WorkerLoop() override;

  Status run();
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

 private:
  struct Task {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::uint64_t epoch = 0;
    v1::Execution execution;
    std::int64_t started_ms = 0;
    Outcome outcome;
    std::int64_t finished_ms = 0;
  };
  using TopicPartitionKey = std::pair<std::string, std::int32_t>;

  Status start();
  void slot_main();
  void handle(RdKafka::Message& message);
  void collect_finished();
  Status commit(bool force);
  void set_paused(bool paused);
  void append_outputs(const Task& task, std::vector<OutRecord>& out) const;

  LoopSettings settings_;
  const Runner& runner_;
  Metrics& metrics_;
  HttpEndpoint* http_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queued_;
  std::deque<Task> finished_;
  std::atomic<bool> stop_slots_{false};
  std::atomic<bool> cancel_running_{false};
  std::vector<std::thread> threads_;

  std::size_t in_flight_ = 0;
  std::uint64_t epoch_ = 0;
  std::map<TopicPartitionKey, OffsetTracker> owned_;
  std::vector<Task> completed_;  // finished, not yet committed
  std::vector<RdKafka::TopicPartition*> paused_;
  std::chrono::steady_clock::time_point last_commit_;
  Status fatal_;

  Counter& started_;
  Counter& succeeded_;
  Counter& failed_;
  Counter& dropped_;
  Counter& commits_;
  Counter& aborts_;
  Gauge& running_;
  Histogram& start_lag_;
  Histogram& duration_;
};

}  // namespace kcron::worker
