// The dispatcher's exactly-once loop (DESIGN.md §3), run on the main thread. Per batch:
// consume jobs records one by one and apply them to staged state; fire what is due; produce exec,
// changelog, status and event records; send the input offsets (always at least one valid offset,
// so a fenced instance can never commit); commit the transaction; only then write the staged
// state to RocksDB with the changelog checkpoint. On assignment it fetches committed offsets,
// then restores each partition's store from its checkpoint to the end of the changelog.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "core/dispatcher_core.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/service.h"

namespace kcron::dispatcher {

struct LoopSettings {
  kafka::Properties client;  // bootstrap.servers and pass-through properties
  std::string instance_id;
  Millis commit_interval{100};
  std::size_t max_batch_records = 5000;
  std::size_t max_fires_per_batch = 10000;
  Millis transaction_timeout{10000};
  Millis restore_timeout{std::chrono::minutes(10)};
  Millis changelog_delete_retention{std::chrono::hours(24)};
};

class DispatcherLoop final : public RdKafka::RebalanceCb, public RdKafka::DeliveryReportCb {
 public:
  DispatcherLoop(LoopSettings settings, DispatcherCore& core, DelayStore& store, Metrics& metrics, HttpEndpoint* http);
  ~DispatcherLoop() override;

  // Runs until stop_requested(); returns an error on a fatal condition (fenced, unknown outcome).
  Status run();

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;
  void dr_cb(RdKafka::Message& message) override;

 private:
  struct Owned {
    PartitionState* state = nullptr;
    std::int64_t next_offset = 0;       // position to commit (valid, >= 0)
    std::int64_t committed_offset = 0;  // last committed position
    std::int64_t changelog_next = -1;   // changelog offset after this batch's last record, -1 = none
  };

  Status start();
  Status create_producer();
  // After a commit or abort whose outcome is unknown: a new producer (init_transactions resolves
  // the old transaction), every owned store restored from its checkpoint, the consumer rewound
  // to the committed offsets. Never assumes the commit failed.
  Status recover(const std::string& why);
  Status consume_batch();
  Status commit_batch();
  Status assign(const std::vector<RdKafka::TopicPartition*>& partitions);
  Status revoke(const std::vector<RdKafka::TopicPartition*>& partitions);
  Status restore(std::int32_t partition, PartitionState& state);
  void abort_batch(const std::string& why);
  void publish_counts();

  LoopSettings settings_;
  DispatcherCore& core_;
  DelayStore& store_;
  Metrics& metrics_;
  HttpEndpoint* http_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::map<std::int32_t, Owned> owned_;
  std::vector<OutRecord> out_;
  std::size_t consumed_in_batch_ = 0;
  std::string delivery_error_;
  Status fatal_;
  Counts published_;

  Counter& accepted_;
  Counter& fired_;
  Counter& rejected_;
  Counter& forwarded_;
  Counter& cancelled_;
  Counter& duplicates_;
  Counter& expired_;
  Counter& skipped_;
  Counter& commits_;
  Counter& aborts_;
  Counter& recoveries_;
  Counter& restored_records_;
  Gauge& store_size_;
  Gauge& owned_partitions_;
  Histogram& fire_lag_;
  Histogram& commit_seconds_;
  Counter& rebalances_;
  kafka::LagSampler lag_;
};

}  // namespace kcron::dispatcher
