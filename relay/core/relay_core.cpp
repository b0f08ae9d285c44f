#include "core/relay_core.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "kcron/codec.h"
#include "kcron/flow_graph.h"
#include "kcron/ids.h"
#include "kcron/kafka_acls.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"

namespace kcron::relay {
namespace {

constexpr std::string_view kInfix = "in.";
constexpr std::string_view kSchedulesSuffix = ".schedules";
constexpr std::size_t kMaxBatchJobs = 10'000;  // as the dispatcher's max_batch_jobs
// A schedule's run ids append `@<instant>` (up to 25 bytes) to the schedule id: the id leaves room.
constexpr std::size_t kMaxScheduleIdBytes = kMaxJobIdBytes - 25;

// The action name of a command, as the audit topic spells it.
// Whether a body's tenant field names a tenant other than the topic's (empty names none).
bool names_other_tenant(std::string_view body_tenant, std::string_view tenant) {
  return !body_tenant.empty() && tenant_or_default(body_tenant) != tenant_or_default(tenant);
}

// The fields of a job only kcron sets (as kcron-api refuses them from its clients,
// api/core/requests.cpp): an error naming the field, else nothing.
std::optional<std::string> refused_job_field(const v1::Job& job, std::string_view where) {
  if (!job.submitted_by().empty()) return fmt::format("{}submitted_by: kcron sets it; leave the field out", where);
  if (job.attempt() != 0) return fmt::format("{}attempt: kcron sets it; leave the field out", where);
  if (job.history_size() != 0) return fmt::format("{}history: kcron sets it; leave the field out", where);
  if (!job.template_().empty()) {
    return fmt::format("{}template: set by the writer that renders a template (kcron submit --template); leave the field out",
                       where);
  }
  if (job.has_schedule_run()) {
    return fmt::format(
        "{}schedule_run: set by the cron-producer for a schedule's runs; put a schedule on the tenant's "
        "schedules topic instead",
        where);
  }
  return std::nullopt;
}

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF), as
// every string field of a Protobuf message must be: an id taken from a record key goes into them.
bool valid_utf8(std::string_view text) {
  std::size_t index = 0;
  while (index < text.size()) {
    const auto lead = static_cast<unsigned char>(text[index]);
    std::size_t length = 0;
    std::uint32_t point = 0;
    if (lead < 0x80U) {
      ++index;
      continue;
    }
    if (lead >= 0xC2U && lead <= 0xDFU) {
      length = 2;
      point = lead & 0x1FU;
    } else if (lead >= 0xE0U && lead <= 0xEFU) {
      length = 3;
      point = lead & 0x0FU;
    } else if (lead >= 0xF0U && lead <= 0xF4U) {
      length = 4;
      point = lead & 0x07U;
    } else {
      return false;
    }
    if (index + length > text.size()) return false;
    for (std::size_t next = 1; next < length; ++next) {
      const auto byte = static_cast<unsigned char>(text[index + next]);
      if ((byte & 0xC0U) != 0x80U) return false;
      point = (point << 6U) | (byte & 0x3FU);
    }
    const std::uint32_t least = length == 2 ? 0x80U : length == 3 ? 0x800U : 0x10000U;
    if (point < least || point > 0x10FFFFU || (point >= 0xD800U && point <= 0xDFFFU)) return false;
    index += length;
  }
  return true;
}

Status validate_id_of(std::string_view tenant, std::string_view id) {
  if (auto valid = validate_job_id(id); !valid) return valid;
  if (!valid_utf8(id)) return make_error("id is not valid UTF-8");
  if (is_default_tenant(tenant)) return validate_default_tenant_id(id);
  return Status::success();
}

std::string source_of(const InputRecord& record) {
  return fmt::format("{}/{}@{}", record.topic, record.partition, record.offset);
}

}  // namespace

Result<InputTopic> parse_input_topic(std::string_view prefix, std::string_view topic) {
  if (!topic.starts_with(prefix) || !topic.substr(prefix.size()).starts_with(kInfix)) {
    return make_error("topic '{}' is not a tenant's input topic: it does not start with '{}{}'", topic.substr(0, 300), prefix,
                      kInfix);
  }
  std::string_view rest = topic.substr(prefix.size() + kInfix.size());
  InputTopic input;
  if (rest.size() > kSchedulesSuffix.size() && rest.ends_with(kSchedulesSuffix)) {
    rest.remove_suffix(kSchedulesSuffix.size());
    input.kind = InputKind::kSchedules;
  }
  if (auto valid = validate_tenant_name(rest); !valid) {
    return make_error("topic '{}' is not a tenant's input topic ('{}in.<tenant>' or '{}in.<tenant>.schedules'): {}",
                      topic.substr(0, 300), prefix, prefix, valid.error().message());
  }
  input.tenant = std::string(rest);
  return input;
}

std::string input_topic(std::string_view prefix, std::string_view tenant) {
  return tenant_input_topic(prefix, tenant);
}

std::string schedules_input_topic(std::string_view prefix, std::string_view tenant) {
  return tenant_schedules_topic(prefix, tenant);
}

std::string subscription_pattern(std::string_view prefix) {
  std::string pattern = "^";
  for (const char c : prefix) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') pattern += '\\';
    pattern += c;
  }
  // Tenant names are [a-z0-9][a-z0-9-]{0,39}; the length is left to parse_input_topic (a counted
  // repetition is not in every regex dialect librdkafka builds with).
  pattern += R"(in\.[a-z0-9][-a-z0-9]*(\.schedules)?$)";
  return pattern;
}

Relay::Relay(RelaySettings settings, const Clock& clock) : settings_(std::move(settings)), clock_(clock) {}

Decision Relay::apply(const InputRecord& record, std::vector<OutRecord>& out) {
  auto topic = parse_input_topic(settings_.names.prefix, record.topic);
  if (!topic) {
    ++counts_.skipped;
    return Decision{.outcome = Outcome::kSkipped, .reason = topic.error().message()};
  }
  Decision decision = topic->kind == InputKind::kCommands ? command(record, *topic, out) : schedule(record, *topic, out);
  if (decision.tenant_overridden) ++counts_.tenant_overridden;
  if (decision.outcome == Outcome::kForwarded) {
    ++counts_.forwarded;
    if (topic->kind == InputKind::kSchedules) ++counts_.schedules;
  }
  return decision;
}

Decision Relay::command(const InputRecord& record, const InputTopic& topic, std::vector<OutRecord>& out) {
  Decision decision{.tenant = topic.tenant, .action = "unknown"};
  const auto refuse = [&](std::string reason, bool with_status = false) {
    decision.reason = std::move(reason);
    reject(record, topic, decision, with_status, out);
    return decision;
  };
  const std::size_t record_bytes = record.key.size() + record.value.size();
  if (record_bytes > settings_.max_record_bytes) {
    return refuse(fmt::format("record of {} bytes exceeds the limit of {} bytes", record_bytes, settings_.max_record_bytes));
  }
  if (record.tombstone || record.value.empty()) return refuse("empty record: expected a Command or a Job");
  auto decoded = decode_command(record.value, record.content_type, record.kcron_type);
  if (!decoded) return refuse(decoded.error().message());
  v1::Command& command = *decoded;
  decision.action = std::string(command_action(command));
  switch (command.command_case()) {
    case v1::Command::kSubmit:
    case v1::Command::kCancel:
    case v1::Command::kUpdate:
    case v1::Command::kReplay:
    case v1::Command::kFlow:
    case v1::Command::kBatch:
      break;
    case v1::Command::kRetry:
    case v1::Command::kCompletion:
      return refuse(
          fmt::format("a {} is written only by kcron's workers: a tenant's topic takes submit, cancel, update and replay",
                      command_type(command)));
    case v1::Command::kPurgeTenant:
      return refuse(
          "a purge-tenant is written only by `kcron tenant delete`: a tenant's topic takes submit, cancel, update and replay");
    case v1::Command::COMMAND_NOT_SET:
      return refuse("record holds no command: expected one of submit, cancel, update, replay, flow, batch");
  }
  if (command.has_batch()) {
    // Every job is the tenant's; the dispatcher hands each to its owner (a batch is keyless).
    auto& batch = *command.mutable_batch();
    if (!batches_allowed_) {
      return refuse(
          "batch records wait until every dispatcher and worker understands them (a rolling upgrade is in progress): send "
          "the jobs one by one, or again once it has ended");
    }
    if (batch.jobs().empty()) return refuse("a batch holds no jobs");
    if (static_cast<std::size_t>(batch.jobs_size()) > kMaxBatchJobs) {
      return refuse(fmt::format("a batch of {} jobs is over the limit of {}: split it", batch.jobs_size(), kMaxBatchJobs));
    }
    const std::string tenant(tenant_field(topic.tenant));
    decision.tenant_overridden = names_other_tenant(batch.tenant(), topic.tenant);
    batch.set_tenant(tenant);
    for (int at = 0; at < batch.jobs_size(); ++at) {
      auto& job = *batch.mutable_jobs(at);
      if (auto valid = validate_id_of(topic.tenant, job.id()); !valid) {
        return refuse(fmt::format("batch job {}: {}", at, valid.error().message()));
      }
      if (auto refused = refused_job_field(job, fmt::format("batch job {}: ", at)); refused) return refuse(*refused);
      decision.tenant_overridden = decision.tenant_overridden || names_other_tenant(job.tenant(), topic.tenant);
      job.set_tenant(tenant);
      job.set_submitted_by(fmt::format("kafka:{}", record.topic));
    }
    OutRecord forwarded{settings_.names.jobs(), -1, "", encode(command), false, typed_headers("batch", "", topic.tenant)};
    // Each job now carries the tenant and its submitter: the batch must still fit a record.
    if (forwarded.value.size() > settings_.max_record_bytes) {
      return refuse(fmt::format(
          "the batch is {} bytes once each of its {} jobs carries its tenant and submitter, over the limit of {} bytes: split "
          "it into smaller batches",
          forwarded.value.size(), batch.jobs_size(), settings_.max_record_bytes));
    }
    forwarded.timestamp_ms = record.timestamp_ms;
    forwarded.headers.emplace_back("kcron-relayed-from", source_of(record));
    out.push_back(std::move(forwarded));
    decision.outcome = Outcome::kForwarded;
    return decision;
  }
  const bool submit = command.has_submit();
  decision.id = std::string(command_job_id(command));
  if (auto valid = validate_id_of(topic.tenant, decision.id); !valid) {
    const std::string reason = valid.error().message();
    // An id that is no valid id cannot key anything of the tenant's: keyed as an unread record.
    decision.id.clear();
    return refuse(reason);
  }
  const std::string tenant(tenant_field(topic.tenant));
  const std::string submitted_by = fmt::format("kafka:{}", record.topic);
  v1::Job* job = nullptr;
  if (command.has_submit()) job = command.mutable_submit();
  if (command.has_update()) job = command.mutable_update()->mutable_job();
  if (command.has_flow()) {
    // Every node's job is the tenant's, as the flow is.
    auto& flow = *command.mutable_flow();
    if (!flow.submitted_by().empty()) return refuse("submitted_by: kcron sets it; leave the field out");
    if (flow.has_schedule_run()) {
      return refuse(
          "schedule_run: set by the cron-producer for a schedule's flow runs; put a schedule with a flow_template on the "
          "tenant's schedules topic instead");
    }
    decision.tenant_overridden = names_other_tenant(flow.tenant(), topic.tenant);
    flow.set_tenant(tenant);
    flow.set_submitted_by(submitted_by);
    for (auto& node : *flow.mutable_nodes()) {
      const auto name = flow::validate_node_name(node.name(), flow::Limits{}) ? node.name() : std::string("(invalid name)");
      if (node.has_template_ref()) {
        // Templates in flows are rendered by the writer (docs/templates.md#templates-in-flows), and
        // the relay has no catalog: it forwards concrete flows only, as it never sets `template`.
        return refuse(fmt::format(
            "node '{}': template_ref: kcron-relay does not render templates; submit the flow with `kcron flow submit` or "
            "kcron-api's POST /v1/flows, which render them, or give the node its job",
            name));
      }
      auto& node_job = *node.mutable_job();
      if (auto refused = refused_job_field(node_job, fmt::format("node '{}': ", name)); refused) {
        return refuse(*refused);
      }
      decision.tenant_overridden = decision.tenant_overridden || names_other_tenant(node_job.tenant(), topic.tenant);
      node_job.set_tenant(tenant);
    }
  } else if (job != nullptr) {
    if (auto refused = refused_job_field(*job, ""); refused) return refuse(*refused, submit);
    decision.tenant_overridden = names_other_tenant(job->tenant(), topic.tenant);
    job->set_tenant(tenant);
    job->set_submitted_by(submitted_by);
  } else if (command.has_cancel()) {
    decision.tenant_overridden = names_other_tenant(command.cancel().tenant(), topic.tenant);
    command.mutable_cancel()->set_tenant(tenant);
  } else if (command.replay().flow()) {
    // A flow's retry: its tenant is the topic's.
    decision.tenant_overridden = names_other_tenant(command.replay().tenant(), topic.tenant);
    command.mutable_replay()->clear_job();
    command.mutable_replay()->set_tenant(tenant);
  } else if (!command.replay().has_job()) {
    // The dispatcher reads a replay's tenant from its job: without one it would be read as the
    // default tenant's, under a key that is not.
    return refuse("replay: attach the job as its dead letter holds it (as `kcron dlq replay` does)");
  } else {
    // A replay carries the job as its dead letter holds it (attempt and history included; the
    // dispatcher sets the attempt). A schedule run's fields must be that run's own.
    auto& replayed = *command.mutable_replay()->mutable_job();
    if (replayed.has_schedule_run() && replayed.schedule_run().schedule_id() != routing_key_for_job(decision.id)) {
      return refuse(fmt::format("replay: job.schedule_run names schedule '{}', not the schedule of job '{}'",
                                replayed.schedule_run().schedule_id().substr(0, kMaxJobIdBytes), decision.id));
    }
    decision.tenant_overridden = names_other_tenant(replayed.tenant(), topic.tenant);
    replayed.set_tenant(tenant);
    replayed.set_submitted_by(submitted_by);
  }
  auto forwarded = command_record(settings_.names, command, topic.tenant, decision.id);
  forwarded.timestamp_ms = record.timestamp_ms;  // a delay resolves from the tenant's submit
  forwarded.headers.emplace_back("kcron-relayed-from", source_of(record));
  out.push_back(std::move(forwarded));
  decision.outcome = Outcome::kForwarded;
  return decision;
}

Decision Relay::schedule(const InputRecord& record, const InputTopic& topic, std::vector<OutRecord>& out) {
  const bool remove = record.tombstone || record.value.empty();  // an empty value deletes, as on schedules
  Decision decision{.tenant = topic.tenant, .action = remove ? "delete_schedule" : "put_schedule"};
  const auto refuse = [&](std::string reason, bool with_status = false) {
    decision.reason = std::move(reason);
    reject(record, topic, decision, with_status, out);
    return decision;
  };
  const std::size_t record_bytes = record.key.size() + record.value.size();
  if (record_bytes > settings_.max_record_bytes) {
    return refuse(fmt::format("record of {} bytes exceeds the limit of {} bytes", record_bytes, settings_.max_record_bytes));
  }
  if (record.key.empty()) return refuse("a schedule record needs the schedule id as its key");
  const std::string id(record.key);
  if (auto valid = validate_id_of(topic.tenant, id); !valid)
    return refuse(fmt::format("schedule id: {}", valid.error().message()));
  decision.id = id;
  if (id.find_first_of("@/") != std::string::npos) {
    return refuse(fmt::format("schedule id '{}' must not contain '@' or '/' (they separate a run's instant)", id));
  }
  if (id.size() > kMaxScheduleIdBytes) {
    return refuse(fmt::format("schedule id of {} bytes is longer than {} bytes", id.size(), kMaxScheduleIdBytes));
  }
  auto headers_of = [&](OutRecord forwarded) {
    forwarded.timestamp_ms = record.timestamp_ms;
    forwarded.headers.emplace_back("kcron-relayed-from", source_of(record));
    out.push_back(std::move(forwarded));
    decision.outcome = Outcome::kForwarded;
    return decision;
  };
  if (remove) return headers_of(schedule_record(settings_.names, topic.tenant, id, nullptr));
  v1::Schedule definition;
  if (auto decoded = decode_message(record.value, record.content_type, definition); !decoded) {
    return refuse(decoded.error().message(), true);
  }
  if (!definition.id().empty() && definition.id() != id) {
    return refuse(fmt::format("schedule id '{}' differs from the record key '{}': leave the id out, or make it the key",
                              definition.id().substr(0, kMaxJobIdBytes), id),
                  true);
  }
  const std::string tenant(tenant_field(topic.tenant));
  decision.tenant_overridden = names_other_tenant(definition.tenant(), topic.tenant);
  if (definition.has_flow_template()) {
    // Each run is a flow of the topic's tenant: the template names none (the cron-producer sets it).
    auto& flow = *definition.mutable_flow_template();
    if (!flow.submitted_by().empty()) return refuse("flow_template.submitted_by: kcron sets it; leave the field out", true);
    decision.tenant_overridden = decision.tenant_overridden || names_other_tenant(flow.tenant(), topic.tenant);
    flow.clear_tenant();
    for (int at = 0; at < flow.nodes_size(); ++at) {
      // A node naming a template version is passed on: the cron-producer renders it at each run
      // from the schedule's tenant's versions (docs/templates.md#templates-in-flows).
      if (flow.nodes(at).has_template_ref()) {
        if (flow.nodes(at).has_job())
          return refuse(fmt::format("flow_template.nodes[{}]: set job or template_ref, not both", at), true);
        continue;
      }
      auto& job = *flow.mutable_nodes(at)->mutable_job();
      if (auto refused = refused_job_field(job, fmt::format("flow_template.nodes[{}].job.", at)); refused) {
        return refuse(*refused, true);
      }
      decision.tenant_overridden = decision.tenant_overridden || names_other_tenant(job.tenant(), topic.tenant);
      job.clear_tenant();
    }
    flow.set_submitted_by(fmt::format("kafka:{}", record.topic));
  } else if (definition.has_template_ref()) {
    // Each run is rendered by the cron-producer from the schedule's tenant's template version
    // (docs/templates.md#schedules-on-templates): nothing here names another tenant.
    if (definition.has_job_template()) return refuse("set job_template or template_ref, not both", true);
  } else {
    auto& job = *definition.mutable_job_template();
    if (auto refused = refused_job_field(job, "job_template."); refused) return refuse(*refused, true);
    decision.tenant_overridden = decision.tenant_overridden || names_other_tenant(job.tenant(), topic.tenant);
    job.set_tenant(tenant);
    job.set_submitted_by(fmt::format("kafka:{}", record.topic));
  }
  definition.set_id(id);
  definition.set_tenant(tenant);
  return headers_of(schedule_record(settings_.names, topic.tenant, id, &definition));
}

void Relay::reject(const InputRecord& record, const InputTopic& topic, Decision& decision, bool with_status,
                   std::vector<OutRecord>& out) {
  decision.outcome = Outcome::kRejected;
  ++counts_.rejected;
  // Keyed inside the topic's tenant, always: its dead letter is the tenant's to read, and no
  // other tenant's key can be named from its topic.
  std::string id = decision.id;
  if (id.empty()) {
    const std::string_view key = record.key;
    id = !key.empty() && validate_id_of(topic.tenant, key) ? std::string(key)
                                                           : fmt::format("rejected-{}-{}", record.partition, record.offset);
  }
  const auto now = clock_.now();
  (void)append_rejected({record.topic, Partition(record.partition), record.offset, record.key, record.value}, topic.tenant, id,
                        decision.reason, now, settings_.component, settings_.max_dead_letter_copy, settings_.names, out);
  if (with_status && !decision.id.empty()) {
    append_status({.job_id = id,
                   .state = v1::REJECTED,
                   .at = now,
                   .reason = decision.reason,
                   .component = settings_.component,
                   .tenant = topic.tenant},
                  settings_.names, false, out);
  }
  if (settings_.audit_refusals) {
    v1::AuditRecord audit;
    audit.set_tenant(std::string(tenant_field(topic.tenant)));
    audit.set_action(decision.action);
    audit.set_job_id(id);
    audit.set_outcome("REJECTED");
    audit.set_reason(decision.reason);
    audit.set_at_ms(to_epoch_ms(now));
    audit.set_component(settings_.component);
    audit.set_source(source_of(record));
    out.push_back({settings_.names.audit(), -1, scoped_key(topic.tenant, id), encode(audit), false,
                   typed_headers("audit", id, topic.tenant)});
  }
}

}  // namespace kcron::relay
