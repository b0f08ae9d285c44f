#include "kafka/dispatcher_loop.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "kcron/codec.h"
#include "kcron/fault_points.h"
#include "kcron/priority.h"
#include "kcron/upgrade_gate.h"

namespace kcron::dispatcher {
namespace {

using SteadyClock = std::chrono::steady_clock;

// The shortest a batch stays open: enough to take in what the consumer has fetched.
constexpr Millis kMinBatchWait{2};

// A decision read the local store and the read failed (an I/O error, corruption): nothing decided
// on it may commit. The process exits non-zero, as on a failed store write.
constexpr std::string_view kStoreReadFailed = "the local store could not be read; the open batch is dropped uncommitted";

std::int64_t ms_left(SteadyClock::time_point deadline) {
  return std::max<std::int64_t>(0, std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count());
}

}  // namespace

DispatcherLoop::DispatcherLoop(LoopSettings settings, DispatcherCore& core, DelayStore& store, const Clock& clock,
                               Metrics& metrics, HttpEndpoint* http)
    : output_watch_(core.settings().names),
      settings_(std::move(settings)),
      core_(core),
      store_(store),
      clock_(clock),
      http_(http),
      metrics_(metrics),
      heartbeats_({.topic = core.settings().names.workers(),
                   .worker_id = "dispatcher/" + settings_.instance_id,
                   .role = "dispatcher",
                   .features = dispatcher_features(),
                   .queues = {core.settings().queues.begin(), core.settings().queues.end()},
                   .programs = {},
                   .handlers = {},
                   .slots = 0,
                   .interval = settings_.heartbeat_interval},
                  clock),
      accepted_(metrics.counter("kcron_jobs_submitted_total", "jobs submitted and accepted as valid by the dispatcher")),
      fired_(metrics.counter("kcron_jobs_fired_total", "jobs committed to an execution topic")),
      rejected_(metrics.counter("kcron_jobs_rejected_total{component=\"dispatcher\"}", "input records rejected to dead-letters")),
      forwarded_(metrics.counter("kcron_jobs_forwarded_total", "records forwarded to their murmur2 partition")),
      batches_(metrics.counter("kcron_batches_total", "Batch records split (their jobs count as submits where they land)")),
      cancelled_(metrics.counter("kcron_jobs_cancelled_total{component=\"dispatcher\"}", "jobs cancelled before firing")),
      duplicates_(metrics.counter("kcron_jobs_duplicate_total", "re-submits of known ids (idempotent no-ops)")),
      expired_(metrics.counter("kcron_index_expired_total", "cancel markers and retained ids expired")),
      skipped_(metrics.counter("kcron_jobs_skipped_total", "schedule runs skipped by their misfire or overlap policy")),
      unpublishable_(metrics.counter("kcron_unpublishable_total",
                                     "inputs REJECTED or due jobs DEAD because the broker refused their records")),
      restored_records_(metrics.counter("kcron_changelog_restored_records_total", "changelog records replayed on restore")),
      store_size_(metrics.gauge("kcron_delay_store_jobs", "entries in the delay buckets of owned partitions")),
      owned_partitions_(metrics.gauge("kcron_owned_partitions", "jobs partitions owned by this dispatcher")),
      fire_lag_(metrics.histogram("kcron_fire_lag_seconds", "exec record fired minus due instant (0 when fired ahead)",
                                  Metrics::latency_buckets())),
      fired_ahead_(metrics.counter("kcron_jobs_fired_ahead_total",
                                   "jobs committed to an execution topic before their due instant (fire-ahead)")),
      fire_window_(metrics.gauge("kcron_fire_ahead_window_seconds",
                                 "how far ahead of their instant jobs were fired by the last batch (0: fire-ahead closed)")),
      ahead_records_(metrics.gauge("kcron_fired_ahead_waiting", "records fired ahead whose instant has not come yet")),
      commit_seconds_(
          metrics.histogram("kcron_transaction_commit_seconds", "time to commit one transaction", Metrics::latency_buckets())),
      counters_(metrics, "dispatcher"),
      lag_(metrics, "dispatcher") {}

DispatcherLoop::~DispatcherLoop() {
  if (consumer_) consumer_->close();
}

Status DispatcherLoop::create_producer() {
  auto producer =
      kafka::make_transactional_producer(settings_.client, core_.settings().names.prefix + "dispatcher-" + settings_.instance_id,
                                         settings_.transaction_timeout, &deliveries_);
  if (!producer) return producer.error();
  producer_ = std::move(*producer);
  return Status::success();
}

Status DispatcherLoop::start() {
  const auto& names = core_.settings().names;
  if (auto status = create_producer(); !status) return status;

  // Partition counts matter for what routes by partition; the rest must merely exist.
  std::vector<TopicSpec> required = {{names.jobs(), core_.settings().jobs_partitions, {}},
                                     {names.dispatcher_changelog(), core_.settings().jobs_partitions, {}},
                                     {names.status(), 0, {}},
                                     {names.events(), 0, {}},
                                     {names.dead_letters(), 0, {}},
                                     {names.control(), 0, {}}};
  if (core_.settings().audit != AuditLevel::kOff) required.push_back({names.audit(), 0, {}});
  for (const auto& queue : core_.settings().queues) {
    for (const auto band : kAllBands) required.push_back({exec_topic(names.prefix, queue, band), 0, {}});
  }
  if (settings_.heartbeat_interval.count() > 0) required.push_back({names.workers(), 0, {}});
  if (auto status = kafka::check_topics(*producer_, required, Millis(30000)); !status) return status;
  if (core_.settings().fire_ahead.max.count() > 0) {
    // Fire-ahead bounds its records per exec partition: which partition a record goes to.
    auto counts = kafka::partition_counts(*producer_, Millis(30000));
    if (!counts) return counts.error().within("reading the exec topics' partition counts");
    std::map<std::string, std::int32_t, std::less<>> exec_counts;
    for (const auto& queue : core_.settings().queues) {
      for (const auto band : kAllBands) {
        const auto topic = exec_topic(names.prefix, queue, band);
        if (const auto found = counts->find(topic); found != counts->end()) exec_counts.emplace(topic, found->second);
      }
    }
    core_.set_exec_partitions(std::move(exec_counts));
    if (settings_.upgrade_check_interval.count() > 0) {
      if (!fire_ahead_gate_) {
        fire_ahead_gate_ = std::make_unique<FeatureWatch>(settings_.client, names, std::string(feature::kFireAhead),
                                                          settings_.upgrade_check_interval);
        fire_ahead_gate_->start();
      }
    } else {
      core_.set_fire_ahead_open(true);
    }
  }
  if (auto status = heartbeats_.start(settings_.client); !status) return status;
  if (heartbeats_.due(false)) heartbeats_.send({}, 0, 0, false);  // before it joins the group

  if (auto status = create_consumer(); !status) return status;
  spdlog::info("event=started instance={} topic={} transactional_id={}dispatcher-{}", settings_.instance_id, names.jobs(),
               names.prefix, settings_.instance_id);
  return Status::success();
}

Status DispatcherLoop::create_consumer() {
  const auto& names = core_.settings().names;
  kafka::Properties extra = {{"max.poll.interval.ms", "600000"}};
  // librdkafka prefetches up to 64 MB per consumer by default; a batch holds at most
  // max_batch_records, so 16 MB ahead is plenty, and memory a prefetch took stays with the process.
  if (!settings_.client.contains("queued.max.messages.kbytes")) extra["queued.max.messages.kbytes"] = "16384";
  auto consumer = kafka::make_static_member(settings_.client, extra, names.prefix + "dispatcher",
                                            names.prefix + "dispatcher-" + settings_.instance_id, {names.jobs()}, this);
  if (!consumer) return consumer.error();
  consumer_ = std::move(*consumer);
  return Status::success();
}

Status DispatcherLoop::run() {
  auto status = serve();
  // Leaving on an error: the revoke that closing the consumer raises must not commit what is left
  // of a batch (the producer may be gone, or the batch decided against a state that failed).
  if (!status) abandoned_ = true;
  return status;
}

Status DispatcherLoop::serve() {
  if (auto status = start(); !status) return status;
  batch_cap_ = settings_.max_batch_records;
  if (http_ != nullptr) http_->set_ready(true);
  while (!stop_requested()) {
    if (settings_.between_batches) settings_.between_batches();
    if (auto status = consume_batch(); !status) return status;
    if (store_failure_) return *store_failure_;
    if (!rejoin_reason_.empty()) {
      if (auto status = rejoin(std::exchange(rejoin_reason_, {})); !status) return status;
      continue;
    }
    if (auto status = commit_batch(); !status) return status;
    lag_.sample(*consumer_);
    publish_tenant_gauges();
    if (heartbeats_.due(false)) heartbeats_.send({}, core_.counts().fired, 0, false);
    if (const auto now = SteadyClock::now(); now - last_trim_ > kTrimInterval) {
      // Batches, fetches and RocksDB's write path free memory in many threads' malloc arenas;
      // give what is free back to the system, so RSS follows what the dispatcher holds.
      last_trim_ = now;
      (void)malloc_trim(0);
    }
    if (store_failure_) return *store_failure_;
  }
  spdlog::info("event=stopping msg=\"SIGTERM: committing and leaving the group\"");
  if (heartbeats_.due(true)) heartbeats_.send({}, core_.counts().fired, 0, true);
  if (http_ != nullptr) http_->set_ready(false);
  consumer_->close();  // revokes: the rebalance callback commits the last batch
  consumer_.reset();
  if (store_failure_) return *store_failure_;
  spdlog::info("event=stopped");
  return Status::success();
}

Status DispatcherLoop::consume_batch() {
  batch_started_ = SteadyClock::now();
  // The batch closes at the commit interval, or earlier when a pending job comes due before that
  // (each store's next-due hint), so a due job waits for a commit, not for an interval.
  auto open_for = settings_.commit_interval;
  const Instant wall_now = clock_.now();
  for (const auto& [partition, owned] : owned_) {
    const Instant hint = core_.next_look(*owned.state, Partition(partition));  // Instant::min(): look at once
    if (hint < wall_now + open_for) open_for = std::max(kMinBatchWait, hint > wall_now ? hint - wall_now : Millis(0));
  }
  const auto deadline = SteadyClock::now() + open_for;
  while (consumed_in_batch_ < std::min(batch_cap_, settings_.max_batch_records) && out_.size() < settings_.max_batch_outputs &&
         !stop_requested() && !store_failure_) {
    const auto wait = ms_left(deadline);
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(static_cast<int>(wait)));
    if (message->err() == RdKafka::ERR__TIMED_OUT) break;
    if (message->err() == RdKafka::ERR__PARTITION_EOF) continue;
    if (message->err() != RdKafka::ERR_NO_ERROR) {
      if (message->err() == RdKafka::ERR__FATAL) {
        rejoin_reason_ = "consumer fenced: " + kafka::fatal_reason(*consumer_);
        break;
      }
      spdlog::warn("event=consume_error error=\"{}\"", message->errstr());
      if (wait == 0) break;
      continue;
    }
    auto owned = owned_.find(message->partition());
    if (owned == owned_.end()) continue;  // not ours (any more)
    const std::string content_type = kafka::header_value(*message, header::kContentType);
    const std::string kcron_type = kafka::header_value(*message, header::kType);
    const std::string request_id = kafka::header_value(*message, header::kRequestId);
    const std::int64_t now_ms = to_epoch_ms(clock_.now());
    InputRecord record{Partition(message->partition()),
                       message->offset(),
                       message->key() != nullptr ? std::string_view(*message->key()) : std::string_view(),
                       std::string_view(static_cast<const char*>(message->payload()), message->len()),
                       content_type,
                       kcron_type,
                       instant_from_ms(kafka::record_timestamp_ms(*message, now_ms)),
                       request_id};
    const Single single{false, message->partition(), message->offset(), {}};
    const auto poison = std::find_if(poisons_.begin(), poisons_.end(), [&](const Poison& p) { return p.item == single; });
    if (poison != poisons_.end()) {
      spdlog::warn("event=unpublishable_input partition={} offset={} reason=\"{}\"", single.partition, single.offset,
                   poison->reason);
      core_.reject_unpublishable(record, poison->reason, out_);
      poison->applied = true;
    } else if (auto applied = core_.apply(*owned->second.state, record, out_); !applied) {
      store_failure_ = applied.error().within(kStoreReadFailed);
      drop_uncommitted();
      return *store_failure_;
    }
    last_consumed_ = single;
    spans_.push_back({out_.size(), single.partition, single.offset});
    owned->second.next_offset = message->offset() + 1;
    ++consumed_in_batch_;
    if (ms_left(deadline) == 0) break;
  }
  return Status::success();
}

Status DispatcherLoop::commit_batch() {
  if (owned_.empty()) return Status::success();
  std::size_t fired = 0;
  std::int32_t fired_partition = -1;
  for (auto& poison : poisons_) {
    if (!poison.item.fire || !owned_.contains(poison.item.partition)) continue;
    // A due job whose record the broker refused: DEAD instead of fired.
    spdlog::warn("event=unpublishable_fire partition={} job={} reason=\"{}\"", poison.item.partition, poison.item.job_id,
                 poison.reason);
    auto failed = core_.fail_due(*owned_[poison.item.partition].state, Partition(poison.item.partition),
                                 JobId(poison.item.job_id), poison.reason, out_);
    if (!failed) {
      store_failure_ = failed.error().within(kStoreReadFailed);
      drop_uncommitted();
      return *store_failure_;
    }
    poison.applied = true;
  }
  // Partitions whose tenants' pending counts cannot be trusted are counted again, in this batch.
  std::vector<std::int32_t> recounted;
  for (const auto partition : recount_pending_) {
    const auto owned = owned_.find(partition);
    if (owned == owned_.end()) continue;
    if (auto status = core_.recount(*owned->second.state, Partition(partition), out_); !status) {
      store_failure_ = status.error().within(kStoreReadFailed);
      drop_uncommitted();
      return *store_failure_;
    }
    spans_.push_back({out_.size(), partition, -1});
    recounted.push_back(partition);
  }
  if (fire_ahead_gate_) {
    const bool open = fire_ahead_gate_->open();
    if (open != core_.fire_ahead_open() || (!open && !fire_ahead_logged_open_)) {
      if (open) {
        spdlog::info(
            "event=fire_ahead_open max_ms={} msg=\"every dispatcher and worker holds exec records until their "
            "instant\"",
            core_.settings().fire_ahead.max.count());
      } else {
        spdlog::info("event=fire_ahead_closed reason=\"{}\" msg=\"jobs fire at their instant until it opens\"",
                     fire_ahead_gate_->reason());
      }
      fire_ahead_logged_open_ = true;
    }
    core_.set_fire_ahead_open(open);
  }
  // Bisecting: a narrowed batch fires only when it consumed nothing, and at most its cap.
  const bool narrowed = batch_cap_ < settings_.max_batch_records;
  const std::size_t limit = !narrowed ? settings_.max_fires_per_batch : consumed_in_batch_ > 0 ? 0 : batch_cap_;
  if (limit > 0) {
    std::vector<PartitionState*> states;
    for (auto& [partition, owned] : owned_) states.push_back(owned.state);
    if (auto planned = core_.plan_window(states); !planned) {
      store_failure_ = planned.error().within(kStoreReadFailed);
      drop_uncommitted();
      return *store_failure_;
    }
  }
  for (auto& [partition, owned] : owned_) {
    if (fired >= limit) break;
    const auto count = core_.fire_due(*owned.state, Partition(partition), limit - fired, out_);
    if (!count) {
      store_failure_ = count.error().within(kStoreReadFailed);
      drop_uncommitted();
      return *store_failure_;
    }
    if (*count > 0) fired_partition = partition;
    fired += *count;
    spans_.push_back({out_.size(), partition, -1});
  }
  if (out_.empty() && consumed_in_batch_ == 0) return Status::success();
  batch_single_.reset();
  if (consumed_in_batch_ == 1 && fired == 0 && last_consumed_) batch_single_ = last_consumed_;
  if (consumed_in_batch_ == 0 && fired == 1 && fired_partition >= 0) {
    const auto exec = std::find_if(out_.begin(), out_.end(),
                                   [](const OutRecord& record) { return record.topic.find(".exec.") != std::string::npos; });
    if (exec != out_.end()) batch_single_ = Single{true, fired_partition, -1, exec->key};
  }

  const auto started = SteadyClock::now();
  for (auto& [partition, owned] : owned_) owned.changelog_next = -1;
  kafka::PartitionList offsets;
  for (const auto& [partition, owned] : owned_) {
    offsets.items.push_back(RdKafka::TopicPartition::create(core_.settings().names.jobs(), partition, owned.next_offset));
  }
  // Tenants' output topics: copies of their status and dead-letter records, in this transaction.
  if (const auto* tenants = core_.tenants(); tenants != nullptr) output_watch_.refresh(*tenants, *producer_, SteadyClock::now());
  std::vector<std::size_t> copy_sources;
  auto copies = tenant_output_copies(out_, core_.settings().names, output_watch_.tenants(), &copy_sources);
  // Appended for this transaction only: out_ keeps the batch's own records (an abort's culprit
  // lookup and a retry use them), so the copies are taken off again whatever the outcome.
  const auto own_records = out_.size();
  out_.insert(out_.end(), std::make_move_iterator(copies.begin()), std::make_move_iterator(copies.end()));
  // Every delivery report is awaited: they carry the changelog offsets of the checkpoint, and a
  // record the broker refuses is named by its report.
  auto result = kafka::commit_transaction(*producer_, *consumer_, out_, offsets.items,
                                          {settings_.transaction_timeout, "dispatcher", &deliveries_});
  out_.resize(own_records);
  // A refused copy is its original's: the same job is given up on.
  if (result.refused_record && *result.refused_record >= own_records) {
    result.refused_record = copy_sources[*result.refused_record - own_records];
  }
  if (result.outcome != kafka::TransactionOutcome::kCommitted) output_watch_.invalidate();
  counters_.count(result);
  switch (result.outcome) {
    case kafka::TransactionOutcome::kCommitted:
      break;
    case kafka::TransactionOutcome::kAborted:
      return after_abort(result);
    case kafka::TransactionOutcome::kFenced:
      // The coordinator aborted a transaction that outlived transaction.timeout.ms (a broker or
      // coordinator loss mid-commit, a network partition), or a newer incarnation of this instance
      // id took over. Either way it did not commit, and a new producer fences whoever else holds the
      // id; the budget stops two processes fencing each other forever.
      return recover(fmt::format("producer fenced: {}", result.reason));
    case kafka::TransactionOutcome::kUnknown:
      return recover(fmt::format("commit outcome unknown: {}", result.reason));
  }
  // Fault suite: a batch that fired jobs ahead of their instant committed; the store is not written yet.
  if (core_.counts().fired_ahead != published_.fired_ahead) (void)fault::hit("dispatcher.after_fire_ahead");
  const auto committed_at = SteadyClock::now();
  commit_seconds_.observe(std::chrono::duration<double>(committed_at - started).count());
  core_.observe_commit(fired, std::chrono::duration_cast<Millis>(committed_at - started),
                       std::chrono::duration_cast<Millis>(committed_at - batch_started_));
  fire_window_.set(std::chrono::duration<double>(core_.last_window()).count());
  if (const auto window = core_.last_window(); std::chrono::abs(window - logged_window_) >= Millis(250)) {
    // A window that widens for a burst coming due (or narrows after it), for the operator.
    logged_window_ = window;
    spdlog::info("event=fire_window window_ms={} lead_ms={} fire_rate={:.0f} fired_ahead_waiting={}", window.count(),
                 core_.fire_window().lead().count(), core_.fire_window().fire_rate(), core_.ahead_count());
  }
  ahead_records_.set(static_cast<double>(core_.ahead_count()));
  if (batch_cap_ < settings_.max_batch_records) {
    batch_cap_ = std::min(settings_.max_batch_records, batch_cap_ * 2);
    if (batch_cap_ == settings_.max_batch_records) spdlog::info("event=bisect_done msg=\"full batches again\"");
  }
  single_aborts_ = 0;
  failed_single_.reset();
  std::erase_if(poisons_, [](const Poison& poison) { return poison.applied; });
  for (const auto partition : recounted) {
    recount_pending_.erase(partition);
    spdlog::info("event=tenant_recount_done partition={}", partition);
  }

  const Instant now = clock_.now();
  double slotted = 0;
  for (auto& [partition, owned] : owned_) {
    auto previous = owned.state->checkpoint();
    const std::int64_t offset = owned.changelog_next >= 0 ? owned.changelog_next : (previous ? previous->changelog_offset : 0);
    if (auto status = owned.state->commit(Checkpoint{offset, now}); !status) {
      // Fatal from here on: the batch is committed in Kafka, so nothing may commit it again (the
      // revoke callback of the shutdown would); the restart restores the store from the changelog.
      store_failure_ = status.error().within("the transaction committed but the local store did not (restart restores)");
      return *store_failure_;
    }
    owned.committed_offset = owned.next_offset;
    slotted += static_cast<double>(owned.state->slotted_count());
  }
  store_size_.set(slotted);
  out_.clear();
  spans_.clear();
  consumed_in_batch_ = 0;
  publish_counts();
  return Status::success();
}

Status DispatcherLoop::after_abort(const kafka::TransactionResult& result) {
  const auto& why = result.reason;
  const bool refused = result.refused;
  // The refused record is known from its delivery report: give up on what produced it (the
  // consumed record, or the fired job) in the next batch, without bisecting.
  std::optional<Single> culprit;
  if (refused && result.refused_record) culprit = producer_of(*result.refused_record);
  drop_uncommitted();
  // Only for a record the broker refuses as such: an outage must never make a job DEAD.
  if (!refused) return rewind();
  if (culprit) {
    add_poison(*culprit, why);
    spdlog::warn("event=refused_record partition={} offset={} job={} msg=\"giving up on it in the next batch\"",
                 culprit->partition, culprit->offset, culprit->job_id);
    return rewind();
  }
  // Not attributable (no delivery report named it alone): bisect. Halve the batch; one item that
  // aborts twice alone is given up on in the next batch.
  batch_cap_ = std::max<std::size_t>(1, batch_cap_ / 2);
  if (batch_single_) {
    single_aborts_ = failed_single_ && *failed_single_ == *batch_single_ ? single_aborts_ + 1 : 1;
    failed_single_ = batch_single_;
    if (single_aborts_ >= 2) {
      add_poison(*batch_single_, why);
      single_aborts_ = 0;
      failed_single_.reset();
    }
  }
  spdlog::warn("event=bisect batch_cap={} single_aborts={} msg=\"narrowing a batch the broker refuses\"", batch_cap_,
               single_aborts_);
  return rewind();
}

Status DispatcherLoop::rewind() {
  for (auto& [partition, owned] : owned_) {
    owned.next_offset = owned.committed_offset;
    RdKafka::TopicPartition* position =
        RdKafka::TopicPartition::create(core_.settings().names.jobs(), partition, owned.committed_offset);
    const auto code = consumer_->seek(*position, 5000);
    delete position;
    if (code != RdKafka::ERR_NO_ERROR) return rejoin(fmt::format("rewind after abort: {}", RdKafka::err2str(code)));
  }
  return Status::success();
}

void DispatcherLoop::add_poison(const Single& item, const std::string& reason) {
  if (std::none_of(poisons_.begin(), poisons_.end(), [&](const Poison& poison) { return poison.item == item; })) {
    poisons_.push_back({item, reason, false});
  }
}

std::optional<DispatcherLoop::Single> DispatcherLoop::producer_of(std::size_t index) const {
  if (index >= out_.size()) return std::nullopt;
  for (const auto& span : spans_) {
    if (index >= span.end) continue;
    if (span.offset >= 0) return Single{false, span.partition, span.offset, {}};
    return Single{true, span.partition, -1, out_[index].key};
  }
  return std::nullopt;
}

void DispatcherLoop::drop_uncommitted() {
  for (auto& poison : poisons_) poison.applied = false;  // given up on again in the next batch
  spans_.clear();
  out_.clear();
  consumed_in_batch_ = 0;
  for (auto& [partition, owned] : owned_) owned.state->discard();
  core_.discard_uncommitted();  // the dropped batch's fires ahead no longer hold their exec partitions
  (void)core_.take_fire_lags();
  published_ = core_.counts();  // the dropped batch's decisions are made again: count them then
  published_refusals_ = core_.limit_refusals();
}

Status DispatcherLoop::rejoin(const std::string& why) {
  drop_uncommitted();  // first: also when the budget is spent, nothing of this batch may commit
  if (!budget_.try_spend(SteadyClock::now())) return Error(budget_.refusal("dispatcher", settings_.instance_id, why));
  poisons_.clear();
  spdlog::warn("event=rejoin reason=\"{}\" msg=\"recreating the consumer; the assignment restores from Kafka\"", why);
  counters_.rejoins.inc();
  if (http_ != nullptr) http_->set_ready(false);
  for (const auto& [partition, owned] : owned_) store_.close(Partition(partition));
  owned_.clear();
  recount_pending_.clear();  // the assignment restores each partition again, and says again
  owned_partitions_.set(0);
  kafka::discard_consumer(consumer_);  // owns nothing now: a revoke it raises commits nothing
  if (auto status = create_consumer(); !status) return status;
  if (http_ != nullptr) http_->set_ready(true);
  return Status::success();
}

Status DispatcherLoop::recover(const std::string& why) {
  drop_uncommitted();  // whatever that batch did is replayed from Kafka, not counted twice
  if (!budget_.try_spend(SteadyClock::now())) return Error(budget_.refusal("dispatcher", settings_.instance_id, why));
  poisons_.clear();
  spdlog::warn("event=recover reason=\"{}\" msg=\"recreating the producer and restoring from Kafka\"", why);
  counters_.recoveries.inc();
  producer_.reset();
  // The coordinator may be away for a while (a broker restart, a partition): keep trying, bounded.
  if (auto status = kafka::retry_with_backoff([this] { return create_producer(); }, settings_.recovery_timeout,
                                              "recreate the transactional producer");
      !status) {
    return status;
  }
  kafka::PartitionList committed;
  std::map<std::int32_t, PartitionState*> restoring;
  for (auto& [partition, owned] : owned_) {
    restoring[partition] = owned.state;
    committed.items.push_back(RdKafka::TopicPartition::create(core_.settings().names.jobs(), partition));
  }
  if (auto status = restore(restoring); !status) {
    return !store_failure_ ? rejoin(status.error().within("restore after recovery").message()) : status;
  }
  if (committed.items.empty()) return Status::success();
  if (const auto code = consumer_->committed(committed.items, 30000); code != RdKafka::ERR_NO_ERROR) {
    return rejoin(fmt::format("fetch committed offsets after recovery: {}", RdKafka::err2str(code)));
  }
  for (auto* item : committed.items) {
    auto& owned = owned_[item->partition()];
    if (item->offset() >= 0) owned.committed_offset = item->offset();
    owned.next_offset = owned.committed_offset;
    item->set_offset(owned.committed_offset);
    if (const auto code = consumer_->seek(*item, 5000); code != RdKafka::ERR_NO_ERROR) {
      return rejoin(fmt::format("rewind after recovery: {}", RdKafka::err2str(code)));
    }
  }
  return Status::success();
}

void DispatcherLoop::delivered(RdKafka::Message& message) {
  if (message.topic_name() != core_.settings().names.dispatcher_changelog()) return;
  auto owned = owned_.find(message.partition());
  if (owned != owned_.end()) owned->second.changelog_next = std::max(owned->second.changelog_next, message.offset() + 1);
}

void DispatcherLoop::rebalance_cb(RdKafka::KafkaConsumer* /*consumer*/, RdKafka::ErrorCode code,
                                  std::vector<RdKafka::TopicPartition*>& partitions) {
  Status status;
  if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
    counters_.rebalances.inc();
    status = assign(partitions);
  } else {
    status = revoke(partitions);
  }
  if (!status && !store_failure_) {
    // Kafka did not answer in time (a coordinator or leader away): join again with a new consumer.
    spdlog::warn("event=rebalance_failed error=\"{}\"", status.error().message());
    rejoin_reason_ = status.error().message();
  } else if (!status) {
    spdlog::error("event=rebalance_failed error=\"{}\"", status.error().message());
  }
}

Status DispatcherLoop::assign(const std::vector<RdKafka::TopicPartition*>& partitions) {
  // Committed offsets first (they wait for any pending transaction), then the changelog.
  const auto assign_started = SteadyClock::now();
  spdlog::info("event=assigning count={}", partitions.size());
  kafka::PartitionList committed;
  for (const auto* partition : partitions) {
    committed.items.push_back(RdKafka::TopicPartition::create(partition->topic(), partition->partition()));
  }
  if (const auto code = consumer_->committed(committed.items, 30000); code != RdKafka::ERR_NO_ERROR) {
    return kafka::to_error(code, "fetch committed offsets");
  }
  // The wait for a transaction the previous owner left open (until the coordinator aborts it).
  spdlog::info("event=offsets_fetched seconds={:.3f}",
               std::chrono::duration<double>(SteadyClock::now() - assign_started).count());
  std::string listing;
  std::map<std::int32_t, PartitionState*> opened;
  for (auto* item : committed.items) {
    std::int64_t offset = item->offset();
    if (offset < 0) {
      auto marks = kafka::watermarks(*consumer_, item->topic(), item->partition(), Millis(30000));
      if (!marks) return marks.error();
      offset = marks->first;
      item->set_offset(offset);
    }
    auto state = store_.open(Partition(item->partition()));
    if (!state) {
      store_failure_ = state.error();  // the local disk, not Kafka: no rejoin fixes it
      return *store_failure_;
    }
    opened[item->partition()] = *state;
    listing += fmt::format("{}@{} ", item->partition(), offset);
  }
  if (auto status = restore(opened); !status) return status;
  for (const auto* item : committed.items) {
    owned_[item->partition()] = Owned{opened[item->partition()], item->offset(), item->offset(), -1};
  }
  if (const auto code = consumer_->assign(committed.items); code != RdKafka::ERR_NO_ERROR) {
    return kafka::to_error(code, "assign");
  }
  owned_partitions_.set(static_cast<double>(owned_.size()));
  // The member id it holds now goes out at once: the upgrade gate matches heartbeats by it.
  heartbeats_.set_member_id(consumer_->memberid());
  if (heartbeats_.due(false)) heartbeats_.send({}, core_.counts().fired, 0, false);
  spdlog::info("event=assigned partitions=\"{}\" seconds={:.3f}", listing,
               std::chrono::duration<double>(SteadyClock::now() - assign_started).count());
  return Status::success();
}

Status DispatcherLoop::revoke(const std::vector<RdKafka::TopicPartition*>& partitions) {
  // Finish the open batch while the group generation still accepts our offsets.
  if (!store_failure_ && !abandoned_ && producer_) {
    if (auto status = commit_batch(); !status) spdlog::warn("event=revoke_commit_failed error=\"{}\"", status.error().message());
  }
  for (const auto* partition : partitions) {
    auto owned = owned_.find(partition->partition());
    if (owned == owned_.end()) continue;
    owned->second.state->discard();
    recount_pending_.erase(partition->partition());
    store_.close(Partition(partition->partition()));
    owned_.erase(owned);
  }
  owned_partitions_.set(static_cast<double>(owned_.size()));
  out_.clear();
  spans_.clear();
  consumed_in_batch_ = 0;
  poisons_.clear();  // they named positions in an assignment that is gone
  failed_single_.reset();
  single_aborts_ = 0;
  spdlog::info("event=revoked count={}", partitions.size());
  if (const auto code = consumer_->unassign(); code != RdKafka::ERR_NO_ERROR) return kafka::to_error(code, "unassign");
  return Status::success();
}

Status DispatcherLoop::restore(const std::map<std::int32_t, PartitionState*>& states) {
  if (states.empty()) return Status::success();
  const auto& names = core_.settings().names;
  const Instant now = clock_.now();
  const auto restore_started = SteadyClock::now();
  struct Progress {
    PartitionState* state = nullptr;
    std::uint64_t replayed = 0;
    std::size_t staged = 0;
    bool uncounted = false;  // replayed a job entry a release before tenant limits wrote
  };
  std::map<std::int32_t, Progress> progress;
  std::vector<std::int32_t> partitions;
  for (const auto& [partition, state] : states) {
    progress[partition].state = state;
    partitions.push_back(partition);
  }
  Status wiped;
  auto choose_start = [&](std::int32_t partition, std::int64_t low, std::int64_t high) -> std::int64_t {
    auto& state = *progress[partition].state;
    const auto checkpoint = state.checkpoint();
    if (checkpoint && checkpoint->changelog_offset >= low && checkpoint->changelog_offset <= high &&
        now - checkpoint->written < settings_.changelog_delete_retention) {
      spdlog::info("event=restore_start partition={} from={} to={}", partition, checkpoint->changelog_offset, high);
      return checkpoint->changelog_offset;
    }
    if (checkpoint) {
      spdlog::warn(
          "event=restore_wipe partition={} checkpoint={} low={} high={} msg=\"checkpoint unusable: restoring from scratch\"",
          partition, checkpoint->changelog_offset, low, high);
    }
    if (auto status = state.wipe(); !status && wiped) wiped = status;
    spdlog::info("event=restore_start partition={} from={} to={}", partition, low, high);
    return low;
  };
  auto on_record = [&](RdKafka::Message& message) -> Status {
    if (!wiped) return wiped;
    auto found = progress.find(message.partition());
    if (found == progress.end()) return Status::success();
    auto& item = found->second;
    const std::string_view key = message.key() != nullptr ? std::string_view(*message.key()) : std::string_view();
    if (auto restored = DispatcherCore::restore(*item.state, key,
                                                std::string_view(static_cast<const char*>(message.payload()), message.len()),
                                                message.payload() == nullptr);
        !restored) {
      // The changelog or the local store cannot be read: no rejoin fixes that.
      store_failure_ = restored.error().within(
          fmt::format("restore of partition {} at changelog offset {}", message.partition(), message.offset()));
      return *store_failure_;
    }
    ++item.replayed;
    // Only records after the partition's last recount matter: that recount counted the rest.
    if (key == kCountedMarker) {
      item.uncounted = false;
    } else if (!key.empty() && key.front() != '\x01' && kafka::header_value(message, kCountedHeader).empty()) {
      item.uncounted = true;
    }
    if (++item.staged >= 10000) {  // bound the staged batch on large restores
      item.staged = 0;
      auto status = item.state->commit(Checkpoint{message.offset() + 1, now});
      if (!status) store_failure_ = status.error();
      return status;
    }
    return Status::success();
  };
  // One reader for every partition: its start-up and the wait at the end are paid once.
  Millis transaction_wait{0};
  auto positions = kafka::replay_partitions(settings_.client, names.prefix + "dispatcher-restore", names.dispatcher_changelog(),
                                            partitions, choose_start, on_record, settings_.restore_timeout, &transaction_wait);
  if (!wiped) {
    store_failure_ = wiped.error();  // the local store, not Kafka
    return wiped;
  }
  if (!positions) return positions.error();
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - restore_started).count();
  for (auto& [partition, item] : progress) {
    const std::int64_t position = positions->at(partition);
    if (auto status = item.state->commit(Checkpoint{position, now}); !status) {
      store_failure_ = status.error();
      return status;
    }
    restored_records_.inc(item.replayed);
    auto counted = DispatcherCore::counted(*item.state);
    if (!counted) {
      store_failure_ = counted.error();
      return *store_failure_;
    }
    if (item.uncounted || !*counted) {
      recount_pending_.insert(partition);
      spdlog::info("event=tenant_recount_needed partition={} reason=\"{}\"", partition,
                   item.uncounted ? "changelog records of a release before tenant limits" : "not counted yet");
    }
    spdlog::info("event=restore_done partition={} records={} position={} seconds={:.3f} slotted={}", partition, item.replayed,
                 position, seconds, item.state->slotted_count());
  }
  // The part of the restore spent waiting for a transaction the previous owner left open (the
  // coordinator aborts it after transaction.timeout.ms).
  spdlog::info("event=restored partitions={} seconds={:.3f} transaction_wait_seconds={:.3f}", progress.size(), seconds,
               static_cast<double>(transaction_wait.count()) / 1000.0);
  return Status::success();
}

void DispatcherLoop::publish_counts() {
  const auto& counts = core_.counts();
  accepted_.inc(counts.accepted - published_.accepted);
  fired_.inc(counts.fired - published_.fired);
  rejected_.inc(counts.rejected - published_.rejected);
  forwarded_.inc(counts.forwarded - published_.forwarded);
  batches_.inc(counts.batches - published_.batches);
  cancelled_.inc(counts.cancelled - published_.cancelled);
  duplicates_.inc(counts.duplicates - published_.duplicates);
  expired_.inc(counts.expired - published_.expired);
  skipped_.inc(counts.skipped - published_.skipped);
  unpublishable_.inc(counts.unpublishable - published_.unpublishable);
  fired_ahead_.inc(counts.fired_ahead - published_.fired_ahead);
  published_ = counts;
  for (const auto& [key, count] : core_.limit_refusals()) {
    auto& published = published_refusals_[key];
    if (count == published) continue;
    metrics_
        .counter(fmt::format("kcron_tenant_refusals_total{{tenant=\"{}\",limit=\"{}\"}}", key.first, limit_name(key.second)),
                 "submits REJECTED by a tenant limit (tenants with settings in the registry only)")
        .inc(count - published);
    published = count;
  }
  for (const auto lag : core_.take_fire_lags()) fire_lag_.observe(std::max(0.0, std::chrono::duration<double>(lag).count()));
}

void DispatcherLoop::publish_tenant_gauges() {
  const TenantRegistry* tenants = core_.tenants();
  const auto now = SteadyClock::now();
  if (tenants == nullptr || now - last_tenant_gauges_ < settings_.tenant_metrics_interval) return;
  last_tenant_gauges_ = now;
  std::set<std::string> gauged;
  if (tenants->all().size() > settings_.max_tenant_labels && !warned_tenant_labels_) {
    warned_tenant_labels_ = true;
    spdlog::warn(
        "event=tenant_gauges_capped tenants={} labelled={} msg=\"kcron_tenant_pending_jobs is kept for the first "
        "tenants by name only\"",
        tenants->all().size(), settings_.max_tenant_labels);
  }
  for (const auto& [name, settings] : tenants->all()) {
    if (gauged.size() >= settings_.max_tenant_labels) break;
    std::uint64_t pending = 0;
    for (const auto& [partition, owned] : owned_) {
      auto count = core_.pending_of(*owned.state, name);
      if (count) pending += *count;  // a failed read shows on the next try; the loop reports store failures
    }
    metrics_
        .gauge(fmt::format("kcron_tenant_pending_jobs{{tenant=\"{}\"}}", name),
               "a tenant's pending jobs on this dispatcher's partitions")
        .set(static_cast<double>(pending));
    gauged.insert(name);
  }
  for (const auto& name : gauged_tenants_) {
    if (!gauged.contains(name)) metrics_.gauge(fmt::format("kcron_tenant_pending_jobs{{tenant=\"{}\"}}", name), "").set(0);
  }
  gauged_tenants_ = std::move(gauged);
}

}  // namespace kcron::dispatcher
