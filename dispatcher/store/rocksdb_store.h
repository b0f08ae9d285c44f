// RocksDB-backed DelayStore: one DB per process, one column family per jobs partition, a shared
// block cache and WriteBufferManager so memory stays bounded whatever the number of pending jobs.
// Staged writes live in memory per partition (reads see them): index entries in a hash map (each
// key's last value), bucket keys in a WriteBatchWithIndex the due scan iterates; commit() writes
// both and the checkpoint in one atomic batch. Every rocksdb::Status becomes an Error here, naming the
// partition, the key and the cause. Single-threaded: the dispatcher loop owns it.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <rocksdb/write_buffer_manager.h>

#include <map>
#include <memory>
#include <string>

#include "core/delay_store.h"
#include "kcron/clock.h"

namespace kcron::dispatcher {

struct RocksDbOptions {
  std::string path;
  std::size_t block_cache_bytes = 64U << 20U;
  std::size_t write_buffer_bytes = 64U << 20U;
  Millis bucket_width{1000};
  // The file system RocksDB works through; null: the default one. Tests inject faults with it.
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

class RocksDbDelayStore final : public DelayStore {
 public:
  static Result<std::unique_ptr<RocksDbDelayStore>> open_db(const RocksDbOptions& options);
  ~RocksDbDelayStore() override;
  RocksDbDelayStore(const RocksDbDelayStore&) = delete;
  RocksDbDelayStore& operator=(const RocksDbDelayStore&) = delete;

  Result<PartitionState*> open(Partition partition) override;
  void close(Partition partition) override;

  class ColumnFamilyState;

 private:
  RocksDbDelayStore() = default;

  RocksDbOptions options_;
  std::unique_ptr<rocksdb::Env> env_;  // over options_.file_system; outlives db_
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers_;
  rocksdb::ColumnFamilyOptions cf_options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> handles_;  // by column family name
  std::map<Partition, std::unique_ptr<ColumnFamilyState>> partitions_;
  bool write_failed_ = false;  // a write failed: the DB is left unclosed at destruction
};

}  // namespace kcron::dispatcher
