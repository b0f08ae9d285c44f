// The DelayStore contract, run against every implementation (in-memory fake and RocksDB).
#pragma once

#include <catch2/catch.hpp>

#include "core/delay_store.h"

namespace kcron::dispatcher::testing {

inline std::vector<std::string> ids(const std::vector<DueEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& entry : entries) out.push_back(entry.job_id);
  return out;
}

inline void check_store_contract(DelayStore& store) {
  auto opened = store.open(3);
  REQUIRE(opened.ok());
  PartitionState& state = **opened;

  SECTION("staged writes are visible at once and durable only after commit") {
    state.put("a", "value-a", Slot{5'000, 5});
    CHECK(state.get("a") == std::optional<std::string>("value-a"));
    state.discard();
    CHECK_FALSE(state.get("a").has_value());
    state.put("a", "value-a", Slot{5'000, 5});
    REQUIRE(state.commit(Checkpoint{17, 1}).ok());
    state.discard();
    CHECK(state.get("a") == std::optional<std::string>("value-a"));
    REQUIRE(state.checkpoint().has_value());
    CHECK(state.checkpoint()->changelog_offset == 17);
  }

  SECTION("due entries come in bucket order, higher priority first inside a bucket, and not before their instant") {
    state.put("low", "", Slot{1'100, 1});
    state.put("high", "", Slot{1'900, 9});
    state.put("older-bucket", "", Slot{900, 0});
    state.put("later-in-current", "", Slot{1'950, 9});
    state.put("next-bucket", "", Slot{2'000, 9});
    CHECK(ids(state.due(1'900, 100)) == std::vector<std::string>{"older-bucket", "high", "low"});
    CHECK(ids(state.due(899, 100)).empty());
    CHECK(ids(state.due(2'000, 2)) == std::vector<std::string>{"older-bucket", "high"});
    CHECK(state.slotted_count() == 5);
  }

  SECTION("a put replaces the previous slot and erase removes it") {
    state.put("job", "v1", Slot{1'000, 5});
    state.put("job", "v2", Slot{3'000, 5});
    CHECK(ids(state.due(2'000, 10)).empty());
    CHECK(ids(state.due(3'000, 10)) == std::vector<std::string>{"job"});
    state.put("job", "v3", std::nullopt);
    CHECK(ids(state.due(10'000, 10)).empty());
    CHECK(state.get("job") == std::optional<std::string>("v3"));
    state.erase("job");
    CHECK_FALSE(state.get("job").has_value());
    CHECK(state.slotted_count() == 0);
  }

  SECTION("wipe forgets everything") {
    state.put("job", "v", Slot{1'000, 5});
    REQUIRE(state.commit(Checkpoint{3, 1}).ok());
    REQUIRE(state.wipe().ok());
    CHECK_FALSE(state.get("job").has_value());
    CHECK_FALSE(state.checkpoint().has_value());
    CHECK(ids(state.due(5'000, 10)).empty());
  }
}

}  // namespace kcron::dispatcher::testing
