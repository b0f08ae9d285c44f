#include "kcron/records.h"

#include <algorithm>
#include <string>

#include "kcron/codec.h"
#include "kcron/tenant.h"

namespace kcron {

void append_status(const JobStatus& status, const TopicNames& names, bool emit_events, std::vector<OutRecord>& out) {
  const std::string key = scoped_key(status.tenant, status.job_id);
  v1::StatusRecord record;
  record.set_job_id(std::string(status.job_id));
  record.set_state(status.state);
  record.set_attempt(status.attempt);
  record.set_sequence(status.sequence);
  record.set_at_ms(to_epoch_ms(status.at));
  record.set_reason(std::string(status.reason));
  record.set_component(std::string(status.component));
  record.set_due_ms(to_epoch_ms(status.due));
  record.set_tenant(std::string(tenant_field(status.tenant)));
  auto headers = typed_headers("status", status.job_id, status.tenant);
  headers.emplace_back(header::kStatus, state_name(status.state));
  std::string value = encode(record);
  if (emit_events) out.push_back({names.events(), -1, key, value, false, headers});
  out.push_back({names.status(), -1, key, std::move(value), false, std::move(headers)});
}

std::string append_rejected(const RejectedInput& input, std::string_view tenant, std::string_view job_id, std::string_view reason,
                            Instant at, std::string_view component, std::size_t copy_bytes, const TopicNames& names,
                            std::vector<OutRecord>& out) {
  v1::DeadLetter letter;
  letter.set_state(v1::REJECTED);
  letter.set_reason(std::string(reason));
  const auto kept = std::min(input.value.size(), copy_bytes);
  letter.set_original(std::string(input.value.substr(0, kept)));
  letter.set_truncated(kept < input.value.size());
  letter.set_source_topic(std::string(input.topic));
  letter.set_source_partition(input.partition.value());
  letter.set_source_offset(input.offset);
  letter.set_at_ms(to_epoch_ms(at));
  letter.set_component(std::string(component));
  if (job_id.empty()) {
    // Nothing said whose it is: keyed by the record's own key, which a poison key may make huge.
    std::string key(input.key.substr(0, std::min(input.key.size(), kMaxJobIdBytes)));
    append_dead_letter(letter, key, names, out);
    return key;
  }
  letter.set_tenant(std::string(tenant_field(tenant)));
  append_dead_letter(letter, job_id, names, out);
  return scoped_key(tenant, job_id);
}

void append_dead_letter(const v1::DeadLetter& letter, std::string_view job_id, const TopicNames& names,
                        std::vector<OutRecord>& out) {
  auto headers = typed_headers("dead-letter", job_id, letter.tenant());
  headers.emplace_back(header::kStatus, state_name(letter.state()));
  out.push_back({names.dead_letters(), -1, scoped_key(letter.tenant(), job_id), encode(letter), false, std::move(headers)});
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
    case v1::Command::kFlow:
      return command.flow().id();
    default:
      return {};
  }
}

std::string_view command_type(const v1::Command& command) {
  switch (command.command_case()) {
    case v1::Command::kSubmit:
      return "submit";
    case v1::Command::kCancel:
      return "cancel";
    case v1::Command::kUpdate:
      return "update";
    case v1::Command::kReplay:
      return "replay";
    case v1::Command::kRetry:
      return "retry";
    case v1::Command::kCompletion:
      return "completion";
    case v1::Command::kPurgeTenant:
      return "purge-tenant";
    case v1::Command::kFlow:
      return "flow";
    case v1::Command::kBatch:
      return "batch";
    case v1::Command::COMMAND_NOT_SET:
      break;
  }
  return "command";
}

std::string_view command_action(const v1::Command& command) {
  const auto type = command_type(command);
  if (type == "purge-tenant") return "purge_tenant";
  return type == "command" ? "unknown" : type;
}

OutRecord command_record(const TopicNames& names, const v1::Command& command, std::string_view tenant, std::string_view job_id) {
  return {names.jobs(),    -1,    scoped_routing_key(tenant, job_id),
          encode(command), false, typed_headers(command_type(command), job_id, tenant_field(tenant))};
}

OutRecord schedule_record(const TopicNames& names, std::string_view tenant, std::string_view id, const v1::Schedule* schedule) {
  return {names.schedules(),      -1,
          scoped_key(tenant, id), schedule != nullptr ? encode(*schedule) : std::string(),
          schedule == nullptr,    {{std::string(header::kContentType), std::string(header::kProtobuf)}}};
}

}  // namespace kcron
