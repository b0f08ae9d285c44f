// The topics kcron owns (docs/protocol.md#topics): names under a configurable prefix, partition counts and
// cleanup policies. Created by `kcron topics create`, checked by every program at start.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kcron {

struct TopicSpec {
  std::string name;
  std::int32_t partitions = 1;
  std::vector<std::pair<std::string, std::string>> config;  // e.g. cleanup.policy=compact
};

struct TopicLayout {
  std::int32_t jobs_partitions = 12;
  std::int32_t schedules_partitions = 6;
  std::int32_t exec_partitions = 12;
  std::int32_t output_partitions = 12;  // results, dead-letters, status, events
  std::vector<std::string> queues = {"default", "critical", "batch"};
};

// Topic names under a prefix such as "kcron.".
struct TopicNames {
  explicit TopicNames(std::string prefix_in) : prefix(std::move(prefix_in)) {}
  std::string prefix;
  std::string jobs() const { return prefix + "jobs"; }
  std::string dispatcher_changelog() const { return prefix + "dispatcher-changelog"; }
  std::string schedules() const { return prefix + "schedules"; }
  std::string cron_changelog() const { return prefix + "cron-changelog"; }
  std::string worker_done() const { return prefix + "worker-done"; }
  std::string control() const { return prefix + "control"; }
  std::string results() const { return prefix + "results"; }
  std::string dead_letters() const { return prefix + "dead-letters"; }
  std::string status() const { return prefix + "status"; }
  std::string events() const { return prefix + "events"; }
  std::string workers() const { return prefix + "workers"; }
  std::string tenants() const { return prefix + "tenants"; }      // the tenant registry (tenant_registry.h)
  std::string audit() const { return prefix + "audit"; }          // decisions on commands (AuditRecord)
  std::string templates() const { return prefix + "templates"; }  // job templates (templates.h)
};

// Every topic of docs/protocol.md#topics for this layout, in creation order.
std::vector<TopicSpec> all_topics(const TopicNames& names, const TopicLayout& layout);

}  // namespace kcron
