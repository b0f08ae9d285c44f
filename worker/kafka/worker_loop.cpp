#include "kafka/worker_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "kcron/codec.h"
#include "kcron/fault_points.h"
#include "kcron/priority.h"
#include "kcron/transaction.h"
#include "kcron/upgrade_gate.h"

namespace kcron::worker {
namespace {

using SteadyClock = std::chrono::steady_clock;

OutcomeSettings outcome_settings(const LoopSettings& settings) {
  return {settings.names,       settings.instance_id,     settings.exec_partitions,
          settings.max_history, settings.default_backoff, settings.emit_events};
}

DoneMarkerSettings done_marker_settings(const LoopSettings& settings) {
  return {settings.names, settings.exec_partitions, settings.dedupe_lookback, settings.transaction_timeout};
}

}  // namespace

WorkerLoop::WorkerLoop(LoopSettings settings, const Runner& runner, const Clock& clock, Metrics& metrics, HttpEndpoint* http)
    : output_watch_(settings.names),
      settings_(std::move(settings)),
      clock_(clock),
      http_(http),
      policy_(outcome_settings(settings_)),
      kafka_jobs_(settings_.names, settings_.walls),
      heartbeats_({.topic = settings_.names.workers(),
                   .worker_id = settings_.instance_id,
                   .role = "",
                   .features = worker_features(),
                   .queues = settings_.queues,
                   .programs = settings_.programs,
                   .handlers = settings_.handlers,
                   .slots = settings_.slots,
                   .interval = settings_.heartbeat_interval},
                  clock),
      control_(settings_.client, settings_.names, settings_.instance_id, settings_.cancel_lookback, clock),
      done_markers_(settings_.client, done_marker_settings(settings_), clock),
      slots_(
          settings_.slots, settings_.bands, runner, clock,
          [this](const Attempt& attempt) {
            started_.inc();
            start_lag_.observe(static_cast<double>(to_epoch_ms(attempt.started) - attempt.execution.due_ms()) / 1000.0);
          },
          settings_.after_run),
      cancels_(settings_.cancel_lookback),
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
      running_(metrics.gauge("kcron_worker_running_jobs", "jobs running on slots")),
      early_gauge_(metrics.gauge("kcron_worker_early_jobs",
                                 "jobs fired ahead of their instant, waiting for it (counted in no band's queue)")),
      slots_gauge_(metrics.gauge("kcron_worker_slots", "slots of this worker")),
      start_lag_(metrics.histogram("kcron_start_lag_seconds", "worker start minus due instant", Metrics::latency_buckets())),
      duration_(metrics.histogram("kcron_execution_seconds", "execution time of an attempt", Metrics::latency_buckets())),
      counters_(metrics, "worker"),
      lag_(metrics, "worker") {
  slots_gauge_.set(static_cast<double>(settings_.slots));
  for (const auto band : kAllBands) {
    waiting_gauges_[band_index(band)] = &metrics.gauge(fmt::format("kcron_worker_waiting_jobs{{band=\"{}\"}}", band_name(band)),
                                                       "jobs fetched and waiting for a slot, by priority band");
    held_gauges_[band_index(band)] = &metrics.gauge(fmt::format("kcron_worker_held_jobs{{band=\"{}\"}}", band_name(band)),
                                                    "waiting jobs no slot may take yet: their tenant is at its running-jobs cap");
  }
}

WorkerLoop::~WorkerLoop() {
  // Join the slots while everything they use still exists; ask what runs to stop first.
  for (auto& [position, control] : running_at_) control->request(StopReason::kShutdown);
  slots_.stop();
}

Handler WorkerLoop::kafka_executor() {
  return kafka_jobs_.handler();
}

Status WorkerLoop::start() {
  if (auto status = validate(settings_.bands); !status) return status;
  if (auto status = kafka_jobs_.start(settings_.client); !status) return status;

  std::vector<TopicSpec> required = {
      {settings_.names.results(), 0, {}},      {settings_.names.status(), 0, {}},
      {settings_.names.events(), 0, {}},       {settings_.names.jobs(), 0, {}},
      {settings_.names.dead_letters(), 0, {}}, {settings_.names.control(), 0, {}},
      {settings_.names.workers(), 0, {}},      {settings_.names.worker_done(), settings_.exec_partitions, {}}};
  for (const auto& queue : settings_.queues) {
    for (const auto band : kAllBands) {
      topics_.push_back(exec_topic(settings_.names.prefix, queue, band));
      band_of_topic_[topics_.back()] = band;
      required.push_back({topics_.back(), settings_.exec_partitions, {}});
    }
  }
  if (auto status = kafka::check_topics(kafka_jobs_.metadata(), required, Millis(30000)); !status) return status;
  pauses_ = std::make_unique<BandPauses>(band_of_topic_);
  if (auto status = create_producer(); !status) return status;
  if (auto status = control_.start(); !status) return status;
  if (auto status = create_consumer(); !status) return status;

  slots_.start();
  if (settings_.upgrade_check_interval.count() > 0) {
    if (!done_gate_) {
      done_gate_ = std::make_unique<FeatureWatch>(settings_.client, settings_.names, std::string(feature::kResultsDone),
                                                  settings_.upgrade_check_interval);
      done_gate_->start();
    }
  } else {
    policy_.set_done_markers(false);
  }
  if (auto status = heartbeats_.start(settings_.client); !status) return status;
  spdlog::info("event=started instance={} slots={} prefetch={} weights={} aging_ms={} topics={}", settings_.instance_id,
               settings_.slots, prefetch(), fmt::join(settings_.bands.weights, ":"), settings_.bands.aging.count(),
               fmt::join(topics_, ","));
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

void WorkerLoop::request_restart(const std::string& why, bool new_producer) {
  if (restart_reason_.empty()) restart_reason_ = why;
  restart_producer_ = restart_producer_ || new_producer;
}

void WorkerLoop::orphan_completed() {
  for (auto& attempt : completed_) {
    auto source = attempt.source;
    orphan_finished_.insert_or_assign(std::move(source), std::move(attempt));
  }
  completed_.clear();
}

Status WorkerLoop::restart(const std::string& why, bool new_producer) {
  if (!budget_.try_spend(SteadyClock::now())) return Error(budget_.refusal("worker", settings_.instance_id, why));
  spdlog::warn("event={} reason=\"{}\" msg=\"keeping finished outcomes, {}rejoining the group\"",
               new_producer ? "recover" : "rejoin", why, new_producer ? "recreating the producer, " : "");
  (new_producer ? counters_.recoveries : counters_.rejoins).inc();
  restart_reason_.clear();
  restart_producer_ = false;
  // What finished is kept by exec record; running jobs keep running (an assignment that gives their
  // partition back adopts them); waiting jobs go back unstarted.
  collect_finished();
  ++epoch_;
  hand_back_waiting();
  orphan_completed();
  owned_.clear();
  offsets_dirty_ = false;
  consecutive_aborts_ = 0;
  pauses_->forget();
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
  spdlog::info("event={}_done", new_producer ? "recover" : "rejoin");
  return Status::success();
}

Status WorkerLoop::run() {
  auto status = serve();
  // Leaving on an error: a revoke raised while the consumer is destroyed must not publish.
  if (!status) abandoned_ = true;
  return status;
}

Status WorkerLoop::serve() {
  if (auto status = start(); !status) return status;
  if (http_ != nullptr) http_->set_ready(true);
  last_commit_ = SteadyClock::now();
  heartbeat(false);
  const auto poll_control = [this] {
    control_.poll([this](const v1::Cancel& cancel, Instant arrived) { on_cancel(cancel, arrived); });
  };
  while (!stop_requested() && !failure_) {
    if (settings_.follow_tenants) settings_.follow_tenants();
    apply_running_caps();
    collect_finished();
    const bool all_paused = update_fetching(false);
    // The first wait is bounded; then what is fetched already, up to a bound and until a band's
    // queue is full: the slots are woken once per round, not once per job.
    band_filled_ = false;
    for (std::size_t taken = 0; taken < kMaxTakenPerRound; ++taken) {
      std::unique_ptr<RdKafka::Message> message(consumer_->consume(taken == 0 ? (all_paused ? 20 : 10) : 0));
      if (message->err() == RdKafka::ERR_NO_ERROR) {
        handle(*message);
      } else {
        if (message->err() == RdKafka::ERR__FATAL) {
          request_restart("consumer fenced: " + kafka::fatal_reason(*consumer_), false);
        } else if (message->err() != RdKafka::ERR__TIMED_OUT && message->err() != RdKafka::ERR__PARTITION_EOF) {
          spdlog::warn("event=consume_error error=\"{}\"", message->errstr());
        }
        break;
      }
      if (!restart_reason_.empty() || band_filled_) break;
    }
    slots_.wake();
    poll_control();
    enforce_timeouts();
    heartbeat(false);
    if (auto status = commit(false); !status) return status;
    if (!restart_reason_.empty()) {
      if (auto status = restart(restart_reason_, restart_producer_); !status) return status;
      continue;
    }
    lag_.sample(*consumer_);
  }
  if (failure_) return *failure_;

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
    if (!restart_reason_.empty()) {
      if (auto status = restart(restart_reason_, restart_producer_); !status) return status;
    }
  }
  if (in_flight_ > 0) {
    spdlog::warn("event=drain_timeout running={} msg=\"stopping them; their partitions' next owner runs them again\"",
                 in_flight_);
    for (auto& [position, control] : running_at_) {
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
  if (!restart_reason_.empty()) {
    // The last commit was fenced or unsure: a new producer resolves it, then one more try.
    if (auto status = restart(restart_reason_, restart_producer_); !status) return status;
    spdlog::warn("event=unpublished_at_stop outcomes={} msg=\"the partitions' next owner runs them again\"",
                 orphan_finished_.size());
  }
  heartbeat(true);
  consumer_->close();
  control_.close();
  spdlog::info("event=stopped");
  return Status::success();
}

void WorkerLoop::handle(RdKafka::Message& message) {
  Attempt attempt;
  attempt.source = {message.topic_name(), message.partition(), message.offset()};
  const TopicPartitionKey partition_key{attempt.source.topic, attempt.source.partition};
  auto& tracker = owned_[partition_key];
  tracker.started(attempt.source.offset);

  if (done_markers_.take(attempt.source)) {
    tracker.finished(attempt.source.offset);  // finished and published by an earlier owner
    skipped_done_.inc();
    offsets_dirty_ = true;
    if (const auto running = running_at_.find(attempt.source); running != running_at_.end()) {
      running->second->handed_back = true;  // a local copy from before the rebalance: never publish it
      running->second->request(StopReason::kShutdown);
    }
    orphan_finished_.erase(attempt.source);
    return;
  }
  // Re-delivered after a rebalance gave the partition back: the job is already here.
  if (const auto running = running_at_.find(attempt.source); running != running_at_.end() && !running->second->handed_back) {
    running->second->epoch = epoch_;
    return;
  }
  if (auto orphan = orphan_finished_.find(attempt.source); orphan != orphan_finished_.end()) {
    completed_.push_back(std::move(orphan->second));
    orphan_finished_.erase(orphan);
    return;
  }

  attempt.control = std::make_shared<AttemptControl>();
  attempt.control->epoch = epoch_;
  auto decoded = decode_message(std::string_view(static_cast<const char*>(message.payload()), message.len()),
                                kafka::header_value(message, header::kContentType), attempt.execution);
  if (!decoded || attempt.execution.job().id().empty()) {
    // Only the dispatcher writes exec topics; an undecodable record is dead at once, never run.
    // Its key (the dispatcher keys exec records by the job's scoped key) says whose it is.
    const auto named = split_scoped_key(message.key() != nullptr ? std::string_view(*message.key()) : "unknown");
    attempt.execution.mutable_job()->set_id(std::string(named.id));
    attempt.execution.mutable_job()->set_tenant(std::string(tenant_field(named.tenant)));
    finish_now(std::move(attempt), failed(decoded ? "execution record without a job id" : decoded.error().message(), false));
    return;
  }
  if (const auto cancelled = cancels_.arrived_at(attempt.job_key(), now())) {
    // A flow's node is fired again, same key, when its flow is retried: a cancel remembered from
    // before that retry is not for it.
    const bool earlier_run = attempt.execution.job().has_flow() && attempt.execution.fired_ms() > to_epoch_ms(*cancelled);
    if (!earlier_run) {
      finish_now(std::move(attempt), cancelled_before_start(""));
      return;
    }
  }
  if (!is_default_tenant(attempt.execution.job().tenant())) {
    const auto tenant_cancelled = cancels_.arrived_at(scoped_key(attempt.execution.job().tenant(), ""), now());
    if (tenant_cancelled && attempt.execution.fired_ms() <= to_epoch_ms(*tenant_cancelled)) {
      finish_now(std::move(attempt), cancelled_before_start("its tenant was deleted"));
      return;
    }
  }
  attempt.control->timeout = attempt_timeout(attempt.execution.job(), settings_.default_timeout);
  attempt.control->job_id = attempt.job_key();
  const auto band = band_of_topic_.find(attempt.source.topic);
  attempt.band = band != band_of_topic_.end() ? band->second : Band::kNormal;
  attempt.fetched = now();
  // Fired ahead (docs/fire-ahead.md): the slots hold it until its instant by this worker's clock.
  attempt.not_before = instant_from_ms(attempt.execution.due_ms());
  if (const auto ahead = attempt.not_before - attempt.fetched; ahead > kLongHold && !warned_long_hold_) {
    warned_long_hold_ = true;
    spdlog::warn(
        "event=long_hold job={} due_in_ms={} msg=\"an exec record is due much later than this worker's clock says "
        "fire-ahead allows: check that the hosts' clocks are kept by NTP\"",
        attempt.job_key(), ahead.count());
  }
  // Fault suite: the worker dies while it holds records fired ahead (their offsets uncommitted).
  if (attempt.not_before > attempt.fetched) (void)fault::hit("worker.hold");
  active_.emplace(attempt.job_key(), attempt.control);
  running_at_[attempt.source] = attempt.control;
  ++in_flight_;
  band_filled_ = slots_.enqueue(std::move(attempt)) >= prefetch() || band_filled_;
}

void WorkerLoop::forget(const Attempt& attempt) {
  const auto [first, last] = active_.equal_range(attempt.job_key());
  if (const auto found = std::find_if(first, last, [&](const auto& entry) { return entry.second == attempt.control; });
      found != last)
    active_.erase(found);
  if (const auto running = running_at_.find(attempt.source); running != running_at_.end() && running->second == attempt.control)
    running_at_.erase(running);
}

void WorkerLoop::hand_back_waiting() {
  const auto taken = slots_.take_all_waiting();
  // Never started: nothing to publish, and their offsets stay uncommitted for the next owner.
  for (const auto& attempt : taken) {
    forget(attempt);
    --in_flight_;
    dropped_.inc();
  }
  if (!taken.empty()) spdlog::info("event=waiting_handed_back count={}", taken.size());
}

void WorkerLoop::finish_now(Attempt attempt, Outcome outcome) {
  attempt.outcome = std::move(outcome);
  attempt.started = attempt.finished = now();
  decide(attempt);
  completed_.push_back(std::move(attempt));
}

void WorkerLoop::on_cancel(const v1::Cancel& cancel, Instant arrived) {
  // A tenant-wide cancel (the tenant was deleted) names no job: it reaches every job of the
  // tenant here, and each exec record of it fired before the cancel arrived (handle()).
  const bool whole_tenant = cancel.job_id().empty();
  if (whole_tenant && is_default_tenant(cancel.tenant())) return;
  const std::string key = scoped_key(cancel.tenant(), cancel.job_id());
  if (whole_tenant) {
    cancels_.remember_latest(key, arrived, now());
  } else {
    cancels_.remember(key, arrived, now());
  }
  std::vector<std::shared_ptr<AttemptControl>> controls;
  if (whole_tenant) {
    for (auto entry = active_.lower_bound(key); entry != active_.end() && entry->first.starts_with(key); ++entry) {
      controls.push_back(entry->second);
    }
  } else {
    const auto [first, last] = active_.equal_range(key);
    for (auto entry = first; entry != last; ++entry) controls.push_back(entry->second);
  }
  for (const auto& control : controls) {
    control->cancel_reason = cancel.reason();
    if (auto waiting = slots_.take_waiting(*control)) {
      // Not started: off its waiting queue and CANCELLED now, without taking a slot.
      forget(*waiting);
      --in_flight_;
      finish_now(std::move(*waiting), cancelled_before_start(cancel.reason()));
      spdlog::info("event=cancel_waiting job={} reason=\"{}\"", control->job_id, cancel.reason());
      continue;
    }
    control->request(StopReason::kCancel);
    spdlog::info("event=cancel_running job={} reason=\"{}\"", control->job_id, cancel.reason());
  }
}

void WorkerLoop::enforce_timeouts() {
  const auto at = now();
  for (auto& [position, control] : running_at_) {
    if (control->started && control->timeout.count() > 0 && at - control->started_at.load() > control->timeout &&
        !control->stop) {
      spdlog::info("event=timeout job={} timeout_ms={}", control->job_id, control->timeout.count());
      control->request(StopReason::kTimeout);
    }
  }
}

void WorkerLoop::collect_finished() {
  for (auto& attempt : slots_.take_finished()) {
    --in_flight_;
    forget(attempt);
    duration_.observe(std::chrono::duration<double>(attempt.finished - attempt.started).count());
    const auto reason = attempt.control->stop_reason();
    if (reason == StopReason::kShutdown || attempt.control->handed_back) {
      dropped_.inc();  // handed back: the offset stays uncommitted, the next owner runs it
      continue;
    }
    if (reason == StopReason::kTimeout && attempt.outcome.state != v1::SUCCEEDED) timed_out_.inc();
    attempt.outcome = after_stop(std::move(attempt.outcome), reason, attempt.control->timeout, attempt.control->cancel_reason);
    decide(attempt);
    if (attempt.control->epoch != epoch_) {
      // Its partition was revoked meanwhile. Keep the decided outcome in case the partition comes
      // back to this worker (the record is then re-delivered); otherwise the new owner runs it.
      auto source = attempt.source;
      orphan_finished_.insert_or_assign(std::move(source), std::move(attempt));
      continue;
    }
    completed_.push_back(std::move(attempt));
  }
}

void WorkerLoop::decide(Attempt& attempt) {
  const double draw = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  attempt.verdict = policy_.decide(attempt.execution.job(), attempt.outcome, draw);
}

void WorkerLoop::count_published(const Attempt& attempt) {
  switch (attempt.verdict.final_state) {
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

Status WorkerLoop::commit(bool force) {
  if (!restart_reason_.empty()) return Status::success();  // the producer or consumer is being replaced
  if (abandoned_ || !producer_) return Status::success();
  if (completed_.empty() && !offsets_dirty_) return Status::success();
  if (!force && SteadyClock::now() - last_commit_ < settings_.commit_interval) return Status::success();
  last_commit_ = SteadyClock::now();

  if (done_gate_ && done_gate_->open() == policy_.done_markers()) {
    // Done markers are left out once every worker reads results as such (and written again if
    // one of an earlier release joins).
    policy_.set_done_markers(!done_gate_->open());
    spdlog::info("event=done_markers mode={} msg=\"{}\"", policy_.done_markers() ? "written" : "results",
                 policy_.done_markers() ? "a program that reads only worker-done is in the groups"
                                        : "every worker reads results as done markers: no marker is written");
  }
  const auto plan = plan_publication(consecutive_aborts_, completed_.size());
  if (plan.reduce_first && !completed_.front().reduced) {
    spdlog::warn("event=outcome_reduced job={} msg=\"its full outcome could not be published; recording it without output\"",
                 completed_.front().job_key());
    completed_.front().reduced = true;
  }
  std::vector<OutRecord> out;
  for (std::size_t index = 0; index < plan.outcomes; ++index) {
    auto records = policy_.publish(completed_[index]);
    std::move(records.begin(), records.end(), std::back_inserter(out));
  }
  // Mark finished in the trackers on a copy, so an aborted attempt can be retried as is.
  auto trackers = owned_;
  for (std::size_t index = 0; index < plan.outcomes; ++index)
    trackers[{completed_[index].source.topic, completed_[index].source.partition}].finished(completed_[index].source.offset);

  kafka::PartitionList offsets;
  for (const auto& [key, tracker] : trackers) {
    if (auto position = tracker.committable())
      offsets.items.push_back(RdKafka::TopicPartition::create(key.first, key.second, *position));
  }
  // Tenants' output topics: copies of their results, status and dead-letter records, in this transaction.
  if (settings_.tenants != nullptr) output_watch_.refresh(*settings_.tenants, *producer_, SteadyClock::now());
  auto copies = tenant_output_copies(out, settings_.names, output_watch_.tenants());
  out.insert(out.end(), std::make_move_iterator(copies.begin()), std::make_move_iterator(copies.end()));
  const auto result =
      kafka::commit_transaction(*producer_, *consumer_, out, offsets.items, {settings_.transaction_timeout, "worker"});
  if (result.outcome != kafka::TransactionOutcome::kCommitted) output_watch_.invalidate();
  counters_.count(result);
  switch (result.outcome) {
    case kafka::TransactionOutcome::kCommitted:
      break;
    case kafka::TransactionOutcome::kAborted:
      ++consecutive_aborts_;
      if (give_up_after(consecutive_aborts_))
        return make_error("{} transactions in a row aborted; last: {}", consecutive_aborts_, result.reason);
      return Status::success();  // completed_ stays; the next commit tries again (isolating, then reducing)
    case kafka::TransactionOutcome::kFenced:
    case kafka::TransactionOutcome::kUnknown:
      // A new producer resolves an open transaction; finished outcomes are kept until the
      // re-delivered records show what committed (done markers) and what did not.
      request_restart(fmt::format("transaction {}: {}", kafka::outcome_name(result.outcome), result.reason), true);
      return Status::success();
  }
  consecutive_aborts_ = 0;
  for (std::size_t index = 0; index < plan.outcomes; ++index) count_published(completed_[index]);
  owned_ = std::move(trackers);
  completed_.erase(completed_.begin(), completed_.begin() + static_cast<std::ptrdiff_t>(plan.outcomes));
  if (completed_.empty()) offsets_dirty_ = false;
  return Status::success();
}

void WorkerLoop::heartbeat(bool stopped) {
  if (!heartbeats_.due(stopped)) return;
  std::vector<std::string> running;
  for (const auto& [job_id, control] : active_) {
    if (control->started) running.push_back(job_id);
  }
  heartbeats_.send(running, succeeded_.value(), failed_.value(), stopped);
}

std::size_t WorkerLoop::prefetch() const {
  return settings_.prefetch > 0 ? settings_.prefetch : settings_.slots;
}

void WorkerLoop::apply_running_caps() {
  if (settings_.tenants == nullptr || settings_.tenants->generation() == caps_generation_) return;
  caps_generation_ = settings_.tenants->generation();
  std::map<std::string, std::size_t, std::less<>> caps;
  for (const auto& [name, tenant] : settings_.tenants->all()) {
    if (tenant.limits().max_running_jobs() > 0) caps.emplace(name, tenant.limits().max_running_jobs());
  }
  spdlog::info("event=running_caps tenants={}", caps.size());
  slots_.set_running_caps(std::move(caps));
}

bool WorkerLoop::update_fetching(bool pause_all) {
  const auto waiting = slots_.waiting();
  const auto held = slots_.held();
  std::size_t total_waiting = 0;
  for (const auto count : waiting) total_waiting += count;
  const std::size_t early = slots_.early();
  early_gauge_.set(static_cast<double>(early));
  const std::size_t running = in_flight_ - std::min(in_flight_, total_waiting + early);
  bool all_paused = true;
  for (const auto band : kAllBands) {
    const auto count = waiting[band_index(band)];
    const auto held_count = held[band_index(band)];
    waiting_gauges_[band_index(band)]->set(static_cast<double>(count));
    held_gauges_[band_index(band)]->set(static_cast<double>(held_count));
    // A full queue pauses its band only while every slot is busy: idle slots are about to take
    // from it (the consumer queues a round of jobs before it wakes them), and a pause drops what
    // the consumer has fetched for the band, to be fetched again. Jobs held by their tenant's
    // running cap do not fill it, up to a bound.
    const bool full = pause_all || (count - held_count >= prefetch() && running >= settings_.slots) ||
                      count >= prefetch() * settings_.max_held_factor;
    pauses_->set(*consumer_, band, full);
    all_paused = all_paused && full;
  }
  running_.set(static_cast<double>(running));
  return all_paused;
}

void WorkerLoop::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                              std::vector<RdKafka::TopicPartition*>& partitions) {
  if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
    ++epoch_;
    counters_.rebalances.inc();
    heartbeats_.set_member_id(consumer->memberid());  // sent with the next heartbeat, at once
    std::set<TopicPartitionKey> assigned;
    for (const auto* partition : partitions) {
      assigned.insert({partition->topic(), partition->partition()});
      owned_[{partition->topic(), partition->partition()}] = OffsetTracker();
    }
    // Jobs still running for partitions that went elsewhere run again on their new owner.
    for (auto& [record, control] : running_at_) {
      if (!assigned.contains({record.topic, record.partition})) {
        control->handed_back = true;
        control->request(StopReason::kShutdown);
      }
    }
    std::erase_if(orphan_finished_, [&](const auto& entry) {
      return !assigned.contains({entry.first.topic, entry.first.partition});
    });
    done_markers_.load(*consumer, partitions);
    (void)consumer->assign(partitions);
    spdlog::info("event=assigned count={}", partitions.size());
    return;
  }
  // Revoke: publish what finished while our offsets are still accepted, then let go. Running
  // jobs keep running: if the next assignment gives their partition back, they are adopted.
  collect_finished();
  if (auto status = commit(true); !status) {
    spdlog::warn("event=revoke_commit_failed error=\"{}\"", status.error().message());
    failure_ = status.error();
  }
  ++epoch_;
  // Waiting jobs never start here now: their records are re-delivered to the partition's next
  // owner (perhaps this worker again), which starts them afresh.
  hand_back_waiting();
  owned_.clear();
  orphan_completed();
  offsets_dirty_ = false;
  pauses_->resume_all(*consumer);
  (void)consumer->unassign();
  spdlog::info("event=revoked count={} still_running={}", partitions.size(), running_at_.size());
}

}  // namespace kcron::worker
