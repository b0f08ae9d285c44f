// The dispatcher core's unit-test harness: a DispatcherCore over the in-memory store with a manual
// clock, fed JSON commands as if consumed from their partitions, and the records it wrote.
#pragma once

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/dispatcher_core.h"
#include "kcron/routing.h"
#include "store/memory_store.h"

namespace kcron::dispatcher::testing {

inline constexpr std::int64_t kStart = 1'790'000'000'000;  // 2026-09-21, a round instant

inline Settings harness_settings(FireAheadSettings fire_ahead) {
  Settings value;
  value.jobs_partitions = 12;
  value.cancel_marker_ttl = Millis(60'000);
  value.dedupe_retention = Millis(3'600'000);
  value.fire_ahead = fire_ahead;
  return value;
}

struct Harness {
  Harness() = default;
  // With fire-ahead (open): its own tests.
  explicit Harness(FireAheadSettings fire_ahead) : settings(harness_settings(fire_ahead)) { core.set_fire_ahead_open(true); }

  ManualClock clock{instant_from_ms(kStart)};
  // Jobs fire at their instant here unless a test asks for fire-ahead.
  Settings settings = harness_settings(FireAheadSettings{.max = Millis(0)});
  TenantRegistry tenants;
  DispatcherCore core{settings, clock, &tenants};
  MemoryDelayStore store{settings.bucket_width};
  std::vector<OutRecord> out;
  std::int64_t offset = 0;

  Partition partition_of(const std::string& job_id) const {
    return partition_for_key(routing_key_for_job(job_id), settings.jobs_partitions);
  }
  PartitionState& state(Partition partition) { return **store.open(partition); }

  // Applies a JSON command as if consumed from the job's own partition (or `partition`).
  void apply(const std::string& json, const std::string& key, std::optional<Partition> partition = std::nullopt,
             std::optional<std::int64_t> timestamp = std::nullopt) {
    const Partition target = partition.value_or(key.empty() ? Partition(0) : partition_for_key(key, settings.jobs_partitions));
    InputRecord record{target, offset++, key, json, "", "", timestamp ? instant_from_ms(*timestamp) : clock.now(), {}};
    REQUIRE(core.apply(state(target), record, out).ok());
  }
  void submit(const std::string& json, const std::string& job_id) { apply(json, std::string(routing_key_for_job(job_id))); }

  std::size_t fire(const std::string& job_id, std::size_t limit = 1000) {
    const auto partition = partition_of(job_id);
    auto fired = core.fire_due(state(partition), partition, limit, out);
    REQUIRE(fired.ok());
    return *fired;
  }
  bool fail_due(const std::string& job_id, std::string_view reason) {
    const auto partition = partition_of(job_id);
    auto failed = core.fail_due(state(partition), partition, JobId(job_id), reason, out);
    REQUIRE(failed.ok());
    return *failed;
  }
  bool stored(const std::string& key) {
    auto value = state(partition_of(key)).get(key);
    REQUIRE(value.ok());
    return value->has_value();
  }

  std::vector<OutRecord> take(std::string_view topic_part) {
    std::vector<OutRecord> matched;
    std::vector<OutRecord> rest;
    for (auto& record : out) (record.topic.find(topic_part) != std::string::npos ? matched : rest).push_back(std::move(record));
    out = std::move(rest);
    return matched;
  }
  std::vector<std::string> exec_ids() {
    std::vector<std::string> ids;
    for (const auto& record : take(".exec.")) ids.push_back(record.key);
    return ids;
  }
};

}  // namespace kcron::dispatcher::testing
