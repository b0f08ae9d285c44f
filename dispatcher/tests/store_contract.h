// The DelayStore contract, run against every implementation (in-memory fake and RocksDB).
#pragma once

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <limits>

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

  SECTION("the next-due hint says when to look again: the earliest entry not yet due, a put, or now at the limit") {
    CHECK(state.next_due_hint() == std::numeric_limits<std::int64_t>::min());  // nothing scanned yet: look now
    state.put("soon", "", Slot{1'400, 5});
    state.put("later", "", Slot{1'700, 9});
    state.put("due", "", Slot{1'100, 1});
    CHECK(ids(state.due(1'200, 100)) == std::vector<std::string>{"due"});
    CHECK(state.next_due_hint() == 1'400);
    state.put("sooner", "", Slot{1'300, 0});  // a put lowers it
    CHECK(state.next_due_hint() == 1'300);
    state.erase("due");
    state.erase("soon");
    state.erase("sooner");
    state.erase("later");
    CHECK(ids(state.due(1'200, 100)).empty());
    CHECK(state.next_due_hint() == 2'000);  // nothing in the current bucket: the next one's start
    state.put("a", "", Slot{1'000, 5});
    state.put("b", "", Slot{1'000, 5});
    CHECK(ids(state.due(1'200, 1)).size() == 1);
    CHECK(state.next_due_hint() == 1'200);  // stopped at its limit: more is due now
    state.discard();
    CHECK(state.next_due_hint() == std::numeric_limits<std::int64_t>::min());
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

  SECTION("fired entries are skipped, and whatever comes back or arrives late is found again") {
    // A run (one bucket and priority) fired in steps, as the dispatcher does batch by batch.
    for (int index = 0; index < 6; ++index) state.put(fmt::format("j{}", index), "", Slot{1'000 + index * 10, 5});
    state.put("later", "", Slot{1'500, 5});
    REQUIRE(state.commit(Checkpoint{1, 1}).ok());
    CHECK(ids(state.due(1'020, 10)) == std::vector<std::string>{"j0", "j1", "j2"});
    for (const auto* id : {"j0", "j1", "j2"}) state.erase(id);
    REQUIRE(state.commit(Checkpoint{2, 1}).ok());
    CHECK(ids(state.due(1'040, 2)) == std::vector<std::string>{"j3", "j4"});  // at the limit
    state.erase("j3");
    state.erase("j4");
    CHECK(ids(state.due(1'040, 10)).empty());
    // The batch is dropped: what it erased is live and due again.
    state.discard();
    CHECK(ids(state.due(1'040, 10)) == std::vector<std::string>{"j3", "j4"});
    state.erase("j3");
    state.erase("j4");
    REQUIRE(state.commit(Checkpoint{3, 1}).ok());
    // A late job due before everything left in the run is still found.
    state.put("late", "", Slot{1'001, 5});
    CHECK(ids(state.due(1'060, 10)) == std::vector<std::string>{"late", "j5"});
    state.erase("late");
    state.erase("j5");
    CHECK(ids(state.due(1'400, 10)).empty());
    CHECK(state.next_due_hint() == 1'500);
    // A run emptied out takes new entries again.
    state.put("again", "", Slot{1'300, 5});
    CHECK(ids(state.due(1'600, 10)) == std::vector<std::string>{"again", "later"});
  }

  SECTION("a burst over several priorities drains completely, batch by batch, in priority order") {
    std::vector<std::string> expected;
    for (const std::uint32_t priority : {9U, 5U, 0U}) {
      for (int index = 0; index < 25; ++index) {
        const auto id = fmt::format("p{}-{:02}", priority, index);
        state.put(id, "", Slot{1'000, priority});
        expected.push_back(id);
      }
    }
    REQUIRE(state.commit(Checkpoint{1, 1}).ok());
    std::vector<std::string> fired;
    for (int batch = 0; batch < 20; ++batch) {
      const auto due = ids(state.due(1'500, 10));
      if (due.empty()) break;
      for (const auto& id : due) {
        state.erase(id);
        fired.push_back(id);
      }
      REQUIRE(state.commit(Checkpoint{2 + batch, 1}).ok());
    }
    CHECK(fired == expected);
  }

  SECTION("entries at real epoch instants are found at once, across empty buckets") {
    constexpr std::int64_t kNow = 1'795'000'000'000;  // billions of empty buckets after bucket 0
    state.put("soon", "", Slot{kNow + 200, 5});
    state.put("hour", "", Slot{kNow + 3'600'000, 5});
    CHECK(ids(state.due(kNow, 10)).empty());
    CHECK(ids(state.due(kNow + 300, 10)) == std::vector<std::string>{"soon"});
    state.erase("soon");
    CHECK(ids(state.due(kNow + 3'600'000, 10)) == std::vector<std::string>{"hour"});
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
