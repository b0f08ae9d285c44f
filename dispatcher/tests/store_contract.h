// The DelayStore contract, run against every implementation (in-memory fake and RocksDB).
#pragma once

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "core/delay_store.h"

namespace kcron::dispatcher::testing {

inline std::vector<std::string> ids(const std::vector<DueEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& entry : entries) out.push_back(entry.job_id.value());
  return out;
}

inline Slot slot(std::int64_t due_ms, std::uint32_t priority) {
  return Slot{instant_from_ms(due_ms), priority};
}

// The port's calls for a store whose reads cannot fail here: a failure fails the test.
inline std::optional<std::string> value_of(PartitionState& state, std::string_view key) {
  auto value = state.get(key);
  REQUIRE(value.ok());
  return *value;
}
inline void put(PartitionState& state, std::string_view key, std::string_view value, std::optional<Slot> slot) {
  REQUIRE(state.put(key, value, slot).ok());
}
inline void erase(PartitionState& state, std::string_view key) {
  REQUIRE(state.erase(key).ok());
}
inline std::vector<std::string> due_ids(PartitionState& state, std::int64_t now_ms, std::size_t limit) {
  auto due = state.due(instant_from_ms(now_ms), limit);
  REQUIRE(due.ok());
  return ids(*due);
}
inline Checkpoint checkpoint_at(std::int64_t changelog_offset) {
  return Checkpoint{changelog_offset, instant_from_ms(1)};
}

inline void check_store_contract(DelayStore& store) {
  auto opened = store.open(Partition(3));
  REQUIRE(opened.ok());
  PartitionState& state = **opened;

  SECTION("keys_after lists one prefix's keys in order, from after a key, staged and committed alike") {
    for (const auto* key : {"acme~b", "acme~a", "acme-2~a", "acme~c", "\x01schedule/acme~n", "b"})
      put(state, key, "v", std::nullopt);
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    put(state, "acme~d", "v", std::nullopt);  // staged only
    erase(state, "acme~b");                   // staged delete of a committed key
    auto all = state.keys_after("acme~", "", 10);
    REQUIRE(all.ok());
    CHECK(*all == std::vector<std::string>{"acme~a", "acme~c", "acme~d"});
    auto rest = state.keys_after("acme~", "acme~a", 1);
    REQUIRE(rest.ok());
    CHECK(*rest == std::vector<std::string>{"acme~c"});
    auto tracks = state.keys_after("\x01schedule/acme~", "", 10);
    REQUIRE(tracks.ok());
    CHECK(*tracks == std::vector<std::string>{"\x01schedule/acme~n"});
    auto none = state.keys_after("acme~", "acme~d", 10);
    REQUIRE(none.ok());
    CHECK(none->empty());
  }

  SECTION("bucket counts follow puts, moves and erases once counted, and a discard counts again") {
    // Buckets are 1 s wide (the stores under test): 10 s holds a, b; 11 s holds c; 13 s holds d.
    put(state, "a", "v", slot(10'100, 0));
    put(state, "b", "v", slot(10'900, 9));
    put(state, "c", "v", slot(11'500, 0));
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    put(state, "d", "v", slot(13'000, 0));  // staged
    const auto counts = [&](std::int64_t from_ms, std::int64_t until_ms) {
      auto counted = state.bucket_counts(instant_from_ms(from_ms), instant_from_ms(until_ms));
      REQUIRE(counted.ok());
      std::vector<std::pair<std::int64_t, std::int64_t>> out;
      for (const auto& bucket : *counted) out.emplace_back(to_epoch_ms(bucket.begin), bucket.count);
      return out;
    };
    using Counts = std::vector<std::pair<std::int64_t, std::int64_t>>;
    CHECK(counts(10'500, 13'200) == Counts{{10'000, 2}, {11'000, 1}, {13'000, 1}});
    put(state, "e", "v", slot(11'100, 3));  // into a counted bucket
    put(state, "a", "v", slot(13'400, 0));  // moved from 10 s to 13 s
    erase(state, "c");
    CHECK(counts(10'500, 13'200) == Counts{{10'000, 1}, {11'000, 1}, {13'000, 2}});
    CHECK(counts(11'000, 11'999) == Counts{{11'000, 1}});
    state.discard();  // back to a, b, c as committed
    CHECK(counts(10'000, 14'000) == Counts{{10'000, 2}, {11'000, 1}});
  }

  SECTION("staged writes are visible at once and durable only after commit") {
    put(state, "a", "value-a", slot(5'000, 5));
    CHECK(value_of(state, "a") == std::optional<std::string>("value-a"));
    state.discard();
    CHECK_FALSE(value_of(state, "a").has_value());
    put(state, "a", "value-a", slot(5'000, 5));
    REQUIRE(state.commit(Checkpoint{17, instant_from_ms(1'790'000'000'123)}).ok());
    state.discard();
    CHECK(value_of(state, "a") == std::optional<std::string>("value-a"));
    REQUIRE(state.checkpoint().has_value());
    CHECK(state.checkpoint()->changelog_offset == 17);
    CHECK(state.checkpoint()->written == instant_from_ms(1'790'000'000'123));
  }

  SECTION("due entries come in bucket order, higher priority first inside a bucket, and not before their instant") {
    put(state, "low", "", slot(1'100, 1));
    put(state, "high", "", slot(1'900, 9));
    put(state, "older-bucket", "", slot(900, 0));
    put(state, "later-in-current", "", slot(1'950, 9));
    put(state, "next-bucket", "", slot(2'000, 9));
    CHECK(due_ids(state, 1'900, 100) == std::vector<std::string>{"older-bucket", "high", "low"});
    CHECK(due_ids(state, 899, 100).empty());
    CHECK(due_ids(state, 2'000, 2) == std::vector<std::string>{"older-bucket", "high"});
    CHECK(state.slotted_count() == 5);
  }

  SECTION("the next-due hint says when to look again: the earliest entry not yet due, a put, or now at the limit") {
    CHECK(state.next_due_hint() == Instant::min());  // nothing scanned yet: look now
    put(state, "soon", "", slot(1'400, 5));
    put(state, "later", "", slot(1'700, 9));
    put(state, "due", "", slot(1'100, 1));
    CHECK(due_ids(state, 1'200, 100) == std::vector<std::string>{"due"});
    CHECK(state.next_due_hint() == instant_from_ms(1'400));
    put(state, "sooner", "", slot(1'300, 0));  // a put lowers it
    CHECK(state.next_due_hint() == instant_from_ms(1'300));
    erase(state, "due");
    erase(state, "soon");
    erase(state, "sooner");
    erase(state, "later");
    CHECK(due_ids(state, 1'200, 100).empty());
    CHECK(state.next_due_hint() == instant_from_ms(2'000));  // nothing in the current bucket: the next one's start
    put(state, "a", "", slot(1'000, 5));
    put(state, "b", "", slot(1'000, 5));
    CHECK(due_ids(state, 1'200, 1).size() == 1);
    CHECK(state.next_due_hint() == instant_from_ms(1'200));  // stopped at its limit: more is due now
    state.discard();
    CHECK(state.next_due_hint() == Instant::min());
  }

  SECTION("a put replaces the previous slot and erase removes it") {
    put(state, "job", "v1", slot(1'000, 5));
    put(state, "job", "v2", slot(3'000, 5));
    CHECK(due_ids(state, 2'000, 10).empty());
    CHECK(due_ids(state, 3'000, 10) == std::vector<std::string>{"job"});
    put(state, "job", "v3", std::nullopt);
    CHECK(due_ids(state, 10'000, 10).empty());
    CHECK(value_of(state, "job") == std::optional<std::string>("v3"));
    erase(state, "job");
    CHECK_FALSE(value_of(state, "job").has_value());
    CHECK(state.slotted_count() == 0);
  }

  SECTION("fired entries are skipped, and whatever comes back or arrives late is found again") {
    // A run (one bucket and priority) fired in steps, as the dispatcher does batch by batch.
    for (int index = 0; index < 6; ++index) put(state, fmt::format("j{}", index), "", slot(1'000 + index * 10, 5));
    put(state, "later", "", slot(1'500, 5));
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    CHECK(due_ids(state, 1'020, 10) == std::vector<std::string>{"j0", "j1", "j2"});
    for (const auto* id : {"j0", "j1", "j2"}) erase(state, id);
    REQUIRE(state.commit(checkpoint_at(2)).ok());
    CHECK(due_ids(state, 1'040, 2) == std::vector<std::string>{"j3", "j4"});  // at the limit
    erase(state, "j3");
    erase(state, "j4");
    CHECK(due_ids(state, 1'040, 10).empty());
    // The batch is dropped: what it erased is live and due again.
    state.discard();
    CHECK(due_ids(state, 1'040, 10) == std::vector<std::string>{"j3", "j4"});
    erase(state, "j3");
    erase(state, "j4");
    REQUIRE(state.commit(checkpoint_at(3)).ok());
    // A late job due before everything left in the run is still found.
    put(state, "late", "", slot(1'001, 5));
    CHECK(due_ids(state, 1'060, 10) == std::vector<std::string>{"late", "j5"});
    erase(state, "late");
    erase(state, "j5");
    CHECK(due_ids(state, 1'400, 10).empty());
    CHECK(state.next_due_hint() == instant_from_ms(1'500));
    // A run emptied out takes new entries again.
    put(state, "again", "", slot(1'300, 5));
    CHECK(due_ids(state, 1'600, 10) == std::vector<std::string>{"again", "later"});
  }

  SECTION("a burst over several priorities drains completely, batch by batch, in priority order") {
    std::vector<std::string> expected;
    for (const std::uint32_t priority : {9U, 5U, 0U}) {
      for (int index = 0; index < 25; ++index) {
        const auto id = fmt::format("p{}-{:02}", priority, index);
        put(state, id, "", slot(1'000, priority));
        expected.push_back(id);
      }
    }
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    std::vector<std::string> fired;
    for (int batch = 0; batch < 20; ++batch) {
      const auto due = due_ids(state, 1'500, 10);
      if (due.empty()) break;
      for (const auto& id : due) {
        erase(state, id);
        fired.push_back(id);
      }
      REQUIRE(state.commit(checkpoint_at(2 + batch)).ok());
    }
    CHECK(fired == expected);
  }

  SECTION("entries at real epoch instants are found at once, across empty buckets") {
    constexpr std::int64_t kNow = 1'795'000'000'000;  // billions of empty buckets after bucket 0
    put(state, "soon", "", slot(kNow + 200, 5));
    put(state, "hour", "", slot(kNow + 3'600'000, 5));
    CHECK(due_ids(state, kNow, 10).empty());
    CHECK(due_ids(state, kNow + 300, 10) == std::vector<std::string>{"soon"});
    erase(state, "soon");
    CHECK(due_ids(state, kNow + 3'600'000, 10) == std::vector<std::string>{"hour"});
  }

  SECTION("the last write of a key in a batch wins, in reads, key listings and buckets, and is what commit keeps") {
    put(state, "k~1", "v1", slot(1'000, 5));
    put(state, "k~3", "v3", slot(1'000, 5));
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    erase(state, "k~1");
    put(state, "k~1", "again", slot(1'500, 5));  // erased, then put again
    put(state, "k~2", "staged", slot(1'200, 5));
    erase(state, "k~2");  // put, then erased: never there
    erase(state, "k~3");  // a committed key erased
    put(state, "k~0", "new", std::nullopt);
    put(state, "k~4", "new", std::nullopt);
    const auto check_batch = [&] {
      CHECK(value_of(state, "k~1") == std::optional<std::string>("again"));
      CHECK_FALSE(value_of(state, "k~2").has_value());
      CHECK_FALSE(value_of(state, "k~3").has_value());
      auto all = state.keys_after("k~", "", 10);
      REQUIRE(all.ok());
      CHECK(*all == std::vector<std::string>{"k~0", "k~1", "k~4"});
      auto first_two = state.keys_after("k~", "", 2);
      REQUIRE(first_two.ok());
      CHECK(*first_two == std::vector<std::string>{"k~0", "k~1"});
      auto rest = state.keys_after("k~", "k~1", 10);
      REQUIRE(rest.ok());
      CHECK(*rest == std::vector<std::string>{"k~4"});
      CHECK(state.slotted_count() == 1);
      CHECK(due_ids(state, 1'499, 10).empty());
      CHECK(due_ids(state, 2'000, 10) == std::vector<std::string>{"k~1"});
    };
    check_batch();
    REQUIRE(state.commit(checkpoint_at(2)).ok());
    state.discard();
    check_batch();
    erase(state, "k~1");  // a key staged, then committed, then erased
    REQUIRE(state.commit(checkpoint_at(3)).ok());
    state.discard();
    CHECK_FALSE(value_of(state, "k~1").has_value());
    CHECK(state.slotted_count() == 0);
    CHECK(due_ids(state, 2'000, 10).empty());
  }

  SECTION("wipe forgets everything") {
    put(state, "job", "v", slot(1'000, 5));
    REQUIRE(state.commit(checkpoint_at(3)).ok());
    REQUIRE(state.wipe().ok());
    CHECK_FALSE(value_of(state, "job").has_value());
    CHECK_FALSE(state.checkpoint().has_value());
    CHECK(due_ids(state, 5'000, 10).empty());
  }
}

}  // namespace kcron::dispatcher::testing
