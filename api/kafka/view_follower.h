// Builds kcron-api's view: reads kcron.jobs, status, results, schedules, dead-letters, workers,
// audit and tenants (every partition,
// read_committed, no consumer group: every instance keeps a whole view) from the positions the
// view holds, folds each record into its job's view and writes views and positions together.
// Runs on its own thread; request threads wait on it for read-your-writes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "core/lag_window.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/topics.h"
#include "view/view_store.h"

namespace kcron::api {

struct FollowerSettings {
  kafka::Properties client;
  TopicNames names{"kcron."};
  std::chrono::milliseconds commit_interval{100};
  std::size_t max_batch_records = 5000;
  std::chrono::milliseconds finished_retention{0};  // finished jobs leave the view this long after; 0: kept
  std::chrono::milliseconds sweep_interval{std::chrono::seconds(10)};
};

class ViewFollower {
 public:
  ViewFollower(FollowerSettings settings, ViewStore& store, Metrics& metrics);
  ~ViewFollower();
  ViewFollower(const ViewFollower&) = delete;
  ViewFollower& operator=(const ViewFollower&) = delete;

  // Assigns every partition of the topics from the view's positions and starts the thread.
  Status start();
  void stop();

  // Whether the view reads (topic, partition): a position elsewhere is never covered. Thread-safe.
  bool follows(const std::string& topic, std::int32_t partition) const;
  // Waits until the view covers `offset` of (topic, partition), up to `timeout`. Thread-safe.
  bool wait_for(const std::string& topic, std::int32_t partition, std::int64_t offset, std::chrono::milliseconds timeout);
  // Waits until the view covers every record `topic` holds now (its high watermarks, asked of the
  // broker), up to `timeout`: a read-modify-write starts from the latest state. Thread-safe.
  bool wait_for_end(const std::string& topic, std::chrono::milliseconds timeout);
  // Whether the view reached the end each partition had when it started (readiness).
  bool caught_up() const { return caught_up_.load(); }
  // Records on the followed topics not yet in the view (sampled each second).
  std::int64_t lag() const { return lag_records_.load(); }
  // Recent fire and start lags per tenant, from the status records and results it folds.
  const LagWindow& job_lags() const { return job_lags_; }
  // Why the follower stopped, if it did.
  std::string failure() const;

 private:
  void run();
  void fold(RdKafka::Message& message, ViewBatch& batch);
  Status flush(ViewBatch& batch);

  FollowerSettings settings_;
  ViewStore& store_;
  Counter& records_;
  Counter& undecodable_;
  Gauge& lag_;
  Counter& swept_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::set<std::pair<std::string, std::int32_t>> not_at_end_;  // partitions not read to their end once yet

  mutable std::mutex mutex_;
  std::condition_variable advanced_;
  Positions covered_;  // next offset per partition, as committed to the view
  std::string failure_;

  std::atomic<bool> caught_up_{false};
  std::atomic<std::int64_t> lag_records_{0};
  LagWindow job_lags_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace kcron::api
