#include "store/rocksdb_store.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "store/memory_store.h"
#include "store_contract.h"

using namespace kcron;
using namespace kcron::dispatcher;
using testing::checkpoint_at;
using testing::due_ids;
using testing::erase;
using testing::put;
using testing::slot;
using testing::value_of;

namespace {

std::string temp_dir() {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() / ("kcron-store-test-" + std::to_string(random()));
  std::filesystem::remove_all(path);
  return path.string();
}

RocksDbOptions options_for(const std::string& path) {
  return {path, 8U << 20U, 8U << 20U, Millis(1000), nullptr};
}

// A file system whose reads of table files fail while `failing` is set, as a failing disk's do.
// Tables are opened once and kept open, so the failure is injected into each opened file.
class FailingReads final : public rocksdb::FileSystemWrapper {
 public:
  FailingReads() : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "kcron.FailingReads"; }
  const char* Name() const override { return kClassName(); }

  void set_failing(bool failing) { failing_->store(failing); }

  rocksdb::IOStatus NewRandomAccessFile(const std::string& name, const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* file,
                                        rocksdb::IODebugContext* debug) override {
    auto status = target()->NewRandomAccessFile(name, options, file, debug);
    if (status.ok()) *file = std::make_unique<File>(std::move(*file), failing_);
    return status;
  }

 private:
  class File final : public rocksdb::FSRandomAccessFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSRandomAccessFile> file, std::shared_ptr<std::atomic<bool>> failing)
        : rocksdb::FSRandomAccessFileOwnerWrapper(std::move(file)), failing_(std::move(failing)) {}

    rocksdb::IOStatus Read(std::uint64_t offset, std::size_t bytes, const rocksdb::IOOptions& options, rocksdb::Slice* result,
                           char* scratch, rocksdb::IODebugContext* debug) const override {
      if (failing_->load()) return rocksdb::IOStatus::IOError("injected read error");
      return target()->Read(offset, bytes, options, result, scratch, debug);
    }
    rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* requests, std::size_t count, const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* debug) override {
      if (!failing_->load()) return target()->MultiRead(requests, count, options, debug);
      for (std::size_t index = 0; index < count; ++index)
        requests[index].status = rocksdb::IOStatus::IOError("injected read error");
      return rocksdb::IOStatus::IOError("injected read error");
    }

   private:
    std::shared_ptr<std::atomic<bool>> failing_;
  };

  std::shared_ptr<std::atomic<bool>> failing_ = std::make_shared<std::atomic<bool>>(false);
};

// The store at `path` with one committed job ("kept", due at 10 s) and `fillers` entries of 1 kB
// each, reopened so that they live in a table file (opening flushes the recovered log), with no
// block cache: every read goes to the file.
std::unique_ptr<RocksDbDelayStore> store_on_disk(const std::string& path, std::shared_ptr<FailingReads> file_system,
                                                 int fillers = 0) {
  RocksDbOptions options{path, 0, 8U << 20U, Millis(1000), std::move(file_system)};
  {
    auto store = RocksDbDelayStore::open_db(options);
    REQUIRE(store.ok());
    auto state = (*store)->open(Partition(0));
    REQUIRE(state.ok());
    put(**state, "kept", "committed", slot(10'000, 5));
    std::mt19937 random(7);
    std::uniform_int_distribution<int> letter('a', 'z');
    for (int index = 0; index < fillers; ++index) {
      std::string value(1000, ' ');
      for (auto& c : value) c = static_cast<char>(letter(random));  // does not compress
      put(**state, fmt::format("filler-{:03}", index), value, std::nullopt);
    }
    REQUIRE((*state)->commit(checkpoint_at(1)).ok());
  }
  auto store = RocksDbDelayStore::open_db(options);
  REQUIRE(store.ok());
  return std::move(*store);
}

std::vector<std::filesystem::path> table_files(const std::string& path) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.path().extension() == ".sst") files.push_back(entry.path());
  }
  return files;
}

}  // namespace

TEST_CASE("the in-memory store honours the DelayStore contract") {
  MemoryDelayStore store(Millis(1000));
  testing::check_store_contract(store);
}

TEST_CASE("the RocksDB store honours the DelayStore contract") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    testing::check_store_contract(**store);
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("the RocksDB store keeps committed state and checkpoint across a reopen, and drops staged writes") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    auto state = (*store)->open(Partition(0));
    REQUIRE(state.ok());
    put(**state, "kept", "committed", slot(10'000, 5));
    REQUIRE((*state)->commit(Checkpoint{42, instant_from_ms(7)}).ok());
    put(**state, "lost", "staged only", slot(10'000, 5));
  }
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    auto state = (*store)->open(Partition(0));
    REQUIRE(state.ok());
    CHECK(value_of(**state, "kept") == std::optional<std::string>("committed"));
    CHECK_FALSE(value_of(**state, "lost").has_value());
    REQUIRE((*state)->checkpoint().has_value());
    CHECK((*state)->checkpoint()->changelog_offset == 42);
    CHECK((*state)->checkpoint()->written == instant_from_ms(7));
    CHECK((*state)->slotted_count() == 1);
    CHECK(due_ids(**state, 10'000, 10) == std::vector<std::string>{"kept"});
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("partitions are isolated column families") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    auto zero = (*store)->open(Partition(0));
    auto one = (*store)->open(Partition(1));
    REQUIRE((zero.ok() && one.ok()));
    put(**zero, "job", "in zero", slot(1'000, 5));
    CHECK_FALSE(value_of(**one, "job").has_value());
    CHECK(due_ids(**one, 5'000, 10).empty());
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("the low-bucket bound skips fired buckets without losing late inserts into older buckets") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    auto& state = **(*store)->open(Partition(0));
    for (int index = 0; index < 50; ++index) put(state, "old-" + std::to_string(index), "", slot(1'000 + index, 5));
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    for (const auto& id : due_ids(state, 60'000, 100)) erase(state, id);
    REQUIRE(state.commit(checkpoint_at(2)).ok());
    CHECK(due_ids(state, 60'000, 100).empty());  // advances the bound past the emptied buckets
    put(state, "late-into-old-bucket", "", slot(500, 5));
    CHECK(due_ids(state, 60'000, 100) == std::vector<std::string>{"late-into-old-bucket"});
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("the slot count and low bucket, written once per commit, survive a reopen, staged ones do not") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    auto& state = **(*store)->open(Partition(0));
    put(state, "early", "", slot(1'500, 5));
    put(state, "late", "", slot(9'500, 5));
    put(state, "later", "", slot(12'500, 5));
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    for (const auto& id : due_ids(state, 2'000, 10)) erase(state, id);
    CHECK(due_ids(state, 2'000, 10).empty());  // the low bound moves past bucket 1
    REQUIRE(state.commit(checkpoint_at(2)).ok());
    put(state, "staged", "", slot(3'500, 5));
    erase(state, "late");
    CHECK(state.slotted_count() == 2);
  }
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    auto& state = **(*store)->open(Partition(0));
    CHECK(state.slotted_count() == 2);  // late and later: the staged put and erase are gone
    CHECK(due_ids(state, 20'000, 10) == std::vector<std::string>{"late", "later"});
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("a read followed by a write of the same id moves its slot, and a discard brings back the committed one") {
  const auto path = temp_dir();
  {
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    auto& state = **(*store)->open(Partition(0));
    put(state, "job", "v1", slot(1'000, 5));
    REQUIRE(state.commit(checkpoint_at(1)).ok());
    CHECK(value_of(state, "job") == std::optional<std::string>("v1"));
    put(state, "job", "v2", slot(5'000, 5));  // its old slot (read just before) goes
    CHECK(value_of(state, "job") == std::optional<std::string>("v2"));
    CHECK(due_ids(state, 2'000, 10).empty());
    CHECK(state.slotted_count() == 1);
    state.discard();
    CHECK(value_of(state, "job") == std::optional<std::string>("v1"));
    CHECK(due_ids(state, 2'000, 10) == std::vector<std::string>{"job"});
    erase(state, "job");
    CHECK_FALSE(value_of(state, "job").has_value());
    put(state, "job", "v3", std::nullopt);  // no slot: nothing left in the buckets
    CHECK(state.slotted_count() == 0);
    CHECK(due_ids(state, 60'000, 10).empty());
    REQUIRE(state.commit(checkpoint_at(2)).ok());
    CHECK(value_of(state, "job") == std::optional<std::string>("v3"));
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("a read the disk fails is an error naming the partition, the key and the cause, never an absent entry") {
  const auto path = temp_dir();
  {
    auto file_system = std::make_shared<FailingReads>();
    auto store = store_on_disk(path, file_system);
    auto opened = store->open(Partition(0));
    REQUIRE(opened.ok());
    PartitionState& state = **opened;
    file_system->set_failing(true);

    auto value = state.get("kept");
    REQUIRE_FALSE(value.ok());
    CHECK_THAT(value.error().message(), Catch::Contains("partition 0") && Catch::Contains("\"kept\"") &&
                                            Catch::Contains("IO error") && Catch::Contains("injected read error"));
    auto due = state.due(instant_from_ms(20'000), 10);
    REQUIRE_FALSE(due.ok());
    CHECK_THAT(due.error().message(), Catch::Contains("partition 0") && Catch::Contains("injected read error"));
    // A put must read the old slot to move it: it fails too, rather than leave the old one behind.
    auto moved = state.put("kept", "moved", slot(30'000, 5));
    REQUIRE_FALSE(moved.ok());
    CHECK_THAT(moved.error().message(), Catch::Contains("injected read error"));
    CHECK_FALSE(state.erase("kept").ok());

    state.discard();
    file_system->set_failing(false);  // the disk is back: the entry is there as committed
    CHECK(value_of(state, "kept") == std::optional<std::string>("committed"));
    CHECK(due_ids(state, 20'000, 10) == std::vector<std::string>{"kept"});
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("a partition whose checkpoint cannot be read does not open") {
  const auto path = temp_dir();
  {
    auto file_system = std::make_shared<FailingReads>();
    auto store = store_on_disk(path, file_system);
    file_system->set_failing(true);
    auto opened = store->open(Partition(0));
    REQUIRE_FALSE(opened.ok());
    CHECK_THAT(opened.error().message(),
               Catch::Contains("partition 0") && Catch::Contains("m/checkpoint") && Catch::Contains("injected read error"));
    file_system->set_failing(false);
    CHECK(store->open(Partition(0)).ok());
  }
  std::filesystem::remove_all(path);
}

TEST_CASE("a corrupted table block fails the reads of what it holds with Corruption, never as absent") {
  const auto path = temp_dir();
  (void)store_on_disk(path, nullptr, 100);  // closed again: everything is in one table file
  const auto files = table_files(path);
  REQUIRE(files.size() == 1);
  {
    // The first of its 4 kB blocks holds the smallest keys: the job's bucket key and the first
    // fillers. The job's index key and the checkpoint come later, in blocks left intact.
    std::fstream file(files.front(), std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(file.good());
    file.seekp(100);
    const std::string garbage(16, '\x5a');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    REQUIRE(file.good());
  }
  {
    auto store = RocksDbDelayStore::open_db({path, 0, 8U << 20U, Millis(1000), nullptr});
    REQUIRE(store.ok());
    auto opened = (*store)->open(Partition(0));
    REQUIRE(opened.ok());
    PartitionState& state = **opened;
    auto value = state.get("filler-000");
    REQUIRE_FALSE(value.ok());
    CHECK_THAT(value.error().message(), Catch::Contains("\"filler-000\"") && Catch::Contains("Corruption"));
    auto due = state.due(instant_from_ms(20'000), 10);
    REQUIRE_FALSE(due.ok());
    CHECK_THAT(due.error().message(), Catch::Contains("partition 0") && Catch::Contains("Corruption"));
    CHECK(value_of(state, "kept") == std::optional<std::string>("committed"));  // its block is intact
  }
  std::filesystem::remove_all(path);
}

// Random batches of puts, erases, fires, commits, discards and reopens, against the in-memory
// store as the model: every read (get, keys_after, due, slotted_count) answers as the model does.
TEST_CASE("the RocksDB store answers every read as the in-memory model does, across commits, discards and reopens") {
  // A track key starts with a control byte, a UTF-8 tenant's with a byte over 0x7f: staged and
  // committed keys must merge in RocksDB's (unsigned, bytewise) order.
  const std::vector<std::string> keys{"a~1", "a~2",       "a~3",       "a~4", "a~5",        "b~1",
                                      "b~2", "\x01t/a~1", "\x01t/a~2", "c",   "\xc3\xa9~1", "\xc3\xa9~2"};
  const std::vector<std::string> prefixes{"", "a~", "b~", "\x01t/a~", "\xc3\xa9~", "z"};
  for (unsigned seed = 1; seed <= 8; ++seed) {
    CAPTURE(seed);
    const auto path = temp_dir();
    MemoryDelayStore model_store(Millis(1000));
    PartitionState& model = **model_store.open(Partition(0));
    auto store = RocksDbDelayStore::open_db(options_for(path));
    REQUIRE(store.ok());
    PartitionState* state = *(*store)->open(Partition(0));
    std::mt19937 random(seed);
    const auto pick = [&](std::size_t size) { return std::uniform_int_distribution<std::size_t>(0, size - 1)(random); };
    std::int64_t offset = 0;
    for (int step = 0; step < 500; ++step) {
      CAPTURE(step);
      const auto& key = keys[pick(keys.size())];
      switch (pick(10)) {
        case 0:
        case 1: {
          const auto value = fmt::format("v{}", step);
          std::optional<Slot> where;
          if (pick(3) != 0) where = slot(static_cast<std::int64_t>(pick(6'000)), static_cast<std::uint32_t>(pick(10)));
          put(model, key, value, where);
          put(*state, key, value, where);
          break;
        }
        case 2:
          erase(model, key);
          erase(*state, key);
          break;
        case 3: {
          const auto& prefix = prefixes[pick(prefixes.size())];
          const std::string after = pick(3) == 0 ? std::string() : keys[pick(keys.size())];
          const auto limit = 1 + pick(6);
          CAPTURE(prefix, after, limit);
          auto expected = model.keys_after(prefix, after, limit);
          auto actual = state->keys_after(prefix, after, limit);
          REQUIRE(actual.ok());
          CHECK(*actual == *expected);
          break;
        }
        case 4: {  // a fire: what is due goes
          const auto now = static_cast<std::int64_t>(pick(7'000));
          const auto limit = 1 + pick(8);
          CAPTURE(now, limit);
          const auto expected = due_ids(model, now, limit);
          CHECK(due_ids(*state, now, limit) == expected);
          for (const auto& id : expected) {
            erase(model, id);
            erase(*state, id);
          }
          break;
        }
        case 5:
          ++offset;
          REQUIRE(model.commit(checkpoint_at(offset)).ok());
          REQUIRE(state->commit(checkpoint_at(offset)).ok());
          break;
        case 6:
          model.discard();
          state->discard();
          break;
        case 7:
          if (pick(8) == 0) {  // a restart: what was staged is gone
            model.discard();
            store->reset();
            store = RocksDbDelayStore::open_db(options_for(path));
            REQUIRE(store.ok());
            state = *(*store)->open(Partition(0));
          }
          break;
        default:
          CHECK(value_of(*state, key) == value_of(model, key));
          break;
      }
      CHECK(state->slotted_count() == model.slotted_count());
    }
    for (const auto& key : keys) CHECK(value_of(*state, key) == value_of(model, key));
    CHECK(due_ids(*state, 10'000, 100) == due_ids(model, 10'000, 100));
    store->reset();
    std::filesystem::remove_all(path);
  }
}
