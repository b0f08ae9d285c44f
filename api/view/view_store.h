// kcron-api's read view: every job of every tenant as a v1::JobView in RocksDB, with per-tenant
// indexes by submit time, state and queue, and the topic positions the view covers, written in one
// WriteBatch with the views they produced, so a restart (even after SIGKILL) resumes exactly where
// the view is. One writer thread (the follower); any number of reader threads.
#pragma once

#include <rocksdb/db.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/requests.h"
#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron::api {

// (topic, partition) -> the next offset to read.
using Positions = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;

class ViewStore;

// Changes gathered from one batch of records, written together by ViewStore::commit.
class ViewBatch {
 public:
  explicit ViewBatch(const ViewStore& store) : store_(store) {}
  // The view of (tenant, id) to fold into: from this batch, else the store, else a new one.
  v1::JobView& job(std::string_view tenant, std::string_view id);
  void advance(const std::string& topic, std::int32_t partition, std::int64_t next_offset);
  std::size_t jobs() const { return changed_.size(); }
  const Positions& positions() const { return positions_; }

 private:
  friend class ViewStore;
  struct Changed {
    v1::JobView view;
    std::optional<v1::JobView> stored;  // what the store held before: its index entries go
  };
  const ViewStore& store_;
  std::map<std::string, Changed> changed_;  // by view key
  Positions positions_;
};

struct ViewPage {
  std::vector<v1::JobView> jobs;
  std::optional<PageKey> next;  // where the next page starts; empty: this was the last
};

class ViewStore {
 public:
  static Result<std::unique_ptr<ViewStore>> open(const std::string& directory);
  ~ViewStore();
  ViewStore(const ViewStore&) = delete;
  ViewStore& operator=(const ViewStore&) = delete;

  std::optional<v1::JobView> job(std::string_view tenant, std::string_view id) const;
  // A tenant's jobs matching `query`, newest submitted first. Examines a bounded number of index
  // entries: a page may come back short with a `next` to go on from.
  ViewPage list(std::string_view tenant, const ListQuery& query) const;
  Positions positions() const;
  Status commit(ViewBatch& batch);
  // Jobs in the view (an estimate from RocksDB).
  std::uint64_t approximate_jobs() const;

 private:
  explicit ViewStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace kcron::api
