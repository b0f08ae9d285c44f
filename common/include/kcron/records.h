// The records more than one kcron program writes about a job: its status (kcron.status, and
// kcron.events when events are on) and its dead letter (kcron.dead-letters). Their keys, headers,
// topics and size bounds are decided here once; the callers decide what they say. Pure: Protobuf
// in, OutRecords out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/ids.h"
#include "kcron/out_record.h"
#include "kcron/topics.h"

namespace kcron {

// How much of an input a dead letter keeps (bytes); the rest is cut and `truncated` set.
inline constexpr std::size_t kDeadLetterCopyBytes = 64'000;

// A job's state as kcron.status (the latest per job) and kcron.events (every transition) carry it.
struct JobStatus {
  std::string_view job_id{};
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::uint32_t attempt = 0;
  std::uint64_t sequence = 0;  // orders the writes of one attempt (see StatusRecord)
  Instant at{};                // when the state was reached
  std::string_view reason{};
  std::string_view component{};  // who wrote it: "dispatcher", "worker", "cron-producer"
  Instant due{};                 // the job's due instant; the epoch when it has none
  std::string_view tenant{};
};

// Appends the status record keyed by the job's tenant-scoped key (kcron/tenant.h), with headers
// kcron-type "status", kcron-job-id, content-type, kcron-status (the state's name) and, for a
// tenant other than the default, kcron-tenant: first to the events topic when `emit_events`, then
// to the status topic.
void append_status(const JobStatus& status, const TopicNames& names, bool emit_events, std::vector<OutRecord>& out);

// A consumed record refused for what it is.
struct RejectedInput {
  std::string_view topic{};
  Partition partition{};
  std::int64_t offset = -1;
  std::string_view key{};
  std::string_view value{};
};

// Appends a REJECTED dead letter: the reason, at most `copy_bytes` of the input's value
// (`truncated` when cut), where the input came from, when and by whom. Keyed by the tenant-scoped
// key of `job_id`, or when that is empty (nothing decoded says whose it is) by the input's key cut
// to kMaxJobIdBytes (a poison key may be huge). Returns the key.
std::string append_rejected(const RejectedInput& input, std::string_view tenant, std::string_view job_id, std::string_view reason,
                            Instant at, std::string_view component, std::size_t copy_bytes, const TopicNames& names,
                            std::vector<OutRecord>& out);

// Appends a dead letter the caller filled in (a DEAD job, with its job and history), keyed by the
// scoped key of (letter.tenant, `job_id`), with headers kcron-type "dead-letter", kcron-job-id,
// content-type, kcron-status and, for a tenant other than the default, kcron-tenant.
void append_dead_letter(const v1::DeadLetter& letter, std::string_view job_id, const TopicNames& names,
                        std::vector<OutRecord>& out);

// The kcron-type header of a command record (kcat -f '%h' shows it): submit, cancel, update,
// replay, retry, completion, purge-tenant; "command" when none is set.
std::string_view command_type(const v1::Command& command);
// The action an audit record names: the command's type with '_' for '-' ("purge_tenant"),
// "unknown" for a record holding no command.
std::string_view command_action(const v1::Command& command);
// The job id a command names (submit, cancel, update, replay, retry, completion); empty for a
// purge and for no command.
std::string_view command_job_id(const v1::Command& command);

// A command about `job_id` of `tenant` as kcron's writers (the CLI, kcron-api, kcron-relay) put it
// on the jobs topic: keyed by the job's scoped routing key (kcron/tenant.h), the Command in
// Protobuf, headers typed_headers(command_type, job id, tenant).
OutRecord command_record(const TopicNames& names, const v1::Command& command, std::string_view tenant, std::string_view job_id);

// A schedule of `tenant` as kcron's writers put it on the schedules topic: keyed by its scoped key,
// the Schedule in Protobuf; with `schedule` null, its delete (a tombstone of that key).
OutRecord schedule_record(const TopicNames& names, std::string_view tenant, std::string_view id, const v1::Schedule* schedule);

}  // namespace kcron
