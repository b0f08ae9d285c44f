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
  std::string tenants() const { return prefix + "tenants"; }  // the tenant registry (tenant_registry.h)
  std::string audit() const { return prefix + "audit"; }      // decisions on commands (AuditRecord)
  // A Kafka-native tenant's own input topics, read by kcron-relay (docs/relay.md).
  std::string tenant_input(std::string_view tenant) const { return prefix + "in." + std::string(tenant); }
  std::string tenant_schedules_input(std::string_view tenant) const { return tenant_input(tenant) + ".schedules"; }
};

// Every topic of docs/protocol.md#topics for this layout, in creation order.
std::vector<TopicSpec> all_topics(const TopicNames& names, const TopicLayout& layout);

// A Kafka-native tenant's input topics (`kcron topics create --tenant-input T`): its commands
// (delete, 7 days) and its schedules (compacted, like the schedules topic), `partitions` each.
std::vector<TopicSpec> tenant_input_topics(const TopicNames& names, std::string_view tenant, std::int32_t partitions);

}  // namespace kcron
