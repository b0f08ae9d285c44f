#include "kafka/view_follower.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "core/job_view.h"
#include "kcron/codec.h"
#include "kcron/ids.h"
#include "kcron/tenant.h"
#include "kcron/tenant_registry.h"

namespace kcron::api {

ViewFollower::ViewFollower(FollowerSettings settings, ViewStore& store, Metrics& metrics)
    : settings_(std::move(settings)),
      store_(store),
      records_(metrics.counter("kcron_api_view_records_total", "records folded into the view")),
      undecodable_(metrics.counter("kcron_api_view_undecodable_total", "records the view could not decode (skipped)")),
      lag_(metrics.gauge("kcron_api_view_lag_records", "records on the followed topics not yet in the view")),
      swept_(metrics.counter("kcron_api_view_swept_total", "finished jobs the view forgot after view.finished_retention_hours")) {
}

ViewFollower::~ViewFollower() {
  stop();
}

Status ViewFollower::start() {
  auto properties = settings_.client;
  // Never joined or committed (partitions are assigned); under the prefix, so kcron's ACLs cover it.
  properties["group.id"] = settings_.names.prefix + "api-view";
  properties["enable.partition.eof"] = "true";  // readiness: each partition read to its end once
  auto consumer = kafka::make_consumer(properties);
  if (!consumer) return consumer.error();
  consumer_ = std::move(*consumer);
  auto counts = kafka::partition_counts(*consumer_, std::chrono::seconds(15));
  if (!counts) return counts.error();
  const auto stored = store_.positions();
  kafka::PartitionList assignment;
  for (const auto& topic : {settings_.names.jobs(), settings_.names.status(), settings_.names.results(),
                            settings_.names.schedules(), settings_.names.dead_letters(), settings_.names.workers(),
                            settings_.names.audit(), settings_.names.tenants(), settings_.names.dispatcher_changelog()}) {
    const auto found = counts->find(topic);
    if (found == counts->end()) return make_error("topic {} does not exist (kcron topics create makes it)", topic);
    for (std::int32_t partition = 0; partition < found->second; ++partition) {
      const auto position = stored.find({topic, partition});
      const std::int64_t offset = position == stored.end() ? RdKafka::Topic::OFFSET_BEGINNING : position->second;
      assignment.items.push_back(RdKafka::TopicPartition::create(topic, partition, offset));
      not_at_end_.insert({topic, partition});
      covered_[{topic, partition}] = position == stored.end() ? 0 : position->second;
    }
  }
  if (auto code = consumer_->assign(assignment.items); code != RdKafka::ERR_NO_ERROR) {
    return make_error("cannot assign the view's partitions: {}", RdKafka::err2str(code));
  }
  spdlog::info("event=view_start partitions={} stored_positions={}", assignment.items.size(), stored.size());
  thread_ = std::thread([this] { run(); });
  return Status::success();
}

void ViewFollower::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (consumer_) {
    consumer_->close();
    consumer_.reset();
  }
}

bool ViewFollower::follows(const std::string& topic, std::int32_t partition) const {
  std::lock_guard lock(mutex_);
  return covered_.contains({topic, partition});
}

bool ViewFollower::wait_for(const std::string& topic, std::int32_t partition, std::int64_t offset,
                            std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return advanced_.wait_for(lock, timeout, [&] {
    const auto found = covered_.find({topic, partition});
    return found != covered_.end() && found->second > offset;
  });
}

bool ViewFollower::wait_for_end(const std::string& topic, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::int32_t> partitions;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [where, offset] : covered_) {
      if (where.first == topic) partitions.push_back(where.second);
    }
  }
  if (!consumer_ || partitions.empty()) return false;
  for (const auto partition : partitions) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    std::int64_t low = 0;
    std::int64_t high = 0;
    // librdkafka serves this from any thread while the follower's thread consumes.
    if (consumer_->query_watermark_offsets(topic, partition, &low, &high, static_cast<int>(left.count())) !=
        RdKafka::ERR_NO_ERROR) {
      return false;
    }
    if (high <= 0) continue;
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!wait_for(topic, partition, high - 1, std::max(remaining, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

std::string ViewFollower::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

namespace {

// Whether a REJECTED dead letter refuses the Flow record of flow `id` as a whole: its copy of the
// record decodes to that flow. A copy cut short (a flow bigger than the dispatcher copies) is
// judged by its reason: the refusals of a flow's cancel or retry name themselves.
bool rejects_flow(const v1::DeadLetter& letter, std::string_view id) {
  if (id.empty() || id.find('/') != std::string_view::npos) return false;
  if (!letter.truncated()) {
    for (const auto type : {header::kProtobuf, header::kJson}) {
      auto command = decode_command(letter.original(), type, "");
      if (command) return command->has_flow() && command->flow().id() == id;
    }
    return false;
  }
  return !letter.reason().starts_with("cannot retry flow") && !letter.reason().starts_with("cannot cancel flow");
}

}  // namespace

void ViewFollower::fold(RdKafka::Message& message, ViewBatch& batch) {
  const std::string topic = message.topic_name();
  batch.advance(topic, message.partition(), message.offset() + 1);
  const std::string key = message.key() != nullptr ? *message.key() : std::string();
  if (topic == settings_.names.schedules()) {
    const auto named = split_scoped_key(key);
    if (named.id.empty()) return;
    if (message.len() == 0) {
      batch.schedule(named.tenant, named.id, std::nullopt);
      return;
    }
    v1::Schedule schedule;
    if (!decode_message(std::string_view(static_cast<const char*>(message.payload()), message.len()),
                        kafka::header_value(message, header::kContentType), schedule)) {
      undecodable_.inc();
      return;
    }
    // The key names the schedule: a record without id and tenant takes both from it.
    schedule.set_id(std::string(named.id));
    schedule.set_tenant(std::string(tenant_field(named.tenant)));
    batch.schedule(named.tenant, named.id, schedule);
    return;
  }
  if (topic == settings_.names.tenants()) {
    if (key.empty()) return;
    records_.inc();
    if (message.payload() == nullptr) {  // a tombstone (an empty value is settings of all defaults)
      batch.tenant_settings(key, std::nullopt);
      return;
    }
    v1::TenantSettings settings;
    const std::string_view value(static_cast<const char*>(message.payload()), message.len());
    if (!decode_message(value, kafka::header_value(message, header::kContentType), settings) ||
        !validate_tenant_settings(key, settings)) {
      undecodable_.inc();  // the dispatchers refuse it too: the tenant's settings stay as they were
      return;
    }
    settings.set_name(key);
    batch.tenant_settings(key, settings);
    return;
  }
  if (topic == settings_.names.dispatcher_changelog()) {
    // Jobs still waiting in the delay buckets, for a view that starts after their own records
    // left kcron.jobs and kcron.status. Entries that are not jobs ("\x01…") and tombstones (an
    // entry forgotten after its dedupe window) say nothing a view needs.
    if (key.empty() || key.front() == '\x01') return;
    if (message.payload() == nullptr || message.len() == 0) {
      // The dispatcher forgot the job (its dedupe window passed, days after it fired): a job the
      // view knows only from the changelog, still waiting or queued by it, is one whose records
      // are all gone, and nothing will ever say more about it.
      const auto named = split_scoped_key(key);
      const auto known = batch.peek_job(named.tenant, named.id);
      if (known && !is_terminal(known->state()) && known->history_size() > 0 &&
          known->history(known->history_size() - 1).component() == kChangelogComponent) {
        batch.forget_job(named.tenant, named.id);
      }
      return;
    }
    v1::DispatcherEntry entry;
    if (!entry.ParseFromArray(message.payload(), static_cast<int>(message.len()))) {
      undecodable_.inc();
      return;
    }
    records_.inc();
    const auto named = split_scoped_key(key);
    if (named.id.empty()) return;
    const auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    // Most entries are a fired job's, whose status record says it all: no lookup for those.
    if (!changelog_entry_may_apply(entry, message.timestamp().timestamp, now_ms)) return;
    const auto source = fmt::format("{}/{}@{}", topic, message.partition(), message.offset());
    // Folded into a copy first: most entries change nothing (the status record came first), and
    // a job put in the batch is written again with all its indexes.
    auto known = batch.peek_job(named.tenant, named.id);
    if (!known && !changelog_entry_creates(entry)) return;
    v1::JobView view = known ? std::move(*known) : v1::JobView();
    if (!known) {
      view.set_tenant(std::string(tenant_or_default(named.tenant)));
      view.set_id(std::string(named.id));
    }
    if (fold_changelog_entry(view, entry, message.timestamp().timestamp, source, now_ms)) {
      batch.job(named.tenant, named.id) = std::move(view);
    }
    return;
  }
  if (message.len() == 0) return;  // a tombstone: compaction's business
  const std::string_view value(static_cast<const char*>(message.payload()), message.len());
  const auto content_type = kafka::header_value(message, header::kContentType);
  records_.inc();
  if (topic == settings_.names.jobs()) {
    auto command = decode_command(value, content_type, kafka::header_value(message, header::kType));
    if (!command) {
      undecodable_.inc();
      return;
    }
    const auto source = fmt::format("{}/{}@{}", topic, message.partition(), message.offset());
    const auto record_ms = message.timestamp().timestamp;
    // A plain job's id never holds '/' (the dispatcher refuses it): a Submit or Update of a flow
    // node's id would only take the node's definition from its view.
    if (command->has_submit()) {
      const auto& job = command->submit();
      if (job.id().empty() || job.id().find('/') != std::string::npos) return;
      fold_definition(batch.job(job.tenant(), job.id()), job, record_ms, source, false);
    } else if (command->has_update()) {
      const auto& job = command->update().job();
      if (job.id().empty() || job.id().find('/') != std::string::npos) return;
      fold_definition(batch.job(job.tenant(), job.id()), job, record_ms, source, true);
    } else if (command->has_batch()) {
      // Each job as its submit: the CLI writes each batch to its jobs' owner partition, where the
      // dispatcher decides them with no Submit record of their own.
      const auto& jobs = command->batch();
      for (auto job : jobs.jobs()) {
        if (job.id().empty() || job.id().find('/') != std::string::npos || !validate_job_id(job.id())) continue;
        if (!job.tenant().empty() && tenant_or_default(job.tenant()) != tenant_or_default(jobs.tenant())) continue;
        job.set_tenant(jobs.tenant());
        fold_definition(batch.job(jobs.tenant(), job.id()), job, record_ms, source, false);
      }
    } else if (command->has_flow()) {
      batch.flow(command->flow(), record_ms, source);
    } else if (command->has_cancel() && command->cancel().flow()) {
      batch.flow_cancel_requested(command->cancel().tenant(), command->cancel().job_id(), true);
    } else if (command->has_replay() && command->replay().flow()) {
      batch.flow_cancel_requested(command->replay().tenant(), command->replay().job_id(), false);
    }
    return;
  }
  if (topic == settings_.names.status()) {
    v1::StatusRecord status;
    if (!decode_message(value, content_type, status) || status.job_id().empty()) {
      undecodable_.inc();
      return;
    }
    fold_status(batch.job(status.tenant(), status.job_id()), status);
    if (status.state() == v1::QUEUED && status.due_ms() > 0 && status.at_ms() > 0) {
      job_lags_.add(tenant_or_default(status.tenant()), LagWindow::Kind::kFire, status.at_ms(), status.at_ms() - status.due_ms());
    }
    return;
  }
  if (topic == settings_.names.dead_letters()) {
    DeadLetterEntry entry;
    if (!decode_message(value, content_type, entry.letter)) {
      undecodable_.inc();
      return;
    }
    const auto named = split_scoped_key(key);
    entry.id = entry.letter.has_job() && !entry.letter.job().id().empty() ? entry.letter.job().id() : std::string(named.id);
    entry.source = fmt::format("{}/{}@{}", topic, message.partition(), message.offset());
    const std::string tenant = !entry.letter.tenant().empty() ? entry.letter.tenant() : std::string(named.tenant);
    batch.dead_letter(tenant, entry);
    if (entry.letter.state() == v1::REJECTED && rejects_flow(entry.letter, entry.id))
      batch.flow_rejected(tenant, entry.id, entry.letter);
    return;
  }
  if (topic == settings_.names.audit()) {
    v1::AuditRecord record;
    if (!decode_message(value, content_type, record)) {
      undecodable_.inc();
      return;
    }
    batch.audit(record.tenant(), fmt::format("{}/{}@{}", topic, message.partition(), message.offset()), record);
    return;
  }
  if (topic == settings_.names.workers()) {
    v1::WorkerHeartbeat heartbeat;
    if (!decode_message(value, content_type, heartbeat) || heartbeat.worker_id().empty()) {
      undecodable_.inc();
      return;
    }
    batch.worker(heartbeat);
    return;
  }
  v1::Result result;
  if (!decode_message(value, content_type, result) || result.job_id().empty()) {
    undecodable_.inc();
    return;
  }
  fold_result(batch.job(result.tenant(), result.job_id()), result);
  if (result.started_ms() > 0 && result.due_ms() > 0) {
    job_lags_.add(tenant_or_default(result.tenant()), LagWindow::Kind::kStart, result.started_ms(),
                  result.started_ms() - result.due_ms());
  }
}

Status ViewFollower::flush(ViewBatch& batch) {
  Positions advanced = batch.positions();
  if (auto status = store_.commit(batch); !status) return status;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [where, offset] : advanced) covered_[where] = offset;
    if (!caught_up_.load() && not_at_end_.empty()) {
      caught_up_ = true;
      spdlog::info("event=view_caught_up");
    }
  }
  advanced_.notify_all();
  return Status::success();
}

void ViewFollower::run() {
  ViewBatch batch(store_);
  auto opened = std::chrono::steady_clock::now();
  std::size_t in_batch = 0;
  auto next_lag = opened;
  auto next_sweep = opened;
  while (!stopping_.load()) {
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(20));
    if (message->err() == RdKafka::ERR_NO_ERROR) {
      fold(*message, batch);
      ++in_batch;
    } else if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      // The end may lie past the last record (a transaction's commit marker): the view covers it
      // too, or a wait for the partition's high watermark would never end.
      const std::pair<std::string, std::int32_t> where{message->topic_name(), message->partition()};
      std::lock_guard lock(mutex_);
      not_at_end_.erase(where);
      const auto covered = covered_.find(where);
      if (covered == covered_.end() || covered->second < message->offset()) {
        batch.advance(where.first, where.second, message->offset());
        ++in_batch;
      }
    } else if (message->err() != RdKafka::ERR__TIMED_OUT) {
      spdlog::warn("event=view_consume_error error=\"{}\"", message->errstr());
    }
    const auto now = std::chrono::steady_clock::now();
    // A Flow record folds up to 10,000 node views: a batch is bounded by the views it changed too.
    if (in_batch >= settings_.max_batch_records || batch.jobs() >= 4 * settings_.max_batch_records ||
        (now - opened >= settings_.commit_interval)) {
      if (in_batch > 0 || (!caught_up_.load() && not_at_end_.empty())) {
        if (auto status = flush(batch); !status) {
          std::lock_guard lock(mutex_);
          failure_ = status.error().message();
          spdlog::error("event=view_failed error=\"{}\"", failure_);
          return;
        }
      }
      in_batch = 0;
      opened = now;
    }
    // Not before the view caught up: a job swept while its topics replay would come back from a
    // later record of it.
    // Nor while the batch holds changes: a job loaded into it before the sweep removed it would be
    // written back from its stale copy, without the index entries the sweep deleted.
    if (settings_.finished_retention.count() > 0 && caught_up_.load() && now >= next_sweep && batch.empty()) {
      next_sweep = now + settings_.sweep_interval;
      const auto cutoff =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()) -
          settings_.finished_retention;
      auto swept = store_.sweep_finished(cutoff.count(), 10000);
      if (!swept) {
        spdlog::warn("event=view_sweep_failed error=\"{}\"", swept.error().message());
      } else if (*swept > 0) {
        swept_.inc(*swept);
      }
    }
    store_.maintain(now);
    if (now >= next_lag) {
      lag_records_ = kafka::consumer_lag(*consumer_);
      lag_.set(static_cast<double>(lag_records_.load()));
      next_lag = now + std::chrono::seconds(1);
    }
  }
  if (in_batch > 0) (void)flush(batch);
}

}  // namespace kcron::api
