#include "core/schedule_planner.h"

#include <date/date.h>
#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>

#include "kcron/codec.h"
#include "kcron/flow_graph.h"
#include "kcron/ids.h"
#include "kcron/priority.h"
#include "kcron/records.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"

namespace kcron::cron {
namespace {

constexpr std::size_t kMaxScannedRuns = 1'000'000;  // per schedule and tick, for long outages
// A trigger id is `<schedule id>@<instant>` (up to 25 bytes after the id), and the dispatcher
// refuses longer job ids than kMaxJobIdBytes.
constexpr std::size_t kMaxScheduleIdBytes = kMaxJobIdBytes - 25;
// What a run adds to its job template: its job id, the schedule id in schedule_run, the job id
// again in its headers.
constexpr std::size_t kRunOverheadBytes = templates::kRunOverheadBytes;

// Milliseconds clamped to +-2^53 (285,000 years), so absurd binary input cannot overflow.
std::int64_t clamped_ms(std::int64_t seconds, std::int32_t nanos) {
  constexpr std::int64_t kLimitMs = std::int64_t{1} << 53;
  if (seconds > kLimitMs / 1000) return kLimitMs;
  if (seconds < -kLimitMs / 1000) return -kLimitMs;
  return seconds * 1000 + nanos / 1'000'000;
}
std::int64_t to_ms(const google::protobuf::Timestamp& timestamp) {
  return clamped_ms(timestamp.seconds(), timestamp.nanos());
}
std::int64_t to_ms(const google::protobuf::Duration& duration) {
  return clamped_ms(duration.seconds(), duration.nanos());
}

std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

std::uint64_t fingerprint(const v1::Schedule& definition) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    definition.SerializeToCodedStream(&coded);
  }
  return fnv1a(bytes);
}

std::string SchedulePlanner::trigger_id(std::string_view schedule_id, Instant nominal) {
  const bool whole_seconds = nominal.time_since_epoch().count() % 1000 == 0;
  const std::string instant =
      whole_seconds ? date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(nominal)) : date::format("%FT%TZ", nominal);
  return fmt::format("{}@{}", schedule_id, instant);
}

SchedulePlanner::SchedulePlanner(PlannerSettings settings, const Clock& clock) : settings_(std::move(settings)), clock_(clock) {}

Result<SchedulePlanner::Entry> SchedulePlanner::validate(const ScheduleRecord& record, v1::Schedule definition) const {
  // A schedule's identity is (tenant, id): the record key is its scoped key (kcron/tenant.h).
  if (definition.id().empty()) {
    const auto named = split_scoped_key(record.key);
    definition.set_id(std::string(named.id));
    if (definition.tenant().empty()) definition.set_tenant(std::string(tenant_field(named.tenant)));
  }
  const auto tenant = tenant_or_default(definition.tenant());
  if (auto valid = is_default_tenant(tenant) ? validate_default_tenant_id(definition.id()) : validate_tenant_name(tenant);
      !valid) {
    return valid.error();
  }
  definition.set_tenant(std::string(tenant_field(tenant)));
  if (const auto key = scoped_key(tenant, definition.id()); key != record.key) {
    return make_error("schedule id '{}'{} does not match the record key '{}': its key must be '{}'", definition.id(),
                      is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant), record.key, key);
  }
  if (definition.id().find_first_of("@/") != std::string::npos) {
    return make_error("schedule id '{}' must not contain '@' or '/' (they separate a run's instant)", definition.id());
  }
  if (definition.id().size() > kMaxScheduleIdBytes) {
    return make_error("schedule id of {} bytes is longer than {} bytes", definition.id().size(), kMaxScheduleIdBytes);
  }
  if (std::any_of(definition.id().begin(), definition.id().end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return make_error("schedule id contains a control character");
  }
  // Proto3 keeps unknown enum numbers: refuse them rather than read them as the default.
  if (!v1::MisfirePolicy_IsValid(definition.misfire())) {
    return make_error("schedule {}: misfire policy {} is not a known value", definition.id(),
                      static_cast<int>(definition.misfire()));
  }
  if (!v1::OverlapPolicy_IsValid(definition.overlap())) {
    return make_error("schedule {}: overlap policy {} is not a known value", definition.id(),
                      static_cast<int>(definition.overlap()));
  }
  auto expression = CronExpression::parse(definition.expression());
  if (!expression) return expression.error().within(fmt::format("schedule {}", definition.id()));
  auto zone = TimeZone::locate(definition.time_zone().empty() ? "UTC" : definition.time_zone());
  if (!zone) return zone.error().within(fmt::format("schedule {}", definition.id()));
  if (auto next = expression->next_after(clock_.now(), *zone); !next) {
    return next.error().within(fmt::format("schedule {}", definition.id()));  // e.g. `0 0 30 2 *` never fires
  }
  if (definition.has_template_ref()) {
    if (definition.has_job_template() || definition.has_flow_template()) {
      return make_error("schedule {}: set one of job_template, flow_template, template_ref", definition.id());
    }
    if (auto valid = check_template_ref(definition); !valid) return valid.error();
  } else if (definition.has_flow_template()) {
    if (definition.has_job_template()) {
      return make_error("schedule {}: set job_template or flow_template, not both", definition.id());
    }
    if (auto valid = check_flow_template(definition); !valid) return valid.error();
  } else if (auto valid = check_job(definition.job_template(), "job_template"); !valid) {
    return valid.error().within(fmt::format("schedule {}", definition.id()));
  }
  if (definition.has_start() && definition.has_end() && to_ms(definition.end()) <= to_ms(definition.start())) {
    return make_error("schedule {}: end is not after start", definition.id());
  }
  Entry entry{std::move(definition), std::move(*expression), *zone, record.partition, {}, 0, 0, {}, {}, false, std::nullopt,
              std::nullopt};
  return entry;
}

Status SchedulePlanner::check_job(const v1::Job& job, std::string_view field) const {
  if (job.task_case() == v1::Job::TASK_NOT_SET) {
    return make_error("{} has no task: set one of noop, sleep, exec, http, kafka, handler", field);
  }
  const std::string queue = job.queue().empty() ? "default" : job.queue();
  if (!settings_.queues.contains(queue)) return make_error("{}: unknown queue '{}'", field, queue);
  if (job.has_priority() && job.priority() > kMaxPriority) {
    return make_error("{}: priority {} is outside 0-9", field, job.priority());
  }
  return Status::success();
}

Status SchedulePlanner::check_template_ref(const v1::Schedule& definition) const {
  auto ref = templates::parse_ref(definition.template_ref().ref(), true);
  if (!ref) return ref.error().within(fmt::format("schedule {}: template_ref", definition.id()));
  for (const auto& [name, value] : definition.template_ref().params()) {
    if (!templates::is_valid_param_name(name)) {
      return make_error("schedule {}: template_ref: '{}' is not a parameter name ([a-z0-9_], not starting with a digit)",
                        definition.id(), name.substr(0, templates::kMaxNameBytes));
    }
    if (value.size() > templates::kMaxValueBytes) {
      return make_error("schedule {}: template_ref: the value of parameter '{}' is longer than {} bytes", definition.id(), name,
                        templates::kMaxValueBytes);
    }
  }
  return Status::success();
}

Result<std::optional<v1::Job>> SchedulePlanner::render_run(const Entry& entry) const {
  const auto& definition = entry.definition;
  auto ref = templates::parse_ref(definition.template_ref().ref(), true);
  if (!ref) return ref.error().within(fmt::format("schedule {}: template_ref", definition.id()));
  const v1::Template* found = catalog_ != nullptr ? catalog_->find(definition.tenant(), ref->name, ref->version) : nullptr;
  if (found == nullptr) return std::optional<v1::Job>();
  const templates::Params params(definition.template_ref().params().begin(), definition.template_ref().params().end());
  auto job = templates::render(*found, params);
  if (!job) return job.error().within(fmt::format("schedule {}", definition.id()));
  if (auto valid = check_job(*job, "the rendered job"); !valid) {
    return valid.error().within(fmt::format("schedule {}: template '{}'", definition.id(), ref->text()));
  }
  return std::optional<v1::Job>(std::move(*job));
}

bool SchedulePlanner::renders_templates(const v1::Schedule& definition) {
  if (definition.has_template_ref()) return true;
  if (!definition.has_flow_template()) return false;
  const auto& nodes = definition.flow_template().nodes();
  return std::any_of(nodes.begin(), nodes.end(), [](const v1::FlowNode& node) { return node.has_template_ref(); });
}

Result<bool> SchedulePlanner::render_entry(Entry& entry, std::string& missing) const {
  const auto& definition = entry.definition;
  const std::string whose = is_default_tenant(definition.tenant()) ? "" : fmt::format(" of tenant '{}'", definition.tenant());
  if (definition.has_template_ref()) {
    auto job = render_run(entry);
    if (!job) return job.error();
    if (!job->has_value()) {
      auto ref = templates::parse_ref(definition.template_ref().ref(), true);
      missing = fmt::format("template '{}'{}", ref ? ref->text() : definition.template_ref().ref(), whose);
      return false;
    }
    entry.rendered = std::move(**job);
    return true;
  }
  // A flow_template's template nodes (docs/templates.md#templates-in-flows): rendered once every
  // version is in the catalog, each node's job then checked as an inline node's is.
  const std::string within = fmt::format("schedule {}: flow_template", definition.id());
  const templates::Catalog none;
  v1::Flow flow = definition.flow_template();
  auto rendered =
      templates::render_flow_nodes(flow, catalog_ != nullptr ? *catalog_ : none, definition.tenant(), settings_.max_record_bytes);
  if (!rendered) return rendered.error().within(within);
  if (rendered->is_missing()) {
    missing = fmt::format("flow_template: node '{}': template '{}'{}", rendered->missing_node, rendered->missing.text(), whose);
    return false;
  }
  if (auto refused =
          templates::check_rendered_flow(flow, templates::schedule_run_rules(&settings_.queues, settings_.max_record_bytes)))
    return make_error("{}: {}", within, refused->message);
  entry.rendered_flow = std::move(flow);
  return true;
}

void SchedulePlanner::remember_record(Entry& entry, const ScheduleRecord& record) const {
  if (!renders_templates(entry.definition)) return;
  entry.arrived_ms = now_ms();
  entry.offset = record.offset;
  entry.value = std::string(record.value);
  entry.content_type = std::string(record.content_type);
}

Status SchedulePlanner::check_flow_template(const v1::Schedule& definition) const {
  const auto& flow = definition.flow_template();
  const auto within = [&](std::string_view what) { return fmt::format("schedule {}: flow_template{}", definition.id(), what); };
  if (!flow.id().empty() || !flow.tenant().empty() || flow.run_at_ms() != 0 || flow.has_schedule_run()) {
    return make_error("{}: kcron sets a run's id, tenant, run_at_ms and schedule_run; leave them out", within(""));
  }
  // Checked as the dispatcher checks a run, with the longest id a run can have:
  // `<schedule>@YYYY-MM-DDTHH:MM:SS.mmmZ`, each node's job `<run>/<node>`.
  const std::string longest_run = fmt::format("{}@2000-01-01T00:00:00.000Z", definition.id());
  std::vector<flow::NodeShape> shapes;
  shapes.reserve(static_cast<std::size_t>(flow.nodes_size()));
  for (const auto& node : flow.nodes()) shapes.push_back({node.name(), {node.depends_on().begin(), node.depends_on().end()}});
  if (auto order = flow::check_graph(longest_run, shapes, settings_.flow_limits); !order) {
    return order.error().within(within(""));
  }
  // A node naming a template version is rendered at each run, once the version is in the catalog.
  if (auto refs = templates::flow_template_refs(flow); !refs) return refs.error().within(within(""));
  for (const auto& node : flow.nodes()) {
    const std::string field = fmt::format("node '{}': job", node.name());
    if (!v1::FlowNode::Trigger_IsValid(node.trigger())) {
      return make_error("{}: node '{}': trigger {} is not a known value", within(""), node.name(),
                        static_cast<int>(node.trigger()));
    }
    if (node.has_template_ref()) continue;
    const auto& job = node.job();
    if (!job.id().empty() || !job.tenant().empty() || job.has_schedule_run() || job.has_flow()) {
      return make_error("{}: {}: kcron sets a node's id, tenant, schedule_run and flow; leave them out", within(""), field);
    }
    if (job.when_case() == v1::Job::kRunAt || job.when_case() == v1::Job::kRunAtMs) {
      return make_error("{}: {}: run_at would be the same instant for every run; use delay (counted from the run's start)",
                        within(""), field);
    }
    if (auto valid = check_job(job, field); !valid) return valid.error().within(within(""));
  }
  return Status::success();
}

void SchedulePlanner::restore_state(std::int32_t /*partition*/, std::string_view schedule_id, std::string_view value,
                                    bool tombstone) {
  v1::CronState state;
  if (tombstone || !state.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    restored_states_.erase(std::string(schedule_id));
    return;
  }
  restored_states_[std::string(schedule_id)] = state;
}

void SchedulePlanner::load(const ScheduleRecord& record) {
  if (record.key.empty() || partition_for_key(record.key, settings_.schedules_partitions).value() != record.partition) return;
  const std::string id(record.key);
  if (record.tombstone || record.value.empty()) {
    schedules_.erase(id);
    return;
  }
  v1::Schedule definition;
  if (!decode_message(record.value, record.content_type, definition)) return;  // rejected when it arrived
  auto entry = validate(record, std::move(definition));
  if (!entry) return;
  remember_record(*entry, record);
  const auto restored = restored_states_.find(id);
  if (restored != restored_states_.end()) {
    entry->state = restored->second;
  } else {
    entry->state.set_schedule_id(id);
    entry->state.set_last_nominal_ms(now_ms());
    entry->state.set_fingerprint(fingerprint(entry->definition));
  }
  schedules_.insert_or_assign(id, std::move(*entry));
}

void SchedulePlanner::apply(const ScheduleRecord& record, std::vector<OutRecord>& out) {
  // Key and content-type count too: a forward copies them, and must fit a producer's message limit.
  // Each run's Submit is the job template plus what the planner adds (the run's job id, the
  // schedule_run fields, headers): keep room for that under the dispatcher's input limit.
  const std::size_t record_bytes = record.key.size() + record.value.size() + record.content_type.size();
  const std::size_t limit = settings_.max_record_bytes > kRunOverheadBytes ? settings_.max_record_bytes - kRunOverheadBytes : 0;
  if (record_bytes > limit) {
    reject(record, fmt::format("record of {} bytes exceeds the limit of {} bytes", record_bytes, limit), out);
    return;
  }
  if (record.key.empty()) {
    reject(record, "a schedule record needs the schedule id as its key", out);
    return;
  }
  const auto owner = partition_for_key(record.key, settings_.schedules_partitions).value();
  if (owner != record.partition) {
    std::vector<std::pair<std::string, std::string>> headers = {{"kcron-forwarded-from", std::to_string(record.partition)}};
    if (!record.content_type.empty()) headers.emplace_back(header::kContentType, record.content_type);
    out.push_back(
        {settings_.names.schedules(), owner, std::string(record.key), std::string(record.value), record.tombstone, headers});
    ++counts_.forwarded;
    return;
  }
  const std::string id(record.key);
  auto existing = schedules_.find(id);
  if (record.tombstone || record.value.empty()) {  // an empty value deletes too (what `kcat -P` sends without -Z)
    if (existing == schedules_.end()) return;
    cancel_ahead(existing->second, out);
    out.push_back({settings_.names.cron_changelog(), record.partition, id, "", true, {}});
    schedules_.erase(existing);
    return;
  }
  v1::Schedule definition;
  if (auto decoded = decode_message(record.value, record.content_type, definition); !decoded) {
    reject(record, decoded.error().message(), out);
    return;
  }
  auto entry = validate(record, std::move(definition));
  if (!entry) {
    reject(record, entry.error().message() + (existing != schedules_.end() ? " (the previous definition stays in force)" : ""),
           out);
    return;
  }
  if (renders_templates(entry->definition)) {
    // Refused at once when a version is known and does not render (a parameter missing, unknown
    // or of the wrong type); a version not seen yet is waited for, from now, at each tick.
    std::string missing;
    if (auto rendered = render_entry(*entry, missing); !rendered) {
      reject(record,
             rendered.error().message() + (existing != schedules_.end() ? " (the previous definition stays in force)" : ""), out);
      return;
    }
    remember_record(*entry, record);
  }
  const auto print = fingerprint(entry->definition);
  if (existing != schedules_.end()) {
    if (existing->second.state.fingerprint() == print && !existing->second.rejected) {
      existing->second.definition = entry->definition;  // replayed or identical: nothing changes
      if (!existing->second.rendered) existing->second.rendered = std::move(entry->rendered);
      if (!existing->second.rendered_flow) existing->second.rendered_flow = std::move(entry->rendered_flow);
      return;
    }
    cancel_ahead(existing->second, out);  // runs emitted ahead for the old definition
    entry->state = existing->second.state;
    entry->state.set_last_nominal_ms(now_ms());
    entry->state.set_never_fires(false);
  } else {
    entry->state.set_schedule_id(id);
    entry->state.set_last_nominal_ms(now_ms());
  }
  entry->state.set_fingerprint(print);
  save_state(*entry, out);
  schedules_.insert_or_assign(id, std::move(*entry));
}

std::size_t SchedulePlanner::tick(std::vector<OutRecord>& out) {
  const auto now = clock_.now();
  const auto horizon = now + settings_.lookahead;
  std::size_t emitted_total = 0;
  for (auto& id_and_entry : schedules_) {
    Entry& entry = id_and_entry.second;  // not a structured binding: clang < 16 cannot capture one
    const auto& definition = entry.definition;
    if (definition.paused() || entry.state.never_fires()) continue;
    if (hold_tenant_runs_ && !is_default_tenant(definition.tenant())) continue;
    if (hold_flow_runs_ && definition.has_flow_template()) continue;
    if (entry.rejected) continue;
    if (renders_templates(definition) && !entry.rendered && !entry.rendered_flow) {
      std::string missing;
      auto rendered = render_entry(entry, missing);
      if (rendered && !*rendered && now_ms() - entry.arrived_ms <= settings_.template_wait.count()) continue;  // waiting
      if (!rendered || !*rendered) {
        const std::string reason = rendered ? fmt::format("schedule {}: {} was not found on {} within {} ms", definition.id(),
                                                          missing, settings_.names.templates(), settings_.template_wait.count())
                                            : rendered.error().message();
        const std::string key = scoped_key(definition.tenant(), definition.id());
        reject({entry.partition, entry.offset, key, entry.value, false, entry.content_type}, reason, out);
        entry.rejected = true;
        continue;
      }
    }
    const Instant anchor = definition.has_start() ? instant_from_ms(to_ms(definition.start())) : Instant{};
    Instant from = instant_from_ms(entry.state.last_nominal_ms());
    if (definition.has_start()) from = std::max(from, instant_from_ms(to_ms(definition.start()) - 1));
    const auto starting = entry.state;
    std::vector<Instant> missed;
    std::size_t emitted = 0;
    auto flush_missed = [&] {
      if (missed.empty()) return;
      std::size_t first_kept = missed.size();  // skip: none
      if (definition.misfire() == v1::FIRE_ALL) {
        const auto window = to_ms(definition.catchup_window());
        first_kept = 0;
        while (first_kept < missed.size() && window > 0 && to_epoch_ms(now) - to_epoch_ms(missed[first_kept]) > window)
          ++first_kept;
      } else if (definition.misfire() != v1::SKIP) {
        first_kept = missed.size() - 1;  // fire_once: only the latest missed run
      }
      counts_.skipped += first_kept;
      for (std::size_t index = first_kept; index < missed.size(); ++index) emit(entry, missed[index], out);
      emitted += missed.size() - first_kept;
      missed.clear();
    };
    for (std::size_t scanned = 0; scanned < kMaxScannedRuns && emitted < settings_.max_runs_per_tick; ++scanned) {
      if (definition.max_runs() > 0 && entry.state.runs() + missed.size() >= definition.max_runs()) break;
      auto next = entry.expression.next_after(from, entry.zone, anchor);
      if (!next) {
        entry.state.set_never_fires(true);
        break;
      }
      if (*next > horizon || (definition.has_end() && to_epoch_ms(*next) > to_ms(definition.end()))) break;
      from = *next;
      if (now - *next > settings_.misfire_threshold) {
        missed.push_back(*next);
        if (missed.size() >= settings_.max_runs_per_tick && definition.misfire() == v1::FIRE_ALL) break;
        continue;
      }
      flush_missed();
      emit(entry, *next, out);
      ++emitted;
    }
    flush_missed();
    entry.state.set_last_nominal_ms(to_epoch_ms(from));
    if (entry.state.SerializeAsString() != starting.SerializeAsString()) save_state(entry, out);
    emitted_total += emitted;
  }
  return emitted_total;
}

void SchedulePlanner::emit(Entry& entry, Instant nominal, std::vector<OutRecord>& out) {
  const auto& definition = entry.definition;
  const std::string job_id = trigger_id(definition.id(), nominal);
  const std::string schedule_key = scoped_key(definition.tenant(), definition.id());
  std::int64_t jitter_ms = 0;
  if (const auto jitter = to_ms(definition.jitter()); jitter > 0) {
    jitter_ms = static_cast<std::int64_t>(fnv1a(job_id) % static_cast<std::uint64_t>(jitter));  // deterministic per run
  }
  v1::ScheduleRun run;
  run.set_schedule_id(definition.id());
  run.mutable_nominal_instant()->set_seconds(to_epoch_ms(nominal) / 1000);
  run.mutable_nominal_instant()->set_nanos(static_cast<std::int32_t>(to_epoch_ms(nominal) % 1000) * 1'000'000);
  run.set_misfire(definition.misfire());
  *run.mutable_catchup_window() = definition.catchup_window();
  run.set_overlap(definition.overlap());
  v1::Command command;
  if (definition.has_flow_template()) {
    // A flow run `<schedule>@<instant>`: its nodes are `<schedule>@<instant>/<node>`, on the
    // schedule's partition too (routing takes the id up to its first '@' or '/').
    v1::Flow& flow = *command.mutable_flow();
    flow = entry.rendered_flow ? *entry.rendered_flow : definition.flow_template();  // rendered: carries `template`
    flow.set_id(job_id);
    flow.set_tenant(definition.tenant());
    flow.set_run_at_ms(to_epoch_ms(nominal) + jitter_ms);
    *flow.mutable_schedule_run() = std::move(run);
    out.push_back({settings_.names.jobs(), -1, schedule_key, encode(command), false,
                   typed_headers("command", job_id, definition.tenant())});
    entry.state.set_runs(entry.state.runs() + 1);
    ++counts_.emitted;
    return;
  }
  v1::Job& job = *command.mutable_submit();
  job = entry.rendered ? *entry.rendered : definition.job_template();  // rendered: carries `template`
  job.set_id(job_id);
  job.set_tenant(definition.tenant());
  job.set_attempt(0);
  job.set_run_at_ms(to_epoch_ms(nominal) + jitter_ms);
  *job.mutable_schedule_run() = std::move(run);
  // Routed by the schedule's scoped key: every run of it lands on one dispatcher partition.
  out.push_back(
      {settings_.names.jobs(), -1, schedule_key, encode(command), false, typed_headers("command", job_id, definition.tenant())});
  entry.state.set_runs(entry.state.runs() + 1);
  ++counts_.emitted;
}

void SchedulePlanner::cancel_ahead(const Entry& entry, std::vector<OutRecord>& out) {
  const auto now = clock_.now();
  const auto last = instant_from_ms(entry.state.last_nominal_ms());
  const Instant anchor = entry.definition.has_start() ? instant_from_ms(to_ms(entry.definition.start())) : Instant{};
  Instant from = now;
  for (std::size_t scanned = 0; scanned < settings_.max_runs_per_tick && from < last; ++scanned) {
    auto next = entry.expression.next_after(from, entry.zone, anchor);
    if (!next || *next > last) break;
    v1::Command command;
    command.mutable_cancel()->set_job_id(trigger_id(entry.definition.id(), *next));
    command.mutable_cancel()->set_tenant(entry.definition.tenant());
    command.mutable_cancel()->set_reason("schedule changed or deleted");
    command.mutable_cancel()->set_flow(entry.definition.has_flow_template());
    out.push_back({settings_.names.jobs(), -1, scoped_key(entry.definition.tenant(), entry.definition.id()), encode(command),
                   false, typed_headers("command", command.cancel().job_id(), entry.definition.tenant())});
    ++counts_.cancelled;
    from = *next;
  }
}

void SchedulePlanner::save_state(const Entry& entry, std::vector<OutRecord>& out) {
  out.push_back({settings_.names.cron_changelog(),
                 entry.partition,
                 scoped_key(entry.definition.tenant(), entry.definition.id()),
                 encode(entry.state),
                 false,
                 {}});
}

void SchedulePlanner::reject(const ScheduleRecord& record, std::string_view reason, std::vector<OutRecord>& out) {
  const std::string topic = settings_.names.schedules();
  const RejectedInput input{topic, Partition(record.partition), record.offset, record.key, record.value};
  // The record key names the schedule (its tenant's scoped key), when it is one kcron could write.
  const auto named = split_scoped_key(record.key.substr(0, std::min(record.key.size(), kMaxJobIdBytes)));
  const std::string key = append_rejected(input, named.tenant, named.id, reason, clock_.now(), settings_.component,
                                          settings_.max_dead_letter_copy, settings_.names, out);
  // kcron.events carries job transitions, which the dispatcher and the workers write: not this.
  append_status({.job_id = named.id,
                 .state = v1::REJECTED,
                 .at = clock_.now(),
                 .reason = reason,
                 .component = settings_.component,
                 .tenant = named.tenant},
                settings_.names, false, out);
  ++counts_.rejected;
}

void SchedulePlanner::drop_partition(std::int32_t partition) {
  std::erase_if(schedules_, [partition](const auto& item) { return item.second.partition == partition; });
}

}  // namespace kcron::cron
