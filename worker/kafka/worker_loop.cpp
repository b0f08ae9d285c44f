#include "kafka/worker_loop.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>

#include "kcron/codec.h"
#include "kcron/fault_points.h"
#include "kcron/priority.h"
#include "kcron/routing.h"

namespace kcron::worker {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::int64_t now_ms() {
  return to_epoch_ms(SystemClock::instance().now());
}

std::int64_t duration_ms(const google::protobuf::Duration& duration) {
  constexpr std::int64_t kMaxSeconds = 315'576'000'000;  // protobuf's Duration range (10,000 years)
  return std::clamp<std::int64_t>(duration.seconds(), -kMaxSeconds, kMaxSeconds) * 1000 + duration.nanos() / 1'000'000;
}

// Worker-written states order after every dispatcher state of the same attempt.
constexpr std::uint64_t kWorkerSequence = 1U << 20U;
// Bounds what a retried job carries of each earlier attempt.
constexpr std::size_t kHistoryTextBytes = 1024;
// A record a kafka job may produce, below the broker's default message.max.bytes with headroom.
constexpr std::size_t kMaxKafkaJobRecordBytes = 900 * 1024;
constexpr std::size_t kMaxRememberedCancels = 100000;
// Below the broker's default message.max.bytes (1 MB) with room for headers and batch overhead.
constexpr std::size_t kMaxPublishedRecordBytes = 950 * 1024;
constexpr std::size_t kMaxJobsRecordBytes = 900'000;  // the dispatcher's default max_record_bytes
constexpr int kIsolateAfterAborts = 3;                // then one outcome per transaction
constexpr int kReduceAfterAborts = 6;                 // then the lone outcome is published reduced
constexpr int kGiveUpAfterAborts = 20;                // then the worker stops (broker trouble, not a record)

std::string bounded(const std::string& text, std::size_t limit) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

std::string host_name() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) return "unknown";
  return buffer;
}

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages_total = 0;
  std::uint64_t pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

double cpu_seconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  const auto seconds = [](const timeval& value) {
    return static_cast<double>(value.tv_sec) + static_cast<double>(value.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

WorkerLoop::WorkerLoop(LoopSettings settings, const Runner& runner, Metrics& metrics, HttpEndpoint* http)
    : settings_(std::move(settings)),
      runner_(runner),
      metrics_(metrics),
      http_(http),
      scheduler_(settings_.bands),
      started_(metrics.counter("kcron_jobs_started_total", "jobs started on a slot")),
      succeeded_(metrics.counter("kcron_jobs_succeeded_total", "attempts that succeeded (published)")),
      failed_(metrics.counter("kcron_jobs_failed_total", "attempts that failed (published; retried or dead)")),
      retried_(metrics.counter("kcron_jobs_retried_total", "failed attempts sent back for a retry")),
      dead_(metrics.counter("kcron_jobs_dead_total", "jobs sent to the dead letters after their last attempt")),
      cancelled_jobs_(metrics.counter("kcron_jobs_cancelled_total{component=\"worker\"}", "jobs cancelled on a worker")),
      timed_out_(metrics.counter("kcron_jobs_timed_out_total", "attempts stopped at their timeout")),
      dropped_(metrics.counter("kcron_jobs_handed_back_total",
                               "jobs not published here: their partition moved or the worker stopped")),
      skipped_done_(
          metrics.counter("kcron_jobs_skipped_done_total", "re-delivered jobs skipped because a done marker says they finished")),
      commits_(metrics.counter("kcron_transactions_committed_total{component=\"worker\"}", "Kafka transactions committed")),
      aborts_(metrics.counter("kcron_transactions_aborted_total{component=\"worker\"}", "Kafka transactions aborted")),
      rebalances_(metrics.counter("kcron_rebalances_total{component=\"worker\"}", "partition assignments received")),
      resets_(metrics.counter("kcron_consumer_rejoins_total{component=\"worker\"}",
                              "consumer (and after a fence its producer) recreated, finished outcomes kept")),
      running_(metrics.gauge("kcron_worker_running_jobs", "jobs running on slots")),
      slots_gauge_(metrics.gauge("kcron_worker_slots", "slots of this worker")),
      start_lag_(metrics.histogram("kcron_start_lag_seconds", "worker start minus due instant", Metrics::latency_buckets())),
      duration_(metrics.histogram("kcron_execution_seconds", "execution time of an attempt", Metrics::latency_buckets())),
      lag_(metrics, "worker") {
  slots_gauge_.set(static_cast<double>(settings_.slots));
  for (const auto band : kAllBands) {
    waiting_gauges_[band_index(band)] = &metrics.gauge(fmt::format("kcron_worker_waiting_jobs{{band=\"{}\"}}", band_name(band)),
                                                       "jobs fetched and waiting for a slot, by priority band");
  }
}

WorkerLoop::~WorkerLoop() {
  {
    std::lock_guard lock(mutex_);
    stop_slots_ = true;
  }
  for (auto& [job_id, control] : active_) control->request(StopReason::kShutdown);
  wake_.notify_all();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  for (auto& held : paused_) RdKafka::TopicPartition::destroy(held);
}

Handler WorkerLoop::kafka_executor() {
  return [this](const v1::Job& job, const std::atomic<bool>&) -> Outcome {
    const auto& task = job.kafka();
    if (task.topic().empty()) return failed("kafka job without a topic", false);
    if (task.topic().starts_with(settings_.names.prefix) && task.topic() != settings_.names.jobs()) {
      return failed(fmt::format("kafka job may not write kcron's own topic '{}' (only {} of kcron's topics)", task.topic(),
                                settings_.names.jobs()),
                    false);
    }
    if (task.key().size() + task.value().size() > kMaxKafkaJobRecordBytes) {
      return failed(fmt::format("kafka job record of {} bytes is over the {} byte limit", task.key().size() + task.value().size(),
                                kMaxKafkaJobRecordBytes),
                    false);
    }
    {
      std::lock_guard lock(topics_mutex_);
      if (known_topics_.contains(task.topic())) return {};
    }
    // The record joins the result's transaction: producing to a missing topic would abort it
    // again and again, so the topic is checked here.
    auto counts = kafka::partition_counts(*metadata_producer_, Millis(15000));
    if (!counts) return failed(fmt::format("could not check topic '{}': {}", task.topic(), counts.error().message()));
    if (!counts->contains(task.topic())) return failed(fmt::format("kafka job's topic '{}' does not exist", task.topic()), false);
    std::lock_guard lock(topics_mutex_);
    known_topics_.insert(task.topic());
    return {};
  };
}

Status WorkerLoop::start() {
  if (auto status = validate(settings_.bands); !status) return status;
  auto metadata = kafka::make_producer(settings_.client, "");
  if (!metadata) return metadata.error();
  metadata_producer_ = std::move(*metadata);

  auto& topics = topics_;
  std::vector<TopicSpec> required = {
      {settings_.names.results(), 0, {}},      {settings_.names.status(), 0, {}},
      {settings_.names.events(), 0, {}},       {settings_.names.jobs(), 0, {}},
      {settings_.names.dead_letters(), 0, {}}, {settings_.names.control(), 0, {}},
      {settings_.names.workers(), 0, {}},      {settings_.names.worker_done(), settings_.exec_partitions, {}}};
  for (const auto& queue : settings_.queues) {
    for (const auto band : kAllBands) {
      topics.push_back(exec_topic(settings_.names.prefix, queue, band));
      band_of_topic_[topics.back()] = band;
      required.push_back({topics.back(), settings_.exec_partitions, {}});
    }
  }
  if (auto status = kafka::check_topics(*metadata_producer_, required, Millis(30000)); !status) return status;
  if (auto status = create_producer(); !status) return status;
  if (settings_.heartbeat_interval.count() > 0) {
    auto heartbeats = kafka::make_producer(settings_.client, "");
    if (!heartbeats) return heartbeats.error();
    heartbeat_producer_ = std::move(*heartbeats);
  }
  if (auto status = start_control_consumer(); !status) return status;

  if (auto status = create_consumer(); !status) return status;

  for (std::size_t slot = 0; slot < settings_.slots; ++slot) threads_.emplace_back([this] { slot_main(); });
  started_at_ms_ = now_ms();
  spdlog::info("event=started instance={} slots={} prefetch={} weights={} aging_ms={} topics={}", settings_.instance_id,
               settings_.slots, prefetch(), fmt::join(settings_.bands.weights, ":"), settings_.bands.aging.count(),
               fmt::join(topics, ","));
  return Status::success();
}

Status WorkerLoop::create_producer() {
  auto producer = kafka::make_transactional_producer(settings_.client, settings_.names.prefix + "worker-" + settings_.instance_id,
                                                     settings_.transaction_timeout);
  if (!producer) return producer.error();
  producer_ = std::move(*producer);
  return Status::success();
}

Status WorkerLoop::create_consumer() {
  // librdkafka keeps one fetch in flight per broker: while the empty partitions of the bands that
  // are not paused long-poll, a band resumed after a pick is not refilled. A short long poll keeps
  // that refill (and so the band weights) within about this bound. kafka.fetch.wait.max.ms wins.
  kafka::Properties extra = {{"max.poll.interval.ms", std::to_string(settings_.max_poll_interval.count())}};
  if (!settings_.client.contains("fetch.wait.max.ms")) extra["fetch.wait.max.ms"] = "100";
  auto consumer = kafka::make_static_member(settings_.client, extra, settings_.names.prefix + "workers",
                                            settings_.names.prefix + "worker-" + settings_.instance_id, topics_, this);
  if (!consumer) return consumer.error();
  consumer_ = std::move(*consumer);
  return Status::success();
}

void WorkerLoop::request_reset(const std::string& why, bool new_producer) {
  if (reset_reason_.empty()) reset_reason_ = why;
  reset_producer_ = reset_producer_ || new_producer;
}

Status WorkerLoop::reset_session(const std::string& why, bool new_producer) {
  if (!budget_.try_spend(SteadyClock::now())) return Error(budget_.refusal("worker", settings_.instance_id, why));
  spdlog::warn("event=session_reset reason=\"{}\" new_producer={} msg=\"keeping finished outcomes, rejoining the group\"", why,
               new_producer);
  resets_.inc();
  reset_reason_.clear();
  reset_producer_ = false;
  // What finished is kept by exec record; running jobs keep running (an assignment that gives their
  // partition back adopts them); waiting jobs go back unstarted.
  collect_finished();
  ++epoch_;
  hand_back_waiting();
  for (auto& task : completed_)
    orphan_finished_.insert_or_assign(RecordKey{task.topic, task.partition, task.offset}, std::move(task));
  completed_.clear();
  owned_.clear();
  offsets_dirty_ = false;
  consecutive_aborts_ = 0;
  for (auto& held : paused_) {
    RdKafka::TopicPartition::destroy(held);
    held.clear();
  }
  kafka::discard_consumer(consumer_);  // nothing left to commit: its revoke publishes nothing
  if (new_producer) {
    producer_.reset();
    if (auto status = kafka::retry_with_backoff([this] { return create_producer(); }, settings_.recovery_timeout,
                                                "recreate the transactional producer");
        !status) {
      return status;
    }
  }
  if (auto status = create_consumer(); !status) return status;
  spdlog::info("event=session_reset_done");
  return Status::success();
}

Status WorkerLoop::start_control_consumer() {
  auto properties = settings_.client;
  properties["group.id"] = settings_.names.prefix + "control-" + settings_.instance_id;  // never committed
  auto consumer = kafka::make_consumer(properties);
  if (!consumer) return consumer.error();
  control_consumer_ = std::move(*consumer);
  auto counts = kafka::partition_counts(*control_consumer_, Millis(10000));
  if (!counts) return counts.error();
  const auto found = counts->find(settings_.names.control());
  if (found == counts->end()) return make_error("topic {} does not exist", settings_.names.control());
  const auto partitions = found->second;
  // Cancels from the recent past still apply: the job may reach this worker after its cancel.
  kafka::PartitionList list;
  const auto since = now_ms() - settings_.cancel_lookback.count();
  for (std::int32_t partition = 0; partition < partitions; ++partition)
    list.items.push_back(RdKafka::TopicPartition::create(settings_.names.control(), partition, since));
  // Just-created topics answer "not leader" until their leaders are known: retry, bounded.
  auto times_code = control_consumer_->offsetsForTimes(list.items, 10000);
  const auto deadline = SteadyClock::now() + Millis(30000);
  while (times_code != RdKafka::ERR_NO_ERROR && SteadyClock::now() < deadline && !stop_requested()) {
    spdlog::info("event=control_offsets_retry error=\"{}\"", RdKafka::err2str(times_code));
    std::this_thread::sleep_for(Millis(500));
    for (auto* partition : list.items) partition->set_offset(since);
    times_code = control_consumer_->offsetsForTimes(list.items, 10000);
  }
  if (times_code != RdKafka::ERR_NO_ERROR) return kafka::to_error(times_code, "offsetsForTimes on the control topic");
  for (auto* partition : list.items) {
    if (partition->offset() < 0) partition->set_offset(RdKafka::Topic::OFFSET_END);
  }
  if (const auto code = control_consumer_->assign(list.items); code != RdKafka::ERR_NO_ERROR)
    return kafka::to_error(code, "assign the control topic");
  return Status::success();
}

Status WorkerLoop::run() {
  if (auto status = start(); !status) return status;
  if (http_ != nullptr) http_->set_ready(true);
  last_commit_ = SteadyClock::now();
  heartbeat(false);
  while (!stop_requested() && fatal_) {
    collect_finished();
    const bool all_paused = update_fetching(false);
    // The first wait is bounded; then what is fetched already, up to a bound and until a band's
    // queue is full: the slots are woken once per round, not once per job (a wake-up per job was
    // most of the worker's CPU).
    band_filled_ = false;
    for (std::size_t taken = 0; taken < kMaxTakenPerRound; ++taken) {
      std::unique_ptr<RdKafka::Message> message(consumer_->consume(taken == 0 ? (all_paused ? 20 : 10) : 0));
      if (message->err() == RdKafka::ERR_NO_ERROR) {
        handle(*message);
      } else {
        if (message->err() == RdKafka::ERR__FATAL) {
          request_reset("consumer fenced: " + kafka::fatal_reason(*consumer_), false);
        } else if (message->err() != RdKafka::ERR__TIMED_OUT && message->err() != RdKafka::ERR__PARTITION_EOF) {
          spdlog::warn("event=consume_error error=\"{}\"", message->errstr());
        }
        break;
      }
      if (!reset_reason_.empty() || band_filled_) break;
    }
    wake_slots();
    poll_control();
    enforce_timeouts();
    heartbeat(false);
    if (auto status = commit(false); !status) return status;
    if (!reset_reason_.empty()) {
      if (auto status = reset_session(reset_reason_, reset_producer_); !status) return status;
      continue;
    }
    lag_.sample(*consumer_);
  }
  if (!fatal_) return fatal_;

  // Drain: stop taking jobs, hand the waiting ones back at once, let running ones finish up to the
  // drain timeout, hand the rest back (their offsets stay uncommitted, so the partition's next
  // owner runs them), publish, leave.
  spdlog::info("event=draining in_flight={} timeout_ms={}", in_flight_, settings_.drain_timeout.count());
  if (http_ != nullptr) http_->set_ready(false);
  hand_back_waiting();  // first, so that no slot picks a waiting job once the drain began
  update_fetching(true);
  const auto drain_deadline = SteadyClock::now() + settings_.drain_timeout;
  while (in_flight_ > 0 && SteadyClock::now() < drain_deadline) {
    collect_finished();
    update_fetching(true);
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(20));  // keeps the group membership alive
    (void)message;
    poll_control();
    enforce_timeouts();
    heartbeat(false);  // still alive while draining: `kcron workers` must not call it lost
    if (auto status = commit(false); !status) return status;
    if (!reset_reason_.empty()) {
      if (auto status = reset_session(reset_reason_, reset_producer_); !status) return status;
    }
  }
  if (in_flight_ > 0) {
    spdlog::warn("event=drain_timeout running={} msg=\"stopping them; their partitions' next owner runs them again\"",
                 in_flight_);
    for (auto& [job_id, control] : active_) {
      control->handed_back = true;
      control->request(StopReason::kShutdown);
    }
    const auto stop_deadline = SteadyClock::now() + Millis(15000);
    while (in_flight_ > 0 && SteadyClock::now() < stop_deadline) {
      collect_finished();
      std::unique_ptr<RdKafka::Message> message(consumer_->consume(20));
      (void)message;
    }
  }
  collect_finished();
  if (auto status = commit(true); !status) return status;
  if (!reset_reason_.empty()) {
    // The last commit was fenced or unsure: a new producer resolves it, then one more try.
    if (auto status = reset_session(reset_reason_, reset_producer_); !status) return status;
    spdlog::warn("event=unpublished_at_stop outcomes={} msg=\"the partitions' next owner runs them again\"",
                 orphan_finished_.size());
  }
  heartbeat(true);
  consumer_->close();
  control_consumer_->close();
  spdlog::info("event=stopped");
  return Status::success();
}

void WorkerLoop::slot_main() {
  const auto anything_waiting = [this] {
    return std::any_of(waiting_.begin(), waiting_.end(), [](const auto& queue) { return !queue.empty(); });
  };
  while (true) {
    Task task;
    bool more = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_slots_ || anything_waiting(); });
      BandBacklogs backlogs{};
      for (const auto band : kAllBands) {
        const auto& queue = waiting_[band_index(band)];
        if (!queue.empty()) backlogs[band_index(band)] = {queue.size(), queue.front().fetched};
      }
      const auto band = scheduler_.pick(backlogs, SystemClock::instance().now());
      if (!band) return;  // stopping, and nothing waits
      auto& queue = waiting_[band_index(*band)];
      task = std::move(queue.front());
      queue.pop_front();
      // Under the lock: a job whose start time is unset is still on a waiting queue.
      task.started_ms = now_ms();
      task.control->started_ms = task.started_ms;
      more = anything_waiting();
    }
    if (more) wake_.notify_one();  // the next slot, for what this one leaves
    if (task.control->stop) {
      task.outcome = failed("stopped before it started");
    } else {
      started_.inc();
      start_lag_.observe(static_cast<double>(task.started_ms - task.execution.due_ms()) / 1000.0);
      try {
        task.outcome = runner_.run(task.execution.job(), task.control->stop);
      } catch (const std::exception& error) {
        task.outcome = failed(fmt::format("the handler threw: {}", error.what()), false);
      } catch (...) {
        task.outcome = failed("the handler threw a non-standard exception", false);
      }
    }
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
  const TopicPartitionKey partition_key{task.topic, task.partition};
  const RecordKey record_key{task.topic, task.partition, task.offset};
  auto& tracker = owned_[partition_key];
  tracker.started(task.offset);

  if (const auto done = done_offsets_.find(partition_key); done != done_offsets_.end() && done->second.contains(task.offset)) {
    tracker.finished(task.offset);  // finished and published by an earlier owner
    done->second.erase(task.offset);
    skipped_done_.inc();
    offsets_dirty_ = true;
    if (const auto running = running_at_.find(record_key); running != running_at_.end()) {
      running->second->handed_back = true;  // a local copy from before the rebalance: never publish it
      running->second->request(StopReason::kShutdown);
    }
    orphan_finished_.erase(record_key);
    return;
  }
  // Re-delivered after a rebalance gave the partition back: the job is already here.
  if (const auto running = running_at_.find(record_key); running != running_at_.end() && !running->second->handed_back) {
    running->second->epoch = epoch_;
    return;
  }
  if (auto orphan = orphan_finished_.find(record_key); orphan != orphan_finished_.end()) {
    completed_.push_back(std::move(orphan->second));
    orphan_finished_.erase(orphan);
    return;
  }

  task.control = std::make_shared<Control>();
  task.control->epoch = epoch_;
  auto decoded = decode_message(std::string_view(static_cast<const char*>(message.payload()), message.len()),
                                kafka::header_value(message, header::kContentType), task.execution);
  if (!decoded || task.execution.job().id().empty()) {
    // Only the dispatcher writes exec topics; an undecodable record is dead at once, never run.
    task.execution.mutable_job()->set_id(message.key() != nullptr ? *message.key() : std::string("unknown"));
    finish_now(std::move(task), failed(decoded ? "execution record without a job id" : decoded.error().message(), false));
    return;
  }
  const auto& job = task.execution.job();
  if (cancelled_.contains(job.id())) {
    Outcome outcome;
    outcome.state = v1::CANCELLED;
    outcome.error = "cancelled before it started";
    finish_now(std::move(task), outcome);
    return;
  }
  task.control->timeout_ms =
      job.has_timeout() && duration_ms(job.timeout()) > 0 ? duration_ms(job.timeout()) : settings_.default_timeout.count();
  const auto band = band_of_topic_.find(task.topic);
  task.band = band != band_of_topic_.end() ? band->second : Band::kNormal;
  task.fetched = SystemClock::instance().now();
  active_[job.id()] = task.control;
  running_at_[record_key] = task.control;
  ++in_flight_;
  {
    std::lock_guard lock(mutex_);
    auto& queue = waiting_[band_index(task.band)];
    queue.push_back(std::move(task));
    band_filled_ = band_filled_ || queue.size() >= prefetch();
  }
  wake_pending_ = true;
}

void WorkerLoop::wake_slots() {
  // One slot; a slot that takes a job and sees more waiting wakes the next (slot_main), so a
  // round of quick jobs is run by the few slots it needs instead of waking every idle one.
  if (std::exchange(wake_pending_, false)) wake_.notify_one();
}

bool WorkerLoop::take_waiting(const std::shared_ptr<Control>& control, Task& task) {
  std::lock_guard lock(mutex_);
  for (auto& queue : waiting_) {
    const auto found = std::find_if(queue.begin(), queue.end(), [&](const Task& waiting) { return waiting.control == control; });
    if (found == queue.end()) continue;
    task = std::move(*found);
    queue.erase(found);
    return true;
  }
  return false;
}

void WorkerLoop::forget(const Task& task) {
  if (const auto found = active_.find(task.execution.job().id()); found != active_.end() && found->second == task.control)
    active_.erase(found);
  const RecordKey record_key{task.topic, task.partition, task.offset};
  if (const auto running = running_at_.find(record_key); running != running_at_.end() && running->second == task.control)
    running_at_.erase(running);
}

void WorkerLoop::hand_back_waiting() {
  std::vector<Task> taken;
  {
    std::lock_guard lock(mutex_);
    for (auto& queue : waiting_) {
      std::move(queue.begin(), queue.end(), std::back_inserter(taken));
      queue.clear();
    }
  }
  // Never started: nothing to publish, and their offsets stay uncommitted for the next owner.
  for (const auto& task : taken) {
    forget(task);
    --in_flight_;
    dropped_.inc();
  }
  if (!taken.empty()) spdlog::info("event=waiting_handed_back count={}", taken.size());
}

void WorkerLoop::finish_now(Task task, Outcome outcome) {
  task.outcome = std::move(outcome);
  task.started_ms = task.finished_ms = now_ms();
  decide(task);
  completed_.push_back(std::move(task));
}

bool WorkerLoop::remember_cancel(const std::string& job_id, std::int64_t at_ms) {
  if (!cancelled_.emplace(job_id, at_ms).second) return false;
  cancelled_order_.push_back(job_id);
  const auto horizon = now_ms() - settings_.cancel_lookback.count();
  while (!cancelled_order_.empty() &&
         (cancelled_order_.size() > kMaxRememberedCancels || cancelled_.at(cancelled_order_.front()) < horizon)) {
    cancelled_.erase(cancelled_order_.front());
    cancelled_order_.pop_front();
  }
  return true;
}

void WorkerLoop::poll_control() {
  for (int count = 0; count < 100; ++count) {
    std::unique_ptr<RdKafka::Message> message(control_consumer_->consume(0));
    if (message->err() == RdKafka::ERR__TIMED_OUT || message->err() == RdKafka::ERR__PARTITION_EOF) return;
    if (message->err() != RdKafka::ERR_NO_ERROR) {
      spdlog::warn("event=control_consume_error error=\"{}\"", message->errstr());
      return;
    }
    auto command =
        decode_command(std::string_view(static_cast<const char*>(message->payload()), message->len()),
                       kafka::header_value(*message, header::kContentType), kafka::header_value(*message, header::kType));
    if (!command || !command->has_cancel() || command->cancel().job_id().empty()) {
      spdlog::warn("event=control_record_ignored offset={} reason=\"{}\"", message->offset(),
                   command ? "not a cancel with a job id" : command.error().message());
      continue;
    }
    const auto& cancel = command->cancel();
    remember_cancel(cancel.job_id(), kafka::record_timestamp_ms(*message, now_ms()));
    const auto found = active_.find(cancel.job_id());
    if (found == active_.end()) continue;
    const auto control = found->second;
    control->cancel_reason = cancel.reason();
    Task task;
    if (take_waiting(control, task)) {
      // Not started: off its waiting queue and CANCELLED now, without taking a slot.
      forget(task);
      --in_flight_;
      Outcome outcome;
      outcome.state = v1::CANCELLED;
      outcome.error = cancel.reason().empty() ? "cancelled before it started" : "cancelled before it started: " + cancel.reason();
      finish_now(std::move(task), outcome);
      spdlog::info("event=cancel_waiting job={} reason=\"{}\"", cancel.job_id(), cancel.reason());
      continue;
    }
    control->request(StopReason::kCancel);
    spdlog::info("event=cancel_running job={} reason=\"{}\"", cancel.job_id(), cancel.reason());
  }
}

void WorkerLoop::enforce_timeouts() {
  const auto now = now_ms();
  for (auto& [job_id, control] : active_) {
    const auto started = control->started_ms.load();
    if (started > 0 && control->timeout_ms > 0 && now - started > control->timeout_ms && !control->stop) {
      spdlog::info("event=timeout job={} timeout_ms={}", job_id, control->timeout_ms);
      control->request(StopReason::kTimeout);
    }
  }
}

void WorkerLoop::collect_finished() {
  std::deque<Task> finished;
  {
    std::lock_guard lock(mutex_);
    finished.swap(finished_);
  }
  for (auto& task : finished) {
    --in_flight_;
    const auto& job_id = task.execution.job().id();
    if (const auto found = active_.find(job_id); found != active_.end() && found->second == task.control) active_.erase(found);
    const RecordKey record_key{task.topic, task.partition, task.offset};
    if (const auto running = running_at_.find(record_key); running != running_at_.end() && running->second == task.control)
      running_at_.erase(running);
    duration_.observe(static_cast<double>(task.finished_ms - task.started_ms) / 1000.0);
    const auto reason = static_cast<StopReason>(task.control->reason.load());
    if (reason == StopReason::kShutdown || task.control->handed_back) {
      dropped_.inc();  // handed back: the offset stays uncommitted, the next owner runs it
      continue;
    }
    if (reason == StopReason::kTimeout && task.outcome.state != v1::SUCCEEDED) {
      timed_out_.inc();
      task.outcome.state = v1::FAILED;
      task.outcome.retriable = true;
      task.outcome.error = fmt::format("timed out after {} ms{}", task.control->timeout_ms,
                                       task.outcome.error.empty() ? "" : "; " + task.outcome.error);
    } else if (reason == StopReason::kCancel && task.outcome.state != v1::SUCCEEDED) {
      task.outcome.state = v1::CANCELLED;
      task.outcome.error =
          task.control->cancel_reason.empty() ? "cancelled while running" : "cancelled: " + task.control->cancel_reason;
    }
    decide(task);
    if (task.control->epoch != epoch_) {
      // Its partition was revoked meanwhile. Keep the decided outcome in case the partition comes
      // back to this worker (the record is then re-delivered); otherwise the new owner runs it.
      orphan_finished_.insert_or_assign(record_key, std::move(task));
      continue;
    }
    completed_.push_back(std::move(task));
  }
}

void WorkerLoop::decide(Task& task) {
  task.final_state = task.outcome.state;
  if (task.outcome.state != v1::FAILED) return;
  const auto& job = task.execution.job();
  Backoff backoff = settings_.default_backoff;
  if (job.retry().has_initial_backoff()) backoff.initial = Millis(duration_ms(job.retry().initial_backoff()));
  if (job.retry().multiplier() > 0) backoff.multiplier = job.retry().multiplier();
  if (job.retry().has_max_backoff()) backoff.max = Millis(duration_ms(job.retry().max_backoff()));
  backoff.full_jitter = job.retry().full_jitter();
  const double draw = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  task.decision = decide_retry(backoff, job.retry().max_retries(), job.attempt(), task.outcome.retriable, draw);
  task.final_state = task.decision.retry ? v1::FAILED : v1::DEAD;
}

void WorkerLoop::count_published(const Task& task) {
  switch (task.final_state) {
    case v1::SUCCEEDED:
      succeeded_.inc();
      break;
    case v1::CANCELLED:
      cancelled_jobs_.inc();
      break;
    case v1::DEAD:
      failed_.inc();
      dead_.inc();
      break;
    default:
      failed_.inc();
      retried_.inc();
  }
}

void WorkerLoop::append_outputs(const Task& original, std::vector<OutRecord>& out) const {
  // A reduced outcome (its full records could not be published): no output, no history, no
  // kafka record, no retry - the job is recorded DEAD with the reason, and its offset moves on.
  Task reduced_task;
  if (original.reduced) {
    reduced_task = original;
    auto* job = reduced_task.execution.mutable_job();
    job->clear_history();
    job->clear_payload();
    if (job->has_kafka()) job->mutable_kafka()->clear_value();
    if (job->has_http()) job->mutable_http()->clear_body();
    reduced_task.outcome.output.clear();
    reduced_task.outcome.error = "its outcome could not be published in full (too large or refused by the broker): " +
                                 bounded(original.outcome.error, kHistoryTextBytes);
    // A kafka job whose record could not be written did not succeed.
    const bool succeeded = original.final_state == v1::SUCCEEDED && !original.execution.job().has_kafka();
    reduced_task.final_state = succeeded ? v1::SUCCEEDED : v1::DEAD;
    if (!succeeded) reduced_task.outcome.state = v1::FAILED;
    reduced_task.decision = {false, {}, "its outcome could not be published in full"};
  }
  const Task& task = original.reduced ? reduced_task : original;
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
  result.set_http_status(task.outcome.http_status);
  result.set_retriable(task.outcome.state == v1::FAILED && task.outcome.retriable);
  auto headers = typed_headers("result", job.id());
  headers.emplace_back(header::kStatus, state_name(task.outcome.state));
  out.push_back({settings_.names.results(), -1, job.id(), encode(result), false, headers});

  std::string reason = task.outcome.error;
  if (task.final_state == v1::DEAD) reason = fmt::format("{} ({})", task.outcome.error, task.decision.reason);
  v1::StatusRecord status;
  status.set_job_id(job.id());
  status.set_state(task.final_state);
  status.set_attempt(job.attempt());
  status.set_sequence(kWorkerSequence);
  status.set_at_ms(task.finished_ms);
  status.set_reason(reason);
  status.set_component("worker");
  status.set_due_ms(task.execution.due_ms());
  status.set_tenant(job.tenant());
  auto status_headers = typed_headers("status", job.id());
  status_headers.emplace_back(header::kStatus, state_name(task.final_state));
  const std::string status_value = encode(status);
  if (settings_.emit_events) out.push_back({settings_.names.events(), -1, job.id(), status_value, false, status_headers});
  out.push_back({settings_.names.status(), -1, job.id(), status_value, false, status_headers});

  const std::string routing_key(routing_key_for_job(job.id()));
  if (task.final_state == v1::FAILED) {
    // Back to the dispatcher, which keeps the next attempt in its delay buckets until due.
    v1::Command command;
    auto* retry = command.mutable_retry();
    *retry->mutable_job() = job;
    retry->mutable_job()->set_attempt(job.attempt() + 1);
    auto* history = retry->mutable_job()->mutable_history();
    auto* earlier = history->Add();
    *earlier = result;
    earlier->set_output(bounded(result.output(), kHistoryTextBytes));
    earlier->set_error(bounded(result.error(), kHistoryTextBytes));
    while (static_cast<std::size_t>(history->size()) > settings_.max_history) history->DeleteSubrange(0, 1);
    retry->set_due_ms(task.finished_ms + task.decision.delay.count());
    retry->set_error(bounded(task.outcome.error, kHistoryTextBytes));
    out.push_back({settings_.names.jobs(), -1, routing_key, encode(command), false, typed_headers("retry", job.id())});
  }
  if (task.final_state == v1::DEAD) {
    v1::DeadLetter letter;
    letter.set_state(v1::DEAD);
    letter.set_reason(
        fmt::format("attempt {} failed: {}; dead because {}", job.attempt(), task.outcome.error, task.decision.reason));
    *letter.mutable_job() = job;
    letter.mutable_job()->clear_history();
    *letter.mutable_history() = job.history();
    *letter.add_history() = result;
    letter.set_source_topic(task.topic);
    letter.set_source_partition(task.partition);
    letter.set_source_offset(task.offset);
    letter.set_at_ms(task.finished_ms);
    letter.set_component("worker");
    auto letter_headers = typed_headers("dead-letter", job.id());
    letter_headers.emplace_back(header::kStatus, state_name(v1::DEAD));
    out.push_back({settings_.names.dead_letters(), -1, job.id(), encode(letter), false, letter_headers});
  }
  if (task.final_state == v1::SUCCEEDED && job.has_kafka() && !task.reduced) {
    // The user's record: no content-type (the value is the user's bytes), only kcron's id headers.
    out.push_back({job.kafka().topic(),
                   -1,
                   job.kafka().key(),
                   job.kafka().value(),
                   false,
                   {{std::string(header::kType), "kafka-job"}, {std::string(header::kJobId), job.id()}}});
  }
  const bool schedule_run = job.has_schedule_run() && !job.schedule_run().schedule_id().empty();
  if (task.final_state != v1::FAILED && (schedule_run || task.final_state == v1::DEAD)) {
    // The dispatcher partition that owns the job (for a schedule run: the schedule) learns that it
    // is over: it enforces the overlap policy with it and lets a DEAD job be replayed.
    v1::Command command;
    command.mutable_completion()->set_job_id(job.id());
    command.mutable_completion()->set_attempt(job.attempt());
    command.mutable_completion()->set_state(task.final_state);
    out.push_back({settings_.names.jobs(), -1, routing_key, encode(command), false, typed_headers("completion", job.id())});
  }

  v1::DoneMarker marker;
  marker.set_job_id(job.id());
  marker.set_attempt(job.attempt());
  marker.set_at_ms(task.finished_ms);
  marker.set_exec_topic(task.topic);
  marker.set_exec_partition(task.partition);
  marker.set_exec_offset(task.offset);
  auto done_headers = typed_headers("done", job.id());
  done_headers.emplace_back(header::kStatus, state_name(task.final_state));
  out.push_back({settings_.names.worker_done(), task.partition % settings_.exec_partitions,
                 fmt::format("{}#{}", job.id(), job.attempt()), encode(marker), false, std::move(done_headers)});
}

Status WorkerLoop::commit(bool force) {
  if (!reset_reason_.empty()) return Status::success();  // the producer or consumer is being replaced
  if (completed_.empty() && !offsets_dirty_) return Status::success();
  if (!force && SteadyClock::now() - last_commit_ < settings_.commit_interval) return Status::success();
  last_commit_ = SteadyClock::now();

  // After repeated aborts, publish one outcome per transaction to find the one that cannot be
  // published; that one is then recorded in its reduced form (see append_outputs).
  const std::size_t take =
      consecutive_aborts_ >= kIsolateAfterAborts ? std::min<std::size_t>(1, completed_.size()) : completed_.size();
  if (take == 1 && consecutive_aborts_ >= kReduceAfterAborts && !completed_.front().reduced) {
    spdlog::warn("event=outcome_reduced job={} msg=\"its full outcome could not be published; recording it without output\"",
                 completed_.front().execution.job().id());
    completed_.front().reduced = true;
  }
  std::vector<OutRecord> out;
  for (std::size_t index = 0; index < take; ++index) {
    const auto first = out.size();
    append_outputs(completed_[index], out);
    // A record over the broker's limit would abort every transaction it is in: reduce it now.
    const bool oversized =
        std::any_of(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(), [this](const OutRecord& record) {
          // A retry going back to the jobs topic must also pass the dispatcher's input limit (key,
          // value and the two headers it reads), or the dispatcher would reject it and the job would
          // be neither retried nor dead.
          if (record.topic == settings_.names.jobs()) {
            std::size_t bytes = record.key.size() + record.value.size();
            for (const auto& [name, value] : record.headers) {
              if (name == header::kContentType || name == header::kType) bytes += value.size();
            }
            return bytes > kMaxJobsRecordBytes;
          }
          return record.key.size() + record.value.size() > kMaxPublishedRecordBytes;
        });
    if (oversized && !completed_[index].reduced) {
      out.resize(first);
      completed_[index].reduced = true;
      append_outputs(completed_[index], out);
    }
  }
  // Mark finished in the trackers on a copy, so an aborted attempt can be retried as is.
  auto trackers = owned_;
  for (std::size_t index = 0; index < take; ++index)
    trackers[{completed_[index].topic, completed_[index].partition}].finished(completed_[index].offset);

  const int timeout = static_cast<int>(settings_.transaction_timeout.count());
  const auto abort = [&](const std::string& reason) -> Status {
    spdlog::warn("event=transaction_abort reason=\"{}\" consecutive={}", reason, consecutive_aborts_ + 1);
    aborts_.inc();
    ++consecutive_aborts_;
    if (auto abort_error = std::unique_ptr<RdKafka::Error>(producer_->abort_transaction(timeout))) {
      request_reset(fmt::format("abort_transaction failed ({}) after: {}", abort_error->str(), reason), true);
      return Status::success();
    }
    if (consecutive_aborts_ > kGiveUpAfterAborts)
      return make_error("{} transactions in a row aborted; last: {}", consecutive_aborts_, reason);
    return Status::success();  // completed_ stays; the next commit tries again
  };

  if (auto error = std::unique_ptr<RdKafka::Error>(producer_->begin_transaction())) {
    request_reset(fmt::format("begin_transaction: {}", error->str()), true);
    return Status::success();
  }
  for (const auto& record : out) {
    if (auto status = kafka::produce(*producer_, record); !status) return abort(status.error().message());
    producer_->poll(0);
  }
  (void)fault::hit("worker.after_produce");  // test-only crash points (kcron/fault_points.h)
  std::vector<RdKafka::TopicPartition*> offsets;
  for (const auto& [key, tracker] : trackers) {
    if (auto position = tracker.committable())
      offsets.push_back(RdKafka::TopicPartition::create(key.first, key.second, *position));
  }
  std::unique_ptr<RdKafka::ConsumerGroupMetadata> group(consumer_->groupMetadata());
  // The offsets are what fences a zombie: never commit without them.
  auto error = std::unique_ptr<RdKafka::Error>(producer_->send_offsets_to_transaction(offsets, group.get(), timeout));
  for (int attempt = 0; error && error->is_retriable() && attempt < 3; ++attempt)
    error.reset(producer_->send_offsets_to_transaction(offsets, group.get(), timeout));
  RdKafka::TopicPartition::destroy(offsets);
  if (error) {
    if (error->txn_requires_abort() || error->is_retriable()) return abort(error->str());
    request_reset(fmt::format("send_offsets_to_transaction: {}", error->str()), true);  // fenced or fatal
    return Status::success();
  }
  (void)fault::hit("worker.after_offsets");
  error.reset(producer_->commit_transaction(timeout));
  for (int attempt = 0; error && error->is_retriable() && attempt < 3; ++attempt)
    error.reset(producer_->commit_transaction(timeout));
  if (error) {
    if (error->txn_requires_abort()) return abort(error->str());
    request_reset(fmt::format("commit_transaction (outcome unknown or fenced): {}", error->str()), true);
    return Status::success();
  }
  (void)fault::hit("worker.after_commit");
  commits_.inc();
  consecutive_aborts_ = 0;
  for (std::size_t index = 0; index < take; ++index) count_published(completed_[index]);
  owned_ = std::move(trackers);
  completed_.erase(completed_.begin(), completed_.begin() + static_cast<std::ptrdiff_t>(take));
  if (completed_.empty()) offsets_dirty_ = false;
  return Status::success();
}

void WorkerLoop::heartbeat(bool stopped) {
  if (!heartbeat_producer_) return;
  const auto now = SteadyClock::now();
  if (!stopped && now - last_heartbeat_ < settings_.heartbeat_interval) return;
  last_heartbeat_ = now;
  v1::WorkerHeartbeat beat;
  beat.set_worker_id(settings_.instance_id);
  beat.set_host(host_name());
  for (const auto& queue : settings_.queues) beat.add_queues(queue);
  beat.set_slots(static_cast<std::uint32_t>(settings_.slots));
  for (const auto& [job_id, control] : active_) {
    if (control->started_ms.load() > 0) beat.add_running(job_id);
  }
  beat.set_cpu_seconds(cpu_seconds());
  beat.set_rss_bytes(resident_bytes());
  beat.set_at_ms(now_ms());
  beat.set_interval_ms(settings_.heartbeat_interval.count());
  beat.set_started_ms(started_at_ms_);
  beat.set_stopped(stopped);
  beat.set_succeeded(succeeded_.value());
  beat.set_failed(failed_.value());
  auto headers = typed_headers("worker", "");
  headers.emplace_back(header::kStatus, stopped ? "STOPPED" : "LIVE");
  const OutRecord record{settings_.names.workers(), -1, settings_.instance_id, encode(beat), false, headers};
  if (auto status = kafka::produce(*heartbeat_producer_, record); !status) {
    spdlog::warn("event=heartbeat_failed error=\"{}\"", status.error().message());
  }
  heartbeat_producer_->poll(0);
  if (stopped) heartbeat_producer_->flush(2000);
}

void WorkerLoop::load_done_markers(const std::vector<RdKafka::TopicPartition*>& partitions) {
  // A job finished after the committed offset (slots finish out of order) left a done marker.
  // Markers that matter were written after the record at the committed offset was consumed, so
  // reading starts at that record's timestamp (less a margin for clock skew).
  done_offsets_.clear();
  if (partitions.empty()) return;
  const auto started = SteadyClock::now();
  kafka::PartitionList positions;
  for (const auto* partition : partitions)
    positions.items.push_back(RdKafka::TopicPartition::create(partition->topic(), partition->partition()));
  auto code = consumer_->committed(positions.items, 10000);
  for (int attempt = 0; code != RdKafka::ERR_NO_ERROR && attempt < 3; ++attempt) {
    std::this_thread::sleep_for(Millis(500));
    code = consumer_->committed(positions.items, 10000);
  }
  if (code != RdKafka::ERR_NO_ERROR) {
    // Without them the new owner may run again jobs an earlier owner finished (at least once).
    spdlog::error("event=done_markers_skipped reason=\"committed offsets unavailable: {}\"", RdKafka::err2str(code));
    return;
  }
  auto properties = settings_.client;
  properties["group.id"] = settings_.names.prefix + "worker-done-reader";
  properties["enable.partition.eof"] = "true";
  auto reader = kafka::make_consumer(properties);
  if (!reader) {
    spdlog::warn("event=done_markers_skipped reason=\"{}\"", reader.error().message());
    return;
  }
  // 1. The timestamp of the record at each committed offset (none: nothing consumed past it).
  std::map<TopicPartitionKey, std::int64_t> first_offset;
  for (auto* position : positions.items) {
    if (position->offset() < 0) position->set_offset(RdKafka::Topic::OFFSET_BEGINNING);
  }
  (void)(*reader)->assign(positions.items);
  std::map<std::int32_t, std::int64_t> read_from_ms;  // done partition -> earliest timestamp
  std::set<TopicPartitionKey> pending;
  for (const auto* position : positions.items) pending.insert({position->topic(), position->partition()});
  const auto probe_deadline = SteadyClock::now() + Millis(10000);
  while (!pending.empty() && SteadyClock::now() < probe_deadline) {
    std::unique_ptr<RdKafka::Message> message((*reader)->consume(100));
    if (message->err() != RdKafka::ERR_NO_ERROR && message->err() != RdKafka::ERR__PARTITION_EOF) continue;
    const TopicPartitionKey key{message->topic_name(), message->partition()};
    if (!pending.erase(key)) continue;
    if (message->err() == RdKafka::ERR__PARTITION_EOF) continue;
    first_offset[key] = message->offset();
    const auto timestamp = kafka::record_timestamp_ms(*message, now_ms()) - 60000;
    const auto done_partition = key.second % settings_.exec_partitions;
    const auto floor = now_ms() - settings_.dedupe_lookback.count();
    auto& earliest = read_from_ms.try_emplace(done_partition, std::numeric_limits<std::int64_t>::max()).first->second;
    earliest = std::min(earliest, std::max(timestamp, floor));
  }
  (void)(*reader)->unassign();
  if (read_from_ms.empty()) return;

  // 2. The done markers from there to the end of each done partition.
  kafka::PartitionList done;
  for (const auto& [partition, since] : read_from_ms)
    done.items.push_back(RdKafka::TopicPartition::create(settings_.names.worker_done(), partition, since));
  auto times_code = (*reader)->offsetsForTimes(done.items, 10000);
  for (int attempt = 0; times_code != RdKafka::ERR_NO_ERROR && attempt < 5; ++attempt) {
    std::this_thread::sleep_for(Millis(500));
    for (auto* partition : done.items) partition->set_offset(read_from_ms.at(partition->partition()));
    times_code = (*reader)->offsetsForTimes(done.items, 10000);
  }
  if (times_code != RdKafka::ERR_NO_ERROR) {
    spdlog::warn("event=done_markers_skipped reason=\"offsetsForTimes failed\"");
    return;
  }
  std::map<std::int32_t, std::int64_t> high;
  std::vector<RdKafka::TopicPartition*> to_read;
  for (auto* partition : done.items) {
    std::int64_t low_mark = 0;
    std::int64_t high_mark = 0;
    if (partition->offset() < 0 ||
        (*reader)->query_watermark_offsets(partition->topic(), partition->partition(), &low_mark, &high_mark, 5000) !=
            RdKafka::ERR_NO_ERROR ||
        partition->offset() >= high_mark) {
      continue;
    }
    high[partition->partition()] = high_mark;
    to_read.push_back(partition);
  }
  (void)(*reader)->assign(to_read);
  std::size_t markers = 0;
  const auto read_deadline = SteadyClock::now() + settings_.transaction_timeout + Millis(10000);
  while (!high.empty() && SteadyClock::now() < read_deadline) {
    std::unique_ptr<RdKafka::Message> message((*reader)->consume(200));
    if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      // read_committed stops at the last stable offset; an open transaction of the previous
      // owner ends (commit or abort) within the transaction timeout.
      if (message->offset() >= high[message->partition()]) high.erase(message->partition());
      continue;
    }
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    if (message->offset() + 1 >= high[message->partition()]) high.erase(message->partition());
    v1::DoneMarker marker;
    if (message->payload() == nullptr || !marker.ParseFromArray(message->payload(), static_cast<int>(message->len()))) continue;
    const TopicPartitionKey key{marker.exec_topic(), marker.exec_partition()};
    const auto first = first_offset.find(key);
    if (first == first_offset.end() || marker.exec_offset() < first->second) continue;
    done_offsets_[key].insert(marker.exec_offset());
    ++markers;
  }
  (*reader)->close();
  spdlog::info("event=done_markers_loaded markers={} partitions={} ms={}", markers, read_from_ms.size(),
               std::chrono::duration_cast<Millis>(SteadyClock::now() - started).count());
}

std::size_t WorkerLoop::prefetch() const {
  return settings_.prefetch > 0 ? settings_.prefetch : settings_.slots;
}

bool WorkerLoop::update_fetching(bool pause_all) {
  std::array<std::size_t, kBandCount> waiting{};
  {
    std::lock_guard lock(mutex_);
    for (std::size_t index = 0; index < kBandCount; ++index) waiting[index] = waiting_[index].size();
  }
  std::size_t total_waiting = 0;
  for (const auto count : waiting) total_waiting += count;
  const std::size_t running = in_flight_ - std::min(in_flight_, total_waiting);
  bool all_paused = true;
  for (const auto band : kAllBands) {
    const auto count = waiting[band_index(band)];
    waiting_gauges_[band_index(band)]->set(static_cast<double>(count));
    // A full queue pauses its band only while every slot is busy: idle slots are about to take
    // from it (the consumer queues a round of jobs before it wakes them), and a pause drops what
    // the consumer has fetched for the band, to be fetched again.
    const bool full = pause_all || (count >= prefetch() && running >= settings_.slots);
    set_band_paused(band, full);
    all_paused = all_paused && full;
  }
  running_.set(static_cast<double>(running));
  return all_paused;
}

void WorkerLoop::set_band_paused(Band band, bool paused) {
  auto& held = paused_[band_index(band)];
  if (paused == !held.empty()) return;
  if (paused) {
    std::vector<RdKafka::TopicPartition*> assignment;
    if (consumer_->assignment(assignment) != RdKafka::ERR_NO_ERROR) {
      RdKafka::TopicPartition::destroy(assignment);
      return;
    }
    for (auto* partition : assignment) {
      const auto found = band_of_topic_.find(partition->topic());
      if (found != band_of_topic_.end() && found->second == band) {
        held.push_back(partition);
      } else {
        delete partition;
      }
    }
    if (!held.empty()) (void)consumer_->pause(held);
  } else {
    (void)consumer_->resume(held);  // resume only what we paused
    RdKafka::TopicPartition::destroy(held);
    held.clear();
  }
}

void WorkerLoop::resume_all(RdKafka::KafkaConsumer& consumer) {
  for (auto& held : paused_) {
    if (!held.empty()) (void)consumer.resume(held);
    RdKafka::TopicPartition::destroy(held);
    held.clear();
  }
}

void WorkerLoop::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                              std::vector<RdKafka::TopicPartition*>& partitions) {
  if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
    ++epoch_;
    rebalances_.inc();
    std::set<TopicPartitionKey> assigned;
    for (const auto* partition : partitions) {
      assigned.insert({partition->topic(), partition->partition()});
      owned_[{partition->topic(), partition->partition()}] = OffsetTracker();
    }
    // Jobs still running for partitions that went elsewhere run again on their new owner.
    for (auto& [record, control] : running_at_) {
      if (!assigned.contains({std::get<0>(record), std::get<1>(record)})) {
        control->handed_back = true;
        control->request(StopReason::kShutdown);
      }
    }
    std::erase_if(orphan_finished_, [&](const auto& entry) {
      return !assigned.contains({std::get<0>(entry.first), std::get<1>(entry.first)});
    });
    load_done_markers(partitions);
    (void)consumer->assign(partitions);
    spdlog::info("event=assigned count={}", partitions.size());
    return;
  }
  // Revoke: publish what finished while our offsets are still accepted, then let go. Running
  // jobs keep running: if the next assignment gives their partition back, they are adopted.
  collect_finished();
  if (auto status = commit(true); !status) {
    spdlog::warn("event=revoke_commit_failed error=\"{}\"", status.error().message());
    fatal_ = status;
  }
  ++epoch_;
  // Waiting jobs never start here now: their records are re-delivered to the partition's next
  // owner (perhaps this worker again), which starts them afresh.
  hand_back_waiting();
  owned_.clear();
  for (auto& task : completed_)
    orphan_finished_.insert_or_assign(RecordKey{task.topic, task.partition, task.offset}, std::move(task));
  completed_.clear();
  offsets_dirty_ = false;
  // Only resume() clears a pause: a partition paused now would stay paused when assigned again.
  resume_all(*consumer);
  (void)consumer->unassign();
  spdlog::info("event=revoked count={} still_running={}", partitions.size(), running_at_.size());
}

}  // namespace kcron::worker
