// The cron-producer's decisions, free of Kafka: the table of schedules of the partitions this
// instance owns (from kcron.schedules), how far each has been emitted (from kcron.cron-changelog),
// and which trigger jobs to emit on kcron.jobs now. A trigger is a job `<schedule>@<nominal
// instant>` routed by the schedule id, so a re-emission after failover is deduplicated by the
// dispatcher; it is emitted up to `lookahead` before its instant and fired on time by the
// dispatcher's buckets. Late runs (this producer was down) follow the schedule's misfire policy.
// Single-threaded: the cron-producer loop owns it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/cron_expression.h"
#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/flow_graph.h"
#include "kcron/out_record.h"
#include "kcron/records.h"
#include "kcron/templates.h"
#include "kcron/topics.h"

namespace kcron::cron {

struct PlannerSettings {
  TopicNames names{"kcron."};
  std::int32_t schedules_partitions = 6;
  std::set<std::string, std::less<>> queues = {"default", "critical", "batch"};
  Millis lookahead{5000};                // emit triggers this long before their instant
  Millis misfire_threshold{5000};        // a run found this late was missed (producer outage)
  std::size_t max_runs_per_tick = 1000;  // per schedule, so one busy schedule cannot stall the rest
  std::size_t max_record_bytes = 900'000;
  std::size_t max_dead_letter_copy = kDeadLetterCopyBytes;  // original bytes kept in a dead letter
  std::string component = "cron-producer";
  flow::Limits flow_limits;  // a flow_template is checked as the dispatcher checks each run
  // A template_ref schedule whose template version is not in the catalog this long after its
  // record was applied (or loaded) is REJECTED naming the version (docs/templates.md).
  Millis template_wait{30000};
};

// One record of kcron.schedules.
struct ScheduleRecord {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string_view key;
  std::string_view value;
  bool tombstone = false;
  std::string_view content_type;
};

struct PlannerCounts {
  std::uint64_t emitted = 0;
  std::uint64_t skipped = 0;  // missed runs dropped by skip / fire_once / fire_all's window
  std::uint64_t rejected = 0;
  std::uint64_t cancelled = 0;  // triggers emitted ahead, cancelled by a change or delete
  std::uint64_t forwarded = 0;
};

class SchedulePlanner {
 public:
  SchedulePlanner(PlannerSettings settings, const Clock& clock);

  // Restore, on assignment: the state first, then the table, neither producing output.
  void restore_state(std::int32_t partition, std::string_view schedule_id, std::string_view value, bool tombstone);
  void load(const ScheduleRecord& record);

  // A live record: create, update, pause, resume or delete (tombstone, or an empty value) a schedule. Invalid
  // definitions are REJECTED (dead letter + status) and the previous definition stays in force;
  // a record on a partition other than murmur2(key) is forwarded there.
  void apply(const ScheduleRecord& record, std::vector<OutRecord>& out);

  // Emits every trigger due up to now + lookahead, for every schedule of this instance.
  std::size_t tick(std::vector<OutRecord>& out);
  // While held, the schedules of tenants other than the default emit nothing and do not advance:
  // a program of an earlier release still runs (kcron/upgrade_gate.h), and would misread their
  // tenant-scoped keys. Their runs come due when released, under their misfire policy.
  void hold_tenant_runs(bool held) { hold_tenant_runs_ = held; }
  bool tenant_runs_held() const { return hold_tenant_runs_; }
  // Likewise, while held, flow_template schedules emit nothing and do not advance: a dispatcher
  // of an earlier release would refuse their runs.
  void hold_flow_runs(bool held) { hold_flow_runs_ = held; }
  bool flow_runs_held() const { return hold_flow_runs_; }

  // The templates that template_ref schedules and flow_template nodes render from (kcron.templates, followed by the
  // loop); null: none seen yet, so every such schedule waits. Not owned; read on each tick.
  void set_catalog(const templates::Catalog* catalog) { catalog_ = catalog; }

  void drop_partition(std::int32_t partition);
  std::size_t schedule_count() const { return schedules_.size(); }
  const PlannerCounts& counts() const { return counts_; }

  // `nightly@2026-03-01T09:00:00Z` (milliseconds shown only when not zero).
  static std::string trigger_id(std::string_view schedule_id, Instant nominal);

 private:
  struct Entry {
    v1::Schedule definition;
    CronExpression expression;
    TimeZone zone;
    std::int32_t partition = 0;
    v1::CronState state;
    // A template_ref schedule: when its record was applied or loaded (the template wait counts
    // from it), its record (to dead-letter it when its template never comes or does not render),
    // and whether it was REJECTED since (it emits nothing until its next record).
    std::int64_t arrived_ms = 0;
    std::int64_t offset = 0;
    std::string value;
    std::string content_type;
    bool rejected = false;
    // Its job, rendered once the version is in the catalog (a version is immutable).
    std::optional<v1::Job> rendered;
    // A flow_template whose nodes name templates: the flow with every such node rendered, once
    // every version is in the catalog.
    std::optional<v1::Flow> rendered_flow;
  };

  // Whether a schedule's runs are rendered from template versions: a template_ref, or a
  // flow_template with a node that names one (docs/templates.md#templates-in-flows).
  static bool renders_templates(const v1::Schedule& definition);
  // Renders what `entry` needs (its job or its flow's template nodes). False: a version is not
  // in the catalog yet (still waiting), `missing` says which; an error: to be REJECTED with it.
  Result<bool> render_entry(Entry& entry, std::string& missing) const;

  Result<Entry> validate(const ScheduleRecord& record, v1::Schedule definition) const;
  Status check_job(const v1::Job& job, std::string_view field) const;
  Status check_flow_template(const v1::Schedule& definition) const;
  Status check_template_ref(const v1::Schedule& definition) const;
  // A template_ref schedule's job: rendered from the catalog. An empty result: the version is not
  // there yet (still waiting); an error: the schedule is to be REJECTED with it.
  Result<std::optional<v1::Job>> render_run(const Entry& entry) const;
  void remember_record(Entry& entry, const ScheduleRecord& record) const;
  void emit(Entry& entry, Instant nominal, std::vector<OutRecord>& out);
  void cancel_ahead(const Entry& entry, std::vector<OutRecord>& out);
  void save_state(const Entry& entry, std::vector<OutRecord>& out);
  void reject(const ScheduleRecord& record, std::string_view reason, std::vector<OutRecord>& out);
  std::int64_t now_ms() const { return to_epoch_ms(clock_.now()); }

  PlannerSettings settings_;
  const Clock& clock_;
  std::map<std::string, Entry, std::less<>> schedules_;
  std::map<std::string, v1::CronState, std::less<>> restored_states_;  // before their schedule loads
  PlannerCounts counts_;
  bool hold_tenant_runs_ = false;
  bool hold_flow_runs_ = false;
  const templates::Catalog* catalog_ = nullptr;
};

std::uint64_t fingerprint(const v1::Schedule& definition);

}  // namespace kcron::cron
