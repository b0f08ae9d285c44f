#include "view/view_store.h"

#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>

#include "core/job_view.h"
#include "kcron/tenant.h"

namespace kcron::api {
namespace {

// Key layout (tenant names cannot contain '/', so it ends the tenant):
//   J<tenant>/<id>                          the JobView
//   T<tenant>/<be64 submitted_ms><id>       every job, by submit time
//   S<tenant>/<state byte><be64 ms><id>     by state
//   Q<tenant>/<queue>\0<be64 ms><id>        by queue
//   P<topic>\0<be32 partition>              the next offset to read (be64)
constexpr char kJob = 'J';
constexpr char kByTime = 'T';
constexpr char kByState = 'S';
constexpr char kByQueue = 'Q';
constexpr char kPosition = 'P';

void put_be(std::string& out, std::uint64_t value, int bytes) {
  for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}

std::uint64_t get_be(std::string_view in, int bytes) {
  std::uint64_t value = 0;
  for (int index = 0; index < bytes; ++index) value = (value << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(index)]);
  return value;
}

std::string tenant_prefix(char kind, std::string_view tenant) {
  std::string key(1, kind);
  key += tenant;
  key += '/';
  return key;
}

std::string job_key(std::string_view tenant, std::string_view id) {
  auto key = tenant_prefix(kJob, tenant);
  key += id;
  return key;
}

std::uint64_t order_ms(std::int64_t submitted_ms) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, submitted_ms));
}

// The prefix an index scan covers, given the query's filters.
std::string index_prefix(std::string_view tenant, const ListQuery& query) {
  if (query.state) {
    auto prefix = tenant_prefix(kByState, tenant);
    prefix.push_back(static_cast<char>(*query.state));
    return prefix;
  }
  if (!query.queue.empty()) {
    auto prefix = tenant_prefix(kByQueue, tenant);
    prefix += query.queue;
    prefix.push_back('\0');
    return prefix;
  }
  return tenant_prefix(kByTime, tenant);
}

std::vector<std::string> index_keys(const v1::JobView& view) {
  const auto ms = order_ms(view.submitted_ms());
  std::vector<std::string> keys;
  auto by_time = tenant_prefix(kByTime, view.tenant());
  put_be(by_time, ms, 8);
  by_time += view.id();
  keys.push_back(std::move(by_time));
  auto by_state = tenant_prefix(kByState, view.tenant());
  by_state.push_back(static_cast<char>(view.state()));
  put_be(by_state, ms, 8);
  by_state += view.id();
  keys.push_back(std::move(by_state));
  auto by_queue = tenant_prefix(kByQueue, view.tenant());
  by_queue += view.queue().empty() ? "default" : view.queue();
  by_queue.push_back('\0');
  put_be(by_queue, ms, 8);
  by_queue += view.id();
  keys.push_back(std::move(by_queue));
  return keys;
}

std::string position_key(std::string_view topic, std::int32_t partition) {
  std::string key(1, kPosition);
  key += topic;
  key.push_back('\0');
  put_be(key, static_cast<std::uint32_t>(partition), 4);
  return key;
}

bool matches(const v1::JobView& view, const ListQuery& query) {
  if (query.state && view.state() != *query.state) return false;
  if (!query.queue.empty() && view.queue() != query.queue) return false;
  if (!query.schedule_id.empty() && view.schedule_id() != query.schedule_id) return false;
  if (!query.label_key.empty()) {
    const auto found = view.labels().find(query.label_key);
    if (found == view.labels().end() || found->second != query.label_value) return false;
  }
  return true;
}

}  // namespace

v1::JobView& ViewBatch::job(std::string_view tenant, std::string_view id) {
  const auto name = std::string(tenant_or_default(tenant));
  auto key = job_key(name, id);
  auto found = changed_.find(key);
  if (found != changed_.end()) return found->second.view;
  Changed changed;
  changed.stored = store_.job(name, id);
  if (changed.stored) {
    changed.view = *changed.stored;
  } else {
    changed.view.set_tenant(name);
    changed.view.set_id(std::string(id));
  }
  return changed_.emplace(std::move(key), std::move(changed)).first->second.view;
}

void ViewBatch::advance(const std::string& topic, std::int32_t partition, std::int64_t next_offset) {
  auto& position = positions_[{topic, partition}];
  position = std::max(position, next_offset);
}

Result<std::unique_ptr<ViewStore>> ViewStore::open(const std::string& directory) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kLZ4Compression;
  options.IncreaseParallelism(2);
  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(options, directory, &raw);
  if (!status.ok()) return make_error("cannot open the view in {}: {}", directory, status.ToString());
  return std::unique_ptr<ViewStore>(new ViewStore(std::unique_ptr<rocksdb::DB>(raw)));
}

ViewStore::~ViewStore() {
  if (db_) (void)db_->Close();
}

std::optional<v1::JobView> ViewStore::job(std::string_view tenant, std::string_view id) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), job_key(tenant_or_default(tenant), id), &value).ok()) return std::nullopt;
  v1::JobView view;
  if (!view.ParseFromString(value)) return std::nullopt;
  return view;
}

ViewPage ViewStore::list(std::string_view tenant, const ListQuery& query) const {
  ViewPage page;
  const auto name = std::string(tenant_or_default(tenant));
  const auto prefix = index_prefix(name, query);
  rocksdb::ReadOptions options;
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  options.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> iterator(db_->NewIterator(options));
  // Newest first: start below the page key (exclusive) or below the `until` bound, else at the end.
  std::string start = prefix;
  bool exclusive = false;
  if (query.after) {
    put_be(start, order_ms(query.after->submitted_ms), 8);
    start += query.after->id;
    exclusive = true;
  } else if (query.until_ms > 0) {
    put_be(start, order_ms(query.until_ms), 8);
    exclusive = true;
  } else {
    start.push_back('\xff');
  }
  iterator->SeekForPrev(start);
  if (exclusive && iterator->Valid() && iterator->key().ToStringView() == start) iterator->Prev();
  const std::size_t budget = 20 * query.page_size + 1000;
  std::size_t examined = 0;
  std::optional<PageKey> last;
  for (; iterator->Valid() && iterator->key().starts_with(prefix); iterator->Prev()) {
    const auto rest = iterator->key().ToStringView().substr(prefix.size());
    if (rest.size() < 8) continue;
    const auto ms = static_cast<std::int64_t>(get_be(rest, 8));
    if (ms < query.since_ms) break;
    PageKey key{ms, std::string(rest.substr(8))};
    if (page.jobs.size() == query.page_size) {
      page.next = std::move(last);  // a further match may follow: the next page starts after the last returned
      break;
    }
    if (++examined > budget) {
      page.next = std::move(last);
      if (!page.next) page.next = std::move(key);
      break;
    }
    std::string value;
    if (!db_->Get(options, job_key(name, key.id), &value).ok()) continue;
    v1::JobView view;
    if (!view.ParseFromString(value) || !matches(view, query)) {
      last = std::move(key);
      continue;
    }
    page.jobs.push_back(std::move(view));
    last = std::move(key);
  }
  db_->ReleaseSnapshot(snapshot);
  return page;
}

Positions ViewStore::positions() const {
  Positions positions;
  std::unique_ptr<rocksdb::Iterator> iterator(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, kPosition);
  for (iterator->Seek(prefix); iterator->Valid() && iterator->key().starts_with(prefix); iterator->Next()) {
    const auto key = iterator->key().ToStringView().substr(1);
    const auto zero = key.find('\0');
    if (zero == std::string_view::npos || key.size() != zero + 5 || iterator->value().size() != 8) continue;
    positions[{std::string(key.substr(0, zero)), static_cast<std::int32_t>(get_be(key.substr(zero + 1), 4))}] =
        static_cast<std::int64_t>(get_be(iterator->value().ToStringView(), 8));
  }
  return positions;
}

Status ViewStore::commit(ViewBatch& batch) {
  rocksdb::WriteBatch write;
  for (auto& [key, changed] : batch.changed_) {
    if (changed.stored) {
      for (const auto& index : index_keys(*changed.stored)) (void)write.Delete(index);
    }
    for (const auto& index : index_keys(changed.view)) (void)write.Put(index, rocksdb::Slice());
    (void)write.Put(key, changed.view.SerializeAsString());
  }
  for (const auto& [where, offset] : batch.positions_) {
    std::string value;
    put_be(value, static_cast<std::uint64_t>(offset), 8);
    (void)write.Put(position_key(where.first, where.second), value);
  }
  auto status = db_->Write(rocksdb::WriteOptions(), &write);
  if (!status.ok()) return make_error("cannot write the view: {}", status.ToString());
  batch.changed_.clear();
  batch.positions_.clear();
  return Status::success();
}

std::uint64_t ViewStore::approximate_jobs() const {
  std::uint64_t keys = 0;
  db_->GetIntProperty("rocksdb.estimate-num-keys", &keys);
  return keys / 4;  // a view and three index entries per job
}

}  // namespace kcron::api
