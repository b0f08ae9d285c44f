// The executor of kafka jobs. It checks the job's target (check_kafka_target: never one of
// kcron's own topics nor a `__` topic, the worker's jobs.kafka_topics, the tenant's
// allowed_kafka_topics; the topic exists; key + value within kMaxKafkaJobRecordBytes); the record itself
// is produced in the transaction that publishes the job's result (OutcomePolicy), so it is
// written exactly once, with it. Runs on slot threads.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "core/runner.h"
#include "core/tenant_walls.h"
#include "kcron/kafka.h"
#include "kcron/topics.h"

namespace kcron::worker {

// A record a kafka job may produce, below the broker's default message.max.bytes with headroom.
constexpr std::size_t kMaxKafkaJobRecordBytes = std::size_t{900} * 1024;

class KafkaJobExecutor {
 public:
  // `walls`: the tenants' allowed_kafka_topics and the worker's jobs.kafka_topics; null:
  // only kcron's and Kafka's own topics are refused (tests). Outlives the executor.
  KafkaJobExecutor(TopicNames names, const TenantWalls* walls) : names_(std::move(names)), walls_(walls) {}
  // A producer of its own for metadata (the loop's transactional producer may be replaced).
  Status start(const kafka::Properties& client);
  Handler handler();
  // The metadata producer, for other topic checks at start (after start()).
  RdKafka::Producer& metadata() { return *metadata_; }

 private:
  Outcome check(const v1::Job& job);

  TopicNames names_;
  const TenantWalls* walls_;
  std::unique_ptr<RdKafka::Producer> metadata_;
  std::mutex mutex_;
  std::set<std::string> known_topics_;  // guarded by mutex_: checked once each
};

}  // namespace kcron::worker
