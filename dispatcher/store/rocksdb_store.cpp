#include "store/rocksdb_store.h"

#include <fmt/format.h>
#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <unordered_map>

#include "core/bucket_key.h"

namespace kcron::dispatcher {
namespace {

constexpr char kIndexPrefix = 'i';
constexpr char kBucketPrefix = 'b';
const std::string kCheckpointKey = "m/checkpoint";
const std::string kLowBucketKey = "m/low";
const std::string kCountKey = "m/count";

Error to_error(const rocksdb::Status& status, std::string_view what) {
  return make_error("rocksdb {}: {}", what, status.ToString());
}

// Opening replays the WAL into SST files and writes a new WAL, MANIFEST and OPTIONS file. A full
// disk makes RocksDB 7.8 fail that half way and abort in its WAL writer's destructor (Debian
// builds it with assertions), so refuse up front, with the reason, when there is clearly no room:
// less free space than the WAL files to replay plus 1 MB.
Status check_free_space(const std::string& path) {
  std::error_code error;
  const auto space = std::filesystem::space(path, error);
  if (error) return Status::success();  // cannot tell: let RocksDB try
  std::uintmax_t wal_bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
    if (entry.path().extension() == ".log" && entry.is_regular_file(error)) wal_bytes += entry.file_size(error);
  }
  const std::uintmax_t needed = wal_bytes + (1U << 20U);
  if (space.available >= needed) return Status::success();
  return make_error("state dir {}: disk full: {} kB free, opening RocksDB needs about {} kB (its WAL to replay + 1 MB)", path,
                    space.available / 1024, needed / 1024);
}

// A bucket key's run: prefix byte, bucket and priority rank. Keys of a run arrive in (nearly) due
// order, both as jobs are taken in and as they fire, so the memtable keeps an insert position per
// run instead of searching its skip list from the top for each key. Index keys (ids in any order)
// take no hint.
class BucketRunPrefix final : public rocksdb::SliceTransform {
 public:
  static constexpr std::size_t kBytes = 10;
  const char* Name() const override { return "kcron.BucketRunPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return {key.data(), kBytes}; }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= kBytes && key[0] == kBucketPrefix; }
};

std::string cf_name(Partition partition) {
  return fmt::format("p{}", partition);
}

std::string index_key(std::string_view key) {
  std::string db_key(1, kIndexPrefix);
  db_key += key;
  return db_key;
}

std::string bucket_db_key(const BucketKey& key) {
  std::string out(1, kBucketPrefix);
  out += encode_bucket_key(key);
  return out;
}

std::string encode_i64(std::int64_t value) {
  std::string out;
  put_big_endian(out, static_cast<std::uint64_t>(value));
  return out;
}

// Index value: [1 byte has-slot][8 bytes due epoch ms][1 byte priority][entry bytes].
constexpr std::size_t kIndexFrameBytes = 10;

std::string frame_index_value(std::string_view value, const std::optional<Slot>& slot) {
  std::string out;
  out.reserve(kIndexFrameBytes + value.size());
  out.push_back(slot ? 1 : 0);
  put_big_endian(out, static_cast<std::uint64_t>(slot ? to_epoch_ms(slot->due) : 0));
  out.push_back(static_cast<char>(slot ? slot->priority : 0));
  out += value;
  return out;
}

struct IndexValue {
  std::optional<Slot> slot;
  std::string value;
};

Result<IndexValue> parse_index_value(const std::string& framed) {
  if (framed.size() < kIndexFrameBytes) {
    return make_error("index value of {} bytes is shorter than its {}-byte frame: corrupt", framed.size(), kIndexFrameBytes);
  }
  IndexValue parsed;
  if (framed[0] != 0) {
    parsed.slot = Slot{instant_from_ms(static_cast<std::int64_t>(read_big_endian(std::string_view(framed).substr(1, 8)))),
                       static_cast<unsigned char>(framed[9])};
  }
  parsed.value = framed.substr(kIndexFrameBytes);
  return parsed;
}

}  // namespace

class RocksDbDelayStore::ColumnFamilyState final : public PartitionState {
 public:
  ColumnFamilyState(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* handle, Partition partition, Millis bucket_width,
                    bool* write_failed)
      : db_(db),
        handle_(handle),
        partition_(partition),
        bucket_width_(bucket_width),
        write_failed_(write_failed),
        batch_(rocksdb::BytewiseComparator(), 0, true) {}

  Result<std::optional<std::string>> get(std::string_view key) override {
    auto read = read_index(key);
    if (!read) return read.error();
    const std::optional<std::string>& framed = **read;
    if (!framed) return std::optional<std::string>();
    auto parsed = parse_index_value(*framed);
    if (!parsed) return failure("read of", key, parsed.error().message());
    return std::optional<std::string>(std::move(parsed->value));
  }

  Status put(std::string_view key, std::string_view value, std::optional<Slot> slot) override {
    if (auto removed = remove_slot(key); !removed) return removed;
    stage(key, frame_index_value(value, slot));
    if (slot) {
      const BucketKey bucket_key{bucket_of(slot->due, bucket_width_), slot->priority, slot->due, std::string(key)};
      const std::string db_key = bucket_db_key(bucket_key);
      (void)batch_.Put(handle_, db_key, "");
      lower_cursor(std::string_view(db_key).substr(1));
      next_due_hint_ = std::min(next_due_hint_, slot->due);
      if (auto counted = bucket_counts_.find(bucket_key.bucket); counted != bucket_counts_.end()) ++counted->second;
      ++count_;
      low_bucket_ = std::min(low_bucket_, bucket_key.bucket);
    }
    return Status::success();
  }

  Status erase(std::string_view key) override {
    if (auto removed = remove_slot(key); !removed) return removed;
    stage(key, std::nullopt);
    return Status::success();
  }

  // Committed index keys merged with the staged ones (a staged erase hides a committed key).
  Result<std::vector<std::string>> keys_after(std::string_view prefix, std::string_view after, std::size_t limit) override {
    const auto wanted = [&](std::string_view key) { return key.starts_with(prefix) && (after.empty() || key > after); };
    std::vector<std::string_view> staged;
    for (const auto& [key, framed] : staged_) {
      if (wanted(key)) staged.push_back(key);
    }
    std::sort(staged.begin(), staged.end());
    std::vector<std::string> keys;
    auto next_staged = staged.begin();
    const auto take_staged = [&](std::string_view key) {
      if (staged_.find(key)->second) keys.emplace_back(key);
    };
    rocksdb::ReadOptions read_options;
    std::unique_ptr<rocksdb::Iterator> iterator(db_->NewIterator(read_options, handle_));
    const std::string wanted_prefix = index_key(prefix);
    for (iterator->Seek(index_key(std::max(prefix, after))); iterator->Valid() && keys.size() < limit; iterator->Next()) {
      const auto key = iterator->key();
      if (!key.starts_with(wanted_prefix)) break;
      const std::string_view entry_key(key.data() + 1, key.size() - 1);
      if (!after.empty() && entry_key <= after) continue;
      for (; next_staged != staged.end() && *next_staged < entry_key && keys.size() < limit; ++next_staged) {
        take_staged(*next_staged);
      }
      if (keys.size() >= limit) break;
      if (next_staged != staged.end() && *next_staged == entry_key) {
        take_staged(*next_staged++);  // staged over committed
      } else {
        keys.emplace_back(entry_key);
      }
    }
    if (const auto status = iterator->status(); !status.ok()) return failure("scan of", prefix, status.ToString());
    for (; next_staged != staged.end() && keys.size() < limit; ++next_staged) take_staged(*next_staged);
    return keys;
  }

  // The buckets up to the current one, run by run (a run: one bucket and priority, its keys in due
  // order). Each run is entered at its cursor, which skips what earlier calls saw fired (their
  // deletes stay in the memtable as tombstones until a compaction, and stepping over thousands of
  // them on every call was the dispatcher's hot spot), and left at its first entry not yet due.
  Result<std::vector<DueEntry>> due(Instant now, std::size_t limit) override {
    std::vector<DueEntry> entries;
    const auto current = bucket_of(now, bucket_width_);
    std::string upper(1, kBucketPrefix);
    upper += bucket_start(current + 1);
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> iterator(
        batch_.NewIteratorWithBase(handle_, db_->NewIterator(read_options, handle_), &read_options));
    Instant hint = bucket_begin(current + 1, bucket_width_);  // the next bucket's start
    std::optional<std::int64_t> first_live_bucket;
    std::int64_t bucket = low_bucket_;
    bool end = false;  // no key at all up to the current bucket's end
    while (!end && bucket <= current) {
      for (int rank = 0; rank < kPriorityRanks; ++rank) {
        const std::string run = run_key(bucket, rank);
        auto cursor = cursors_.find(run);
        if (cursor != cursors_.end() && cursor->second.empty()) continue;  // known empty
        std::string target(1, kBucketPrefix);
        target += cursor != cursors_.end() ? cursor->second : run;
        iterator->Seek(target);
        std::optional<std::string> first_live;
        bool more = false;  // stopped at the limit
        for (; iterator->Valid(); iterator->Next()) {
          const auto key = iterator->key();
          if (key.size() < 1 + kRunBytes || key[0] != kBucketPrefix ||
              std::string_view(key.data() + 1, kRunBytes) != std::string_view(run)) {
            break;
          }
          if (!first_live) first_live = std::string(key.data() + 1, key.size() - 1);
          if (entries.size() >= limit) {
            more = true;
            break;
          }
          auto decoded = decode_bucket_key(std::string_view(key.data() + 1, key.size() - 1));
          if (!decoded) return failure("scan of", std::string_view(key.data(), key.size()), decoded.error().message());
          if (decoded->due > now) {
            hint = std::min(hint, decoded->due);  // the rest of the run is later still
            break;
          }
          entries.push_back({JobId(std::move(decoded->job_id)), Slot{decoded->due, decoded->priority}});
        }
        // Not Valid() is the end of the keys, or a read that failed.
        if (const auto status = iterator->status(); !status.ok()) return failure("scan of", target, status.ToString());
        // No live key of this run lies before its first live key: the next call starts there.
        cursors_[run] = first_live ? *first_live : std::string();
        if (first_live && !first_live_bucket) first_live_bucket = bucket;
        if (more) {
          hint = now;  // more may be due already
          break;
        }
        if (!iterator->Valid()) {
          end = true;  // nothing after this run up to the bound
          break;
        }
      }
      if (end || entries.size() >= limit || bucket >= current) break;
      // On to the next bucket that holds a key, found by one seek (buckets in between are empty).
      const std::string next = std::string(1, kBucketPrefix) + bucket_start(bucket + 1);
      iterator->Seek(next);
      if (const auto status = iterator->status(); !status.ok()) return failure("scan of", next, status.ToString());
      if (!iterator->Valid() || iterator->key().size() < 1 + 8 || iterator->key()[0] != kBucketPrefix) break;
      bucket = static_cast<std::int64_t>(read_big_endian(std::string_view(iterator->key().data() + 1, 8)));
    }
    advance_low_bucket(first_live_bucket ? *first_live_bucket : current);
    next_due_hint_ = hint;
    return entries;
  }

  Result<std::vector<BucketCount>> bucket_counts(Instant from, Instant until) override {
    const auto first = bucket_of(from, bucket_width_);
    const auto last = bucket_of(until, bucket_width_);
    bucket_counts_.erase(bucket_counts_.begin(), bucket_counts_.lower_bound(first));  // behind us for good
    std::vector<BucketCount> counts;
    for (auto bucket = first; bucket <= last; ++bucket) {
      auto counted = bucket_counts_.find(bucket);
      if (counted == bucket_counts_.end()) {
        auto scanned = count_bucket(bucket);
        if (!scanned) return scanned.error();
        counted = bucket_counts_.emplace(bucket, *scanned).first;
      }
      if (counted->second > 0) counts.push_back({bucket_begin(bucket, bucket_width_), counted->second});
    }
    return counts;
  }

  Instant next_due_hint() const override { return next_due_hint_; }
  std::int64_t slotted_count() const override { return count_; }

  Status commit(const Checkpoint& checkpoint) override {
    std::string value = encode_i64(checkpoint.changelog_offset) + encode_i64(to_epoch_ms(checkpoint.written));
    (void)batch_.Put(handle_, kCheckpointKey, value);
    // The count and the low bucket change with most writes: written once per commit, not per write
    // (each write of them was one more index update and memtable insert).
    if (count_ != committed_count_) (void)batch_.Put(handle_, kCountKey, encode_i64(count_));
    if (low_bucket_ != committed_low_bucket_) (void)batch_.Put(handle_, kLowBucketKey, encode_i64(low_bucket_));
    // Each staged index key's last value joins the bucket writes and metadata, in key order (the
    // memtable inserts a run of ordered keys from where the last one went). They bypass the
    // batch's index, where no read looks for them (index reads go to staged_, due() to bucket
    // keys): a failed write leaves them there until discard() clears both, and a repeated commit()
    // appends the same last values again.
    rocksdb::WriteBatch& writes = *batch_.GetWriteBatch();
    std::vector<const StagedIndex::value_type*> index_writes;
    index_writes.reserve(staged_.size());
    for (const auto& item : staged_) index_writes.push_back(&item);
    std::sort(index_writes.begin(), index_writes.end(),
              [](const auto* left, const auto* right) { return left->first < right->first; });
    for (const auto* item : index_writes) {
      if (item->second) {
        (void)writes.Put(handle_, index_key(item->first), *item->second);
      } else {
        (void)writes.Delete(handle_, index_key(item->first));
      }
    }
    rocksdb::WriteOptions write_options;
    const auto status = db_->Write(write_options, &writes);
    if (!status.ok()) {
      *write_failed_ = true;
      return to_error(status, "commit");
    }
    batch_.Clear();
    staged_.clear();
    last_.reset();
    committed_count_ = count_;
    committed_low_bucket_ = low_bucket_;
    checkpoint_ = checkpoint;
    return Status::success();
  }

  void discard() override {
    next_due_hint_ = Instant::min();  // what the dropped batch fired is due again
    cursors_.clear();                 // they may point past entries the dropped batch erased
    bucket_counts_.clear();           // they count what the dropped batch wrote
    batch_.Clear();
    staged_.clear();
    last_.reset();
    count_ = committed_count_;
    low_bucket_ = committed_low_bucket_;
  }

  std::optional<Checkpoint> checkpoint() const override { return checkpoint_; }

  Status wipe() override {
    next_due_hint_ = Instant::min();
    cursors_.clear();
    bucket_counts_.clear();
    batch_.Clear();
    staged_.clear();
    last_.reset();
    rocksdb::WriteBatch wipe_batch;
    (void)wipe_batch.DeleteRange(handle_, std::string(1, '\0'), std::string(8, '\xff'));
    const auto status = db_->Write(rocksdb::WriteOptions(), &wipe_batch);
    if (!status.ok()) {
      *write_failed_ = true;
      return to_error(status, "wipe");
    }
    (void)db_->CompactRange(rocksdb::CompactRangeOptions(), handle_, nullptr, nullptr);
    return load_metadata();
  }

  // Reads the checkpoint, the slot count and the low bucket as last committed.
  Status load_metadata() {
    checkpoint_.reset();
    low_bucket_ = 0;
    count_ = 0;
    auto checkpoint = read_metadata(kCheckpointKey, 16);
    if (!checkpoint) return checkpoint.error();
    if (*checkpoint) {
      checkpoint_ =
          Checkpoint{static_cast<std::int64_t>(read_big_endian(**checkpoint)),
                     instant_from_ms(static_cast<std::int64_t>(read_big_endian(std::string_view(**checkpoint).substr(8))))};
    }
    auto low_bucket = read_metadata(kLowBucketKey, 8);
    if (!low_bucket) return low_bucket.error();
    if (*low_bucket) low_bucket_ = static_cast<std::int64_t>(read_big_endian(**low_bucket));
    auto count = read_metadata(kCountKey, 8);
    if (!count) return count.error();
    if (*count) count_ = static_cast<std::int64_t>(read_big_endian(**count));
    committed_count_ = count_;
    committed_low_bucket_ = low_bucket_;
    return Status::success();
  }

 private:
  // What failed, where: `delay store partition 3, read of key "job-1": IO error: ...` (the key
  // escaped: a track key starts with a control byte).
  Error failure(std::string_view what, std::string_view key, std::string_view cause) const {
    return make_error("delay store partition {}, {} key {:?}: {}", partition_, what, key, cause);
  }

  // A committed metadata value of `size` bytes (nullopt: never written).
  Result<std::optional<std::string>> read_metadata(const std::string& key, std::size_t size) {
    std::string value;
    const auto status = db_->Get(rocksdb::ReadOptions(), handle_, key, &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    if (!status.ok()) return failure("read of", key, status.ToString());
    if (value.size() != size) return failure("read of", key, fmt::format("{} bytes, not {}: corrupt", value.size(), size));
    return std::optional<std::string>(std::move(value));
  }

  // The index value of a key: staged, else committed. The last committed one read is kept: the
  // core reads an entry and then writes it, and the write needs the old slot (a second lookup).
  // A failed read is not kept.
  Result<const std::optional<std::string>*> read_index(std::string_view key) {
    if (const auto staged = staged_.find(key); staged != staged_.end()) return &staged->second;
    if (last_ && last_->first == key) return &last_->second;
    std::string value;
    const auto status = db_->Get(rocksdb::ReadOptions(), handle_, index_key(key), &value);
    if (status.IsNotFound()) {
      last_.emplace(std::string(key), std::nullopt);
    } else if (status.ok()) {
      last_.emplace(std::string(key), std::move(value));
    } else {
      last_.reset();
      return failure("read of", key, status.ToString());
    }
    return &last_->second;
  }

  // An index write (nullopt: an erase), kept in memory until commit() writes the last one.
  void stage(std::string_view key, std::optional<std::string> framed) {
    if (auto staged = staged_.find(key); staged != staged_.end()) {
      staged->second = std::move(framed);
    } else {
      staged_.emplace(std::string(key), std::move(framed));
    }
  }

  Status remove_slot(std::string_view key) {
    auto read = read_index(key);
    if (!read) return read.error();
    const std::optional<std::string>& framed = **read;
    if (!framed) return Status::success();
    auto parsed = parse_index_value(*framed);
    if (!parsed) return failure("read of", key, parsed.error().message());
    if (!parsed->slot) return Status::success();
    const BucketKey bucket_key{bucket_of(parsed->slot->due, bucket_width_), parsed->slot->priority, parsed->slot->due,
                               std::string(key)};
    (void)batch_.Delete(handle_, bucket_db_key(bucket_key));
    if (auto counted = bucket_counts_.find(bucket_key.bucket); counted != bucket_counts_.end()) --counted->second;
    --count_;
    return Status::success();
  }

  // The slot keys of one bucket (staged writes included), counted by a scan.
  Result<std::int64_t> count_bucket(std::int64_t bucket) {
    std::string lower(1, kBucketPrefix);
    lower += bucket_start(bucket);
    std::string upper(1, kBucketPrefix);
    upper += bucket_start(bucket + 1);
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> iterator(
        batch_.NewIteratorWithBase(handle_, db_->NewIterator(read_options, handle_), &read_options));
    std::int64_t count = 0;
    // The base iterator honours the bound; the batch's staged keys are checked here.
    for (iterator->Seek(lower); iterator->Valid() && iterator->key().compare(upper_slice) < 0; iterator->Next()) ++count;
    if (const auto status = iterator->status(); !status.ok()) return failure("count of bucket", lower, status.ToString());
    return count;
  }

  // The first 9 bytes of a bucket key: bucket and priority rank.
  static std::string run_key(std::int64_t bucket, int rank) {
    std::string run = bucket_start(bucket);
    run.push_back(static_cast<char>(rank));
    return run;
  }

  // A new slot key before its run's cursor moves the cursor back to it.
  void lower_cursor(std::string_view key) {
    if (key.size() < kRunBytes) return;
    auto cursor = cursors_.find(std::string(key.substr(0, kRunBytes)));
    if (cursor == cursors_.end()) return;
    if (cursor->second.empty() || std::string_view(cursor->second) > key) cursor->second = std::string(key);
  }

  void advance_low_bucket(std::int64_t bucket) {
    if (bucket <= low_bucket_) return;
    // Runs of buckets left behind are empty for good: forget their cursors.
    cursors_.erase(cursors_.begin(), cursors_.lower_bound(bucket_start(bucket)));
    low_bucket_ = bucket;
  }

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* handle_;
  Partition partition_;
  Millis bucket_width_;
  bool* write_failed_;                  // the store's flag
  rocksdb::WriteBatchWithIndex batch_;  // staged bucket writes (due() scans them) and metadata
  // Staged index writes by entry key (nullopt: erased): read from here, written by commit(). A
  // key written many times in a batch (a tenant's usage entry, once per job) is written once.
  struct KeyHash {
    using is_transparent = void;  // NOLINT(readability-identifier-naming): the name the standard looks for
    std::size_t operator()(std::string_view key) const { return std::hash<std::string_view>()(key); }
  };
  using StagedIndex = std::unordered_map<std::string, std::optional<std::string>, KeyHash, std::equal_to<>>;
  StagedIndex staged_;
  std::optional<Checkpoint> checkpoint_;
  std::int64_t low_bucket_ = 0;
  std::int64_t committed_low_bucket_ = 0;
  std::int64_t count_ = 0;
  Instant next_due_hint_ = Instant::min();
  std::int64_t committed_count_ = 0;
  // Run (bucket + priority rank) -> the key a scan of it starts at: no live key of the run lies
  // before it. Empty: the run has no live key. Kept in memory only; a put before it moves it back,
  // a discarded batch (whose erases come back) clears them all.
  std::map<std::string, std::string> cursors_;
  // Bucket -> its slotted entries, for the buckets bucket_counts() counted and not yet left behind.
  std::map<std::int64_t, std::int64_t> bucket_counts_;
  // The last committed index value read (key -> framed value, nullopt: absent).
  std::optional<std::pair<std::string, std::optional<std::string>>> last_;
  static constexpr int kPriorityRanks = 10;
  static constexpr std::size_t kRunBytes = 9;
};

Result<std::unique_ptr<RocksDbDelayStore>> RocksDbDelayStore::open_db(const RocksDbOptions& options) {
  std::unique_ptr<RocksDbDelayStore> store(new RocksDbDelayStore());
  store->options_ = options;
  std::error_code error;
  std::filesystem::create_directories(options.path, error);
  if (error) return make_error("state dir {}: {}", options.path, error.message());

  // Memory: block cache and memtables bounded separately (memtables charged to the block cache
  // left it no room for blocks once they filled it, and every lookup read its blocks from disk).
  store->cache_ = rocksdb::NewLRUCache(options.block_cache_bytes);
  store->write_buffers_ = std::make_shared<rocksdb::WriteBufferManager>(options.write_buffer_bytes);
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = store->cache_;
  // Most index lookups are for ids not seen before (a new job's dedupe check): a Bloom filter
  // answers those without reading a data block of every level. Filters and indexes stay in
  // memory with their table (about 1.5 B per key) instead of in the cache: read back from disk
  // and checksummed on every lookup, they took most of the dispatcher's CPU at 10M pending.
  table_options.cache_index_and_filter_blocks = false;
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  store->cf_options_.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  store->cf_options_.write_buffer_size = 16U << 20U;
  store->cf_options_.memtable_insert_with_hint_prefix_extractor = std::make_shared<BucketRunPrefix>();
  // A new job's dedupe lookup misses: a whole-key Bloom filter in each memtable (2% of it, about
  // 25 bits per entry) answers that without a search of its skip list.
  store->cf_options_.memtable_prefix_bloom_size_ratio = 0.02;
  store->cf_options_.memtable_whole_key_filtering = true;
  store->cf_options_.compression = rocksdb::kLZ4Compression;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.write_buffer_manager = store->write_buffers_;
  db_options.max_background_jobs = 2;
  db_options.allow_concurrent_memtable_write = false;  // one writer; insert hints need this
  db_options.keep_log_file_num = 3;
  if (options.file_system) {
    store->env_ = rocksdb::NewCompositeEnv(options.file_system);
    db_options.env = store->env_.get();
  }

  if (auto room = check_free_space(options.path); !room) return room.error();

  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db_options, options.path, &names).ok() || names.empty()) {
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, store->cf_options_);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  const auto status = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!status.ok()) return to_error(status, fmt::format("open {}", options.path));
  store->db_.reset(raw);
  for (std::size_t index = 0; index < names.size(); ++index) store->handles_[names[index]] = handles[index];
  return store;
}

RocksDbDelayStore::~RocksDbDelayStore() {
  partitions_.clear();
  if (db_ && write_failed_) {
    // After a failed write (a full disk, an I/O error) RocksDB 7.8 flushes the failed WAL writer
    // again while closing and, built with assertions as Debian's is, aborts. The process is
    // exiting with the write's error: leave the DB unclosed. Every acknowledged batch is in the
    // WAL already (the next open recovers it), and the store is rebuilt from the changelog anyway.
    // Its Env stays too: the DB still refers to it.
    (void)db_.release();
    (void)env_.release();
    return;
  }
  if (db_) {
    for (auto& [name, handle] : handles_) (void)db_->DestroyColumnFamilyHandle(handle);
    (void)db_->Close();
  }
}

Result<PartitionState*> RocksDbDelayStore::open(Partition partition) {
  if (auto found = partitions_.find(partition); found != partitions_.end())
    return static_cast<PartitionState*>(found->second.get());
  const auto name = cf_name(partition);
  auto handle = handles_.find(name);
  if (handle == handles_.end()) {
    rocksdb::ColumnFamilyHandle* created = nullptr;
    const auto status = db_->CreateColumnFamily(cf_options_, name, &created);
    if (!status.ok()) return to_error(status, fmt::format("create column family {}", name));
    handle = handles_.emplace(name, created).first;
  }
  auto state = std::make_unique<ColumnFamilyState>(db_.get(), handle->second, partition, options_.bucket_width, &write_failed_);
  if (auto loaded = state->load_metadata(); !loaded) return loaded.error();
  auto* raw = state.get();
  partitions_[partition] = std::move(state);
  return static_cast<PartitionState*>(raw);
}

void RocksDbDelayStore::close(Partition partition) {
  partitions_.erase(partition);
}

}  // namespace kcron::dispatcher
