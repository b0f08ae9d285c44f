#include "kafka/relay_loop.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <future>
#include <iterator>
#include <memory>
#include <thread>
#include <utility>

#include "kcron/codec.h"
#include "kcron/transaction.h"

namespace kcron::relay {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string_view outcome_word(Outcome outcome) {
  switch (outcome) {
    case Outcome::kForwarded:
      return "forwarded";
    case Outcome::kRejected:
      return "rejected";
    case Outcome::kSkipped:
      return "skipped";
  }
  return "unknown";
}

}  // namespace

RelayLoop::RelayLoop(RelayLoopSettings settings, Relay& relay, Metrics& metrics, HttpEndpoint* http)
    : settings_(std::move(settings)),
      relay_(relay),
      http_(http),
      forwarded_(
          metrics.counter("kcron_relay_forwarded_total", "records of tenants' input topics forwarded to jobs or schedules")),
      schedules_(metrics.counter("kcron_relay_schedules_forwarded_total",
                                 "schedule puts and deletes among them, forwarded to the schedules topic")),
      rejected_(metrics.counter("kcron_jobs_rejected_total{component=\"relay\"}",
                                "records of tenants' input topics REJECTED (a dead letter of the tenant)")),
      skipped_(metrics.counter("kcron_relay_skipped_total",
                               "records of topics matching the subscription that are no tenant's input topic (not forwarded)")),
      overridden_(metrics.counter("kcron_relay_tenant_overridden_total",
                                  "forwarded or rejected records whose body named another tenant than their topic's")),
      output_watch_(relay.settings().names),
      partitions_(metrics.gauge("kcron_relay_input_partitions", "input topic partitions assigned to this relay")),
      held_gauge_(metrics.gauge("kcron_relay_held",
                                "1 while tenants' input waits for every dispatcher and worker to understand tenant keys")),
      counters_(metrics, "relay"),
      lag_(metrics, "relay") {}

RelayLoop::~RelayLoop() {
  if (consumer_) consumer_->close();
}

Status RelayLoop::create_producer() {
  auto producer = kafka::make_transactional_producer(
      settings_.client, relay_.settings().names.prefix + "relay-" + settings_.instance_id, settings_.transaction_timeout);
  if (!producer) return producer.error();
  producer_ = std::move(*producer);
  return Status::success();
}

Status RelayLoop::create_consumer() {
  const auto& names = relay_.settings().names;
  const std::string group = settings_.group_id.empty() ? names.prefix + "relay" : settings_.group_id;
  const kafka::Properties extra = {
      {"topic.metadata.refresh.interval.ms", std::to_string(settings_.metadata_refresh.count())},
      // A record is mapped at most once per batch, so a fetch may stay small; keep one topic's
      // backlog from filling the queue that every other tenant's topic shares.
      {"queued.max.messages.kbytes", "16384"},
  };
  auto consumer = kafka::make_static_member(settings_.client, extra, group, names.prefix + "relay-" + settings_.instance_id,
                                            {subscription_pattern(names.prefix)}, this);
  if (!consumer) return consumer.error();
  consumer_ = std::move(*consumer);
  return Status::success();
}

Status RelayLoop::start() {
  const auto& names = relay_.settings().names;
  if (auto status = create_producer(); !status) return status;
  std::vector<TopicSpec> required = {
      {names.jobs(), 0, {}}, {names.schedules(), 0, {}}, {names.dead_letters(), 0, {}}, {names.status(), 0, {}}};
  if (relay_.settings().audit_refusals) required.push_back({names.audit(), 0, {}});
  if (auto status = kafka::check_topics(*producer_, required, Millis(30000)); !status) return status;
  if (auto status = create_consumer(); !status) return status;
  spdlog::info("event=started instance={} pattern=\"{}\" metadata_refresh_ms={}", settings_.instance_id,
               subscription_pattern(names.prefix), settings_.metadata_refresh.count());
  return Status::success();
}

bool RelayLoop::spend_budget(const std::string& why, Status& refusal) {
  if (budget_.try_spend(SteadyClock::now())) return true;
  refusal = Error(budget_.refusal("relay", settings_.instance_id, why));
  return false;
}

void RelayLoop::drop_batch() {
  out_.clear();
  consumed_ = 0;
  batch_start_.clear();
  next_offsets_.clear();
  published_ = relay_.counts();  // the dropped batch is mapped again: counted then
}

Status RelayLoop::rejoin(const std::string& why) {
  if (Status refusal; !spend_budget(why, refusal)) return refusal;
  spdlog::warn("event=rejoin reason=\"{}\" msg=\"recreating the consumer; it resumes from the committed offsets\"", why);
  counters_.rejoins.inc();
  drop_batch();
  assigned_.clear();
  paused_.clear();
  partitions_.set(0);
  kafka::discard_consumer(consumer_);  // owns nothing now: a revoke it raises commits nothing
  return create_consumer();
}

Status RelayLoop::run() {
  auto status = serve();
  // Leaving on an error: the revoke that closing the consumer raises must not commit what is left.
  if (!status) abandoned_ = true;
  return status;
}

Status RelayLoop::serve() {
  if (auto status = start(); !status) return status;
  if (http_ != nullptr) http_->set_ready(true);
  if (settings_.upgrade_check_interval.count() > 0) {
    tenant_keys_ = std::make_unique<FeatureWatch>(settings_.client, relay_.settings().names, std::string(feature::kTenantKeys),
                                                  settings_.upgrade_check_interval);
    tenant_keys_->start();
    batches_ = std::make_unique<FeatureWatch>(settings_.client, relay_.settings().names, std::string(feature::kBatch),
                                              settings_.upgrade_check_interval);
    batches_->start();
  }
  while (!stop_requested()) {
    if (tenant_keys_ && tenant_keys_->open() == held_) hold(!tenant_keys_->open());
    if (batches_) relay_.allow_batches(batches_->open());
    const auto deadline = SteadyClock::now() + settings_.commit_interval;
    while (SteadyClock::now() < deadline && consumed_ < settings_.max_batch_records && !stop_requested()) {
      const auto wait = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
      std::unique_ptr<RdKafka::Message> message(consumer_->consume(static_cast<int>(std::max<std::int64_t>(wait, 0))));
      if (message->err() == RdKafka::ERR__TIMED_OUT) break;
      if (message->err() != RdKafka::ERR_NO_ERROR) {
        if (message->err() == RdKafka::ERR__FATAL) {
          rejoin_reason_ = "consumer fenced: " + kafka::fatal_reason(*consumer_);
          break;
        }
        // A subscribed topic deleted (a tenant removed) or not yet known everywhere: not fatal.
        if (message->err() == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART && message->topic_name().starts_with('^')) {
          spdlog::info(
              "event=no_input_topics pattern=\"{}\" msg=\"no tenant input topic exists yet: `kcron topics create "
              "--tenant-input T` makes one, and it is picked up within metadata_refresh_ms\"",
              message->topic_name());
          continue;
        }
        std::uint64_t suppressed = 0;
        if (message->err() != RdKafka::ERR__PARTITION_EOF && log_now("consume_error", message->topic_name(), suppressed)) {
          spdlog::warn("event=consume_error topic={} error=\"{}\" not_logged_before={}", message->topic_name(), message->errstr(),
                       suppressed);
        }
        continue;
      }
      consume_one(*message);
    }
    if (!rejoin_reason_.empty()) {
      if (auto status = rejoin(std::exchange(rejoin_reason_, {})); !status) return status;
      continue;
    }
    if (auto status = commit_batch(); !status) return status;
    lag_.sample(*consumer_);
    if (settings_.between_batches) settings_.between_batches();
  }
  spdlog::info("event=stopping");
  if (http_ != nullptr) http_->set_ready(false);
  // The last batch, committed here rather than in the revoke that close() raises.
  if (auto status = commit_batch(); !status) spdlog::warn("event=stop_commit_failed error=\"{}\"", status.error().message());
  drop_batch();
  close_consumer();
  spdlog::info("event=stopped");
  return Status::success();
}

void RelayLoop::close_consumer() {
  // librdkafka 2.0.2's close() can block for good once a subscribed topic was deleted (a tenant's
  // topics removed while the relay ran). So it gets a bounded time; past it the process exits: the
  // last batch and its offsets were committed before, and the group sees the member leave when its
  // session times out.
  auto* consumer = consumer_.release();
  auto done = std::make_shared<std::promise<void>>();
  auto closed = done->get_future();
  std::thread([consumer, done] {
    consumer->close();
    delete consumer;
    done->set_value();
  }).detach();
  if (closed.wait_for(kCloseTimeout) == std::future_status::timeout) {
    spdlog::warn(
        "event=close_timeout timeout_ms={} msg=\"the consumer did not close (a subscribed topic was deleted?); the last "
        "batch is committed: exiting now\"",
        std::chrono::duration_cast<Millis>(kCloseTimeout).count());
    spdlog::default_logger()->flush();
    // Nothing is left to write, and the stuck thread may still call this loop (its rebalance
    // callback): no destructor may run under it.
    std::_Exit(0);
  }
}

void RelayLoop::consume_one(RdKafka::Message& message) {
  TopicPartition where{message.topic_name(), message.partition()};
  if (!assigned_.contains(where)) return;  // consumed before a revoke took it away
  const std::string content_type = kafka::header_value(message, header::kContentType);
  const std::string kcron_type = kafka::header_value(message, header::kType);
  const auto timestamp = message.timestamp();
  const InputRecord record{
      .topic = where.first,
      .partition = where.second,
      .offset = message.offset(),
      .key = message.key() != nullptr ? std::string_view(*message.key()) : std::string_view(),
      .value = std::string_view(static_cast<const char*>(message.payload()), message.len()),
      .tombstone = message.payload() == nullptr,
      .content_type = content_type,
      .kcron_type = kcron_type,
      .timestamp_ms = timestamp.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE ? timestamp.timestamp : 0,
  };
  const Decision decision = relay_.apply(record, out_);
  // Logs name the record and the decision, never the payload.
  std::uint64_t suppressed = 0;
  if (decision.tenant_overridden && log_now("tenant_overridden", where.first, suppressed)) {
    spdlog::warn("event=tenant_overridden topic={} partition={} offset={} tenant={} action={} outcome={} not_logged_before={}",
                 where.first, where.second, record.offset, decision.tenant, decision.action, outcome_word(decision.outcome),
                 suppressed);
  }
  if (decision.outcome == Outcome::kRejected && log_now("rejected", where.first, suppressed)) {
    spdlog::info(
        "event=rejected topic={} partition={} offset={} tenant={} action={} not_logged_before={} msg=\"a dead letter of the "
        "tenant says why\"",
        where.first, where.second, record.offset, decision.tenant, decision.action, suppressed);
  } else if (decision.outcome == Outcome::kSkipped && warned_topics_.insert(where.first).second) {
    spdlog::warn("event=topic_skipped topic={} reason=\"{}\"", where.first, decision.reason);
  }
  batch_start_.try_emplace(where, record.offset);
  next_offsets_[where] = record.offset + 1;
  ++consumed_;
}

bool RelayLoop::log_now(const std::string& what, const std::string& topic, std::uint64_t& suppressed) {
  auto& throttle = throttles_[{what, topic}];
  const auto now = SteadyClock::now();
  if (now < throttle.next) {
    ++throttle.suppressed;
    return false;
  }
  suppressed = std::exchange(throttle.suppressed, 0);
  throttle.next = now + kLogEvery;
  if (throttles_.size() > 10000) throttles_.clear();  // topics come and go: bounded (a few extra lines at worst)
  return true;
}

void RelayLoop::pause(const std::vector<TopicPartition>& partitions) {
  kafka::PartitionList list;
  for (const auto& [topic, partition] : partitions) list.items.push_back(RdKafka::TopicPartition::create(topic, partition));
  if (list.items.empty()) return;
  if (const auto code = consumer_->pause(list.items); code != RdKafka::ERR_NO_ERROR) {
    spdlog::warn("event=pause_failed error=\"{}\"", RdKafka::err2str(code));
    return;
  }
  paused_.insert(partitions.begin(), partitions.end());
}

void RelayLoop::hold(bool closed) {
  held_ = closed;
  held_gauge_.set(closed ? 1 : 0);
  if (closed) {
    spdlog::info(
        "event=held reason=\"{}\" msg=\"tenants' input waits until every dispatcher and worker understands "
        "tenant keys\"",
        tenant_keys_ ? tenant_keys_->reason() : std::string());
    pause({assigned_.begin(), assigned_.end()});
    return;
  }
  kafka::PartitionList list;
  for (const auto& [topic, partition] : paused_) {
    if (assigned_.contains({topic, partition})) list.items.push_back(RdKafka::TopicPartition::create(topic, partition));
  }
  paused_.clear();
  if (!list.items.empty()) {
    if (const auto code = consumer_->resume(list.items); code != RdKafka::ERR_NO_ERROR) {
      rejoin_reason_ = fmt::format("resume after the upgrade gate opened: {}", RdKafka::err2str(code));
    }
  }
  spdlog::info("event=released partitions={}", list.items.size());
}

Status RelayLoop::commit_batch() {
  if (consumed_ == 0) return Status::success();
  kafka::PartitionList offsets;
  for (const auto& [where, offset] : next_offsets_) {
    offsets.items.push_back(RdKafka::TopicPartition::create(where.first, where.second, offset));
  }
  // Tenants' output topics: copies of their rejections (dead letters, status), in this transaction.
  if (settings_.tenants != nullptr) output_watch_.refresh(*settings_.tenants, *producer_, SteadyClock::now());
  auto copies = tenant_output_copies(out_, relay_.settings().names, output_watch_.tenants());
  if (!copies.empty()) out_.insert(out_.end(), std::make_move_iterator(copies.begin()), std::make_move_iterator(copies.end()));
  const auto result =
      kafka::commit_transaction(*producer_, *consumer_, out_, offsets.items, {settings_.transaction_timeout, "relay"});
  counters_.count(result);
  // Not committed: the output topics are checked again first (one deleted meanwhile fails every copy).
  if (result.outcome != kafka::TransactionOutcome::kCommitted) output_watch_.invalidate();
  switch (result.outcome) {
    case kafka::TransactionOutcome::kCommitted:
      break;
    case kafka::TransactionOutcome::kAborted:
      // A record refused for what it is, or aborts that keep coming, would abort again after the
      // rewind: they spend the recovery budget, so a relay that cannot commit stops with the
      // reason instead of rewinding forever. A lone abort is free.
      if (++consecutive_aborts_ >= kAbortsBeforeBudget || result.refused) {
        if (Status refusal; !spend_budget(result.reason, refusal)) {
          drop_batch();
          return refusal;
        }
      }
      return rewind(result.reason, false);
    case kafka::TransactionOutcome::kFenced:
      return rewind(fmt::format("producer fenced: {}", result.reason), true);
    case kafka::TransactionOutcome::kUnknown:
      return rewind(fmt::format("commit outcome unknown: {}", result.reason), true);
  }
  consecutive_aborts_ = 0;
  out_.clear();
  consumed_ = 0;
  batch_start_.clear();
  next_offsets_.clear();
  publish_counts();
  return Status::success();
}

Status RelayLoop::rewind(const std::string& why, bool new_producer) {
  const auto starts = batch_start_;
  drop_batch();  // first: also when the budget is spent, nothing of this batch may commit
  if (Status refusal; new_producer && !spend_budget(why, refusal)) return refusal;
  spdlog::warn("event={} reason=\"{}\" msg=\"{}reading the batch again from the committed offsets\"",
               new_producer ? "recover" : "rewind", why, new_producer ? "recreating the producer, " : "");
  if (new_producer) {
    counters_.recoveries.inc();
    producer_.reset();
    // init_transactions resolves the open transaction: the committed offsets read below say
    // whether it committed.
    if (auto status = kafka::retry_with_backoff([this] { return create_producer(); }, settings_.recovery_timeout,
                                                "recreate the transactional producer");
        !status) {
      return status;
    }
  }
  if (starts.empty() || revoking_) return Status::success();  // revoked: the next owner starts at the committed offsets
  kafka::PartitionList committed;
  for (const auto& [where, offset] : starts)
    committed.items.push_back(RdKafka::TopicPartition::create(where.first, where.second));
  if (const auto code = consumer_->committed(committed.items, 30000); code != RdKafka::ERR_NO_ERROR) {
    return rejoin(fmt::format("fetch committed offsets to rewind: {}", RdKafka::err2str(code)));
  }
  for (auto* item : committed.items) {
    const TopicPartition where{item->topic(), item->partition()};
    // Never committed: the batch read it from its first record, which is where it starts again.
    const std::int64_t offset = item->offset() >= 0 ? item->offset() : starts.at(where);
    std::unique_ptr<RdKafka::TopicPartition> position(RdKafka::TopicPartition::create(where.first, where.second, offset));
    if (const auto code = consumer_->seek(*position, 5000); code != RdKafka::ERR_NO_ERROR) {
      return rejoin(fmt::format("rewind {}/{}: {}", where.first, where.second, RdKafka::err2str(code)));
    }
  }
  return Status::success();
}

void RelayLoop::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                             std::vector<RdKafka::TopicPartition*>& partitions) {
  if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
    counters_.rebalances.inc();
    std::set<std::string> topics;
    std::vector<TopicPartition> added;
    for (const auto* partition : partitions) {
      added.emplace_back(partition->topic(), partition->partition());
      topics.insert(partition->topic());
    }
    assigned_.insert(added.begin(), added.end());
    // Offsets as given (none): each partition starts at its committed offset, else its beginning.
    (void)consumer->assign(partitions);
    if (held_) pause(added);
    partitions_.set(static_cast<double>(assigned_.size()));
    spdlog::info("event=assigned partitions={} topics={}", partitions.size(), topics.size());
    return;
  }
  if (!abandoned_ && producer_) {
    revoking_ = true;
    if (auto status = commit_batch(); !status) spdlog::warn("event=revoke_commit_failed error=\"{}\"", status.error().message());
    revoking_ = false;
  }
  drop_batch();
  assigned_.clear();
  paused_.clear();  // a new assignment starts unpaused
  (void)consumer->unassign();
  partitions_.set(0);
  spdlog::info("event=revoked count={}", partitions.size());
}

void RelayLoop::publish_counts() {
  const auto& counts = relay_.counts();
  forwarded_.inc(counts.forwarded - published_.forwarded);
  schedules_.inc(counts.schedules - published_.schedules);
  rejected_.inc(counts.rejected - published_.rejected);
  skipped_.inc(counts.skipped - published_.skipped);
  overridden_.inc(counts.tenant_overridden - published_.tenant_overridden);
  published_ = counts;
}

}  // namespace kcron::relay
