#include "kafka/cron_loop.h"

#include <spdlog/spdlog.h>

#include <thread>
#include <utility>

#include "kcron/codec.h"
#include "kcron/transaction.h"

namespace kcron::cron {
namespace {

using SteadyClock = std::chrono::steady_clock;

}  // namespace

CronLoop::CronLoop(CronLoopSettings settings, PlannerSettings planner_settings, SchedulePlanner& planner, Metrics& metrics,
                   HttpEndpoint* http)
    : settings_(std::move(settings)),
      planner_settings_(std::move(planner_settings)),
      planner_(planner),
      http_(http),
      emitted_(metrics.counter("kcron_triggers_emitted_total", "schedule runs emitted to kcron.jobs")),
      skipped_(metrics.counter("kcron_triggers_skipped_total", "missed schedule runs dropped by their misfire policy")),
      rejected_(metrics.counter("kcron_jobs_rejected_total{component=\"cron-producer\"}", "schedule records rejected")),
      cancelled_(metrics.counter("kcron_triggers_cancelled_total", "triggers emitted ahead, cancelled by a change")),
      schedules_(metrics.gauge("kcron_schedules", "schedules owned by this cron-producer")),
      tenant_runs_held_(metrics.gauge(
          "kcron_tenant_runs_held", "1 while tenants' schedules wait for every dispatcher and worker to understand tenant keys")),
      flow_runs_held_(metrics.gauge("kcron_flow_runs_held",
                                    "1 while flow_template schedules wait for every dispatcher and worker to understand flows")),
      counters_(metrics, "cron-producer"),
      lag_(metrics, "cron-producer") {}

CronLoop::~CronLoop() {
  if (consumer_) consumer_->close();
}

Status CronLoop::create_producer() {
  auto producer = kafka::make_transactional_producer(
      settings_.client, planner_settings_.names.prefix + "cron-producer-" + settings_.instance_id, settings_.transaction_timeout);
  if (!producer) return producer.error();
  producer_ = std::move(*producer);
  return Status::success();
}

Status CronLoop::start() {
  const auto& names = planner_settings_.names;
  if (auto status = create_producer(); !status) return status;
  const std::vector<TopicSpec> required = {{names.schedules(), planner_settings_.schedules_partitions, {}},
                                           {names.cron_changelog(), planner_settings_.schedules_partitions, {}},
                                           {names.jobs(), 0, {}},
                                           {names.status(), 0, {}},
                                           {names.dead_letters(), 0, {}}};
  if (auto status = kafka::check_topics(*producer_, required, Millis(30000)); !status) return status;
  if (auto status = create_consumer(); !status) return status;
  spdlog::info("event=started instance={} topic={}", settings_.instance_id, names.schedules());
  return Status::success();
}

Status CronLoop::create_consumer() {
  const auto& names = planner_settings_.names;
  auto consumer = kafka::make_static_member(settings_.client, {}, names.prefix + "cron-producer",
                                            names.prefix + "cron-producer-" + settings_.instance_id, {names.schedules()}, this);
  if (!consumer) return consumer.error();
  consumer_ = std::move(*consumer);
  return Status::success();
}

bool CronLoop::spend_budget(const std::string& why, Status& refusal) {
  if (budget_.try_spend(SteadyClock::now())) return true;
  refusal = Error(budget_.refusal("cron-producer", settings_.instance_id, why));
  return false;
}

Status CronLoop::rejoin(const std::string& why) {
  if (Status refusal; !spend_budget(why, refusal)) return refusal;
  spdlog::warn("event=rejoin reason=\"{}\" msg=\"recreating the consumer; the assignment reloads from Kafka\"", why);
  counters_.rejoins.inc();
  out_.clear();
  consumed_ = 0;
  published_ = planner_.counts();
  for (const auto& [partition, offset] : next_offsets_) planner_.drop_partition(partition);
  next_offsets_.clear();
  committed_offsets_.clear();
  schedules_.set(static_cast<double>(planner_.schedule_count()));
  kafka::discard_consumer(consumer_);  // owns nothing now: a revoke it raises commits nothing
  return create_consumer();
}

Status CronLoop::run() {
  auto status = serve();
  // Leaving on an error: the revoke that closing the consumer raises must not commit what is left.
  if (!status) abandoned_ = true;
  return status;
}

Status CronLoop::serve() {
  if (auto status = start(); !status) return status;
  templates_ = std::make_unique<TemplateFollower>(settings_.client, planner_settings_.names, catalog_);
  if (auto loaded = templates_->start(Millis(30000)); !loaded) {
    // Not fatal: the follower carries on reading, and a schedule waits template_wait for its version.
    spdlog::warn("event=template_catalog_incomplete error=\"{}\"", loaded.error().message());
  }
  planner_.set_catalog(&catalog_);
  if (http_ != nullptr) http_->set_ready(true);
  if (settings_.upgrade_check_interval.count() > 0) {
    tenant_keys_ = std::make_unique<FeatureWatch>(settings_.client, planner_settings_.names, std::string(feature::kTenantKeys),
                                                  settings_.upgrade_check_interval);
    tenant_keys_->start();
    flows_ = std::make_unique<FeatureWatch>(settings_.client, planner_settings_.names, std::string(feature::kFlows),
                                            settings_.upgrade_check_interval);
    flows_->start();
  }
  while (!stop_requested()) {
    if (tenant_keys_) {
      planner_.hold_tenant_runs(!tenant_keys_->open());
      tenant_runs_held_.set(planner_.tenant_runs_held() ? 1 : 0);
    }
    if (flows_) {
      planner_.hold_flow_runs(!flows_->open());
      flow_runs_held_.set(planner_.flow_runs_held() ? 1 : 0);
    }
    const auto deadline = SteadyClock::now() + settings_.commit_interval;
    while (SteadyClock::now() < deadline && !stop_requested()) {
      const auto wait = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
      std::unique_ptr<RdKafka::Message> message(consumer_->consume(static_cast<int>(std::max<std::int64_t>(wait, 0))));
      if (message->err() == RdKafka::ERR__TIMED_OUT) break;
      if (message->err() != RdKafka::ERR_NO_ERROR) {
        if (message->err() == RdKafka::ERR__FATAL) {
          rejoin_reason_ = "consumer fenced: " + kafka::fatal_reason(*consumer_);
          break;
        }
        if (message->err() != RdKafka::ERR__PARTITION_EOF) spdlog::warn("event=consume_error error=\"{}\"", message->errstr());
        continue;
      }
      auto owned = next_offsets_.find(message->partition());
      if (owned == next_offsets_.end()) continue;
      const std::string content_type = kafka::header_value(*message, header::kContentType);
      ScheduleRecord record{message->partition(),
                            message->offset(),
                            message->key() != nullptr ? std::string_view(*message->key()) : std::string_view(),
                            std::string_view(static_cast<const char*>(message->payload()), message->len()),
                            message->payload() == nullptr,
                            content_type};
      planner_.apply(record, out_);
      owned->second = message->offset() + 1;
      ++consumed_;
    }
    templates_->poll(1000);
    if (!rejoin_reason_.empty()) {
      if (auto status = rejoin(std::exchange(rejoin_reason_, {})); !status) return status;
      continue;
    }
    if (auto status = commit_batch(); !status) return status;
    lag_.sample(*consumer_);
  }
  spdlog::info("event=stopping");
  if (http_ != nullptr) http_->set_ready(false);
  consumer_->close();  // the revoke callback commits the last batch
  consumer_.reset();
  planner_.set_catalog(nullptr);
  templates_->close();
  spdlog::info("event=stopped");
  return Status::success();
}

Status CronLoop::commit_batch() {
  if (next_offsets_.empty()) return Status::success();
  planner_.tick(out_);
  if (out_.empty() && consumed_ == 0) return Status::success();
  kafka::PartitionList offsets;
  for (const auto& [partition, offset] : next_offsets_) {
    offsets.items.push_back(RdKafka::TopicPartition::create(planner_settings_.names.schedules(), partition, offset));
  }
  const auto result =
      kafka::commit_transaction(*producer_, *consumer_, out_, offsets.items, {settings_.transaction_timeout, "cron"});
  counters_.count(result);
  switch (result.outcome) {
    case kafka::TransactionOutcome::kCommitted:
      break;
    case kafka::TransactionOutcome::kAborted:
      // A record refused for what it is, or aborts that keep coming, would abort again after the
      // rewind: they spend the recovery budget, so a cron-producer that cannot commit stops with
      // the reason instead of rewinding forever. A lone abort is free.
      if (++consecutive_aborts_ >= kAbortsBeforeBudget || result.refused) {
        if (Status refusal; !spend_budget(result.reason, refusal)) {
          out_.clear();
          return refusal;
        }
      }
      return reload(result.reason, false);
    case kafka::TransactionOutcome::kFenced:
      // Fenced (the coordinator aborted a transaction that outlived transaction.timeout.ms, or a
      // newer incarnation of this instance id): nothing committed; a new producer and a reload.
      return reload(fmt::format("producer fenced: {}", result.reason), true);
    case kafka::TransactionOutcome::kUnknown:
      return reload(fmt::format("commit outcome unknown: {}", result.reason), true);
  }
  consecutive_aborts_ = 0;
  committed_offsets_ = next_offsets_;
  out_.clear();
  consumed_ = 0;
  publish_counts();
  return Status::success();
}

Status CronLoop::reload(const std::string& why, bool new_producer) {
  out_.clear();  // first: also when the budget is spent, nothing of this batch may commit
  consumed_ = 0;
  published_ = planner_.counts();  // the dropped batch is decided again after the reload: count it then
  if (Status refusal; new_producer && !spend_budget(why, refusal)) return refusal;
  spdlog::warn("event={} reason=\"{}\" msg=\"{}reloading schedules and state from Kafka\"", new_producer ? "recover" : "rewind",
               why, new_producer ? "recreating the producer, " : "");
  if (new_producer) counters_.recoveries.inc();
  if (new_producer) {
    producer_.reset();
    if (auto status = kafka::retry_with_backoff([this] { return create_producer(); }, settings_.recovery_timeout,
                                                "recreate the transactional producer");
        !status) {
      return status;
    }
  }
  std::set<std::int32_t> owned;
  for (const auto& [partition, offset] : next_offsets_) owned.insert(partition);
  for (const auto partition : owned) planner_.drop_partition(partition);
  if (auto status = load_partitions(owned); !status) return rejoin(status.error().within("reload from Kafka").message());
  for (const auto partition : owned) {
    auto* position = RdKafka::TopicPartition::create(planner_settings_.names.schedules(), partition, next_offsets_[partition]);
    const auto code = consumer_->seek(*position, 5000);
    delete position;
    if (code != RdKafka::ERR_NO_ERROR) return rejoin(fmt::format("rewind schedules: {}", RdKafka::err2str(code)));
  }
  return Status::success();
}

Status CronLoop::load_partitions(const std::set<std::int32_t>& partitions) {
  const auto& names = planner_settings_.names;
  kafka::PartitionList committed;
  for (const auto partition : partitions)
    committed.items.push_back(RdKafka::TopicPartition::create(names.schedules(), partition));
  if (!committed.items.empty()) {
    if (const auto code = consumer_->committed(committed.items, 30000); code != RdKafka::ERR_NO_ERROR) {
      return kafka::to_error(code, "fetch committed offsets");
    }
  }
  const auto from_low = [](std::int64_t low, std::int64_t /*high*/) { return low; };
  for (auto* item : committed.items) {
    const auto partition = item->partition();
    auto state = kafka::replay_partition(
        settings_.client, names.prefix + "cron-restore", names.cron_changelog(), partition, from_low,
        [&](RdKafka::Message& message) {
          planner_.restore_state(partition, message.key() != nullptr ? *message.key() : std::string(),
                                 std::string_view(static_cast<const char*>(message.payload()), message.len()),
                                 message.payload() == nullptr);
          return Status::success();
        },
        settings_.restore_timeout);
    if (!state) return state.error();
    std::int64_t low_of_table = 0;
    auto table = kafka::replay_partition(
        settings_.client, names.prefix + "cron-restore", names.schedules(), partition,
        [&](std::int64_t low, std::int64_t high) {
          low_of_table = low;
          (void)high;
          return low;
        },
        [&](RdKafka::Message& message) {
          const std::string content_type = kafka::header_value(message, header::kContentType);
          planner_.load({partition, message.offset(),
                         message.key() != nullptr ? std::string_view(*message.key()) : std::string_view(),
                         std::string_view(static_cast<const char*>(message.payload()), message.len()),
                         message.payload() == nullptr, content_type});
          return Status::success();
        },
        settings_.restore_timeout);
    if (!table) return table.error();
    const std::int64_t offset = item->offset() >= 0 ? item->offset() : low_of_table;
    item->set_offset(offset);
    next_offsets_[partition] = offset;
    committed_offsets_[partition] = offset;
  }
  schedules_.set(static_cast<double>(planner_.schedule_count()));
  return Status::success();
}

void CronLoop::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                            std::vector<RdKafka::TopicPartition*>& partitions) {
  if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
    counters_.rebalances.inc();
    std::set<std::int32_t> assigned;
    for (const auto* partition : partitions) assigned.insert(partition->partition());
    if (auto status = load_partitions(assigned); !status) {
      // Kafka did not answer in time (a coordinator or leader away): join again with a new consumer.
      spdlog::warn("event=assign_failed error=\"{}\"", status.error().message());
      rejoin_reason_ = status.error().message();
      return;
    }
    for (auto* partition : partitions) partition->set_offset(next_offsets_[partition->partition()]);
    (void)consumer->assign(partitions);
    spdlog::info("event=assigned partitions={} schedules={}", partitions.size(), planner_.schedule_count());
    return;
  }
  if (!abandoned_ && producer_) {
    if (auto status = commit_batch(); !status) spdlog::warn("event=revoke_commit_failed error=\"{}\"", status.error().message());
  }
  for (const auto* partition : partitions) {
    planner_.drop_partition(partition->partition());
    next_offsets_.erase(partition->partition());
    committed_offsets_.erase(partition->partition());
  }
  out_.clear();
  consumed_ = 0;
  (void)consumer->unassign();
  schedules_.set(static_cast<double>(planner_.schedule_count()));
  spdlog::info("event=revoked count={}", partitions.size());
}

void CronLoop::publish_counts() {
  const auto& counts = planner_.counts();
  emitted_.inc(counts.emitted - published_.emitted);
  skipped_.inc(counts.skipped - published_.skipped);
  rejected_.inc(counts.rejected - published_.rejected);
  cancelled_.inc(counts.cancelled - published_.cancelled);
  published_ = counts;
  schedules_.set(static_cast<double>(planner_.schedule_count()));
}

}  // namespace kcron::cron
