#include "kafka/worker_loop.h"

#include <spdlog/spdlog.h>

#include "kcron/codec.h"
#include "kcron/priority.h"
#include "kcron/routing.h"

namespace kcron::worker {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::int64_t now_ms() {
  return to_epoch_ms(SystemClock::instance().now());
}

// Worker-written states order after every dispatcher state of the same attempt.
constexpr std::uint64_t kWorkerSequence = 1U << 20U;

}  // namespace

WorkerLoop::WorkerLoop(LoopSettings settings, const Runner& runner, Metrics& metrics, HttpEndpoint* http)
    : settings_(std::move(settings)),
      runner_(runner),
      metrics_(metrics),
      http_(http),
      started_(metrics.counter("kcron_jobs_started_total", "jobs started on a slot")),
      succeeded_(metrics.counter("kcron_jobs_succeeded_total", "attempts that succeeded")),
      failed_(metrics.counter("kcron_jobs_failed_total", "attempts that failed")),
      dropped_(metrics.counter("kcron_jobs_handed_back_total", "finished jobs not published because their partition moved")),
      commits_(metrics.counter("kcron_transactions_committed_total{component=\"worker\"}", "Kafka transactions committed")),
      aborts_(metrics.counter("kcron_transactions_aborted_total{component=\"worker\"}", "Kafka transactions aborted")),
      running_(metrics.gauge("kcron_worker_running_jobs", "jobs running on slots")),
      start_lag_(metrics.histogram("kcron_start_lag_seconds", "worker start minus due instant", Metrics::latency_buckets())),
      duration_(metrics.histogram("kcron_execution_seconds", "execution time of an attempt", Metrics::latency_buckets())) {}

WorkerLoop::~WorkerLoop() {
  stop_slots_ = true;
  cancel_running_ = true;
  wake_.notify_all();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  RdKafka::TopicPartition::destroy(paused_);
}

Status WorkerLoop::start() {
  auto producer_properties = settings_.client;
  producer_properties["transaction.timeout.ms"] = std::to_string(settings_.transaction_timeout.count());
  auto producer = kafka::make_producer(producer_properties, settings_.names.prefix + "worker-" + settings_.instance_id);
  if (!producer) return producer.error();
  producer_ = std::move(*producer);

  std::vector<std::string> topics;
  std::vector<TopicSpec> required = {{settings_.names.results(), 0, {}},
                                     {settings_.names.status(), 0, {}},
                                     {settings_.names.events(), 0, {}},
                                     {settings_.names.worker_done(), settings_.exec_partitions, {}}};
  for (const auto& queue : settings_.queues) {
    for (const auto band : kAllBands) {
      topics.push_back(exec_topic(settings_.names.prefix, queue, band));
      required.push_back({topics.back(), settings_.exec_partitions, {}});
    }
  }
  if (auto status = kafka::check_topics(*producer_, required, Millis(10000)); !status) return status;
  if (auto status = kafka::init_transactions(*producer_, settings_.transaction_timeout * 3); !status) return status;
  auto properties = settings_.client;
  properties["group.id"] = settings_.names.prefix + "workers";
  properties["group.instance.id"] = settings_.names.prefix + "worker-" + settings_.instance_id;
  properties["max.poll.interval.ms"] = "300000";
  auto consumer = kafka::make_consumer(properties, this);
  if (!consumer) return consumer.error();
  consumer_ = std::move(*consumer);
  if (const auto code = consumer_->subscribe(topics); code != RdKafka::ERR_NO_ERROR) return kafka::to_error(code, "subscribe");

  for (std::size_t slot = 0; slot < settings_.slots; ++slot) threads_.emplace_back([this] { slot_main(); });
  spdlog::info("event=started instance={} slots={} topics={}", settings_.instance_id, settings_.slots, fmt::join(topics, ","));
  return Status::success();
}

Status WorkerLoop::run() {
  if (auto status = start(); !status) return status;
  if (http_ != nullptr) http_->set_ready(true);
  last_commit_ = SteadyClock::now();
  while (!stop_requested() && fatal_) {
    collect_finished();
    const bool full = in_flight_ >= settings_.slots;
    set_paused(full);
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(full ? 20 : 10));
    if (message->err() == RdKafka::ERR_NO_ERROR) {
      handle(*message);
    } else if (message->err() != RdKafka::ERR__TIMED_OUT && message->err() != RdKafka::ERR__PARTITION_EOF) {
      if (message->err() == RdKafka::ERR__FATAL) return kafka::to_error(message->err(), "consumer");
      spdlog::warn("event=consume_error error=\"{}\"", message->errstr());
    }
    if (auto status = commit(false); !status) return status;
  }
  if (!fatal_) return fatal_;

  // Drain: stop taking jobs, let running ones finish up to the drain timeout, publish, leave.
  spdlog::info("event=draining running={} timeout_ms={}", in_flight_, settings_.drain_timeout.count());
  if (http_ != nullptr) http_->set_ready(false);
  set_paused(true);
  {
    std::lock_guard lock(mutex_);
    in_flight_ -= queued_.size();  // never started: the next owner takes them from the committed offset
    for (const auto& task : queued_) {
      owned_[{task.topic, task.partition}].finished(task.offset);
      dropped_.inc();
    }
    queued_.clear();
  }
  const auto drain_deadline = SteadyClock::now() + settings_.drain_timeout;
  while (in_flight_ > 0 && SteadyClock::now() < drain_deadline) {
    collect_finished();
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(20));
    (void)message;
  }
  if (in_flight_ > 0) {
    spdlog::warn("event=drain_timeout running={} msg=\"interrupting; they run again on the next owner\"", in_flight_);
    cancel_running_ = true;
  }
  collect_finished();
  if (auto status = commit(true); !status) return status;
  consumer_->close();
  spdlog::info("event=stopped");
  return Status::success();
}

void WorkerLoop::slot_main() {
  while (true) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stop_slots_ || !queued_.empty(); });
      if (queued_.empty()) return;
      task = std::move(queued_.front());
      queued_.pop_front();
    }
    task.started_ms = now_ms();
    task.outcome = runner_.run(task.execution.job(), cancel_running_);
    task.finished_ms = now_ms();
    std::lock_guard lock(mutex_);
    finished_.push_back(std::move(task));
  }
}

void WorkerLoop::handle(RdKafka::Message& message) {
  Task task;
  task.topic = message.topic_name();
  task.partition = message.partition();
  task.offset = message.offset();
  task.epoch = epoch_;
  auto decoded = decode_message(std::string_view(static_cast<const char*>(message.payload()), message.len()),
                                kafka::header_value(message, header::kContentType), task.execution);
  auto& tracker = owned_[{task.topic, task.partition}];
  tracker.started(task.offset);
  if (!decoded || task.execution.job().id().empty()) {
    // Only the dispatcher writes exec topics; an undecodable record is recorded as failed, not run.
    task.execution.mutable_job()->set_id(message.key() != nullptr ? *message.key() : std::string("unknown"));
    task.outcome = {v1::FAILED, decoded ? "execution record without a job id" : decoded.error().message(), "", -1};
    task.started_ms = task.finished_ms = now_ms();
    completed_.push_back(std::move(task));
    return;
  }
  start_lag_.observe(static_cast<double>(now_ms() - task.execution.due_ms()) / 1000.0);
  started_.inc();
  ++in_flight_;
  running_.set(static_cast<double>(in_flight_));
  {
    std::lock_guard lock(mutex_);
    queued_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void WorkerLoop::collect_finished() {
  std::deque<Task> finished;
  {
    std::lock_guard lock(mutex_);
    finished.swap(finished_);
  }
  for (auto& task : finished) {
    --in_flight_;
    duration_.observe(static_cast<double>(task.finished_ms - task.started_ms) / 1000.0);
    if (task.epoch != epoch_) {
      dropped_.inc();  // its partition was revoked meanwhile: the new owner runs it again
      continue;
    }
    (task.outcome.state == v1::SUCCEEDED ? succeeded_ : failed_).inc();
    completed_.push_back(std::move(task));
  }
  running_.set(static_cast<double>(in_flight_));
}

void WorkerLoop::append_outputs(const Task& task, std::vector<OutRecord>& out) const {
  const auto& job = task.execution.job();
  v1::Result result;
  result.set_job_id(job.id());
  result.set_attempt(job.attempt());
  result.set_state(task.outcome.state);
  result.set_due_ms(task.execution.due_ms());
  result.set_started_ms(task.started_ms);
  result.set_finished_ms(task.finished_ms);
  result.set_worker_id(settings_.instance_id);
  result.set_exit_code(task.outcome.exit_code);
  result.set_output(task.outcome.output);
  result.set_error(task.outcome.error);
  result.set_tenant(job.tenant());
  auto headers = typed_headers("result", job.id());
  headers.emplace_back(header::kStatus, state_name(task.outcome.state));
  out.push_back({settings_.names.results(), -1, job.id(), encode(result), false, headers});

  v1::StatusRecord status;
  status.set_job_id(job.id());
  status.set_state(task.outcome.state);
  status.set_attempt(job.attempt());
  status.set_sequence(kWorkerSequence);
  status.set_at_ms(task.finished_ms);
  status.set_reason(task.outcome.error);
  status.set_component("worker");
  status.set_due_ms(task.execution.due_ms());
  status.set_tenant(job.tenant());
  auto status_headers = typed_headers("status", job.id());
  status_headers.emplace_back(header::kStatus, state_name(task.outcome.state));
  const std::string status_value = encode(status);
  if (settings_.emit_events) out.push_back({settings_.names.events(), -1, job.id(), status_value, false, status_headers});
  out.push_back({settings_.names.status(), -1, job.id(), status_value, false, status_headers});

  if (job.has_schedule_run() && !job.schedule_run().schedule_id().empty()) {
    // The dispatcher partition that owns the schedule enforces its overlap policy; it learns that
    // this run is over from a completion on kcron.jobs (keyed, like the runs, by schedule id).
    v1::Command command;
    command.mutable_completion()->set_job_id(job.id());
    command.mutable_completion()->set_attempt(job.attempt());
    command.mutable_completion()->set_state(task.outcome.state);
    const std::string routing_key(routing_key_for_job(job.id()));
    out.push_back({settings_.names.jobs(), -1, routing_key, encode(command), false, typed_headers("completion", job.id())});
  }

  v1::DoneMarker marker;
  marker.set_job_id(job.id());
  marker.set_attempt(job.attempt());
  marker.set_at_ms(task.finished_ms);
  marker.set_exec_topic(task.topic);
  marker.set_exec_partition(task.partition);
  marker.set_exec_offset(task.offset);
  out.push_back({settings_.names.worker_done(), task.partition % settings_.exec_partitions,
                 fmt::format("{}#{}", job.id(), job.attempt()), encode(marker), false, typed_headers("done", job.id())});
}

Status WorkerLoop::commit(bool force) {
  if (completed_.empty()) return Status::success();
  if (!force && SteadyClock::now() - last_commit_ < settings_.commit_interval) return Status::success();
  last_commit_ = SteadyClock::now();

  std::vector<OutRecord> out;
  for (const auto& task : completed_) append_outputs(task, out);
  // Mark finished in the trackers on a copy, so an aborted attempt can be retried as is.
  auto trackers = owned_;
  for (const auto& task : completed_) trackers[{task.topic, task.partition}].finished(task.offset);

  if (auto error = std::unique_ptr<RdKafka::Error>(producer_->begin_transaction()))
    return kafka::to_error(*error, "begin_transaction");
  for (const auto& record : out) {
    if (auto status = kafka::produce(*producer_, record); !status) return status;
    producer_->poll(0);
  }
  std::vector<RdKafka::TopicPartition*> offsets;
  for (const auto& [key, tracker] : trackers) {
    if (auto position = tracker.committable())
      offsets.push_back(RdKafka::TopicPartition::create(key.first, key.second, *position));
  }
  std::unique_ptr<RdKafka::ConsumerGroupMetadata> group(consumer_->groupMetadata());
  const int timeout = static_cast<int>(settings_.transaction_timeout.count());
  auto error = std::unique_ptr<RdKafka::Error>(producer_->send_offsets_to_transaction(offsets, group.get(), timeout));
  RdKafka::TopicPartition::destroy(offsets);
  if (!error) error.reset(producer_->commit_transaction(timeout));
  for (int attempt = 0; error && error->is_retriable() && attempt < 3; ++attempt)
    error.reset(producer_->commit_transaction(timeout));
  if (error) {
    if (error->txn_requires_abort()) {
      spdlog::warn("event=transaction_abort reason=\"{}\"", error->str());
      aborts_.inc();
      if (auto abort_error = std::unique_ptr<RdKafka::Error>(producer_->abort_transaction(timeout))) {
        return kafka::to_error(*abort_error, "abort_transaction");
      }
      return Status::success();  // completed_ stays; the next commit tries again
    }
    return kafka::to_error(*error, "commit_transaction (outcome unknown or fenced; restart re-runs unpublished jobs)");
  }
  commits_.inc();
  owned_ = std::move(trackers);
  completed_.clear();
  return Status::success();
}

void WorkerLoop::set_paused(bool paused) {
  if (paused == !paused_.empty()) return;
  if (paused) {
    if (consumer_->assignment(paused_) != RdKafka::ERR_NO_ERROR || paused_.empty()) return;
    (void)consumer_->pause(paused_);
  } else {
    (void)consumer_->resume(paused_);  // resume only what we paused
    RdKafka::TopicPartition::destroy(paused_);
    paused_.clear();
  }
}

void WorkerLoop::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                              std::vector<RdKafka::TopicPartition*>& partitions) {
  if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
    ++epoch_;
    for (const auto* partition : partitions) owned_[{partition->topic(), partition->partition()}] = OffsetTracker();
    (void)consumer->assign(partitions);
    spdlog::info("event=assigned count={}", partitions.size());
    return;
  }
  // Revoke: publish what finished while our offsets are still accepted, then let go.
  collect_finished();
  if (auto status = commit(true); !status) {
    spdlog::warn("event=revoke_commit_failed error=\"{}\"", status.error().message());
    fatal_ = status;
  }
  ++epoch_;  // jobs still running belong to the old assignment; their results are dropped
  {
    std::lock_guard lock(mutex_);
    in_flight_ -= queued_.size();
    queued_.clear();
  }
  owned_.clear();
  completed_.clear();
  RdKafka::TopicPartition::destroy(paused_);
  paused_.clear();
  (void)consumer->unassign();
  spdlog::info("event=revoked count={}", partitions.size());
}

}  // namespace kcron::worker
