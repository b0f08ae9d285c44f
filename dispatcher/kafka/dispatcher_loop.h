// The dispatcher's exactly-once loop (docs/architecture.md#exactly-once-loop), run on the main thread. Per batch:
// consume jobs records one by one and apply them to staged state; fire what is due; produce exec,
// changelog, status and event records; send the input offsets (always at least one valid offset,
// so a fenced instance can never commit); commit the transaction; only then write the staged
// state to RocksDB with the changelog checkpoint. On assignment it fetches committed offsets,
// then restores each partition's store from its checkpoint to the end of the changelog.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/dispatcher_core.h"
#include "kcron/heartbeats.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/recovery_budget.h"
#include "kcron/service.h"
#include "kcron/tenant_output_watch.h"
#include "kcron/transaction.h"
#include "kcron/upgrade_gate.h"

namespace kcron::dispatcher {

struct LoopSettings {
  kafka::Properties client;  // bootstrap.servers and pass-through properties
  std::string instance_id;
  Millis commit_interval{100};
  std::size_t max_batch_records = 5000;
  // A transaction closes once its outputs pass this many (a Batch record of 10,000 jobs writes up to
  // ~5 records a job), well under the producer's queue.buffering.max.messages (100,000).
  std::size_t max_batch_outputs = 50'000;
  std::size_t max_fires_per_batch = 10000;
  Millis transaction_timeout{10000};
  Millis recovery_timeout{std::chrono::minutes(5)};
  Millis restore_timeout{std::chrono::minutes(10)};
  Millis changelog_delete_retention{std::chrono::hours(24)};
  // Called on the loop's thread before every batch: follows the tenant registry the core reads
  // (kcron/tenant_follower.h). Empty: none.
  std::function<void()> between_batches;
  Millis tenant_metrics_interval{5000};
  Millis heartbeat_interval{5000};      // to the workers topic, with the features it understands; 0 = none
  std::size_t max_tenant_labels = 200;  // tenants with a labelled pending gauge, at most
  // Fire-ahead opens once every dispatcher and worker in the groups says it holds exec records
  // until their instant (kcron/upgrade_gate.h), asked this often; 0: not asked, open at once.
  Millis upgrade_check_interval{10000};
};

class DispatcherLoop final : public RdKafka::RebalanceCb {
 public:
  DispatcherLoop(LoopSettings settings, DispatcherCore& core, DelayStore& store, const Clock& clock, Metrics& metrics,
                 HttpEndpoint* http);
  ~DispatcherLoop() override;

  // Runs until stop_requested(). Fences and unknown commit outcomes are healed in place (a new
  // producer, a new consumer, state restored from Kafka) within a RecoveryBudget; returns an error
  // when the budget is spent or the local store fails.
  Status run();

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

 private:
  TenantOutputWatch output_watch_{TopicNames("")};  // which tenants get copies on <prefix>out.<tenant>
  struct Owned {
    PartitionState* state = nullptr;
    std::int64_t next_offset = 0;       // position to commit (valid, >= 0)
    std::int64_t committed_offset = 0;  // last committed position
    std::int64_t changelog_next = -1;   // changelog offset after this batch's last record, -1 = none
  };

  Status serve();  // run() without its exit bookkeeping
  Status start();
  Status create_producer();
  // After a commit or abort whose outcome is unknown: a new producer (init_transactions resolves
  // the old transaction), every owned store restored from its checkpoint, the consumer rewound
  // to the committed offsets. Never assumes the commit failed.
  Status recover(const std::string& why);
  // After the consumer's group membership was fenced (a static member's rejoin that the broker
  // refused, a coordinator lost mid-rebalance) or an assignment could not be restored: the
  // uncommitted batch is dropped, the stores closed, and a new consumer with the same
  // group.instance.id joins; the assignment restores each partition as at start-up.
  Status rejoin(const std::string& why);
  Status create_consumer();
  // Forgets everything since the last commit: staged state, produced-but-uncommitted output, counts.
  void drop_uncommitted();
  Status consume_batch();
  Status commit_batch();
  Status assign(const std::vector<RdKafka::TopicPartition*>& partitions);
  Status revoke(const std::vector<RdKafka::TopicPartition*>& partitions);
  Status restore(const std::map<std::int32_t, PartitionState*>& states);
  // After an aborted transaction: the batch is dropped and the consumer rewound. When the broker
  // refused a record for what it is, what produced it is given up on in the next batch (named by
  // its delivery report), or the batch is bisected until it is found.
  Status after_abort(const kafka::TransactionResult& result);
  // A successful delivery: the changelog offsets reach the checkpoint written after the commit.
  void delivered(RdKafka::Message& message);
  Status rewind();  // every owned partition back to its committed offset (after an abort)
  void publish_counts();
  // Each registered tenant's pending jobs over the owned partitions, as a labelled gauge.
  void publish_tenant_gauges();

  LoopSettings settings_;
  DispatcherCore& core_;
  DelayStore& store_;
  const Clock& clock_;
  HttpEndpoint* http_;
  // The producer's delivery callback: declared first, so that it outlives the producer.
  kafka::DeliveryReports deliveries_{[this](RdKafka::Message& message) { delivered(message); }};
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::map<std::int32_t, Owned> owned_;
  std::vector<OutRecord> out_;
  std::size_t consumed_in_batch_ = 0;
  // The local store failed (a read, a write, a restore): no recovery from Kafka fixes that, so
  // the loop stops and the process exits non-zero (see docs/architecture.md, failure handling).
  std::optional<Error> store_failure_;
  bool abandoned_ = false;     // run() returned an error: nothing may commit any more
  std::string rejoin_reason_;  // set by the rebalance callback when an assignment failed
  // Bisecting a batch that keeps aborting (docs/architecture.md#failure-handling-today): each abort on an error that refuses a
  // record for what it is (too large, invalid; not a broker outage) halves the batch (records
  // consumed, jobs fired), each commit doubles it back. A batch down to one item that aborts twice
  // marks that item: the consumed record is REJECTED, the due job DEAD, with the broker's error.
  struct Single {
    bool fire = false;  // a fire-only batch of one job, else one consumed record
    std::int32_t partition = -1;
    std::int64_t offset = -1;  // of the consumed record
    std::string job_id;        // of the fired job
    bool operator==(const Single&) const = default;
  };
  std::size_t batch_cap_ = 0;  // 0 until start(): max_batch_records
  std::optional<Single> last_consumed_;
  std::optional<Single> batch_single_;   // what the open batch holds, when it holds one item
  std::optional<Single> failed_single_;  // the single item that aborted last
  int single_aborts_ = 0;
  // Items to give up on (REJECTED or DEAD) in the next batches, with the broker's error; each is
  // dropped from here once a batch that gave up on it commits.
  struct Poison {
    Single item;
    std::string reason;
    bool applied = false;  // in the open batch
  };
  std::vector<Poison> poisons_;
  void add_poison(const Single& item, const std::string& reason);
  // Which input made each output: out_[..end) up to a span came from its consumed record
  // (offset >= 0) or from its partition's fires (offset -1), so a refused record's producer is known.
  struct Span {
    std::size_t end = 0;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
  };
  std::vector<Span> spans_;
  std::optional<Single> producer_of(std::size_t index) const;
  RecoveryBudget budget_;
  std::chrono::steady_clock::time_point last_trim_{};
  static constexpr std::chrono::seconds kTrimInterval{10};
  Counts published_;
  std::map<std::pair<std::string, TenantLimit>, std::uint64_t> published_refusals_;
  std::set<std::string> gauged_tenants_;
  bool warned_tenant_labels_ = false;
  // Restored partitions whose tenants' pending counts the next commit sets again (DispatcherCore::recount).
  std::set<std::int32_t> recount_pending_;
  std::chrono::steady_clock::time_point last_tenant_gauges_{};
  Metrics& metrics_;
  Heartbeats heartbeats_;

  Counter& accepted_;
  Counter& fired_;
  Counter& rejected_;
  Counter& forwarded_;
  Counter& batches_;
  Counter& cancelled_;
  Counter& duplicates_;
  Counter& expired_;
  Counter& skipped_;
  Counter& unpublishable_;
  Counter& restored_records_;
  Gauge& store_size_;
  Gauge& owned_partitions_;
  Histogram& fire_lag_;
  Counter& fired_ahead_;
  Gauge& fire_window_;
  Gauge& ahead_records_;
  std::unique_ptr<FeatureWatch> fire_ahead_gate_;
  bool fire_ahead_logged_open_ = false;
  Millis logged_window_{0};
  std::chrono::steady_clock::time_point batch_started_{};  // when the open batch began consuming
  Histogram& commit_seconds_;
  kafka::LoopCounters counters_;
  kafka::LagSampler lag_;
};

}  // namespace kcron::dispatcher
