#include "kcron/topics.h"

#include "kcron/priority.h"

namespace kcron {
namespace {

using Config = std::vector<std::pair<std::string, std::string>>;

Config compacted() {
  // Tombstones must outlive a dispatcher's restore window; see docs/architecture.md.
  return {{"cleanup.policy", "compact"}, {"delete.retention.ms", "86400000"}, {"min.compaction.lag.ms", "0"}};
}
// Done markers only matter while a job's exec offset is uncommitted (minutes, hours for long jobs);
// keys are unique per attempt, so compaction alone would keep every marker forever.
Config compacted_with_retention() {
  return {{"cleanup.policy", "compact,delete"}, {"retention.ms", "604800000"}, {"min.compaction.lag.ms", "0"}};
}
// Heartbeats: compacted in one-hour segments, so that a reader of the whole topic (the upgrade
// gate) reads about an hour of them and the latest of each program, not a week.
Config compacted_heartbeats() {
  auto config = compacted();
  config.emplace_back("segment.ms", "3600000");
  return config;
}
// Status: every transition of a job stays for a day before compaction may drop it (the job's
// timeline: `kcron status`, the API), its latest state for 7 days, then retention deletes it, so a
// reader of the whole topic (a new kcron-api view) reads a week of jobs, not every job ever. The
// events topic said the same thing again; it is written only with `emit_events` (docs/protocol.md).
// Existing topics get this from `kcron topics create`, which aligns a differing cleanup.policy.
Config compacted_timeline() {
  return {{"cleanup.policy", "compact,delete"},
          {"retention.ms", "604800000"},
          {"min.compaction.lag.ms", "86400000"},
          {"delete.retention.ms", "86400000"}};
}
Config deleted(const std::string& retention_ms = "604800000") {
  return {{"cleanup.policy", "delete"}, {"retention.ms", retention_ms}};
}

}  // namespace

std::vector<TopicSpec> all_topics(const TopicNames& names, const TopicLayout& layout) {
  std::vector<TopicSpec> topics = {
      {names.jobs(), layout.jobs_partitions, deleted()},
      {names.dispatcher_changelog(), layout.jobs_partitions, compacted()},
      {names.schedules(), layout.schedules_partitions, compacted()},
      {names.cron_changelog(), layout.schedules_partitions, compacted()},
      {names.worker_done(), layout.exec_partitions, compacted_with_retention()},
      {names.control(), 1, deleted("86400000")},
      {names.results(), layout.output_partitions, deleted()},
      {names.dead_letters(), layout.output_partitions, deleted()},
      {names.status(), layout.output_partitions, compacted_timeline()},
      {names.events(), layout.output_partitions, deleted()},
      {names.workers(), 1, compacted_heartbeats()},
      {names.tenants(), 1, compacted()},
      {names.audit(), layout.output_partitions, deleted("2592000000")},  // 30 days
      {names.templates(), 1, compacted()},  // every version of every template, read whole by its writers
  };
  for (const auto& queue : layout.queues) {
    for (const auto band : kAllBands) {
      topics.push_back({exec_topic(names.prefix, queue, band), layout.exec_partitions, deleted()});
    }
  }
  return topics;
}

}  // namespace kcron
