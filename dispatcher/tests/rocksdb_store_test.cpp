#include "store/rocksdb_store.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "store/memory_store.h"
#include "store_contract.h"

using namespace kcron;
using namespace kcron::dispatcher;

namespace {

std::string temp_dir() {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() / ("kcron-store-test-" + std::to_string(random()));
  std::filesystem::remove_all(path);
  return path.string();
}

}  // namespace

TEST_CASE("the in-memory store honours the DelayStore contract") {
  MemoryDelayStore store(Millis(1000));
  testing::check_store_contract(store);
}

TEST_CASE("the RocksDB store honours the DelayStore contract") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    testing::check_store_contract(**store);
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("the RocksDB store keeps committed state and checkpoint across a reopen, and drops staged writes") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    auto state = (*store)->open(0);
    REQUIRE(state.ok());
    (*state)->put("kept", "committed", Slot{10'000, 5});
    REQUIRE((*state)->commit(Checkpoint{42, 7}).ok());
    (*state)->put("lost", "staged only", Slot{10'000, 5});
  }
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    auto state = (*store)->open(0);
    REQUIRE(state.ok());
    CHECK((*state)->get("kept") == std::optional<std::string>("committed"));
    CHECK_FALSE((*state)->get("lost").has_value());
    REQUIRE((*state)->checkpoint().has_value());
    CHECK((*state)->checkpoint()->changelog_offset == 42);
    CHECK((*state)->slotted_count() == 1);
    CHECK(testing::ids((*state)->due(10'000, 10)) == std::vector<std::string>{"kept"});
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("partitions are isolated column families") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    auto zero = (*store)->open(0);
    auto one = (*store)->open(1);
    REQUIRE((zero.ok() && one.ok()));
    (*zero)->put("job", "in zero", Slot{1'000, 5});
    CHECK_FALSE((*one)->get("job").has_value());
    CHECK((*one)->due(5'000, 10).empty());
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("the low-bucket bound skips fired buckets without losing late inserts into older buckets") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    auto state = *(*store)->open(0);
    for (int index = 0; index < 50; ++index) state->put("old-" + std::to_string(index), "", Slot{1'000 + index, 5});
    REQUIRE(state->commit(Checkpoint{1, 1}).ok());
    for (const auto& entry : state->due(60'000, 100)) state->erase(entry.job_id);
    REQUIRE(state->commit(Checkpoint{2, 1}).ok());
    CHECK(state->due(60'000, 100).empty());  // advances the bound past the emptied buckets
    state->put("late-into-old-bucket", "", Slot{500, 5});
    CHECK(testing::ids(state->due(60'000, 100)) == std::vector<std::string>{"late-into-old-bucket"});
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("the slot count and low bucket, written once per commit, survive a reopen, staged ones do not") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    auto state = *(*store)->open(0);
    state->put("early", "", Slot{1'500, 5});
    state->put("late", "", Slot{9'500, 5});
    state->put("later", "", Slot{12'500, 5});
    REQUIRE(state->commit(Checkpoint{1, 1}).ok());
    for (const auto& entry : state->due(2'000, 10)) state->erase(entry.job_id);
    CHECK(state->due(2'000, 10).empty());  // the low bound moves past bucket 1
    REQUIRE(state->commit(Checkpoint{2, 1}).ok());
    state->put("staged", "", Slot{3'500, 5});
    state->erase("late");
    CHECK(state->slotted_count() == 2);
  }
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    auto state = *(*store)->open(0);
    CHECK(state->slotted_count() == 2);  // late and later: the staged put and erase are gone
    CHECK(testing::ids(state->due(20'000, 10)) == std::vector<std::string>{"late", "later"});
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("a read followed by a write of the same id moves its slot, and a discard brings back the committed one") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db({path, 8U << 20U, 8U << 20U, Millis(1000)});
    REQUIRE(store.ok());
    auto state = *(*store)->open(0);
    state->put("job", "v1", Slot{1'000, 5});
    REQUIRE(state->commit(Checkpoint{1, 1}).ok());
    CHECK(state->get("job") == std::optional<std::string>("v1"));
    state->put("job", "v2", Slot{5'000, 5});  // its old slot (read just before) goes
    CHECK(state->get("job") == std::optional<std::string>("v2"));
    CHECK(state->due(2'000, 10).empty());
    CHECK(state->slotted_count() == 1);
    state->discard();
    CHECK(state->get("job") == std::optional<std::string>("v1"));
    CHECK(testing::ids(state->due(2'000, 10)) == std::vector<std::string>{"job"});
    state->erase("job");
    CHECK_FALSE(state->get("job").has_value());
    state->put("job", "v3", std::nullopt);  // no slot: nothing left in the buckets
    CHECK(state->slotted_count() == 0);
    CHECK(state->due(60'000, 10).empty());
    REQUIRE(state->commit(Checkpoint{2, 1}).ok());
    CHECK(state->get("job") == std::optional<std::string>("v3"));
  }
  std::filesystem::remove_all(path);
}
