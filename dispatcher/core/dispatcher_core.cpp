#include "core/dispatcher_core.h"

#include <fmt/format.h>

#include <algorithm>

#include "kcron/codec.h"
#include "kcron/priority.h"
#include "kcron/routing.h"

namespace kcron::dispatcher {
namespace {

using Entry = v1::DispatcherEntry;

constexpr std::size_t kMaxJobIdBytes = 256;

std::string_view entry_state_name(Entry::State state) {
  switch (state) {
    case Entry::PENDING:
      return "PENDING";
    case Entry::FIRED:
      return "FIRED";
    case Entry::CANCELLED:
      return "CANCELLED";
    case Entry::CANCEL_MARKER:
      return "CANCEL_MARKER";
    case Entry::DEAD:
      return "DEAD";
    case Entry::SKIPPED:
      return "SKIPPED";
    default:
      return "UNKNOWN";
  }
}

// Milliseconds of a Timestamp or Duration as sent, clamped to +-2^53 ms (285,000 years) so that
// an absurd input stays absurd (beyond the horizon, before 1970) instead of overflowing.
constexpr std::int64_t kLimitMs = std::int64_t{1} << 53;
std::int64_t clamped_ms(std::int64_t seconds, std::int32_t nanos) {
  if (seconds > kLimitMs / 1000) return kLimitMs;
  if (seconds < -kLimitMs / 1000) return -kLimitMs;
  return seconds * 1000 + nanos / 1'000'000;
}

Status validate_job_id(std::string_view job_id) {
  if (job_id.empty()) return make_error("job id is empty");
  if (job_id.size() > kMaxJobIdBytes) return make_error("job id of {} bytes exceeds {} bytes", job_id.size(), kMaxJobIdBytes);
  for (const char c : job_id) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return make_error("job id contains a control character");
  }
  return Status::success();
}

std::string_view command_job_id(const v1::Command& command) {
  switch (command.command_case()) {
    case v1::Command::kSubmit:
      return command.submit().id();
    case v1::Command::kCancel:
      return command.cancel().job_id();
    case v1::Command::kUpdate:
      return command.update().job().id();
    case v1::Command::kReplay:
      return command.replay().job_id();
    case v1::Command::kRetry:
      return command.retry().job().id();
    case v1::Command::kCompletion:
      return command.completion().job_id();
    default:
      return {};
  }
}

}  // namespace

DispatcherCore::DispatcherCore(Settings settings, const Clock& clock) : settings_(std::move(settings)), clock_(clock) {}

std::optional<Slot> DispatcherCore::slot_of(const Entry& entry) {
  if (entry.state() == Entry::PENDING) return Slot{entry.due_ms(), entry.priority()};
  if (entry.expires_ms() > 0) return Slot{entry.expires_ms(), 0};
  return std::nullopt;
}

std::vector<std::int64_t> DispatcherCore::take_fire_lags() {
  std::vector<std::int64_t> lags;
  lags.swap(fire_lags_);
  return lags;
}

std::optional<Entry> DispatcherCore::load(PartitionState& state, std::string_view job_id) const {
  auto value = state.get(job_id);
  if (!value) return std::nullopt;
  Entry entry;
  if (!entry.ParseFromString(*value)) return std::nullopt;
  return entry;
}

void DispatcherCore::apply(PartitionState& state, const InputRecord& record, std::vector<OutRecord>& out) {
  // Key and headers count too: a forward copies them, and must fit a producer's message limit.
  const std::size_t record_bytes =
      record.key.size() + record.value.size() + record.content_type.size() + record.kcron_type.size();
  if (record_bytes > settings_.max_record_bytes) {
    reject(record, "", fmt::format("record of {} bytes exceeds the limit of {} bytes", record_bytes, settings_.max_record_bytes),
           out);
    return;
  }
  if (!record.key.empty()) {
    const auto owner = partition_for_key(record.key, settings_.jobs_partitions).value();
    if (owner != record.partition) {
      forward(record, owner, record.key, out);
      return;
    }
  }
  auto command = decode_command(record.value, record.content_type, record.kcron_type);
  if (!command) {
    reject(record, "", command.error().message(), out);
    return;
  }
  const std::string job_id(command_job_id(*command));
  if (auto valid = validate_job_id(job_id); !valid) {
    reject(record, "", valid.error().message(), out);
    return;
  }
  const auto routing_key = routing_key_for_job(job_id);
  if (record.key.empty()) {
    const auto owner = partition_for_key(routing_key, settings_.jobs_partitions).value();
    if (owner != record.partition) {
      forward(record, owner, routing_key, out);
      return;
    }
  } else if (record.key != routing_key) {
    reject(record, job_id,
           fmt::format("record key '{}' does not match job id '{}': its key must be '{}'", record.key, job_id, routing_key), out);
    return;
  }

  Context context{state, record, out};
  switch (command->command_case()) {
    case v1::Command::kSubmit:
      submit(context, std::move(*command->mutable_submit()));
      break;
    case v1::Command::kCancel:
      cancel(context, command->cancel());
      break;
    case v1::Command::kUpdate:
      update(context, std::move(*command->mutable_update()->mutable_job()));
      break;
    case v1::Command::kReplay:
      replay(context, command->replay());
      break;
    case v1::Command::kRetry:
      retry(context, command->retry());
      break;
    case v1::Command::kCompletion:
      completion(context, command->completion());
      break;
    default:
      reject(record, job_id, "record holds no command", out);
  }
}

Result<std::int64_t> DispatcherCore::resolve(v1::Job& job, std::int64_t record_timestamp_ms) const {
  if (job.queue().empty()) job.set_queue("default");
  if (!settings_.queues.contains(job.queue())) {
    return make_error("unknown queue '{}' (known: {})", job.queue(), fmt::join(settings_.queues, ", "));
  }
  if (!job.has_priority()) job.set_priority(kDefaultPriority);
  if (job.priority() > kMaxPriority) return make_error("priority {} is outside 0-9", job.priority());
  if (job.task_case() == v1::Job::TASK_NOT_SET) {
    return make_error("job has no task: set one of noop, sleep, exec, http, kafka, handler");
  }
  if (job.has_schedule_run()) {
    // Proto3 keeps unknown enum numbers: refuse them rather than read them as the default.
    if (!v1::MisfirePolicy_IsValid(job.schedule_run().misfire())) {
      return make_error("schedule_run: misfire policy {} is not a known value", static_cast<int>(job.schedule_run().misfire()));
    }
    if (!v1::OverlapPolicy_IsValid(job.schedule_run().overlap())) {
      return make_error("schedule_run: overlap policy {} is not a known value", static_cast<int>(job.schedule_run().overlap()));
    }
  }
  std::int64_t due_ms = std::clamp(record_timestamp_ms, -kLimitMs, kLimitMs);  // any int64 may arrive
  switch (job.when_case()) {
    case v1::Job::kRunAt:
      if (job.run_at().seconds() < 0 || job.run_at().nanos() < 0) return make_error("run_at is before 1970");
      due_ms = clamped_ms(job.run_at().seconds(), job.run_at().nanos());
      break;
    case v1::Job::kRunAtMs:
      if (job.run_at_ms() < 0) return make_error("run_at_ms {} is negative", job.run_at_ms());
      due_ms = job.run_at_ms();
      break;
    case v1::Job::kDelay: {
      if (job.delay().seconds() < 0 || job.delay().nanos() < 0) return make_error("delay is negative");
      due_ms += clamped_ms(job.delay().seconds(), job.delay().nanos());
      break;
    }
    default:
      break;
  }
  if (due_ms - now_ms() > settings_.max_horizon.count()) {
    return make_error("due instant {} ms is beyond the horizon of {} days", due_ms,
                      std::chrono::duration_cast<std::chrono::hours>(settings_.max_horizon).count() / 24);
  }
  job.set_run_at_ms(due_ms);  // delay is resolved once, here, on first acceptance
  return due_ms;
}

void DispatcherCore::submit(Context& context, v1::Job job) {
  const std::string job_id = job.id();
  auto existing = load(context.state, job_id);
  if (existing && existing->state() == Entry::CANCEL_MARKER && existing->expires_ms() > now_ms()) {
    Entry entry;
    entry.set_state(Entry::CANCELLED);
    entry.set_attempt(job.attempt());
    entry.set_sequence(existing->sequence() + 1);
    entry.set_expires_ms(now_ms() + settings_.dedupe_retention.count());
    store(context.state, context.record.partition, job_id, entry, context.out);
    emit_status(job_id, entry, v1::CANCELLED, "cancelled before it was submitted", context.out);
    ++counts_.cancelled;
    return;
  }
  if (existing && existing->state() != Entry::CANCEL_MARKER) {
    ++counts_.duplicates;  // a re-submit of a known id is idempotent
    return;
  }
  auto due = resolve(job, context.record.timestamp_ms);
  if (!due) {
    reject(context.record, job_id, due.error().message(), context.out);
    Entry rejected;
    emit_status(job_id, rejected, v1::REJECTED, due.error().message(), context.out);
    return;
  }
  Entry entry;
  entry.set_state(Entry::PENDING);
  entry.set_due_ms(*due);
  entry.set_priority(job.priority());
  entry.set_attempt(job.attempt());
  entry.set_sequence(existing ? existing->sequence() + 1 : 1);
  *entry.mutable_job() = std::move(job);
  ++counts_.accepted;
  if (*due <= now_ms()) {
    track_accepted_run(context.state, context.record.partition, entry.job(), *due, context.out);
    release(context.state, context.record.partition, entry, context.out);  // never enters the buckets
    return;
  }
  track_accepted_run(context.state, context.record.partition, entry.job(), *due, context.out);
  store(context.state, context.record.partition, job_id, entry, context.out);
  emit_status(job_id, entry, v1::PENDING, "", context.out);
}

void DispatcherCore::cancel(Context& context, const v1::Cancel& cancel) {
  const std::string& job_id = cancel.job_id();
  auto existing = load(context.state, job_id);
  if (!existing) {
    Entry marker;
    marker.set_state(Entry::CANCEL_MARKER);
    marker.set_sequence(1);
    marker.set_expires_ms(now_ms() + settings_.cancel_marker_ttl.count());
    store(context.state, context.record.partition, job_id, marker, context.out);
    return;
  }
  if (!cancel.tenant().empty() && existing->has_job() && !existing->job().tenant().empty() &&
      existing->job().tenant() != cancel.tenant()) {
    reject(context.record, job_id,
           fmt::format("cancel of job '{}' from tenant '{}': the job belongs to another tenant", job_id, cancel.tenant()),
           context.out);
    return;
  }
  switch (existing->state()) {
    case Entry::PENDING: {
      Entry entry;
      entry.set_state(Entry::CANCELLED);
      entry.set_attempt(existing->attempt());
      entry.set_sequence(existing->sequence() + 1);
      entry.set_expires_ms(now_ms() + settings_.dedupe_retention.count());
      store(context.state, context.record.partition, job_id, entry, context.out);
      emit_status(job_id, entry, v1::CANCELLED, cancel.reason().empty() ? "cancelled" : cancel.reason(), context.out);
      ++counts_.cancelled;
      // A pending retry of a schedule's run still holds the schedule's overlap slot: free it.
      end_schedule_run(context.state, context.record.partition, job_id, context.out);
      return;
    }
    case Entry::FIRED: {
      // Already on an exec topic: tell the workers (kcron.control is read by every worker), and
      // remember it, so that a retry the running attempt sends (it may have failed before the
      // cancel reached it) is cancelled here instead of re-armed.
      if (!existing->cancel_requested()) {
        existing->set_cancel_requested(true);
        existing->set_sequence(existing->sequence() + 1);
        store(context.state, context.record.partition, job_id, *existing, context.out);
      }
      v1::Command command;
      *command.mutable_cancel() = cancel;
      context.out.push_back({settings_.names.control(), 0, job_id, encode(command), false, typed_headers("cancel", job_id)});
      return;
    }
    case Entry::CANCEL_MARKER:
      existing->set_expires_ms(now_ms() + settings_.cancel_marker_ttl.count());
      store(context.state, context.record.partition, job_id, *existing, context.out);
      return;
    default:
      ++counts_.duplicates;
      return;
  }
}

void DispatcherCore::update(Context& context, v1::Job job) {
  const std::string job_id = job.id();
  auto existing = load(context.state, job_id);
  if (!existing || existing->state() != Entry::PENDING) {
    reject(context.record, job_id,
           fmt::format("cannot update job '{}': {}", job_id,
                       existing ? fmt::format("it is {}, only a pending job can be updated", entry_state_name(existing->state()))
                                : std::string("no such pending job")),
           context.out);
    return;
  }
  job.set_attempt(existing->attempt());
  auto due = resolve(job, context.record.timestamp_ms);
  if (!due) {
    reject(context.record, job_id, due.error().message(), context.out);
    return;
  }
  Entry entry;
  entry.set_state(Entry::PENDING);
  entry.set_due_ms(*due);
  entry.set_priority(job.priority());
  entry.set_attempt(existing->attempt());
  entry.set_sequence(existing->sequence() + 1);
  *entry.mutable_job() = std::move(job);
  if (*due <= now_ms()) {
    release(context.state, context.record.partition, entry, context.out);
    return;
  }
  store(context.state, context.record.partition, job_id, entry, context.out);
  emit_status(job_id, entry, v1::PENDING, "updated", context.out);
}

void DispatcherCore::replay(Context& context, const v1::Replay& replay) {
  const std::string& job_id = replay.job_id();
  auto existing = load(context.state, job_id);
  if (!existing || existing->state() != Entry::DEAD || !replay.has_job() || replay.job().id() != job_id) {
    reject(context.record, job_id,
           fmt::format("cannot replay job '{}': only a DEAD job can be replayed, with its job attached", job_id), context.out);
    return;
  }
  v1::Job job = replay.job();
  job.set_attempt(existing->attempt() + 1);
  job.clear_when();
  auto due = resolve(job, now_ms());
  if (!due) {
    reject(context.record, job_id, due.error().message(), context.out);
    return;
  }
  Entry entry;
  entry.set_state(Entry::PENDING);
  entry.set_due_ms(*due);
  entry.set_priority(job.priority());
  entry.set_attempt(job.attempt());
  entry.set_sequence(existing->sequence() + 1);
  *entry.mutable_job() = std::move(job);
  fire(context.state, context.record.partition, entry, context.out);
}

void DispatcherCore::retry(Context& context, const v1::Retry& retry) {
  const std::string& job_id = retry.job().id();
  auto existing = load(context.state, job_id);
  if (existing && (existing->attempt() >= retry.job().attempt() || existing->state() == Entry::CANCELLED)) {
    ++counts_.duplicates;  // an older or repeated retry, or a cancelled job
    return;
  }
  if (existing && existing->state() == Entry::FIRED && existing->cancel_requested()) {
    Entry entry;
    entry.set_state(Entry::CANCELLED);
    entry.set_attempt(retry.job().attempt());
    entry.set_sequence(existing->sequence() + 1);
    entry.set_due_ms(retry.due_ms());
    entry.set_expires_ms(now_ms() + settings_.dedupe_retention.count());
    *entry.mutable_job() = retry.job();  // for the status record (tenant); dropped again below
    emit_status(job_id, entry, v1::CANCELLED,
                fmt::format("cancelled while attempt {} ran; its retry is dropped", existing->attempt()), context.out);
    entry.clear_job();
    store(context.state, context.record.partition, job_id, entry, context.out);
    ++counts_.cancelled;
    end_schedule_run(context.state, context.record.partition, job_id, context.out);  // frees its overlap slot
    return;
  }
  v1::Job job = retry.job();
  job.set_run_at_ms(retry.due_ms());
  auto due = resolve(job, context.record.timestamp_ms);
  if (!due) {
    reject(context.record, job_id, due.error().message(), context.out);
    return;
  }
  Entry entry;
  entry.set_state(Entry::PENDING);
  entry.set_due_ms(*due);
  entry.set_priority(job.priority());
  entry.set_attempt(job.attempt());
  entry.set_sequence(existing ? existing->sequence() + 1 : 1);
  *entry.mutable_job() = std::move(job);
  if (*due <= now_ms()) {
    release(context.state, context.record.partition, entry, context.out);
    return;
  }
  store(context.state, context.record.partition, job_id, entry, context.out);
  emit_status(job_id, entry, v1::RETRYING, retry.error(), context.out);
}

void DispatcherCore::end_schedule_run(PartitionState& state, std::int32_t partition, const std::string& job_id,
                                      std::vector<OutRecord>& out) {
  const auto schedule_id = routing_key_for_job(job_id);
  if (schedule_id == job_id) return;  // not a schedule run
  auto track = load_track(state, schedule_id);
  if (track && track->schedule().running_job_id() == job_id) {
    track->mutable_schedule()->clear_running_job_id();
    store_track(state, partition, *track, out);
  }
}

void DispatcherCore::completion(Context& context, const v1::Completion& completion) {
  end_schedule_run(context.state, context.record.partition, completion.job_id(), context.out);
  auto existing = load(context.state, completion.job_id());
  if (!existing || existing->state() != Entry::FIRED || existing->attempt() != completion.attempt()) return;
  if (completion.state() == v1::DEAD) {
    existing->set_state(Entry::DEAD);
    existing->set_sequence(existing->sequence() + 1);
    store(context.state, context.record.partition, completion.job_id(), *existing, context.out);
  }
}

std::size_t DispatcherCore::fire_due(PartitionState& state, std::int32_t partition, std::size_t limit,
                                     std::vector<OutRecord>& out) {
  const auto due = state.due(now_ms(), limit);
  for (const auto& slot : due) {
    auto entry = load(state, slot.job_id);
    if (entry && entry->state() == Entry::PENDING) {
      release(state, partition, *entry, out);
    } else {
      forget(state, partition, slot.job_id, out);  // an expired marker or retained id
      ++counts_.expired;
    }
  }
  return due.size();
}

void DispatcherCore::reject_unpublishable(const InputRecord& record, std::string_view reason, std::vector<OutRecord>& out) {
  reject(record, record.key.substr(0, std::min(record.key.size(), kMaxJobIdBytes)),
         fmt::format("its outputs could not be published: {}", reason), out);
  ++counts_.unpublishable;
}

bool DispatcherCore::fail_due(PartitionState& state, std::int32_t partition, std::string_view wanted, std::string_view reason,
                              std::vector<OutRecord>& out) {
  const std::string job_id(wanted);
  auto entry = load(state, job_id);
  if (!entry || entry->state() != Entry::PENDING || entry->due_ms() > now_ms()) return false;
  const std::string why = fmt::format("its execution record could not be published: {}", reason);
  v1::DeadLetter letter;
  letter.set_state(v1::DEAD);
  letter.set_reason(why);
  const std::string job_bytes = encode(entry->job());
  if (job_bytes.size() <= settings_.max_dead_letter_copy) {
    *letter.mutable_job() = entry->job();
  } else {
    letter.set_original(job_bytes.substr(0, settings_.max_dead_letter_copy));
    letter.set_truncated(true);
  }
  letter.set_source_topic(settings_.names.jobs());
  letter.set_source_partition(partition);
  letter.set_source_offset(-1);
  letter.set_at_ms(now_ms());
  letter.set_component(settings_.component);
  auto headers = typed_headers("dead-letter", job_id);
  headers.emplace_back(header::kStatus, "DEAD");
  out.push_back({settings_.names.dead_letters(), -1, job_id, encode(letter), false, std::move(headers)});

  entry->set_state(Entry::DEAD);
  entry->set_sequence(entry->sequence() + 1);
  entry->set_expires_ms(now_ms() + settings_.dedupe_retention.count());  // a re-submit stays a duplicate
  const std::string tenant = entry->job().tenant();
  entry->clear_job();
  store(state, partition, job_id, *entry, out);
  Entry status_view = *entry;
  status_view.mutable_job()->set_tenant(tenant);
  emit_status(job_id, status_view, v1::DEAD, why, out);
  ++counts_.unpublishable;
  return true;
}

std::string DispatcherCore::track_key(std::string_view schedule_id) {
  std::string key = "\x01schedule/";
  key += schedule_id;
  return key;
}

std::optional<Entry> DispatcherCore::load_track(PartitionState& state, std::string_view schedule_id) const {
  return load(state, track_key(schedule_id));
}

void DispatcherCore::store_track(PartitionState& state, std::int32_t partition, Entry& track, std::vector<OutRecord>& out) {
  track.set_state(Entry::SCHEDULE);
  track.set_sequence(track.sequence() + 1);
  store(state, partition, track_key(track.schedule().schedule_id()), track, out);
}

void DispatcherCore::track_accepted_run(PartitionState& state, std::int32_t partition, const v1::Job& job, std::int64_t due_ms,
                                        std::vector<OutRecord>& out) {
  if (!job.has_schedule_run() || job.schedule_run().schedule_id().empty()) return;
  const auto& schedule_id = job.schedule_run().schedule_id();
  auto track = load_track(state, schedule_id).value_or(Entry());
  if (track.has_schedule() && track.schedule().max_due_ms() >= due_ms) return;
  track.mutable_schedule()->set_schedule_id(schedule_id);
  track.mutable_schedule()->set_max_due_ms(due_ms);
  store_track(state, partition, track, out);
}

void DispatcherCore::release(PartitionState& state, std::int32_t partition, Entry& entry, std::vector<OutRecord>& out) {
  if (entry.job().has_schedule_run() && !entry.job().schedule_run().schedule_id().empty() &&
      !admit_schedule_run(state, partition, entry, out)) {
    return;
  }
  fire(state, partition, entry, out);
}

bool DispatcherCore::admit_schedule_run(PartitionState& state, std::int32_t partition, Entry& entry,
                                        std::vector<OutRecord>& out) {
  const auto& run = entry.job().schedule_run();
  const std::string job_id = entry.job().id();
  auto track = load_track(state, run.schedule_id()).value_or(Entry());
  track.mutable_schedule()->set_schedule_id(run.schedule_id());
  const std::int64_t now = now_ms();
  const std::int64_t lateness = now - entry.due_ms();
  if (lateness > settings_.misfire_threshold.count()) {
    const double late_seconds = static_cast<double>(lateness) / 1000.0;
    switch (run.misfire()) {
      case v1::SKIP:
        skip(state, partition, entry, fmt::format("misfired: {:.1f} s late (policy skip)", late_seconds), out);
        return false;
      case v1::FIRE_ALL: {
        const std::int64_t window_ms = clamped_ms(run.catchup_window().seconds(), run.catchup_window().nanos());
        if (window_ms > 0 && lateness > window_ms) {
          skip(state, partition, entry,
               fmt::format("misfired: {:.1f} s late, beyond the catch-up window of {} ms (policy fire_all)", late_seconds,
                           window_ms),
               out);
          return false;
        }
        break;
      }
      default: {  // FIRE_ONCE: the schedule's late runs collapse into its latest due one
        const std::int64_t latest = track.schedule().max_due_ms();
        if (latest > entry.due_ms() && latest <= now) {
          skip(state, partition, entry,
               fmt::format("misfired: {:.1f} s late; collapsed into the run due at {} ms (policy fire_once)", late_seconds,
                           latest),
               out);
          return false;
        }
        break;
      }
    }
  }
  const std::string running = track.schedule().running_job_id();
  if (!running.empty() && running != job_id) {
    if (run.overlap() == v1::FORBID) {
      skip(state, partition, entry, fmt::format("previous run '{}' is still running (overlap forbid)", running), out);
      return false;
    }
    if (run.overlap() == v1::REPLACE) {
      // As a cancel does: the replaced run's retry, if it failed meanwhile, must not come back.
      if (auto replaced = load(state, running); replaced && replaced->state() == Entry::FIRED && !replaced->cancel_requested()) {
        replaced->set_cancel_requested(true);
        replaced->set_sequence(replaced->sequence() + 1);
        this->store(state, partition, running, *replaced, out);
      }
      v1::Command command;
      command.mutable_cancel()->set_job_id(running);
      command.mutable_cancel()->set_reason(fmt::format("replaced by '{}' (overlap replace)", job_id));
      out.push_back({settings_.names.control(), 0, running, encode(command), false, typed_headers("cancel", running)});
    }
  }
  track.mutable_schedule()->set_running_job_id(job_id);
  store_track(state, partition, track, out);
  return true;
}

void DispatcherCore::skip(PartitionState& state, std::int32_t partition, Entry& entry, const std::string& reason,
                          std::vector<OutRecord>& out) {
  const std::string job_id = entry.job().id();
  const std::string tenant = entry.job().tenant();
  entry.set_state(Entry::SKIPPED);
  entry.set_sequence(entry.sequence() + 1);
  entry.set_expires_ms(now_ms() + settings_.dedupe_retention.count());
  entry.clear_job();
  store(state, partition, job_id, entry, out);
  Entry status_view = entry;
  status_view.mutable_job()->set_tenant(tenant);
  emit_status(job_id, status_view, v1::SKIPPED, reason, out);
  ++counts_.skipped;
}

void DispatcherCore::fire(PartitionState& state, std::int32_t partition, Entry& entry, std::vector<OutRecord>& out) {
  const std::string job_id = entry.job().id();
  const auto fired_ms = now_ms();
  const std::string tenant = entry.job().tenant();
  std::string topic = exec_topic(settings_.names.prefix, entry.job().queue(), band_for_priority(entry.priority()));
  v1::Execution execution;
  // The exec record carries the job; the changelog keeps only what dedupe needs.
  execution.mutable_job()->Swap(entry.mutable_job());
  entry.clear_job();
  execution.set_due_ms(entry.due_ms());
  execution.set_fired_ms(fired_ms);
  auto headers = typed_headers("execution", job_id);
  headers.emplace_back(header::kStatus, state_name(v1::QUEUED));
  out.push_back({std::move(topic), -1, job_id, encode(execution), false, std::move(headers)});
  fire_lags_.push_back(fired_ms - entry.due_ms());
  ++counts_.fired;

  entry.set_state(Entry::FIRED);
  entry.set_sequence(entry.sequence() + 1);
  entry.set_expires_ms(fired_ms + settings_.dedupe_retention.count());
  store(state, partition, job_id, entry, out);
  v1::DispatcherEntry status_view = entry;
  status_view.mutable_job()->set_tenant(tenant);
  emit_status(job_id, status_view, v1::QUEUED, "", out);
}

void DispatcherCore::store(PartitionState& state, std::int32_t partition, const std::string& job_id, const Entry& entry,
                           std::vector<OutRecord>& out) {
  std::string value = encode(entry);
  state.put(job_id, value, slot_of(entry));
  out.push_back({settings_.names.dispatcher_changelog(), partition, job_id, std::move(value), false, {}});
}

void DispatcherCore::forget(PartitionState& state, std::int32_t partition, const std::string& job_id,
                            std::vector<OutRecord>& out) {
  state.erase(job_id);
  out.push_back({settings_.names.dispatcher_changelog(), partition, job_id, "", true, {}});
}

void DispatcherCore::restore(PartitionState& state, std::string_view job_id, std::string_view value, bool tombstone) {
  Entry entry;
  if (tombstone || !entry.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    state.erase(job_id);
    return;
  }
  state.put(job_id, value, slot_of(entry));
}

void DispatcherCore::emit_status(const std::string& job_id, const Entry& entry, v1::JobState state, std::string_view reason,
                                 std::vector<OutRecord>& out) {
  v1::StatusRecord status;
  status.set_job_id(job_id);
  status.set_state(state);
  status.set_attempt(entry.attempt());
  status.set_sequence(entry.sequence());
  status.set_at_ms(now_ms());
  status.set_reason(std::string(reason));
  status.set_component(settings_.component);
  status.set_due_ms(entry.due_ms());
  if (entry.has_job()) status.set_tenant(entry.job().tenant());
  auto headers = typed_headers("status", job_id);
  headers.emplace_back(header::kStatus, state_name(state));
  std::string value = encode(status);
  if (settings_.emit_events) out.push_back({settings_.names.events(), -1, job_id, value, false, headers});
  out.push_back({settings_.names.status(), -1, job_id, std::move(value), false, std::move(headers)});
}

void DispatcherCore::reject(const InputRecord& record, std::string_view job_id, std::string_view reason,
                            std::vector<OutRecord>& out) {
  v1::DeadLetter letter;
  letter.set_state(v1::REJECTED);
  letter.set_reason(std::string(reason));
  const auto kept = std::min(record.value.size(), settings_.max_dead_letter_copy);
  letter.set_original(std::string(record.value.substr(0, kept)));
  letter.set_truncated(kept < record.value.size());
  letter.set_source_topic(settings_.names.jobs());
  letter.set_source_partition(record.partition);
  letter.set_source_offset(record.offset);
  letter.set_at_ms(now_ms());
  letter.set_component(settings_.component);
  // A poison key may be huge: a dead letter is keyed by at most a job id's length of it.
  const std::string key(job_id.empty() ? record.key.substr(0, kMaxJobIdBytes) : job_id);
  auto headers = typed_headers("dead-letter", key);
  headers.emplace_back(header::kStatus, "REJECTED");
  out.push_back({settings_.names.dead_letters(), -1, key, encode(letter), false, std::move(headers)});
  ++counts_.rejected;
}

void DispatcherCore::forward(const InputRecord& record, std::int32_t partition, std::string_view key,
                             std::vector<OutRecord>& out) {
  std::vector<std::pair<std::string, std::string>> headers = {{"kcron-forwarded-from", std::to_string(record.partition)}};
  if (!record.content_type.empty()) headers.emplace_back(header::kContentType, record.content_type);
  if (!record.kcron_type.empty()) headers.emplace_back(header::kType, record.kcron_type);
  // The original timestamp travels along, so a delay resolves from the first submit.
  out.push_back({settings_.names.jobs(), partition, std::string(key), std::string(record.value), false, std::move(headers),
                 record.timestamp_ms});
  ++counts_.forwarded;
}

}  // namespace kcron::dispatcher
