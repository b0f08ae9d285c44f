#include "core/dispatcher_core.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "kcron/codec.h"
#include "kcron/priority.h"
#include "kcron/records.h"
#include "kcron/routing.h"

namespace kcron::dispatcher {
namespace {

using Entry = v1::DispatcherEntry;

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
    case Entry::WAITING:
      return "WAITING";
    case Entry::SUCCEEDED:
      return "SUCCEEDED";
    case Entry::UPSTREAM_FAILED:
      return "UPSTREAM_FAILED";
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

// The tenant a command names (empty: the default tenant). Until tenants arrive through their own
// input topics, it is the body's field (docs/tenancy.md).
std::string_view command_tenant(const v1::Command& command) {
  switch (command.command_case()) {
    case v1::Command::kSubmit:
      return command.submit().tenant();
    case v1::Command::kCancel:
      return command.cancel().tenant();
    case v1::Command::kUpdate:
      return command.update().job().tenant();
    case v1::Command::kReplay:
      return command.replay().has_job() ? command.replay().job().tenant() : command.replay().tenant();
    case v1::Command::kRetry:
      return command.retry().job().tenant();
    case v1::Command::kCompletion:
      return command.completion().tenant();
    case v1::Command::kFlow:
      return command.flow().tenant();
    default:
      return {};
  }
}

ScopedName job_of(const v1::Job& job) {
  return scoped(job.tenant(), job.id());
}

// An entry stored under a key of `job`'s tenant that another tenant's job holds: only a job a
// release before tenants stored under its bare id can (its body named a tenant). A command never
// acts on it, and says "no such job", as for any id its tenant does not have.
bool held_by_other_tenant(const Entry& entry, const ScopedName& job) {
  return entry.has_job() && tenant_field(entry.job().tenant()) != tenant_field(job.tenant);
}

// The state of a stored entry. Protobuf writes fields in number order, so `state` (field 1, a
// varint) leads whenever it is set: read it there, and parse the whole entry only otherwise.
Entry::State stored_state(std::string_view bytes) {
  constexpr char kStateTag = 0x08;
  if (bytes.size() >= 2 && bytes[0] == kStateTag && (static_cast<unsigned char>(bytes[1]) & 0x80U) == 0) {
    return static_cast<Entry::State>(bytes[1]);
  }
  Entry entry;
  if (!entry.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return Entry::STATE_UNSPECIFIED;
  return entry.state();
}

// Keys of jobs (and cancel markers, retained ids); a track or a usage entry starts with \x01.
bool is_job_key(std::string_view key) {
  return !key.empty() && key.front() != '\x01';
}

constexpr std::int64_t kMilliTokens = 1000;
constexpr std::size_t kMaxUpsertHints = 4096;
constexpr std::size_t kRecountChunk = 10000;
constexpr std::string_view kUsagePrefix = "\x01tenant/";

// A job entry's changelog record says that its writer keeps the tenants' pending counts: a record
// without it (a release before tenant limits wrote it) makes the next owner count again.
std::vector<std::pair<std::string, std::string>> counted_headers(std::string_view key) {
  if (!is_job_key(key)) return {};
  return {{std::string(kCountedHeader), "1"}};
}

// A job (attempt as set in it) waiting in the delay buckets for `due`.

}  // namespace

Entry DispatcherCore::pending_entry(v1::Job job, Instant due, std::uint64_t sequence) {
  Entry entry;
  entry.set_state(Entry::PENDING);
  entry.set_due_ms(to_epoch_ms(due));
  entry.set_priority(job.priority());
  entry.set_attempt(job.attempt());
  entry.set_sequence(sequence);
  *entry.mutable_job() = std::move(job);
  return entry;
}

std::string_view limit_name(TenantLimit limit) {
  switch (limit) {
    case TenantLimit::kPendingJobs:
      return "pending_jobs";
    case TenantLimit::kSubmissionRate:
      return "submission_rate";
    case TenantLimit::kQueue:
      return "queue";
  }
  return "unknown";
}

DispatcherCore::DispatcherCore(Settings settings, const Clock& clock, const TenantRegistry* tenants)
    : settings_(std::move(settings)), clock_(clock), tenants_(tenants) {}

std::optional<Slot> DispatcherCore::slot_of(const Entry& entry) {
  if (entry.state() == Entry::PENDING) return Slot{instant_from_ms(entry.due_ms()), entry.priority()};
  if (entry.expires_ms() > 0) return Slot{instant_from_ms(entry.expires_ms()), 0};
  return std::nullopt;
}

std::vector<Millis> DispatcherCore::take_fire_lags() {
  std::vector<Millis> lags;
  lags.swap(fire_lags_);
  return lags;
}

Result<DispatcherCore::MaybeEntry> DispatcherCore::load(PartitionState& state, std::string_view key) {
  auto value = state.get(key);
  if (!value) return value.error();
  if (!*value) return MaybeEntry();
  Entry entry;
  if (!entry.ParseFromString(**value)) {
    return make_error("stored entry {:?} ({} bytes) does not parse: the state is corrupt", key, (*value)->size());
  }
  return MaybeEntry(std::move(entry));
}

Status DispatcherCore::apply(PartitionState& state, const InputRecord& record, std::vector<OutRecord>& out) {
  action_ = record.kcron_type == "purge-tenant" ? "purge_tenant" : "unknown";
  // Key and headers count too: a forward copies them, and must fit a producer's message limit.
  const std::size_t record_bytes =
      record.key.size() + record.value.size() + record.content_type.size() + record.kcron_type.size();
  if (record_bytes > settings_.max_record_bytes) {
    reject(record, nullptr,
           fmt::format("record of {} bytes exceeds the limit of {} bytes", record_bytes, settings_.max_record_bytes), out);
    return Status::success();
  }
  if (record.kcron_type == "purge-tenant") {  // acts where it lands: one record per partition
    auto command = decode_command(record.value, record.content_type, record.kcron_type);
    if (!command || !command->has_purge_tenant()) {
      reject(record, nullptr, command ? "a purge-tenant record holds no PurgeTenant" : command.error().message(), out);
      return Status::success();
    }
    if (auto purged = purge(state, record, command->purge_tenant(), out); !purged) {
      return purged.error().within(fmt::format("jobs record {}@{}", record.partition, record.offset));
    }
    return Status::success();
  }
  if (!record.key.empty()) {
    const auto owner = partition_for_key(record.key, settings_.jobs_partitions);
    if (owner != record.partition) {
      forward(record, owner, record.key, out);
      return Status::success();
    }
  }
  auto command = decode_command(record.value, record.content_type, record.kcron_type);
  if (!command) {
    reject(record, nullptr, command.error().message(), out);
    return Status::success();
  }
  if (command->has_batch()) {
    if (auto split = apply_batch(state, record, std::move(*command->mutable_batch()), out); !split) {
      return split.error().within(fmt::format("jobs record {}@{}", record.partition, record.offset));
    }
    return Status::success();
  }
  action_ = command_action(*command);
  const std::string job_id(command_job_id(*command));
  if (auto valid = validate_job_id(job_id); !valid) {
    reject(record, nullptr, valid.error().message(), out);
    return Status::success();
  }
  const auto tenant = tenant_or_default(command_tenant(*command));
  if (auto valid = is_default_tenant(tenant) ? validate_default_tenant_id(job_id) : validate_tenant_name(tenant); !valid) {
    reject(record, nullptr, valid.error().message(), out);
    return Status::success();
  }
  const ScopedName job = scoped(tenant, job_id);
  const auto routing_key = scoped_routing_key(tenant, job_id);
  // Keyless, or keyed as a release before tenants keyed a tenant's record (the bare routing key,
  // the tenant only in the body: an old CLI, cron-producer or worker during a rolling upgrade):
  // it belongs on its scoped key's partition, under that key.
  const bool legacy_key = !is_default_tenant(tenant) && record.key == routing_key_for_job(job_id);
  if (record.key.empty() || legacy_key) {
    const auto owner = partition_for_key(routing_key, settings_.jobs_partitions);
    if (owner != record.partition || legacy_key) {
      forward(record, owner, routing_key, out);
      return Status::success();
    }
  } else if (record.key != routing_key) {
    reject(record, &job,
           fmt::format("record key '{}' does not match job id '{}'{}: its key must be '{}'", record.key, job_id,
                       is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant), routing_key),
           out);
    return Status::success();
  }

  Context context{state, record, out, job};
  Status decided;
  switch (command->command_case()) {
    case v1::Command::kSubmit:
      decided = submit(context, std::move(*command->mutable_submit()));
      break;
    case v1::Command::kCancel:
      decided = cancel(context, command->cancel());
      break;
    case v1::Command::kUpdate:
      decided = update(context, std::move(*command->mutable_update()->mutable_job()));
      break;
    case v1::Command::kReplay:
      decided = replay(context, command->replay());
      break;
    case v1::Command::kRetry:
      decided = retry(context, command->retry());
      break;
    case v1::Command::kCompletion:
      decided = completion(context, command->completion());
      break;
    case v1::Command::kFlow:
      decided = submit_flow(context, std::move(*command->mutable_flow()));
      break;
    default:
      reject(record, &job, "record holds no command", out);
  }
  if (!decided) return decided.error().within(fmt::format("jobs record {}@{}", record.partition, record.offset));
  return Status::success();
}

Result<Instant> DispatcherCore::resolve(v1::Job& job, Instant record_timestamp) const {
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
  // Any int64 may arrive as a timestamp: clamped, as every instant sent, to +-2^53 ms.
  std::int64_t due_ms = std::clamp(to_epoch_ms(record_timestamp), -kLimitMs, kLimitMs);
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
  const Instant due = instant_from_ms(due_ms);
  if (due - clock_.now() > settings_.max_horizon) {
    return make_error("due instant {} ms is beyond the horizon of {} days", due_ms,
                      std::chrono::duration_cast<std::chrono::hours>(settings_.max_horizon).count() / 24);
  }
  job.set_run_at_ms(due_ms);  // delay is resolved once, here, on first acceptance
  return due;
}

Status DispatcherCore::submit(Context& context, v1::Job job) {
  const ScopedName& ref = context.job;
  if (auto plain = flow::validate_plain_job_id(ref.id); !plain) {
    reject(context.record, &ref, plain.error().message(), context.out);
    emit_status(ref, Entry(), v1::REJECTED, plain.error().message(), context.out);
    return Status::success();
  }
  auto existing = load(context.state, ref.key);
  if (!existing) return existing.error();
  const Partition partition = context.record.partition;
  const auto now = clock_.now();
  if (*existing && (*existing)->state() == Entry::CANCEL_MARKER && instant_from_ms((*existing)->expires_ms()) > now) {
    Entry entry;
    entry.set_state(Entry::CANCELLED);
    entry.set_attempt(job.attempt());
    entry.set_sequence((*existing)->sequence() + 1);
    entry.set_expires_ms(ms_from_now(settings_.dedupe_retention));
    if (auto stored = store(context.state, partition, ref.key, entry, context.out); !stored) return stored;
    emit_status(ref, entry, v1::CANCELLED, "cancelled before it was submitted", context.out);
    audit(context.record, &ref, "CANCELLED", "cancelled before it was submitted", context.out);
    ++counts_.cancelled;
    return Status::success();
  }
  if (*existing && (*existing)->state() != Entry::CANCEL_MARKER) {
    ++counts_.duplicates;  // a re-submit of a known id is idempotent
    return Status::success();
  }
  job.set_tenant(std::string(tenant_field(ref.tenant)));
  job.clear_flow();  // only the dispatcher makes a flow's node
  auto due = resolve(job, context.record.timestamp);
  if (!due) {
    reject(context.record, &ref, due.error().message(), context.out);
    emit_status(ref, Entry(), v1::REJECTED, due.error().message(), context.out);
    return Status::success();
  }
  Result<std::optional<std::string>> refused = std::optional<std::string>();
  if (!is_default_tenant(ref.tenant)) {
    auto purging = context.state.get(purging_key(ref.tenant));
    if (!purging) return purging.error();
    if (*purging) *refused = fmt::format("tenant '{}' is being deleted: submit again once its deletion has ended", ref.tenant);
  }
  if (!*refused) refused = check_limits(context.state, partition, ref, job, *due, context.record.timestamp, context.out);
  if (!refused) return refused.error();
  if (*refused) {
    reject(context.record, &ref, **refused, context.out);
    emit_status(ref, Entry(), v1::REJECTED, **refused, context.out);
    return Status::success();
  }
  Entry entry = pending_entry(std::move(job), *due, *existing ? (*existing)->sequence() + 1 : 1);
  ++counts_.accepted;
  audit(context.record, &ref, "ACCEPTED", "", context.out);
  if (auto tracked = track_accepted_run(context.state, partition, entry.job(), *due, context.out); !tracked) return tracked;
  if (*due <= now) return release(context.state, partition, ref.key, entry, context.out);  // never enters the buckets
  if (auto stored = store(context.state, partition, ref.key, entry, context.out); !stored) return stored;
  emit_status(ref, entry, v1::PENDING, "", context.out);
  return Status::success();
}

Status DispatcherCore::cancel(Context& context, const v1::Cancel& cancel) {
  const ScopedName& ref = context.job;
  const Partition partition = context.record.partition;
  if (cancel.flow()) {
    return cancel_flow(context.state, partition, ref, cancel.reason().empty() ? "the flow was cancelled" : cancel.reason(),
                       &context.record, context.out);
  }
  auto loaded = load(context.state, ref.key);
  if (!loaded) return loaded.error();
  auto& existing = *loaded;
  if (existing && held_by_other_tenant(*existing, ref)) {
    reject(context.record, &ref, fmt::format("cannot cancel job '{}': no such job", ref.id), context.out);
    return Status::success();
  }
  if (!existing) {
    // A cancel before its submit: a marker, in this tenant only, cancels the submit when it comes.
    Entry marker;
    marker.set_state(Entry::CANCEL_MARKER);
    marker.set_sequence(1);
    marker.set_expires_ms(ms_from_now(settings_.cancel_marker_ttl));
    audit(context.record, &ref, "CANCEL_MARKED", "no such job yet: its submit will be cancelled", context.out);
    return store(context.state, partition, ref.key, marker, context.out);
  }
  if (is_flow_start(*existing) && existing->state() == Entry::PENDING) {  // a flow that has not started: the whole flow
    return cancel_flow(context.state, partition, ref, cancel.reason().empty() ? "the flow was cancelled" : cancel.reason(),
                       &context.record, context.out);
  }
  if (existing->has_node() && (existing->state() == Entry::WAITING || existing->state() == Entry::PENDING)) {
    // A flow's node that has not fired: it ends CANCELLED, and its children follow their triggers.
    const auto reason = cancel.reason().empty() ? std::string("cancelled") : cancel.reason();
    if (auto ended = end_unfired_node(context.state, partition, ref, *existing, v1::CANCELLED, reason, context.out); !ended)
      return ended;
    audit(context.record, &ref, "CANCELLED", cancel.reason(), context.out);
    return node_ended(context.state, partition, ref.tenant, existing->node(), v1::CANCELLED, {}, 0, context.out);
  }
  switch (existing->state()) {
    case Entry::PENDING: {
      Entry entry;
      entry.set_state(Entry::CANCELLED);
      entry.set_attempt(existing->attempt());
      entry.set_sequence(existing->sequence() + 1);
      entry.set_expires_ms(ms_from_now(settings_.dedupe_retention));
      if (auto stored = store(context.state, partition, ref.key, entry, context.out); !stored) return stored;
      emit_status(ref, entry, v1::CANCELLED, cancel.reason().empty() ? "cancelled" : cancel.reason(), context.out);
      audit(context.record, &ref, "CANCELLED", cancel.reason(), context.out);
      ++counts_.cancelled;
      // A pending retry of a schedule's run still holds the schedule's overlap slot: free it.
      return end_schedule_run(context.state, partition, ref, context.out);
    }
    case Entry::FIRED: {
      // Already on an exec topic: tell the workers (kcron.control is read by every worker), and
      // remember it, so that a retry the running attempt sends (it may have failed before the
      // cancel reached it) is cancelled here instead of re-armed.
      if (!existing->cancel_requested()) {
        existing->set_cancel_requested(true);
        existing->set_sequence(existing->sequence() + 1);
        if (auto stored = store(context.state, partition, ref.key, *existing, context.out); !stored) return stored;
      }
      v1::Command command;
      *command.mutable_cancel() = cancel;
      command.mutable_cancel()->set_tenant(std::string(tenant_field(ref.tenant)));
      context.out.push_back(
          {settings_.names.control(), 0, ref.key, encode(command), false, typed_headers("cancel", ref.id, ref.tenant)});
      audit(context.record, &ref, "CANCEL_SENT", "the job has fired: the cancel goes to the workers", context.out);
      return Status::success();
    }
    case Entry::CANCEL_MARKER:
      audit(context.record, &ref, "CANCEL_MARKED", "no such job yet: its submit will be cancelled", context.out);
      existing->set_expires_ms(ms_from_now(settings_.cancel_marker_ttl));
      return store(context.state, partition, ref.key, *existing, context.out);
    default:
      ++counts_.duplicates;
      return Status::success();
  }
}

Status DispatcherCore::update(Context& context, v1::Job job) {
  const ScopedName& ref = context.job;
  auto loaded = load(context.state, ref.key);
  if (!loaded) return loaded.error();
  auto& existing = *loaded;
  if (existing && held_by_other_tenant(*existing, ref)) existing.reset();
  if (existing && existing->has_node()) {
    reject(context.record, &ref,
           fmt::format("cannot update job '{}': it is a node of flow '{}'", ref.id, existing->node().flow_id()), context.out);
    return Status::success();
  }
  if (existing && is_flow_start(*existing)) {
    reject(context.record, &ref, fmt::format("cannot update job '{}': it is the start of flow '{}'", ref.id, ref.id),
           context.out);
    return Status::success();
  }
  if (!existing || existing->state() != Entry::PENDING) {
    reject(context.record, &ref,
           fmt::format("cannot update job '{}': {}", ref.id,
                       existing ? fmt::format("it is {}, only a pending job can be updated", entry_state_name(existing->state()))
                                : std::string("no such pending job")),
           context.out);
    return Status::success();
  }
  if (const Millis ahead = settings_.fire_ahead.max;
      ahead.count() > 0 && instant_from_ms(existing->due_ms()) - clock_.now() <= ahead) {
    // Within W_max of its instant the job may have fired ahead already: refused, whatever the
    // window was when it fired (docs/fire-ahead.md), so the answer never depends on timing.
    const Millis until = instant_from_ms(existing->due_ms()) - clock_.now();
    reject(context.record, &ref,
           fmt::format("cannot update job '{}': already fired ({}, within the fire-ahead window of {} ms); cancel it and "
                       "submit a new job instead",
                       ref.id,
                       until.count() > 0 ? fmt::format("it is due in {} ms", until.count())
                                         : fmt::format("it was due {} ms ago", -until.count()),
                       ahead.count()),
           context.out);
    return Status::success();
  }
  job.set_attempt(existing->attempt());
  job.set_tenant(std::string(tenant_field(ref.tenant)));
  job.clear_flow();  // only the dispatcher makes a flow's node
  if (auto refused = queue_refusal(ref, job)) {
    reject(context.record, &ref, *refused, context.out);
    return Status::success();
  }
  auto due = resolve(job, context.record.timestamp);
  if (!due) {
    reject(context.record, &ref, due.error().message(), context.out);
    return Status::success();
  }
  Entry entry = pending_entry(std::move(job), *due, existing->sequence() + 1);
  audit(context.record, &ref, "UPDATED", "", context.out);
  if (*due <= clock_.now()) return release(context.state, context.record.partition, ref.key, entry, context.out);
  if (auto stored = store(context.state, context.record.partition, ref.key, entry, context.out); !stored) return stored;
  emit_status(ref, entry, v1::PENDING, "updated", context.out);
  return Status::success();
}

Status DispatcherCore::replay(Context& context, const v1::Replay& replay) {
  const ScopedName& ref = context.job;
  if (replay.flow()) return retry_flow(context);
  auto loaded = load(context.state, ref.key);
  if (!loaded) return loaded.error();
  auto& existing = *loaded;
  if (existing && held_by_other_tenant(*existing, ref)) existing.reset();
  if (existing && existing->has_node()) {
    reject(context.record, &ref,
           fmt::format("cannot replay job '{}': it is a node of flow '{}', whose dependants have already followed its ending",
                       ref.id, existing->node().flow_id()),
           context.out);
    return Status::success();
  }
  if (!existing || existing->state() != Entry::DEAD || !replay.has_job() || replay.job().id() != ref.id) {
    reject(context.record, &ref,
           fmt::format("cannot replay job '{}': only a DEAD job can be replayed, with its job attached", ref.id), context.out);
    return Status::success();
  }
  v1::Job job = replay.job();
  job.clear_flow();  // only the dispatcher makes a flow's node
  job.set_attempt(existing->attempt() + 1);
  job.set_tenant(std::string(tenant_field(ref.tenant)));
  job.clear_when();
  if (auto refused = queue_refusal(ref, job)) {
    reject(context.record, &ref, *refused, context.out);
    return Status::success();
  }
  auto due = resolve(job, clock_.now());
  if (!due) {
    reject(context.record, &ref, due.error().message(), context.out);
    return Status::success();
  }
  Entry entry = pending_entry(std::move(job), *due, existing->sequence() + 1);
  audit(context.record, &ref, "REPLAYED", "", context.out);
  return fire(context.state, context.record.partition, ref.key, entry, context.out);
}

Status DispatcherCore::retry(Context& context, const v1::Retry& retry) {
  const ScopedName& ref = context.job;
  const Partition partition = context.record.partition;
  auto loaded = load(context.state, ref.key);
  if (!loaded) return loaded.error();
  auto& existing = *loaded;
  if (existing && held_by_other_tenant(*existing, ref)) existing.reset();
  if (existing && existing->has_node() &&
      (existing->state() != Entry::FIRED || retry.job().attempt() != existing->attempt() + 1)) {
    ++counts_.duplicates;  // a flow node is retried only from its fired attempt, to the next one
    return Status::success();
  }
  if (existing && (existing->attempt() >= retry.job().attempt() || existing->state() == Entry::CANCELLED)) {
    ++counts_.duplicates;  // an older or repeated retry, or a cancelled job
    return Status::success();
  }
  if (existing && existing->state() == Entry::FIRED && existing->cancel_requested()) {
    Entry entry;
    entry.set_state(Entry::CANCELLED);
    entry.set_attempt(retry.job().attempt());
    entry.set_sequence(existing->sequence() + 1);
    entry.set_due_ms(retry.due_ms());
    entry.set_expires_ms(ms_from_now(settings_.dedupe_retention));
    emit_status(ref, entry, v1::CANCELLED,
                fmt::format("cancelled while attempt {} ran; its retry is dropped", existing->attempt()), context.out);
    if (existing->has_node()) *entry.mutable_node() = existing->node();
    if (auto stored = store(context.state, partition, ref.key, entry, context.out); !stored) return stored;
    ++counts_.cancelled;
    if (existing->has_node())
      return node_ended(context.state, partition, ref.tenant, existing->node(), v1::CANCELLED, {}, 0, context.out);
    return end_schedule_run(context.state, partition, ref, context.out);  // frees its overlap slot
  }
  v1::Job job = retry.job();
  if (!existing || !existing->has_node()) job.clear_flow();  // only the dispatcher makes a flow's node
  job.set_run_at_ms(retry.due_ms());
  job.set_tenant(std::string(tenant_field(ref.tenant)));
  auto due = resolve(job, context.record.timestamp);
  if (!due) {
    reject(context.record, &ref, due.error().message(), context.out);
    return Status::success();
  }
  Entry entry = pending_entry(std::move(job), *due, existing ? existing->sequence() + 1 : 1);
  if (existing && existing->has_node()) *entry.mutable_node() = existing->node();  // a flow node's next attempt
  if (*due <= clock_.now()) return release(context.state, partition, ref.key, entry, context.out);
  if (auto stored = store(context.state, partition, ref.key, entry, context.out); !stored) return stored;
  emit_status(ref, entry, v1::RETRYING, retry.error(), context.out);
  return Status::success();
}

Status DispatcherCore::end_schedule_run(PartitionState& state, Partition partition, const ScopedName& job,
                                        std::vector<OutRecord>& out) {
  const auto schedule_id = routing_key_for_job(job.id);
  if (schedule_id == job.id) return Status::success();  // not a schedule run
  const std::string schedule_key = scoped_key(job.tenant, schedule_id);
  auto track = load_track(state, schedule_key);
  if (!track) return track.error();
  if (*track && (*track)->schedule().running_job_id() == job.id) {
    (*track)->mutable_schedule()->clear_running_job_id();
    return store_track(state, partition, schedule_key, **track, out);
  }
  return Status::success();
}

Status DispatcherCore::completion(Context& context, const v1::Completion& completion) {
  const ScopedName& ref = context.job;
  const Partition partition = context.record.partition;
  if (auto ended = end_schedule_run(context.state, partition, ref, context.out); !ended) return ended;
  auto loaded = load(context.state, ref.key);
  if (!loaded) return loaded.error();
  auto& existing = *loaded;
  if (!existing || existing->state() != Entry::FIRED || existing->attempt() != completion.attempt()) return Status::success();
  if (existing->has_node()) {
    // A flow node's ending: recorded once (a repeated completion finds it ended), with every
    // decision it causes for the node's children in this same batch.
    const auto ended_as = completion.state();
    if (ended_as != v1::SUCCEEDED && ended_as != v1::DEAD && ended_as != v1::CANCELLED) return Status::success();
    existing->set_state(ended_as == v1::SUCCEEDED ? Entry::SUCCEEDED : ended_as == v1::DEAD ? Entry::DEAD : Entry::CANCELLED);
    existing->set_sequence(existing->sequence() + 1);
    existing->set_expires_ms(ms_from_now(settings_.dedupe_retention));
    existing->mutable_node()->set_reason(completion.error());
    existing->mutable_node()->set_output(completion.output());
    existing->mutable_node()->set_output_size(completion.output_size());
    if (auto stored = store(context.state, partition, ref.key, *existing, context.out); !stored) return stored;
    return node_ended(context.state, partition, ref.tenant, existing->node(), ended_as, completion.output(),
                      completion.output_size(), context.out);
  }
  if (completion.state() == v1::DEAD) {
    existing->set_state(Entry::DEAD);
    existing->set_sequence(existing->sequence() + 1);
    return store(context.state, partition, ref.key, *existing, context.out);
  }
  return Status::success();
}

Result<std::size_t> DispatcherCore::fire_due(PartitionState& state, Partition partition, std::size_t limit,
                                             std::vector<OutRecord>& out) {
  const Instant now = clock_.now();
  Millis window{0};
  if (fire_ahead_open_ && settings_.fire_ahead.max.count() > 0) {
    if (planned_window_) {
      window = *planned_window_;
    } else {
      auto upcoming = state.bucket_counts(now, now + settings_.fire_ahead.max);
      if (!upcoming) return upcoming.error().within(fmt::format("counting the jobs coming due on partition {}", partition));
      window = window_.window(now, *upcoming, settings_.bucket_width);
    }
  }
  window_of_[partition.value()] = window;
  last_window_ = window;
  prune_ahead(now);
  // Jobs left in the window last time come back first in the scan: room for them on top of `limit`.
  auto& deferred = deferred_count_[partition.value()];
  const auto due = state.due(now + window, limit + deferred);
  if (!due) return due.error();
  deferred = 0;
  Instant wake = Instant::max();
  std::size_t handled = 0;
  for (const auto& slot : *due) {
    if (handled >= limit) break;
    const std::string& key = slot.job_id.value();
    auto entry = load(state, key);
    Status done;
    if (!entry) {
      done = entry.error();
    } else if (*entry && (*entry)->state() == Entry::PENDING) {
      if (slot.slot.due > now && !may_fire_ahead(**entry, key, now, wake)) {
        ++deferred;
        continue;
      }
      done = release(state, partition, key, **entry, out);
    } else {
      done = forget(state, partition, key, out);  // an expired marker or retained id (up to the window early)
      ++counts_.expired;
    }
    if (!done) return done.error().within(fmt::format("firing due jobs of partition {}", partition));
    ++handled;
  }
  deferred_wake_[partition.value()] = wake;
  return handled;
}

Status DispatcherCore::plan_window(const std::vector<PartitionState*>& states) {
  planned_window_ = Millis(0);
  if (!fire_ahead_open_ || settings_.fire_ahead.max.count() <= 0) return Status::success();
  const Instant now = clock_.now();
  std::map<Instant, std::int64_t> total;  // bucket start -> entries over every partition
  for (auto* state : states) {
    auto upcoming = state->bucket_counts(now, now + settings_.fire_ahead.max);
    if (!upcoming) return upcoming.error().within("counting the jobs coming due");
    for (const auto& bucket : *upcoming) total[bucket.begin] += bucket.count;
  }
  std::vector<BucketCount> merged;
  merged.reserve(total.size());
  for (const auto& [begin, count] : total) merged.push_back({begin, count});
  planned_window_ = window_.window(now, merged, settings_.bucket_width);
  return Status::success();
}

bool DispatcherCore::may_fire_ahead(const Entry& entry, const std::string& stored_as, Instant now, Instant& wake) {
  const Instant due = instant_from_ms(entry.due_ms());
  if (is_flow_start(entry)) {  // nothing to hand a worker early: the roots fire ahead once released
    wake = std::min(wake, due);
    return false;
  }
  if (entry.job().has_schedule_run()) {
    const auto overlap = entry.job().schedule_run().overlap();
    if (overlap == v1::FORBID || overlap == v1::REPLACE) {
      wake = std::min(wake, due);  // decided at its instant, on what the previous run did by then
      return false;
    }
  }
  (void)stored_as;
  const auto exec =
      exec_partition_of(exec_topic(settings_.names.prefix, entry.job().queue(), band_for_priority(entry.priority())),
                        scoped_key(entry.job().tenant(), entry.job().id()));
  const auto found = ahead_.find(exec);
  if (found != ahead_.end() && found->second.size() >= settings_.fire_ahead.max_per_exec_partition) {
    wake = std::min(wake, std::max(now, std::min(due, *found->second.begin())));  // room comes as they fall due
    return false;
  }
  return true;
}

std::pair<std::string, std::int32_t> DispatcherCore::exec_partition_of(std::string topic, std::string_view job_key) const {
  const auto count = exec_partitions_.find(topic);
  const std::int32_t partitions = count != exec_partitions_.end() && count->second > 0 ? count->second : 1;
  // The exec record is keyed by the job's scoped key; the producer partitions it by murmur2.
  const std::int32_t partition = partition_for_key(job_key, partitions).value();
  return {std::move(topic), partition};
}

void DispatcherCore::prune_ahead(Instant now) {
  for (auto exec = ahead_.begin(); exec != ahead_.end();) {
    auto& dues = exec->second;
    dues.erase(dues.begin(), dues.upper_bound(now));
    exec = dues.empty() ? ahead_.erase(exec) : std::next(exec);
  }
}

void DispatcherCore::discard_uncommitted() {
  for (const auto& [exec, due] : uncommitted_ahead_) {
    const auto found = ahead_.find(exec);
    if (found == ahead_.end()) continue;  // pruned: due already
    if (const auto one = found->second.find(due); one != found->second.end()) found->second.erase(one);
    if (found->second.empty()) ahead_.erase(found);
  }
  uncommitted_ahead_.clear();
}

std::size_t DispatcherCore::ahead_count() const {
  std::size_t count = 0;
  for (const auto& [exec, dues] : ahead_) count += dues.size();
  return count;
}

Instant DispatcherCore::next_look(const PartitionState& state, Partition partition) const {
  const Instant hint = state.next_due_hint();
  if (hint == Instant::min()) return hint;
  const auto window = window_of_.find(partition.value());
  Instant look = hint;
  // The next job enters the window at hint - W. It is fired by half the window later, still
  // with half of it to commit in: meanwhile the batch stays open and takes in what arrives (a
  // batch closed as each job entered the window held a few ms of input, and the input fell behind).
  if (window != window_of_.end() && hint != Instant::max()) look = hint - window->second / 2;
  const auto deferred = deferred_wake_.find(partition.value());
  if (deferred != deferred_wake_.end()) look = std::min(look, deferred->second);
  return look;
}

void DispatcherCore::reject_unpublishable(const InputRecord& record, std::string_view reason, std::vector<OutRecord>& out) {
  action_ = "unknown";  // the record is refused for what the broker said of its outputs
  const std::string why = fmt::format("its outputs could not be published: {}", reason);
  // A batch: a dead letter for each job (its whole job, in the batch's tenant, named by its id when
  // that is one of the tenant's), so each can be replayed; no status (a job of that id may exist).
  if (auto command = decode_command(record.value, record.content_type, record.kcron_type); command && command->has_batch()) {
    const auto& batch = command->batch();
    const auto tenant = tenant_or_default(batch.tenant());
    if (is_default_tenant(tenant) || validate_tenant_name(tenant)) {
      for (int at = 0; at < batch.jobs_size(); ++at) {
        v1::Command one;
        *one.mutable_submit() = batch.jobs(at);
        const auto& id = batch.jobs(at).id();
        const bool named_by_id = validate_job_id(id) && (!is_default_tenant(tenant) || validate_default_tenant_id(id));
        const ScopedName named =
            scoped(tenant, named_by_id ? id : fmt::format("rejected-batch-{}-{}-{}", record.partition, record.offset, at));
        const std::string value = encode(one);
        const InputRecord single{record.partition, record.offset,    "", value, header::kProtobuf, "command",
                                 record.timestamp, record.request_id};
        reject(single, &named, fmt::format("batch job {}: {} (the batch's jobs were not submitted)", at, why), out);
      }
      ++counts_.unpublishable;
      return;
    }
  }
  reject(record, nullptr, why, out);  // keyed by its own key
  ++counts_.unpublishable;
}

Result<bool> DispatcherCore::fail_due(PartitionState& state, Partition partition, const JobId& wanted, std::string_view reason,
                                      std::vector<OutRecord>& out) {
  const std::string& key = wanted.value();
  auto loaded = load(state, key);
  if (!loaded) return loaded.error().within(fmt::format("giving up on due job {:?} of partition {}", key, partition));
  auto& entry = *loaded;
  // A flow's node still waiting for its flow's start, which is due: the start released it in the
  // batch whose transaction the broker refused (the exec record names the node, not the start).
  if (entry && entry->state() == Entry::WAITING && entry->has_node()) {
    auto header = load(state, flow_key(scoped_key(entry->job().tenant(), entry->node().flow_id())));
    if (!header) return header.error();
    if (!*header || (*header)->flow().starts_ms() <= 0 || instant_from_ms((*header)->flow().starts_ms()) > clock_.now()) {
      return false;
    }
  } else if (!entry || entry->state() != Entry::PENDING ||
             instant_from_ms(entry->due_ms()) > clock_.now() + std::max(Millis(0), settings_.fire_ahead.max)) {
    // Due, or within the fire-ahead window (it may have been fired ahead).
    return false;
  }
  const ScopedName job = job_of(entry->job());
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
  letter.set_source_partition(partition.value());
  letter.set_source_offset(-1);
  letter.set_at_ms(to_epoch_ms(clock_.now()));
  letter.set_component(settings_.component);
  letter.set_tenant(std::string(tenant_field(job.tenant)));
  append_dead_letter(letter, job.id, settings_.names, out);

  entry->set_state(Entry::DEAD);
  entry->set_sequence(entry->sequence() + 1);
  entry->set_expires_ms(ms_from_now(settings_.dedupe_retention));  // a re-submit stays a duplicate
  if (!entry->has_node()) entry->clear_job();                      // a flow's node keeps it: a retry of the flow runs it again
  if (auto stored = store(state, partition, key, *entry, out); !stored) return stored.error();
  emit_status(job, *entry, v1::DEAD, why, out);
  ++counts_.unpublishable;
  if (entry->has_node()) {
    if (auto ended = node_ended(state, partition, job.tenant, entry->node(), v1::DEAD, {}, 0, out); !ended) return ended.error();
  }
  return true;
}

std::string DispatcherCore::track_key(std::string_view schedule_key) {
  std::string key = "\x01schedule/";
  key += schedule_key;
  return key;
}

Result<DispatcherCore::MaybeEntry> DispatcherCore::load_track(PartitionState& state, std::string_view schedule_key) const {
  return load(state, track_key(schedule_key));
}

Status DispatcherCore::store_track(PartitionState& state, Partition partition, std::string_view schedule_key, Entry& track,
                                   std::vector<OutRecord>& out) {
  track.set_state(Entry::SCHEDULE);
  track.set_sequence(track.sequence() + 1);
  return store(state, partition, track_key(schedule_key), track, out);
}

Status DispatcherCore::track_accepted_run(PartitionState& state, Partition partition, const v1::Job& job, Instant due,
                                          std::vector<OutRecord>& out) {
  if (!job.has_schedule_run() || job.schedule_run().schedule_id().empty()) return Status::success();
  const auto& schedule_id = job.schedule_run().schedule_id();
  const std::string schedule_key = scoped_key(job.tenant(), schedule_id);
  auto loaded = load_track(state, schedule_key);
  if (!loaded) return loaded.error();
  auto track = loaded->value_or(Entry());
  const std::int64_t due_ms = to_epoch_ms(due);
  if (track.has_schedule() && track.schedule().max_due_ms() >= due_ms) return Status::success();
  track.mutable_schedule()->set_schedule_id(schedule_id);
  track.mutable_schedule()->set_max_due_ms(due_ms);
  return store_track(state, partition, schedule_key, track, out);
}

Status DispatcherCore::release(PartitionState& state, Partition partition, const std::string& stored_as, Entry& entry,
                               std::vector<OutRecord>& out) {
  if (is_flow_start(entry)) {  // a flow with nothing left to start takes no schedule slot
    auto header = load(state, flow_key(stored_as));
    if (!header) return header.error();
    if (!*header || (*header)->flow().ended() >= (*header)->flow().nodes() || (*header)->flow().cancel_requested()) {
      return forget(state, partition, stored_as, out);
    }
  }
  if (entry.job().has_schedule_run() && !entry.job().schedule_run().schedule_id().empty()) {
    auto admitted = admit_schedule_run(state, partition, stored_as, entry, out);
    if (!admitted) return admitted.error();
    if (!*admitted) return Status::success();
  }
  if (is_flow_start(entry)) return start_flow(state, partition, stored_as, entry, out);
  return fire(state, partition, stored_as, entry, out);
}

Result<bool> DispatcherCore::admit_schedule_run(PartitionState& state, Partition partition, const std::string& stored_as,
                                                Entry& entry, std::vector<OutRecord>& out) {
  const auto& run = entry.job().schedule_run();
  const ScopedName job = job_of(entry.job());
  const std::string& job_id = job.id;
  const std::string schedule_key = scoped_key(job.tenant, run.schedule_id());
  auto loaded = load_track(state, schedule_key);
  if (!loaded) return loaded.error();
  auto track = loaded->value_or(Entry());
  track.mutable_schedule()->set_schedule_id(run.schedule_id());
  const Instant now = clock_.now();
  const Millis lateness = now - instant_from_ms(entry.due_ms());
  auto skipped = [&](const std::string& reason) -> Result<bool> {
    if (auto status = skip(state, partition, stored_as, entry, reason, out); !status) return status.error();
    return false;
  };
  if (lateness > settings_.misfire_threshold) {
    const double late_seconds = std::chrono::duration<double>(lateness).count();
    switch (run.misfire()) {
      case v1::SKIP:
        return skipped(fmt::format("misfired: {:.1f} s late (policy skip)", late_seconds));
      case v1::FIRE_ALL: {
        const Millis window(clamped_ms(run.catchup_window().seconds(), run.catchup_window().nanos()));
        if (window > Millis(0) && lateness > window) {
          return skipped(fmt::format("misfired: {:.1f} s late, beyond the catch-up window of {} ms (policy fire_all)",
                                     late_seconds, window.count()));
        }
        break;
      }
      default: {  // FIRE_ONCE: the schedule's late runs collapse into its latest due one
        const std::int64_t latest = track.schedule().max_due_ms();
        if (latest > entry.due_ms() && instant_from_ms(latest) <= now) {
          return skipped(fmt::format("misfired: {:.1f} s late; collapsed into the run due at {} ms (policy fire_once)",
                                     late_seconds, latest));
        }
        break;
      }
    }
  }
  const std::string running = track.schedule().running_job_id();
  if (!running.empty() && running != job_id) {
    if (run.overlap() == v1::FORBID) {
      return skipped(fmt::format("previous run '{}' is still running (overlap forbid)", running));
    }
    if (run.overlap() == v1::REPLACE) {
      const ScopedName replaced_run = scoped(job.tenant, running);
      auto replaced_flow = load(state, flow_key(replaced_run.key));
      if (!replaced_flow) return replaced_flow.error();
      if (*replaced_flow) {  // a flow run: every node of it that has not ended is cancelled
        if (auto cancelled = cancel_flow(state, partition, replaced_run,
                                         fmt::format("replaced by '{}' (overlap replace)", job_id), nullptr, out);
            !cancelled) {
          return cancelled.error();
        }
        auto reloaded = load_track(state, schedule_key);  // the cancel may have ended it, and freed the slot
        if (!reloaded) return reloaded.error();
        track = reloaded->value_or(Entry());
        track.mutable_schedule()->set_schedule_id(run.schedule_id());
        track.mutable_schedule()->set_running_job_id(job_id);
        if (auto stored = store_track(state, partition, schedule_key, track, out); !stored) return stored.error();
        return true;
      }
      // As a cancel does: the replaced run's retry, if it failed meanwhile, must not come back.
      auto replaced = load(state, replaced_run.key);
      if (!replaced) return replaced.error();
      if (*replaced && (*replaced)->state() == Entry::FIRED && !(*replaced)->cancel_requested()) {
        (*replaced)->set_cancel_requested(true);
        (*replaced)->set_sequence((*replaced)->sequence() + 1);
        if (auto stored = this->store(state, partition, replaced_run.key, **replaced, out); !stored) return stored.error();
      }
      v1::Command command;
      command.mutable_cancel()->set_job_id(running);
      command.mutable_cancel()->set_tenant(std::string(tenant_field(job.tenant)));
      command.mutable_cancel()->set_reason(fmt::format("replaced by '{}' (overlap replace)", job_id));
      out.push_back(
          {settings_.names.control(), 0, replaced_run.key, encode(command), false, typed_headers("cancel", running, job.tenant)});
    }
  }
  track.mutable_schedule()->set_running_job_id(job_id);
  if (auto stored = store_track(state, partition, schedule_key, track, out); !stored) return stored.error();
  return true;
}

Status DispatcherCore::skip(PartitionState& state, Partition partition, const std::string& stored_as, Entry& entry,
                            const std::string& reason, std::vector<OutRecord>& out) {
  const ScopedName job = job_of(entry.job());
  if (is_flow_start(entry)) {  // a schedule's flow run: the flow's nodes are SKIPPED, with the reason
    if (auto forgotten = forget(state, partition, stored_as, out); !forgotten) return forgotten;
    return cancel_flow(state, partition, job, fmt::format("its flow run was skipped: {}", reason), nullptr, out, v1::SKIPPED);
  }
  entry.set_state(Entry::SKIPPED);
  entry.set_sequence(entry.sequence() + 1);
  entry.set_expires_ms(ms_from_now(settings_.dedupe_retention));
  entry.clear_job();
  if (auto stored = store(state, partition, stored_as, entry, out); !stored) return stored;
  emit_status(job, entry, v1::SKIPPED, reason, out);
  ++counts_.skipped;
  return Status::success();
}

Status DispatcherCore::fire(PartitionState& state, Partition partition, const std::string& stored_as, Entry& entry,
                            std::vector<OutRecord>& out) {
  const ScopedName job = job_of(entry.job());
  const Instant fired = clock_.now();
  std::string topic = exec_topic(settings_.names.prefix, entry.job().queue(), band_for_priority(entry.priority()));
  v1::Execution execution;
  // The exec record carries the job; the changelog keeps only what dedupe needs (a flow's node
  // keeps its job too: a retry of the flow runs it again).
  if (entry.has_node()) {
    *execution.mutable_job() = entry.job();
  } else {
    execution.mutable_job()->Swap(entry.mutable_job());
    entry.clear_job();
  }
  execution.set_due_ms(entry.due_ms());
  execution.set_fired_ms(to_epoch_ms(fired));
  auto headers = typed_headers("execution", job.id, job.tenant);
  headers.emplace_back(header::kStatus, state_name(v1::QUEUED));
  const Instant due = instant_from_ms(entry.due_ms());
  if (due > fired) {
    ++counts_.fired_ahead;
    auto exec = exec_partition_of(topic, job.key);
    ahead_[exec].insert(due);
    uncommitted_ahead_.emplace_back(std::move(exec), due);
  }
  out.push_back({std::move(topic), -1, job.key, encode(execution), false, std::move(headers)});
  fire_lags_.push_back(fired - due);
  ++counts_.fired;

  entry.set_state(Entry::FIRED);
  entry.set_sequence(entry.sequence() + 1);
  if (entry.has_node()) {
    entry.clear_expires_ms();  // a flow's node is kept until it ends, however long it runs
  } else {
    entry.set_expires_ms(to_epoch_ms(fired + settings_.dedupe_retention));
  }
  if (auto stored = store(state, partition, stored_as, entry, out); !stored) return stored;
  emit_status(job, entry, v1::QUEUED, "", out);
  return Status::success();
}

Status DispatcherCore::store(PartitionState& state, Partition partition, const std::string& key, const Entry& entry,
                             std::vector<OutRecord>& out) {
  bool was_pending = false;
  if (is_job_key(key)) {
    auto old = state.get(key);
    if (!old) return old.error();
    was_pending = *old && stored_state(**old) == Entry::PENDING;
  }
  std::string value = encode(entry);
  if (auto put = state.put(key, value, slot_of(entry)); !put) return put;
  out.push_back({settings_.names.dispatcher_changelog(), partition.value(), key, std::move(value), false, counted_headers(key)});
  const bool pending = entry.state() == Entry::PENDING;
  if (is_job_key(key) && pending != was_pending) return count_pending(state, partition, key, pending ? 1 : -1, out);
  return Status::success();
}

Status DispatcherCore::forget(PartitionState& state, Partition partition, const std::string& key, std::vector<OutRecord>& out) {
  bool was_pending = false;
  if (is_job_key(key)) {
    auto old = state.get(key);
    if (!old) return old.error();
    was_pending = *old && stored_state(**old) == Entry::PENDING;
  }
  if (auto erased = state.erase(key); !erased) return erased;
  out.push_back({settings_.names.dispatcher_changelog(), partition.value(), key, "", true, counted_headers(key)});
  if (was_pending) return count_pending(state, partition, key, -1, out);
  return Status::success();
}

std::string DispatcherCore::usage_key(std::string_view tenant) {
  std::string key(kUsagePrefix);
  key += tenant_or_default(tenant);
  return key;
}

Result<v1::TenantUsage> DispatcherCore::load_usage(PartitionState& state, std::string_view tenant) const {
  auto entry = load(state, usage_key(tenant));
  if (!entry) return entry.error();
  return *entry ? (*entry)->usage() : v1::TenantUsage();
}

Result<std::uint64_t> DispatcherCore::pending_of(PartitionState& state, std::string_view tenant) const {
  auto usage = load_usage(state, tenant);
  if (!usage) return usage.error();
  return usage->pending();
}

Status DispatcherCore::store_usage(PartitionState& state, Partition partition, std::string_view tenant,
                                   const v1::TenantUsage& usage, std::vector<OutRecord>& out) {
  const std::string key = usage_key(tenant);
  if (usage.pending() == 0 && usage.rate_at_ms() == 0) {
    // Nothing to remember: a tenant name that came and went leaves no entry behind.
    auto existing = state.get(key);
    if (!existing) return existing.error();
    if (!*existing) return Status::success();
    if (auto erased = state.erase(key); !erased) return erased;
    upsert_changelog(partition, key, std::nullopt, out);
    return Status::success();
  }
  Entry entry;
  entry.set_state(Entry::TENANT_USAGE);
  *entry.mutable_usage() = usage;
  std::string value = encode(entry);
  if (auto put = state.put(key, value, std::nullopt); !put) return put;
  upsert_changelog(partition, key, std::move(value), out);
  return Status::success();
}

Status DispatcherCore::count_pending(PartitionState& state, Partition partition, std::string_view key, int delta,
                                     std::vector<OutRecord>& out) {
  // By the key's tenant: a job a release before tenants stored under its bare id counts as the
  // default tenant's, where it lives (docs/tenancy.md).
  const std::string tenant(split_scoped_key(key).tenant);
  auto usage = load_usage(state, tenant);
  if (!usage) return usage.error();
  const std::uint64_t pending = usage->pending();
  // Jobs accepted before this release counted nothing: a count never goes below zero.
  usage->set_pending(delta > 0 ? pending + 1 : (pending > 0 ? pending - 1 : 0));
  return store_usage(state, partition, tenant, *usage, out);
}

void DispatcherCore::upsert_changelog(Partition partition, const std::string& key, std::optional<std::string> value,
                                      std::vector<OutRecord>& out) {
  const std::string topic = settings_.names.dispatcher_changelog();
  // Hints only: a stale one (the caller committed or dropped its batch) is found out below.
  if (upserted_at_.size() >= kMaxUpsertHints) upserted_at_.clear();
  auto& at = upserted_at_[{partition.value(), key}];
  const bool tombstone = !value;
  std::string bytes = value ? std::move(*value) : std::string();
  if (at < out.size()) {
    auto& record = out[at];
    if (record.topic == topic && record.partition == partition.value() && record.key == key) {
      record.value = std::move(bytes);
      record.tombstone = tombstone;
      return;
    }
  }
  at = out.size();
  out.push_back({topic, partition.value(), key, std::move(bytes), tombstone, {}});
}

Status DispatcherCore::recount(PartitionState& state, Partition partition, std::vector<OutRecord>& out) {
  std::map<std::string, std::uint64_t, std::less<>> pending;
  std::string after;
  for (bool more = true; more;) {  // bounded: each round moves past kRecountChunk keys
    auto keys = state.keys_after("", after, kRecountChunk);
    if (!keys) return keys.error();
    more = keys->size() == kRecountChunk;
    for (const auto& key : *keys) {
      after = key;
      if (!is_job_key(key)) continue;
      auto value = state.get(key);
      if (!value) return value.error();
      if (*value && stored_state(**value) == Entry::PENDING) ++pending[std::string(split_scoped_key(key).tenant)];
    }
  }
  // Every tenant with an entry gets its count (0 if none waits), every counted one an entry.
  std::set<std::string, std::less<>> tenants;
  std::string usage_after;
  for (bool more = true; more;) {
    auto known = state.keys_after(kUsagePrefix, usage_after, kRecountChunk);
    if (!known) return known.error();
    more = known->size() == kRecountChunk;
    for (const auto& key : *known) {
      tenants.insert(key.substr(kUsagePrefix.size()));
      usage_after = key;
    }
  }
  for (const auto& [tenant, count] : pending) tenants.insert(tenant);
  for (const auto& tenant : tenants) {
    auto usage = load_usage(state, tenant);
    if (!usage) return usage.error();
    const auto found = pending.find(tenant);
    usage->set_pending(found == pending.end() ? 0 : found->second);
    if (auto stored = store_usage(state, partition, tenant, *usage, out); !stored) return stored;
  }
  Entry marker;
  marker.set_state(Entry::TENANT_USAGE);
  std::string value = encode(marker);
  if (auto put = state.put(kCountedMarker, value, std::nullopt); !put) return put;
  out.push_back(
      {settings_.names.dispatcher_changelog(), partition.value(), std::string(kCountedMarker), std::move(value), false, {}});
  ++counts_.recounts;
  return Status::success();
}

Result<bool> DispatcherCore::counted(PartitionState& state) {
  auto marker = state.get(kCountedMarker);
  if (!marker) return marker.error();
  return marker->has_value();
}

Result<std::optional<std::string>> DispatcherCore::check_limits(PartitionState& state, Partition partition, const ScopedName& job,
                                                                const v1::Job& submitted, Instant due, Instant appended,
                                                                std::vector<OutRecord>& out) {
  using Refusal = std::optional<std::string>;
  const v1::TenantSettings* settings = tenants_ != nullptr ? tenants_->find(job.tenant) : nullptr;
  if (settings == nullptr) return Refusal();
  auto refuse = [&](TenantLimit limit, std::string reason) -> Result<Refusal> {
    ++limit_refusals_[{job.tenant, limit}];
    return Refusal(std::move(reason));
  };
  if (auto refused = queue_refusal(job, submitted)) return Refusal(std::move(*refused));
  const auto& limits = settings->limits();
  const bool will_wait = due > clock_.now();
  // A schedule's runs were admitted with the schedule: they do not count against the rate.
  const bool schedule_run = submitted.has_schedule_run() && !submitted.schedule_run().schedule_id().empty();
  const double rate = schedule_run ? 0.0 : limits.max_submissions_per_second();
  if (rate <= 0 && (!will_wait || limits.max_pending_jobs() == 0)) return Refusal();
  auto usage = load_usage(state, job.tenant);
  if (!usage) return usage.error();
  if (will_wait && limits.max_pending_jobs() > 0) {
    const std::uint64_t share = partition_share(limits.max_pending_jobs(), settings_.jobs_partitions);
    if (usage->pending() >= share) {
      return refuse(TenantLimit::kPendingJobs,
                    fmt::format("tenant '{}' is at its limit of {} pending jobs: this partition holds {} of them, its "
                                "share; submit again when some have fired, or raise the limit",
                                job.tenant, limits.max_pending_jobs(), usage->pending()));
    }
  }
  if (rate > 0) {
    // A token bucket on the records' append time, one second deep: a backlog read after an
    // outage refills as it was appended, and is not refused as a burst.
    const double per_second = partition_rate_share(rate, settings_.jobs_partitions);
    // The timestamp is the producer's (CreateTime): one ahead of this clock counts as now, so a
    // producer's clock cannot freeze the bucket or buy tokens from the future.
    const auto capacity = static_cast<std::int64_t>(std::max(1.0, per_second) * kMilliTokens);
    const std::int64_t now_ms = to_epoch_ms(clock_.now());
    const std::int64_t appended_ms = std::min(to_epoch_ms(appended), now_ms);
    std::int64_t tokens = capacity;
    std::int64_t counted_at = appended_ms;
    if (usage->rate_at_ms() > 0) {
      tokens = std::min(capacity, usage->rate_tokens_milli());
      counted_at = std::min(usage->rate_at_ms(), now_ms);
      if (appended_ms > counted_at) {
        // per_second tokens a second are per_second thousandths a millisecond. A fraction of a
        // thousandth waits for a later record: the time it stands for is not spent.
        const double refill = static_cast<double>(appended_ms - counted_at) * per_second;
        if (refill >= static_cast<double>(capacity - tokens)) {
          tokens = capacity;
          counted_at = appended_ms;
        } else if (const auto added = static_cast<std::int64_t>(refill); added > 0) {
          tokens += added;
          counted_at += static_cast<std::int64_t>(static_cast<double>(added) / per_second);  // the time they stand for
        }
      }
    }
    usage->set_rate_at_ms(counted_at);
    if (tokens < kMilliTokens) {
      usage->set_rate_tokens_milli(tokens);
      if (auto stored = store_usage(state, partition, job.tenant, *usage, out); !stored) return stored.error();
      return refuse(TenantLimit::kSubmissionRate,
                    fmt::format("tenant '{}' is over its limit of {} submissions per second (this partition's share: "
                                "{:.2f}/s): submit again later, or raise the limit",
                                job.tenant, rate, per_second));
    }
    usage->set_rate_tokens_milli(tokens - kMilliTokens);
    if (auto stored = store_usage(state, partition, job.tenant, *usage, out); !stored) return stored.error();
  }
  return Refusal();
}

std::optional<std::string> DispatcherCore::queue_refusal(const ScopedName& job, const v1::Job& submitted) {
  const v1::TenantSettings* settings = tenants_ != nullptr ? tenants_->find(job.tenant) : nullptr;
  if (settings == nullptr) return std::nullopt;
  const auto& queues = settings->allowed_queues();
  const std::string& queue = submitted.queue().empty() ? std::string("default") : submitted.queue();
  if (queues.empty() || std::find(queues.begin(), queues.end(), queue) != queues.end()) return std::nullopt;
  ++limit_refusals_[{job.tenant, TenantLimit::kQueue}];
  return fmt::format("tenant '{}' may not use queue '{}' (its queues: {})", job.tenant, queue, fmt::join(queues, ", "));
}

Status DispatcherCore::purge(PartitionState& state, const InputRecord& record, const v1::PurgeTenant& purge,
                             std::vector<OutRecord>& out) {
  const std::string& tenant = purge.tenant();
  if (auto valid = validate_tenant_name(tenant); !valid || is_default_tenant(tenant)) {
    reject(record, nullptr, valid ? "the default tenant cannot be purged" : valid.error().message(), out);
    return Status::success();
  }
  const Partition partition = record.partition;
  const std::string reason = purge.reason().empty() ? fmt::format("tenant '{}' was deleted", tenant) : purge.reason();
  const ScopedName whole_tenant{tenant, "", tenant};
  // Its running jobs stop too: a tenant-wide cancel, read by every worker, which cancels what of
  // the tenant was fired before it arrived. Sent with the first record, and again with the last
  // of a purge that took several: jobs of its later keys may have fired in between.
  const auto cancel_running = [&] {
    v1::Command command;
    command.mutable_cancel()->set_tenant(tenant);
    command.mutable_cancel()->set_reason(reason);
    out.push_back({settings_.names.control(), 0, tenant, encode(command), false, typed_headers("cancel-tenant", "", tenant)});
  };
  if (purge.resume_after().empty()) cancel_running();
  // The tenant's jobs, then its schedules' tracks: one key range each.
  const std::string job_prefix = scoped_key(tenant, "");
  const std::string track_prefix = track_key(job_prefix);
  std::string after = purge.resume_after();
  std::size_t handled = 0;
  std::size_t cancelled_here = 0;
  const auto audit_purge = [&](bool more) {
    audit(record, &whole_tenant, "PURGED",
          fmt::format("cancelled {} pending jobs on partition {}{}", cancelled_here, partition, more ? "; more follow" : ""),
          out);
  };
  for (const auto& prefix : {job_prefix, track_prefix}) {
    if (!after.empty() && after.compare(0, prefix.size(), prefix) != 0 && prefix == job_prefix) continue;  // jobs done
    auto keys = state.keys_after(prefix, after.starts_with(prefix) ? after : std::string(), kPurgeKeysPerRecord - handled);
    if (!keys) return keys.error();
    for (const auto& key : *keys) {
      auto loaded = load(state, key);
      if (!loaded) return loaded.error();
      if (!*loaded) continue;
      auto& entry = **loaded;
      Status done;
      if (prefix == job_prefix && is_flow_start(entry) && entry.state() == Entry::PENDING) {
        // A flow waiting for its start: the flow is cancelled, its start goes.
        if (auto cancelled = cancel_flow(state, partition, scoped(tenant, entry.job().id()), reason, nullptr, out); !cancelled) {
          return cancelled;
        }
        ++counts_.purged;
        after = key;
        continue;
      }
      if (prefix == job_prefix && entry.has_node()) {
        // A flow's node: its whole flow is cancelled (once), so that no ending of a node that was
        // running releases a child of the deleted tenant; what the cancel left is handled below.
        auto header = load(state, flow::header_key(scoped_key(tenant, entry.node().flow_id())));
        if (!header) return header.error();
        if (*header && !(*header)->flow().cancel_requested()) {
          if (auto cancelled = cancel_flow(state, partition, scoped(tenant, entry.node().flow_id()), reason, nullptr, out);
              !cancelled) {
            return cancelled;
          }
          auto reloaded = load(state, key);
          if (!reloaded) return reloaded.error();
          after = key;
          if (!*reloaded) continue;
          entry = std::move(**reloaded);
        }
        if (entry.state() == Entry::WAITING || entry.state() == Entry::PENDING) {
          const auto node = scoped(tenant, flow::node_job_id(entry.node().flow_id(), entry.node().name()));
          if (auto ended = end_unfired_node(state, partition, node, entry, v1::CANCELLED, reason, out); !ended) return ended;
          ++counts_.purged;
          ++cancelled_here;
          after = key;
          continue;
        }
      }
      if (prefix == track_prefix || entry.state() == Entry::CANCEL_MARKER) {
        done = forget(state, partition, key, out);
      } else if (entry.state() == Entry::PENDING) {
        const ScopedName job = job_of(entry.job());
        Entry cancelled;
        cancelled.set_state(Entry::CANCELLED);
        cancelled.set_attempt(entry.attempt());
        cancelled.set_sequence(entry.sequence() + 1);
        cancelled.set_expires_ms(ms_from_now(settings_.dedupe_retention));
        done = store(state, partition, key, cancelled, out);
        if (done) emit_status(job, cancelled, v1::CANCELLED, reason, out);
        ++counts_.cancelled;
        ++counts_.purged;
        ++cancelled_here;
      } else if (entry.state() == Entry::FIRED && !entry.cancel_requested()) {
        // Fired (running, or done and kept for dedupe): a retry its attempt sends is CANCELLED,
        // never re-armed, as after a cancel.
        entry.set_cancel_requested(true);
        entry.set_sequence(entry.sequence() + 1);
        done = store(state, partition, key, entry, out);
      }
      if (!done) return done;
      after = key;
    }
    handled += keys->size();
    if (handled >= kPurgeKeysPerRecord) {
      // More may follow: the rest of the work goes back to this partition, in this transaction,
      // and until it is done the partition refuses the tenant's submits.
      v1::Command rest;
      *rest.mutable_purge_tenant() = purge;
      rest.mutable_purge_tenant()->set_resume_after(after);
      auto headers = typed_headers("purge-tenant", "", tenant);
      out.push_back(
          {settings_.names.jobs(), partition.value(), std::string(record.key), encode(rest), false, std::move(headers)});
      Entry marker;
      marker.set_state(Entry::TENANT_USAGE);
      if (auto stored = store(state, partition, purging_key(tenant), marker, out); !stored) return stored;
      audit_purge(true);
      return Status::success();
    }
  }
  auto marked = state.get(purging_key(tenant));
  if (!marked) return marked.error();
  if (*marked) {
    if (auto forgotten = forget(state, partition, purging_key(tenant), out); !forgotten) return forgotten;
  }
  if (!purge.resume_after().empty()) cancel_running();
  audit_purge(false);
  return Status::success();
}

std::string DispatcherCore::purging_key(std::string_view tenant) {
  std::string key = "\x01purging/";
  key += tenant;
  return key;
}

Status DispatcherCore::restore(PartitionState& state, std::string_view key, std::string_view value, bool tombstone) {
  if (tombstone) return state.erase(key);
  Entry entry;
  if (!entry.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return make_error("changelog record {:?} ({} bytes) does not parse as a dispatcher entry", key, value.size());
  }
  return state.put(key, value, slot_of(entry));
}

void DispatcherCore::emit_status(const ScopedName& job, const Entry& entry, v1::JobState state, std::string_view reason,
                                 std::vector<OutRecord>& out) {
  append_status({.job_id = job.id,
                 .state = state,
                 .attempt = entry.attempt(),
                 .sequence = entry.sequence(),
                 .at = clock_.now(),
                 .reason = reason,
                 .component = settings_.component,
                 .due = instant_from_ms(entry.due_ms()),
                 .tenant = job.tenant},
                settings_.names, settings_.emit_events, out);
}

void DispatcherCore::reject(const InputRecord& record, const ScopedName* job, std::string_view reason,
                            std::vector<OutRecord>& out) {
  const std::string topic = settings_.names.jobs();
  (void)append_rejected({topic, record.partition, record.offset, record.key, record.value},
                        job != nullptr ? std::string_view(job->tenant) : std::string_view(),
                        job != nullptr ? std::string_view(job->id) : std::string_view(), reason, clock_.now(),
                        settings_.component, settings_.max_dead_letter_copy, settings_.names, out);
  ++counts_.rejected;
  audit(record, job, "REJECTED", reason, out);
}

void DispatcherCore::audit(const InputRecord& record, const ScopedName* job, std::string_view outcome, std::string_view reason,
                           std::vector<OutRecord>& out) {
  if (settings_.audit == AuditLevel::kOff || (settings_.audit == AuditLevel::kRefusals && outcome != "REJECTED")) return;
  v1::AuditRecord decision;
  if (job != nullptr) {
    decision.set_tenant(std::string(tenant_field(job->tenant)));
    decision.set_job_id(job->id);
  }
  decision.set_action(std::string(action_));
  decision.set_outcome(std::string(outcome));
  decision.set_reason(std::string(reason));
  decision.set_at_ms(to_epoch_ms(clock_.now()));
  decision.set_component(settings_.component);
  decision.set_source(fmt::format("{}/{}@{}", settings_.names.jobs(), record.partition, record.offset));
  decision.set_request_id(std::string(record.request_id));
  std::string key = job != nullptr ? job->key : std::string(record.key);
  auto headers = typed_headers("audit", job != nullptr ? std::string_view(job->id) : std::string_view(),
                               job != nullptr ? std::string_view(job->tenant) : std::string_view());
  out.push_back({settings_.names.audit(), -1, std::move(key), encode(decision), false, std::move(headers)});
}

Status DispatcherCore::apply_batch(PartitionState& state, const InputRecord& record, v1::Batch batch,
                                   std::vector<OutRecord>& out) {
  action_ = "batch";
  const auto tenant = tenant_or_default(batch.tenant());
  if (!is_default_tenant(tenant)) {
    if (auto valid = validate_tenant_name(tenant); !valid) {
      reject(record, nullptr, valid.error().within("batch").message(), out);
      return Status::success();
    }
  }
  // Refused as a whole: a dead letter in the batch's tenant, named by the batch's position.
  const ScopedName whole = scoped(tenant, fmt::format("rejected-batch-{}-{}", record.partition, record.offset));
  if (batch.jobs().empty()) {
    reject(record, &whole, "a batch holds no jobs", out);
    return Status::success();
  }
  if (static_cast<std::size_t>(batch.jobs_size()) > settings_.max_batch_jobs) {
    reject(record, &whole,
           fmt::format("a batch of {} jobs is over the limit of {}: split it", batch.jobs_size(), settings_.max_batch_jobs), out);
    return Status::success();
  }
  ++counts_.batches;
  for (int at = 0; at < batch.jobs_size(); ++at) {
    v1::Command one;
    v1::Job& job = *one.mutable_submit();
    job = std::move(*batch.mutable_jobs(at));
    // A job refused here gets its own dead letter in the batch's tenant: named by its id when its
    // id is one of this tenant's, else by its place in the batch (so a refusal never lands under
    // another tenant's key, nor over the status of a job of that id).
    Status valid = validate_job_id(job.id());
    if (valid && is_default_tenant(tenant)) valid = validate_default_tenant_id(job.id());
    std::string refused;
    if (!valid) {
      refused = fmt::format("batch job {}: {}", at, valid.error().message());
    } else if (!job.tenant().empty() && tenant_or_default(job.tenant()) != tenant) {
      refused = fmt::format("batch job {}: names another tenant than the batch's", at);
    }
    if (!refused.empty()) {
      action_ = "submit";
      const ScopedName named = scoped(tenant, fmt::format("rejected-batch-{}-{}-{}", record.partition, record.offset, at));
      const std::string value = encode(one);  // as written: the tenant it named is evidence
      const InputRecord single{record.partition, record.offset,    "", value, header::kProtobuf, "command",
                               record.timestamp, record.request_id};
      reject(single, &named, refused, out);
      emit_status(named, Entry(), v1::REJECTED, refused, out);
      continue;
    }
    job.set_tenant(std::string(tenant_field(tenant)));
    const std::string value = encode(one);
    // Keyless: apply() forwards it to its owner (with the batch's timestamp, so a delay counts
    // from the batch), or decides it here; a job it refuses gets its own dead letter.
    const InputRecord single{record.partition, record.offset,    "", value, header::kProtobuf, "command",
                             record.timestamp, record.request_id};
    if (auto applied = apply(state, single, out); !applied) return applied.error().within(fmt::format("batch job {}", at));
  }
  return Status::success();
}

void DispatcherCore::forward(const InputRecord& record, Partition partition, std::string_view key, std::vector<OutRecord>& out) {
  std::vector<std::pair<std::string, std::string>> headers = {{"kcron-forwarded-from", std::to_string(record.partition.value())}};
  if (!record.content_type.empty()) headers.emplace_back(header::kContentType, record.content_type);
  if (!record.kcron_type.empty()) headers.emplace_back(header::kType, record.kcron_type);
  if (!record.request_id.empty()) headers.emplace_back(header::kRequestId, record.request_id);
  // The original timestamp travels along, so a delay resolves from the first submit.
  out.push_back({settings_.names.jobs(), partition.value(), std::string(key), std::string(record.value), false,
                 std::move(headers), to_epoch_ms(record.timestamp)});
  ++counts_.forwarded;
}

}  // namespace kcron::dispatcher
