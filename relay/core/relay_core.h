// kcron-relay's decisions: what one record of a tenant's input topic becomes on kcron's shared
// topics. A Kafka-native tenant writes only to its own topics, `<prefix>in.<tenant>` (commands:
// submit, cancel, update, replay) and `<prefix>in.<tenant>.schedules` (schedules, compacted); the
// relay stamps the tenant from the topic name, whatever the body says, refuses what only kcron's
// own programs may write, and forwards the rest to `<prefix>jobs` / `<prefix>schedules` exactly as
// kcron's own writers key them (kcron/records.h). A record it refuses becomes a REJECTED dead letter
// of that tenant, never a stalled partition. Pure: no Kafka types (docs/relay.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/clock.h"
#include "kcron/out_record.h"
#include "kcron/records.h"
#include "kcron/result.h"
#include "kcron/topics.h"

namespace kcron::relay {

// What a tenant's input topic carries.
enum class InputKind {
  kCommands,   // <prefix>in.<tenant>: Commands (or bare Jobs) -> <prefix>jobs
  kSchedules,  // <prefix>in.<tenant>.schedules: Schedules keyed by their id -> <prefix>schedules
};

struct InputTopic {
  std::string tenant;  // a valid tenant name (kcron/tenant.h); "default" is the default tenant
  InputKind kind = InputKind::kCommands;
};

// `topic` read as a tenant's input topic under `prefix`: `<prefix>in.<tenant>` or
// `<prefix>in.<tenant>.schedules`, the tenant a valid name. Anything else (`in.A`, `in.a.b`,
// `in.a.schedules.x`, another prefix) is an error naming why.
Result<InputTopic> parse_input_topic(std::string_view prefix, std::string_view topic);

// The topic names of a tenant's input (for `kcron topics`, tests and docs).
std::string input_topic(std::string_view prefix, std::string_view tenant);
std::string schedules_input_topic(std::string_view prefix, std::string_view tenant);

// The regular expression (librdkafka subscription, `^` first) that matches every candidate input
// topic under `prefix`; parse_input_topic decides each. The prefix is escaped.
std::string subscription_pattern(std::string_view prefix);

struct RelaySettings {
  explicit RelaySettings(TopicNames names_in) : names(std::move(names_in)) {}
  TopicNames names;
  std::string component = "relay";
  std::size_t max_record_bytes = 900'000;  // larger inputs are REJECTED (the dispatcher's own limit)
  std::size_t max_dead_letter_copy = kDeadLetterCopyBytes;
  bool audit_refusals = true;  // an AuditRecord on <prefix>audit for each refusal
};

// One consumed record of an input topic.
struct InputRecord {
  std::string_view topic{};
  std::int32_t partition = 0;
  std::int64_t offset = -1;
  std::string_view key{};
  std::string_view value{};
  bool tombstone = false;           // a null value
  std::string_view content_type{};  // header values, empty when absent
  std::string_view kcron_type{};
  std::int64_t timestamp_ms = 0;  // the record's timestamp; 0: none (the forward is stamped now)
};

enum class Outcome {
  kForwarded,  // a command on jobs, a schedule or its delete on schedules
  kRejected,   // a dead letter (and, for a submit or a schedule, a REJECTED status) of the tenant
  kSkipped,    // not a tenant's input topic: nothing written, the offset moves on
};

// What apply() decided, for the loop's logs and metrics (never the payload).
struct Decision {
  Outcome outcome = Outcome::kForwarded;
  std::string tenant{};            // from the topic ("" when skipped)
  std::string id{};                // the job or schedule id, when one was read
  std::string action{};            // submit, cancel, update, replay, put_schedule, delete_schedule, unknown...
  std::string reason{};            // why rejected or skipped
  bool tenant_overridden = false;  // the body named another tenant: the topic's won
};

struct RelayCounts {
  std::uint64_t forwarded = 0;
  std::uint64_t schedules = 0;  // schedule puts and deletes among forwarded
  std::uint64_t rejected = 0;
  std::uint64_t skipped = 0;
  std::uint64_t tenant_overridden = 0;
};

class Relay {
 public:
  Relay(RelaySettings settings, const Clock& clock);

  // Appends what `record` becomes to `out` and says what it decided. Never fails: a record that
  // cannot be forwarded is rejected, with its reason, to the tenant of its topic.
  Decision apply(const InputRecord& record, std::vector<OutRecord>& out);

  const RelayCounts& counts() const { return counts_; }
  const RelaySettings& settings() const { return settings_; }
  // Whether every dispatcher and worker understands Batch records (the upgrade gate's `batch`):
  // until then a tenant's batch is REJECTED with the reason (its jobs can be sent one by one).
  void allow_batches(bool allowed) { batches_allowed_ = allowed; }

 private:
  Decision command(const InputRecord& record, const InputTopic& topic, std::vector<OutRecord>& out);
  Decision schedule(const InputRecord& record, const InputTopic& topic, std::vector<OutRecord>& out);
  // A REJECTED dead letter keyed by the tenant's scoped key of `id` (or, when no id was read, of
  // the record's key when it is a valid id, else of `rejected-<partition>-<offset>`), a REJECTED
  // status when `with_status` (a refused submit or schedule: the id's latest state), an audit record.
  void reject(const InputRecord& record, const InputTopic& topic, Decision& decision, bool with_status,
              std::vector<OutRecord>& out);

  RelaySettings settings_;
  const Clock& clock_;
  RelayCounts counts_;
  bool batches_allowed_ = true;
};

}  // namespace kcron::relay
