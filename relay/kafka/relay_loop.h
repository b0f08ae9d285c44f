// kcron-relay's loop, on the main thread: consume every tenant input topic (a regex subscription,
// consumer group `<prefix>relay`, read_committed), map each record with the Relay core, and commit
// each batch — the forwarded commands and schedules, the rejections, and the input offsets — in one
// Kafka transaction (kcron/transaction.h). Nothing is kept between batches but positions, so an
// aborted or uncertain commit rewinds to the committed offsets and maps the records again.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "core/relay_core.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/recovery_budget.h"
#include "kcron/service.h"
#include "kcron/tenant_output_watch.h"
#include "kcron/tenant_registry.h"
#include "kcron/transaction.h"
#include "kcron/upgrade_gate.h"

namespace kcron::relay {

struct RelayLoopSettings {
  kafka::Properties client;
  std::string instance_id = "relay-1";
  std::string group_id;  // empty: <prefix>relay
  Millis commit_interval{100};
  std::size_t max_batch_records = 5000;
  Millis transaction_timeout{10000};
  Millis recovery_timeout{std::chrono::minutes(5)};  // a new producer keeps retrying its coordinator this long
  // topic.metadata.refresh.interval.ms: how soon a new tenant topic is seen (and subscribed).
  Millis metadata_refresh{2000};
  // Tenants' records are forwarded only while every dispatcher and worker understands
  // tenant-scoped keys (kcron/upgrade_gate.h), asked this often; meanwhile the input partitions are
  // paused. 0 turns the check off (always forward).
  Millis upgrade_check_interval{30000};
  // Called between batches on the loop's thread (the tenant registry's follower). Empty: none.
  std::function<void()> between_batches;
  // The tenant registry (kcron/tenant_follower.h), for the tenants' output topics: a rejection of a
  // tenant that opted in (kafka_output) is copied to <prefix>out.<tenant> in the same transaction,
  // as the dispatchers and workers copy theirs. Null: no copies.
  const TenantRegistry* tenants = nullptr;
};

class RelayLoop final : public RdKafka::RebalanceCb {
 public:
  RelayLoop(RelayLoopSettings settings, Relay& relay, Metrics& metrics, HttpEndpoint* http);
  ~RelayLoop() override;
  RelayLoop(const RelayLoop&) = delete;
  RelayLoop& operator=(const RelayLoop&) = delete;

  Status run();
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

 private:
  using TopicPartition = std::pair<std::string, std::int32_t>;

  Status serve();
  Status start();
  Status create_producer();
  Status create_consumer();
  void consume_one(RdKafka::Message& message);
  // close() of the consumer, bounded by kCloseTimeout (see the .cpp); consumer_ is null after it.
  void close_consumer();
  static constexpr std::chrono::seconds kCloseTimeout{10};
  Status commit_batch();
  // After an abort (rewind) or, with `new_producer`, a fence or an unknown outcome (recover): the
  // batch is dropped and the partitions it read are sought back to their committed offsets (the
  // batch's first offsets where none were committed), so each record is mapped again.
  Status rewind(const std::string& why, bool new_producer);
  Status rejoin(const std::string& why);
  bool spend_budget(const std::string& why, Status& refusal);
  void drop_batch();
  // Pauses every assigned partition while the upgrade gate is closed, resumes what it paused when
  // it opens (only what it paused: resume() of a partition that is not paused can rewind it).
  void hold(bool closed);
  void pause(const std::vector<TopicPartition>& partitions);
  void publish_counts();

  RelayLoopSettings settings_;
  Relay& relay_;
  HttpEndpoint* http_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::set<TopicPartition> assigned_;
  std::map<TopicPartition, std::int64_t> batch_start_;   // partition -> offset of its first record in the batch
  std::map<TopicPartition, std::int64_t> next_offsets_;  // partition -> position to commit with the batch
  std::vector<OutRecord> out_;
  std::size_t consumed_ = 0;
  std::set<std::string> warned_topics_;
  // Per-record events (a tenant controls how many): each is logged at most once per topic and
  // kLogEvery, with how many were left out since; the metrics count every one.
  struct Throttle {
    std::chrono::steady_clock::time_point next{};
    std::uint64_t suppressed = 0;
  };
  static constexpr std::chrono::seconds kLogEvery{10};
  // Whether to log the event `what` of `topic` now; `suppressed` gets how many were not logged before it.
  bool log_now(const std::string& what, const std::string& topic, std::uint64_t& suppressed);
  std::map<std::pair<std::string, std::string>, Throttle> throttles_;
  std::string rejoin_reason_;
  RecoveryBudget budget_;
  static constexpr int kAbortsBeforeBudget = 3;
  int consecutive_aborts_ = 0;
  bool abandoned_ = false;
  RelayCounts published_;
  bool revoking_ = false;
  std::unique_ptr<FeatureWatch> tenant_keys_;  // null: the check is off
  std::unique_ptr<FeatureWatch> batches_;      // null: the check is off
  bool held_ = false;
  std::set<TopicPartition> paused_;  // inside a revoke: a failed commit drops the batch, the next owner reads it again

  Counter& forwarded_;
  Counter& schedules_;
  Counter& rejected_;
  Counter& skipped_;
  Counter& overridden_;
  TenantOutputWatch output_watch_;  // which tenants get copies on <prefix>out.<tenant>
  Gauge& partitions_;
  Gauge& held_gauge_;
  kafka::LoopCounters counters_;
  kafka::LagSampler lag_;
};

}  // namespace kcron::relay
