// The cron-producer's loop, on the main thread: consume kcron.schedules (a table, consumer group),
// tick the planner, and commit each batch — triggers on kcron.jobs, state on kcron.cron-changelog,
// rejections, and the schedules offsets — in one Kafka transaction. On assignment the planner is
// rebuilt from the committed changelog and the whole schedules partition; after an aborted or
// uncertain commit it is rebuilt the same way, so its memory never runs ahead of Kafka.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <memory>
#include <set>

#include "core/schedule_planner.h"
#include "kcron/kafka.h"
#include "kcron/metrics.h"
#include "kcron/recovery_budget.h"
#include "kcron/service.h"
#include "kcron/template_follower.h"
#include "kcron/templates.h"
#include "kcron/transaction.h"
#include "kcron/upgrade_gate.h"

namespace kcron::cron {

struct CronLoopSettings {
  kafka::Properties client;
  std::string instance_id = "cron-producer-1";
  Millis commit_interval{200};
  Millis transaction_timeout{10000};
  Millis recovery_timeout{std::chrono::minutes(5)};  // a new producer keeps retrying its coordinator this long
  Millis restore_timeout{std::chrono::minutes(5)};
  // Tenants' schedules emit only while every dispatcher and worker understands tenant-scoped keys
  // (kcron/upgrade_gate.h), asked this often; 0 turns the check off (they always emit).
  Millis upgrade_check_interval{30000};
};

class CronLoop final : public RdKafka::RebalanceCb {
 public:
  CronLoop(CronLoopSettings settings, PlannerSettings planner_settings, SchedulePlanner& planner, Metrics& metrics,
           HttpEndpoint* http);
  ~CronLoop() override;

  Status run();
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;

 private:
  Status serve();  // run() without its exit bookkeeping
  Status start();
  Status create_producer();
  Status commit_batch();
  Status load_partitions(const std::set<std::int32_t>& partitions);
  // After an abort (rewind) or, with `new_producer`, a fence or an unknown outcome (recover): the
  // planner's owned partitions reloaded from Kafka (its memory never runs ahead of what
  // committed) and the consumer rewound; a recovery is within the recovery budget.
  Status reload(const std::string& why, bool new_producer);
  Status create_consumer();
  // After the consumer's membership was fenced or an assignment failed: the owned partitions are
  // dropped without a commit and a new consumer with the same group.instance.id joins.
  Status rejoin(const std::string& why);
  bool spend_budget(const std::string& why, Status& refusal);
  void publish_counts();

  CronLoopSettings settings_;
  PlannerSettings planner_settings_;
  SchedulePlanner& planner_;
  HttpEndpoint* http_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::map<std::int32_t, std::int64_t> next_offsets_;       // owned partition -> position to commit
  std::map<std::int32_t, std::int64_t> committed_offsets_;  // owned partition -> last committed
  std::vector<OutRecord> out_;
  std::size_t consumed_ = 0;
  std::string rejoin_reason_;
  RecoveryBudget budget_;
  static constexpr int kAbortsBeforeBudget = 3;  // aborts in a row before each one spends the budget
  int consecutive_aborts_ = 0;
  bool abandoned_ = false;  // run() returned an error: nothing may commit any more
  PlannerCounts published_;
  std::unique_ptr<FeatureWatch> tenant_keys_;  // null: the check is off
  std::unique_ptr<FeatureWatch> flows_;        // null: the check is off
  // kcron.templates, followed for the schedules on templates (the planner reads the catalog).
  templates::Catalog catalog_;
  std::unique_ptr<TemplateFollower> templates_;

  Counter& emitted_;
  Counter& skipped_;
  Counter& rejected_;
  Counter& cancelled_;
  Gauge& schedules_;
  Gauge& tenant_runs_held_;
  Gauge& flow_runs_held_;
  kafka::LoopCounters counters_;
  kafka::LagSampler lag_;
};

}  // namespace kcron::cron
