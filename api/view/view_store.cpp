#include "view/view_store.h"

#include <fmt/format.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <random>

#include "core/flow_view.h"
#include "core/job_view.h"
#include "kcron/flow_graph.h"
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
constexpr char kSchedule = 'H';
constexpr char kDeadLetter = 'D';
constexpr char kLatestDeadLetter = 'd';
constexpr char kWorker = 'W';
constexpr char kCount = 'N';
constexpr char kEvent = 'E';
constexpr char kAudit = 'A';
constexpr char kTenant = 'R';      // R<tenant>: the tenant's settings from kcron.tenants
constexpr char kByLabel = 'L';     // L<tenant>/<key>\0<value>\0<be64 submitted_ms><id>: one per label
constexpr char kBySchedule = 'C';  // C<tenant>/<schedule id>\0<be64 submitted_ms><id>: a schedule's runs
constexpr char kFinished = 'F';    // F<be64 updated_ms><tenant>/<id>: finished jobs, oldest first, for the sweep
// Flows (docs/flows.md; a node's job is its own J entry, "<flow id>/<node>"):
constexpr char kFlow = 'G';        // G<tenant>/<flow id>: the FlowView (no node bodies)
constexpr char kFlowNode = 'g';    // g<tenant>/<flow id>\0<node name>: a FlowViewNode
constexpr char kFlowCount = 'K';   // K<tenant>/<flow id>\0s<state byte>: nodes by state; \0f: nodes forgotten
constexpr char kFlowByTime = 'O';  // O<tenant>/<be64 submitted_ms><flow id>: a tenant's flows by submit time
const std::string kLastEventKey = "Mevents";
const std::string kViewIdKey = "Mview";
// The index layout's version: a view written by an older kcron-api gets the missing indexes
// built when it is opened (2: by label and by schedule).
const std::string kIndexVersionKey = "Mindexes";
constexpr std::uint64_t kIndexVersion = 2;
constexpr char kEventTime = 'e';  // e<be64 second in ms>: the first event sequence committed in that second
constexpr std::int64_t kEventTimeKept = 30LL * 24 * 3600 * 1000;

// Deleted index entries cost every scan that passes them until compaction drops them, and a
// tombstone in the memtable lasts until the memtable is flushed, which an idle view may never do.
// After a burst whose jobs moved in the indexes (a state entry per transition; a submit time
// corrected when the submit record was read after the job's status) a list scanned every one of
// them: 1M jobs, 80 ms a page. So once kCompactAfterDeletes index entries were deleted, the span
// of keys they cover in each index is compacted in the background (the memtable flushed first),
// which drops them; and SST files dense in deletes are compacted by RocksDB itself (the
// compact-on-deletion collector: kDeletionTrigger deletes within kDeletionWindow entries).
constexpr std::uint64_t kCompactAfterDeletes = 100'000;
constexpr std::chrono::seconds kCompactWhenQuiet{10};  // and at least a tenth of kCompactAfterDeletes
constexpr std::size_t kDeletionWindow = 32'768;
constexpr std::size_t kDeletionTrigger = 8'192;

void put_be(std::string& out, std::uint64_t value, int bytes) {
  for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}

std::uint64_t get_be(std::string_view in, int bytes) {
  std::uint64_t value = 0;
  for (int index = 0; index < bytes; ++index)
    value = (value << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(index)]);
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

std::string flow_key(std::string_view tenant, std::string_view id) {
  auto key = tenant_prefix(kFlow, tenant);
  key += id;
  return key;
}

// Flow ids hold no control character: '\0' ends one.
std::string flow_node_prefix(std::string_view tenant, std::string_view id) {
  auto key = tenant_prefix(kFlowNode, tenant);
  key += id;
  key.push_back('\0');
  return key;
}

std::string flow_count_prefix(std::string_view tenant, std::string_view id) {
  auto key = tenant_prefix(kFlowCount, tenant);
  key += id;
  key.push_back('\0');
  return key;
}

std::string flow_state_count_key(std::string_view tenant, std::string_view id, v1::JobState state) {
  auto key = flow_count_prefix(tenant, id);
  key.push_back('s');
  key.push_back(static_cast<char>(state));
  return key;
}

std::string flow_forgotten_key(std::string_view tenant, std::string_view id) {
  auto key = flow_count_prefix(tenant, id);
  key.push_back('f');
  return key;
}

std::string flow_time_key(std::string_view tenant, std::int64_t submitted_ms, std::string_view id) {
  auto key = tenant_prefix(kFlowByTime, tenant);
  put_be(key, order_ms(submitted_ms), 8);
  key += id;
  return key;
}

// The prefix an index scan covers, given the query's filters.
std::string index_prefix(std::string_view tenant, const ListQuery& query) {
  // The narrowest index the filters allow; matches() checks the others on each job.
  if (!query.schedule_id.empty()) {
    auto prefix = tenant_prefix(kBySchedule, tenant);
    prefix += query.schedule_id;
    prefix.push_back('\0');
    return prefix;
  }
  if (!query.label_key.empty()) {
    auto prefix = tenant_prefix(kByLabel, tenant);
    prefix += query.label_key;
    prefix.push_back('\0');
    prefix += query.label_value;
    prefix.push_back('\0');
    return prefix;
  }
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
  for (const auto& [label, value] : view.labels()) {
    auto by_label = tenant_prefix(kByLabel, view.tenant());
    by_label += label;
    by_label.push_back('\0');
    by_label += value;
    by_label.push_back('\0');
    put_be(by_label, ms, 8);
    by_label += view.id();
    keys.push_back(std::move(by_label));
  }
  if (!view.schedule_id().empty()) {
    auto by_schedule = tenant_prefix(kBySchedule, view.tenant());
    by_schedule += view.schedule_id();
    by_schedule.push_back('\0');
    put_be(by_schedule, ms, 8);
    by_schedule += view.id();
    keys.push_back(std::move(by_schedule));
  }
  if (is_terminal(view.state())) {
    std::string finished(1, kFinished);
    put_be(finished, order_ms(view.updated_ms()), 8);
    finished += view.tenant();
    finished += '/';
    finished += view.id();
    keys.push_back(std::move(finished));
  }
  return keys;
}

std::string position_key(std::string_view topic, std::int32_t partition) {
  std::string key(1, kPosition);
  key += topic;
  key.push_back('\0');
  put_be(key, static_cast<std::uint32_t>(partition), 4);
  return key;
}

std::string count_key(std::string_view tenant, char kind, std::string_view what) {
  auto key = tenant_prefix(kCount, tenant);
  key.push_back(kind);
  key += what;
  return key;
}

std::string event_key(std::uint64_t sequence) {
  std::string key(1, kEvent);
  put_be(key, sequence, 8);
  return key;
}

std::string encode_event(const JobEvent& event) {
  v1::JobTransition transition;
  transition.set_state(event.state);
  transition.set_attempt(event.attempt);
  transition.set_at_ms(event.at_ms);
  transition.set_reason(event.reason);
  std::string value = event.tenant;
  value.push_back('\0');
  value += event.id;
  value.push_back('\0');
  // Then a zero byte and the commit time: no protobuf encoding starts with a zero byte (field 0
  // does not exist), so events written before it had the time still decode.
  value.push_back('\0');
  put_be(value, static_cast<std::uint64_t>(std::max<std::int64_t>(0, event.committed_ms)), 8);
  value += transition.SerializeAsString();
  return value;
}

std::optional<JobEvent> decode_event(std::uint64_t sequence, std::string_view value) {
  const auto first = value.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = value.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  auto rest = value.substr(second + 1);
  std::int64_t committed_ms = 0;
  if (!rest.empty() && rest.front() == '\0') {
    if (rest.size() < 9) return std::nullopt;
    committed_ms = static_cast<std::int64_t>(get_be(rest.substr(1), 8));
    rest.remove_prefix(9);
  }
  v1::JobTransition transition;
  if (!transition.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) return std::nullopt;
  return JobEvent{sequence,
                  committed_ms,
                  std::string(value.substr(0, first)),
                  std::string(value.substr(first + 1, second - first - 1)),
                  transition.state(),
                  transition.attempt(),
                  transition.at_ms(),
                  transition.reason()};
}

std::string encode_dead_letter(const DeadLetterEntry& entry) {
  std::string value;
  put_be(value, entry.id.size(), 2);
  value += entry.id;
  put_be(value, entry.source.size(), 2);
  value += entry.source;
  value += entry.letter.SerializeAsString();
  return value;
}

std::optional<DeadLetterEntry> decode_dead_letter(std::string_view value) {
  DeadLetterEntry entry;
  if (value.size() < 2) return std::nullopt;
  const auto id_size = get_be(value, 2);
  if (value.size() < 2 + id_size + 2) return std::nullopt;
  entry.id = std::string(value.substr(2, id_size));
  value.remove_prefix(2 + id_size);
  const auto source_size = get_be(value, 2);
  if (value.size() < 2 + source_size) return std::nullopt;
  entry.source = std::string(value.substr(2, source_size));
  value.remove_prefix(2 + source_size);
  if (!entry.letter.ParseFromArray(value.data(), static_cast<int>(value.size()))) return std::nullopt;
  return entry;
}

// The first key after every key that starts with `prefix` ("" when there is none).
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = prefix.back();
    if (static_cast<unsigned char>(last) != 0xff) {
      last = static_cast<char>(static_cast<unsigned char>(last) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

// An iterator over the keys that start with a prefix, bounded in RocksDB itself: a scan that
// reaches an end of the range stops there instead of stepping over every deleted key beyond it
// (the index of a state most jobs have left, the finished jobs the sweep removed, a neighbouring
// tenant's moved entries: millions of tombstones after a burst, until compaction drops them).
class PrefixIterator {
 public:
  PrefixIterator(rocksdb::DB& db, std::string prefix, const rocksdb::Snapshot* snapshot = nullptr)
      : lower_(std::move(prefix)), upper_(prefix_end(lower_)), lower_slice_(lower_), upper_slice_(upper_) {
    rocksdb::ReadOptions options;
    options.snapshot = snapshot;
    options.iterate_lower_bound = &lower_slice_;
    if (!upper_.empty()) options.iterate_upper_bound = &upper_slice_;
    iterator_.reset(db.NewIterator(options));
  }
  rocksdb::Iterator* operator->() const { return iterator_.get(); }

 private:
  std::string lower_;
  std::string upper_;
  rocksdb::Slice lower_slice_;
  rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> iterator_;
};

enum class Order { kKeyOrder, kNewestFirst };

// One page of the entries under `prefix`, after the key `after` (the rest past the prefix; empty:
// from the start), in key order or newest (greatest key) first. decode(rest, value) gives the item
// or nothing to skip the entry. At most `examine` entries are read (0: no bound), so a filter that
// matches little cannot make one request scan a whole tenant. page.next is the last entry read,
// empty once the prefix is exhausted.
template <typename T, typename Decode>
ListPage<T> page_under(rocksdb::DB& db, const std::string& prefix, std::string_view after, std::size_t limit, Order order,
                       Decode&& decode, std::size_t examine = 0) {
  ListPage<T> page;
  const PrefixIterator iterator(db, prefix);
  const bool forward = order == Order::kKeyOrder;
  const std::string start = after.empty() && !forward ? prefix + '\xff' : prefix + std::string(after);
  if (forward) {
    iterator->Seek(start);
  } else {
    iterator->SeekForPrev(start);
  }
  const auto step = [&] { forward ? iterator->Next() : iterator->Prev(); };
  if (!after.empty() && iterator->Valid() && iterator->key().ToStringView() == start) step();
  std::size_t examined = 0;
  for (; iterator->Valid() && iterator->key().starts_with(prefix); step()) {
    if (page.items.size() == limit || (examine > 0 && examined++ == examine)) break;
    const auto rest = iterator->key().ToStringView().substr(prefix.size());
    page.next = std::string(rest);
    if (std::optional<T> item = decode(rest, iterator->value().ToStringView())) page.items.push_back(std::move(*item));
  }
  if (!iterator->Valid() || !iterator->key().starts_with(prefix)) page.next.clear();
  return page;
}

template <typename Message>
std::optional<Message> parse_value(std::string_view value) {
  Message message;
  if (!message.ParseFromArray(value.data(), static_cast<int>(value.size()))) return std::nullopt;
  return message;
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

std::optional<v1::JobView> ViewBatch::peek_job(std::string_view tenant, std::string_view id) const {
  const auto name = std::string(tenant_or_default(tenant));
  const auto found = changed_.find(job_key(name, id));
  if (found != changed_.end()) return found->second.forget ? std::nullopt : std::optional(found->second.view);
  return store_.job(name, id);
}

void ViewBatch::forget_job(std::string_view tenant, std::string_view id) {
  job(tenant, id);
  changed_.find(job_key(tenant_or_default(tenant), id))->second.forget = true;
}

void ViewBatch::schedule(std::string_view tenant, std::string_view id, std::optional<v1::Schedule> schedule) {
  auto key = tenant_prefix(kSchedule, tenant_or_default(tenant));
  key += id;
  raw_[std::move(key)] = schedule ? std::optional<std::string>(schedule->SerializeAsString()) : std::nullopt;
}

void ViewBatch::tenant_settings(std::string_view tenant, std::optional<v1::TenantSettings> settings) {
  auto key = std::string(1, kTenant) + std::string(tenant_or_default(tenant));
  raw_[std::move(key)] = settings ? std::optional<std::string>(settings->SerializeAsString()) : std::nullopt;
}

void ViewBatch::dead_letter(std::string_view tenant, const DeadLetterEntry& entry) {
  const auto name = tenant_or_default(tenant);
  auto key = tenant_prefix(kDeadLetter, name);
  put_be(key, order_ms(entry.letter.at_ms()), 8);
  key += entry.source;
  if (!entry.id.empty()) {
    auto latest = tenant_prefix(kLatestDeadLetter, name);
    latest += entry.id;
    raw_[std::move(latest)] = key;
  }
  raw_[std::move(key)] = encode_dead_letter(entry);
}

void ViewBatch::worker(const v1::WorkerHeartbeat& heartbeat) {
  raw_[std::string(1, kWorker) + heartbeat.worker_id()] = heartbeat.SerializeAsString();
}

void ViewBatch::audit(std::string_view tenant, const std::string& source, const v1::AuditRecord& record) {
  auto key = tenant_prefix(kAudit, tenant_or_default(tenant));
  put_be(key, order_ms(record.at_ms()), 8);
  key += source;
  raw_[std::move(key)] = record.SerializeAsString();
}

void ViewBatch::advance(const std::string& topic, std::int32_t partition, std::int64_t next_offset) {
  auto& position = positions_[{topic, partition}];
  position = std::max(position, next_offset);
}

void ViewBatch::flow(const v1::Flow& flow, std::int64_t record_ms, std::string_view source) {
  const auto name = std::string(tenant_or_default(flow.tenant()));
  if (flow.id().empty() || !flow::validate_flow_id(flow.id()) || peek_flow(name, flow.id())) return;
  // A flow the dispatcher refuses for its graph (a cycle, a missing parent, a name twice, over the
  // limits of nodes and edges) leaves nothing: its dead letter says why, and no node would run.
  std::vector<flow::NodeShape> shapes;
  shapes.reserve(static_cast<std::size_t>(flow.nodes_size()));
  for (const auto& node : flow.nodes()) shapes.push_back({node.name(), {node.depends_on().begin(), node.depends_on().end()}});
  if (!flow::check_graph(flow.id(), shapes)) return;
  const auto header = flow_header(flow, name, record_ms, source);
  raw_[flow_key(name, flow.id())] = header.SerializeAsString();
  raw_[flow_time_key(name, record_ms, flow.id())] = std::string();
  const auto prefix = flow_node_prefix(name, flow.id());
  for (const auto& node : flow.nodes()) {
    raw_[prefix + node.name()] = flow_node_entry(node).SerializeAsString();
    const auto job_id = flow::node_job_id(flow.id(), node.name());
    fold_definition(job(name, job_id), flow_node_job(flow, node, name), record_ms, source, false);
  }
  // The dispatcher's refusal of this record may have been read first (the view reads its topics
  // in no order between them).
  if (auto letter = peek_dead_letter(name, flow.id()); letter && letter->letter.state() == v1::REJECTED) {
    flow_rejected(name, flow.id(), letter->letter);
  }
}

std::optional<DeadLetterEntry> ViewBatch::peek_dead_letter(std::string_view tenant, std::string_view id) const {
  auto latest = tenant_prefix(kLatestDeadLetter, tenant_or_default(tenant));
  latest += id;
  if (const auto found = raw_.find(latest); found != raw_.end() && found->second) {
    if (const auto letter = raw_.find(*found->second); letter != raw_.end() && letter->second) {
      return decode_dead_letter(*letter->second);
    }
  }
  return store_.dead_letter(tenant, id);
}

std::optional<v1::FlowView> ViewBatch::peek_flow(std::string_view tenant, std::string_view id) const {
  const auto key = flow_key(tenant_or_default(tenant), id);
  const auto found = raw_.find(key);
  if (found == raw_.end()) return store_.flow(tenant, id);
  v1::FlowView view;
  if (!found->second || !view.ParseFromString(*found->second)) return std::nullopt;
  return view;
}

void ViewBatch::flow_cancel_requested(std::string_view tenant, std::string_view id, bool requested) {
  auto flow = peek_flow(tenant, id);
  if (!flow || flow->cancel_requested() == requested) return;
  flow->set_cancel_requested(requested);
  raw_[flow_key(tenant_or_default(tenant), id)] = flow->SerializeAsString();
}

void ViewBatch::flow_rejected(std::string_view tenant, std::string_view id, const v1::DeadLetter& letter) {
  const auto name = std::string(tenant_or_default(tenant));
  auto flow = peek_flow(name, id);
  if (!flow || !flow->rejected_reason().empty()) return;
  // The letter must be the refusal of this flow's own record (its source is the record's position).
  if (!flow->source().empty() &&
      fmt::format("{}/{}@{}", letter.source_topic(), letter.source_partition(), letter.source_offset()) != flow->source()) {
    return;
  }
  // Its nodes' names: from this batch (the flow read in it) and from the store.
  std::vector<std::string> names;
  const auto prefix = flow_node_prefix(name, id);
  for (auto at = raw_.lower_bound(prefix); at != raw_.end() && at->first.starts_with(prefix); ++at)
    names.push_back(at->first.substr(prefix.size()));
  std::string after;
  while (true) {
    auto page = store_.flow_nodes(name, id, after, 1000);
    for (auto& node : page.items) names.push_back(node.name());
    if (page.next.empty()) break;
    after = std::move(page.next);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  // A flow some node of which the dispatcher decided was accepted: the letter is another record's.
  for (const auto& node : names) {
    const auto known = peek_job(name, flow::node_job_id(id, node));
    if (known && (known->state() != v1::JOB_STATE_UNSPECIFIED || known->sequence() > 0)) return;
  }
  flow->set_rejected_reason(letter.reason().empty() ? std::string("rejected") : letter.reason());
  raw_[flow_key(name, id)] = flow->SerializeAsString();
  for (const auto& node : names) {
    const auto job_id = flow::node_job_id(id, node);
    v1::StatusRecord status;
    status.set_job_id(job_id);
    status.set_tenant(std::string(tenant_field(name)));
    status.set_state(v1::REJECTED);
    status.set_sequence(1);
    status.set_at_ms(letter.at_ms());
    status.set_reason(flow->rejected_reason());
    status.set_component(letter.component());
    fold_status(job(name, job_id), status);
  }
}

Result<std::unique_ptr<ViewStore>> ViewStore::open(const std::string& directory) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kLZ4Compression;
  options.IncreaseParallelism(2);
  options.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(kDeletionWindow, kDeletionTrigger));
  std::error_code made;
  std::filesystem::create_directories(directory, made);  // RocksDB makes the last level only
  if (made) return make_error("cannot create the view's directory {}: {}", directory, made.message());
  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(options, directory, &raw);
  if (!status.ok()) return make_error("cannot open the view in {}: {}", directory, status.ToString());
  std::unique_ptr<ViewStore> store(new ViewStore(std::unique_ptr<rocksdb::DB>(raw)));
  if (auto last = store->get(kLastEventKey); last && last->size() == 8) store->last_event_ = get_be(*last, 8);
  store->now_ms_ = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  if (auto id = store->get(kViewIdKey); id && !id->empty()) {
    store->view_id_ = *id;
  } else {
    std::random_device random;
    store->view_id_ = fmt::format("{:08x}{:08x}", random(), random());
    if (auto put = store->db_->Put(rocksdb::WriteOptions(), kViewIdKey, store->view_id_); !put.ok())
      return make_error("cannot write the view in {}: {}", directory, put.ToString());
  }
  if (auto built = store->build_indexes(); !built) return built.error();
  const PrefixIterator last_index(*store->db_, std::string(1, kEventTime));
  last_index->SeekForPrev(std::string(1, kEventTime) + std::string(8, '\xff'));
  if (last_index->Valid() && last_index->key().starts_with(std::string_view(&kEventTime, 1)) && last_index->key().size() == 9) {
    store->indexed_second_ = static_cast<std::int64_t>(get_be(last_index->key().ToStringView().substr(1), 8));
  }
  return store;
}

Status ViewStore::build_indexes() {
  auto version = get(kIndexVersionKey);
  if (version && version->size() == 8 && get_be(*version, 8) >= kIndexVersion) return Status::success();
  // Every job's index entries (Put is idempotent: those that exist are written again), in batches.
  std::size_t jobs = 0;
  const std::string prefix(1, kJob);
  const PrefixIterator iterator(*db_, prefix);
  rocksdb::WriteBatch write;
  for (iterator->Seek(prefix); iterator->Valid() && iterator->key().starts_with(prefix); iterator->Next()) {
    v1::JobView view;
    if (!view.ParseFromArray(iterator->value().data(), static_cast<int>(iterator->value().size()))) continue;
    for (const auto& index : index_keys(view)) (void)write.Put(index, rocksdb::Slice());
    if (++jobs % 10000 == 0) {
      if (auto status = db_->Write(rocksdb::WriteOptions(), &write); !status.ok())
        return make_error("cannot build the view's indexes: {}", status.ToString());
      write.Clear();
    }
  }
  std::string value;
  put_be(value, kIndexVersion, 8);
  (void)write.Put(kIndexVersionKey, value);
  if (auto status = db_->Write(rocksdb::WriteOptions(), &write); !status.ok())
    return make_error("cannot build the view's indexes: {}", status.ToString());
  return Status::success();
}

ViewStore::ViewStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)), compact_after_deletes_(kCompactAfterDeletes) {}

ViewStore::~ViewStore() {
  if (compactor_.joinable()) {
    {
      std::lock_guard lock(compact_mutex_);
      compact_stop_ = true;
    }
    compact_wake_.notify_all();
    db_->DisableManualCompaction();  // a compaction under way gives up
    compactor_.join();
  }
  if (db_) (void)db_->Close();
}

void ViewStore::note_deleted(const std::string& key, std::size_t id_size) {
  // The index a key belongs to: its kind, and for the state index the tenant and state, whose
  // entries move at every transition (the other indexes keep a job where it is unless its submit
  // time, queue, labels or schedule change). The finished index ('F') is one span.
  std::string group(1, key.front());
  if (key.front() == kByState && key.size() >= id_size + 8) group = key.substr(0, key.size() - id_size - 8);
  auto [span, added] = deleted_spans_.try_emplace(group, key, key);
  if (!added) {
    if (key < span->second.first) span->second.first = key;
    if (key > span->second.second) span->second.second = key;
  }
  ++deletes_pending_;
}

void ViewStore::hand_off_compaction() {
  {
    std::lock_guard lock(compact_mutex_);
    for (auto& [group, span] : deleted_spans_) compact_queue_.push_back(std::move(span));
    compact_running_ = true;
  }
  deleted_spans_.clear();
  deletes_pending_ = 0;
  quiet_deletes_ = 0;
  if (!compactor_.joinable()) {
    compactor_ = std::thread([this] {
      std::unique_lock lock(compact_mutex_);
      while (true) {
        compact_wake_.wait(lock, [this] { return compact_stop_ || !compact_queue_.empty(); });
        if (compact_stop_) return;
        auto spans = std::move(compact_queue_);
        compact_queue_.clear();
        lock.unlock();
        for (const auto& [first, last] : spans) {
          const rocksdb::Slice begin(first);
          const rocksdb::Slice end(last);  // inclusive
          rocksdb::CompactRangeOptions options;
          options.exclusive_manual_compaction = false;  // RocksDB's own compactions go on
          // Rewrite the bottom level too: by default a lone file is only moved down a level, its
          // tombstones with it, and the bottom level is skipped without a compaction filter.
          options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
          (void)db_->CompactRange(options, &begin, &end);
        }
        ++compactions_;
        lock.lock();
        compact_running_ = !compact_queue_.empty();
      }
    });
  }
  compact_wake_.notify_all();
}

void ViewStore::maintain(std::chrono::steady_clock::time_point now) {
  if (deletes_pending_ == 0) return;
  if (deletes_pending_ != quiet_deletes_) {
    quiet_deletes_ = deletes_pending_;
    quiet_since_ = now;
  } else if (now - quiet_since_ >= kCompactWhenQuiet && deletes_pending_ >= compact_after_deletes_ / 10) {
    // A few deletes are left to RocksDB: a hand-off flushes the memtable and rewrites every file
    // the spans overlap, not worth it for a handful.
    hand_off_compaction();
  }
}

bool ViewStore::compacting() const {
  std::lock_guard lock(compact_mutex_);
  return compact_running_;
}

std::string ViewStore::property(const std::string& name) const {
  std::string value;
  return db_->GetProperty(name, &value) ? value : std::string();
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
  const PrefixIterator iterator(*db_, prefix, snapshot);
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
  const std::string prefix(1, kPosition);
  const PrefixIterator iterator(*db_, prefix);
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
  std::map<std::string, std::int64_t> count_deltas;
  // A node view counts in its flow's counts while the view holds the flow: its stored side was
  // counted if the store held the flow before this batch, its new side is if the flow is held after.
  std::map<std::string, bool> held_before;
  const auto flow_held_before = [&](const std::string& tenant, const std::string& id) {
    const auto key = flow_key(tenant_or_default(tenant), id);
    auto found = held_before.find(key);
    if (found == held_before.end()) found = held_before.emplace(key, get(key).has_value()).first;
    return found->second;
  };
  const auto flow_held_after = [&](const std::string& tenant, const std::string& id) {
    const auto key = flow_key(tenant_or_default(tenant), id);
    if (const auto in_batch = batch.raw_.find(key); in_batch != batch.raw_.end()) return in_batch->second.has_value();
    return flow_held_before(tenant, id);
  };
  std::vector<JobEvent> events;
  for (auto& [key, changed] : batch.changed_) {
    const auto& view = changed.view;
    if (changed.forget) {
      (void)write.Delete(key);
      if (changed.stored) {
        const auto& stored = *changed.stored;
        for (const auto& index : index_keys(stored)) {
          (void)write.Delete(index);
          note_deleted(index, stored.id().size());
        }
        count_deltas[count_key(stored.tenant(), 't', "")] -= 1;
        count_deltas[count_key(stored.tenant(), 's', std::string(1, static_cast<char>(stored.state())))] -= 1;
        count_deltas[count_key(stored.tenant(), 'q', stored.queue())] -= 1;
        // Its flow keeps its last state in the counts; once every node was forgotten, the flow goes.
        if (auto flow = counted_flow(stored); flow && flow_held_before(stored.tenant(), *flow)) {
          count_deltas[flow_forgotten_key(stored.tenant(), *flow)] += 1;
        }
      }
      continue;
    }
    // Only the index entries that moved: most transitions change the state's entry alone, and an
    // entry deleted and written again leaves versions every newest-first scan steps over until
    // compaction drops them (a list by queue after a burst paid for each job's every transition).
    // Sorted and unique: two labels can make one key ("a\0b"="c" and "a"="b\0c"), and a
    // multiset difference would delete an entry still needed.
    const auto sorted_unique = [](std::vector<std::string> keys) {
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      return keys;
    };
    auto fresh = sorted_unique(index_keys(view));
    if (changed.stored) {
      const auto before = sorted_unique(index_keys(*changed.stored));
      std::vector<std::string> gone;
      std::set_difference(before.begin(), before.end(), fresh.begin(), fresh.end(), std::back_inserter(gone));
      for (const auto& index : gone) {
        (void)write.Delete(index);
        note_deleted(index, view.id().size());
      }
      std::vector<std::string> added;
      std::set_difference(fresh.begin(), fresh.end(), before.begin(), before.end(), std::back_inserter(added));
      fresh = std::move(added);
    }
    for (const auto& index : fresh) (void)write.Put(index, rocksdb::Slice());
    (void)write.Put(key, view.SerializeAsString());
    const std::string state(1, static_cast<char>(view.state()));
    const auto& queue = view.queue();
    if (!changed.stored) {
      count_deltas[count_key(view.tenant(), 't', "")] += 1;
    } else {
      count_deltas[count_key(view.tenant(), 's', std::string(1, static_cast<char>(changed.stored->state())))] -= 1;
      count_deltas[count_key(view.tenant(), 'q', changed.stored->queue())] -= 1;
    }
    count_deltas[count_key(view.tenant(), 's', state)] += 1;
    count_deltas[count_key(view.tenant(), 'q', queue)] += 1;
    // Its flow's counts by state (a node counts once its definition, with the flow ref, was read).
    if (changed.stored) {
      if (auto flow = counted_flow(*changed.stored); flow && flow_held_before(view.tenant(), *flow))
        count_deltas[flow_state_count_key(view.tenant(), *flow, changed.stored->state())] -= 1;
    }
    if (auto flow = counted_flow(view); flow && flow_held_after(view.tenant(), *flow)) {
      count_deltas[flow_state_count_key(view.tenant(), *flow, view.state())] += 1;
    }
    if (!changed.stored || changed.stored->state() != view.state() || changed.stored->attempt() != view.attempt()) {
      JobEvent event{0, 0, view.tenant(), view.id(), view.state(), view.attempt(), view.updated_ms(), view.reason()};
      if (view.history_size() > 0) event.at_ms = view.history(view.history_size() - 1).at_ms();
      events.push_back(std::move(event));
    }
  }
  apply_counts(write, count_deltas);
  std::uint64_t sequence = 0;
  {
    std::lock_guard lock(event_mutex_);
    sequence = last_event_;
  }
  const std::int64_t committed_ms = events.empty() ? 0 : now_ms_();
  for (auto& event : events) {
    event.sequence = ++sequence;
    event.committed_ms = committed_ms;
    (void)write.Put(event_key(event.sequence), encode_event(event));
  }
  if (!events.empty()) {
    std::string value;
    put_be(value, sequence, 8);
    (void)write.Put(kLastEventKey, value);
    if (sequence > event_retention_) (void)write.DeleteRange(event_key(0), event_key(sequence - event_retention_ + 1));
    // The first event of each second, so a cursor of another instance resumes by time.
    const std::int64_t second = committed_ms / 1000 * 1000;
    if (second > indexed_second_) {
      std::string time_key(1, kEventTime);
      put_be(time_key, static_cast<std::uint64_t>(second), 8);
      std::string first;
      put_be(first, events.front().sequence, 8);
      (void)write.Put(time_key, first);
      std::string oldest(1, kEventTime);
      put_be(oldest, static_cast<std::uint64_t>(std::max<std::int64_t>(0, second - kEventTimeKept)), 8);
      (void)write.DeleteRange(std::string(1, kEventTime), oldest);
      indexed_second_ = second;
    }
  }
  for (const auto& [key, value] : batch.raw_) {
    if (value) {
      (void)write.Put(key, *value);
    } else {
      (void)write.Delete(key);
    }
  }
  for (const auto& [where, offset] : batch.positions_) {
    std::string value;
    put_be(value, static_cast<std::uint64_t>(offset), 8);
    (void)write.Put(position_key(where.first, where.second), value);
  }
  auto status = db_->Write(rocksdb::WriteOptions(), &write);
  if (!status.ok()) return make_error("cannot write the view: {}", status.ToString());
  {
    std::lock_guard lock(event_mutex_);
    last_event_ = sequence;
  }
  if (deletes_pending_ >= compact_after_deletes_) hand_off_compaction();
  batch.changed_.clear();
  batch.raw_.clear();
  batch.positions_.clear();
  return Status::success();
}

Result<std::size_t> ViewStore::sweep_finished(std::int64_t finished_before_ms, std::size_t max_jobs) {
  rocksdb::WriteBatch write;
  std::map<std::string, std::int64_t> count_deltas;
  std::size_t swept = 0;
  const std::string prefix(1, kFinished);
  const PrefixIterator iterator(*db_, prefix);
  for (iterator->Seek(prefix); iterator->Valid() && iterator->key().starts_with(prefix) && swept < max_jobs; iterator->Next()) {
    const auto rest = iterator->key().ToStringView().substr(1);
    if (rest.size() < 9) continue;
    if (static_cast<std::int64_t>(get_be(rest, 8)) >= finished_before_ms) break;
    const auto name = rest.substr(8);
    const auto slash = name.find('/');
    if (slash == std::string_view::npos) continue;
    const auto key = job_key(name.substr(0, slash), name.substr(slash + 1));
    ++swept;
    auto value = get(key);
    v1::JobView view;
    if (!value || !view.ParseFromString(*value)) {
      (void)write.Delete(iterator->key());
      continue;
    }
    for (const auto& index : index_keys(view)) {
      (void)write.Delete(index);
      note_deleted(index, view.id().size());
    }
    (void)write.Delete(iterator->key());
    (void)write.Delete(key);
    count_deltas[count_key(view.tenant(), 't', "")] -= 1;
    count_deltas[count_key(view.tenant(), 's', std::string(1, static_cast<char>(view.state())))] -= 1;
    count_deltas[count_key(view.tenant(), 'q', view.queue())] -= 1;
    if (auto flow = counted_flow(view); flow && get(flow_key(tenant_or_default(view.tenant()), *flow))) {
      count_deltas[flow_forgotten_key(view.tenant(), *flow)] += 1;
    }
  }
  if (swept == 0) return swept;
  apply_counts(write, count_deltas);
  auto status = db_->Write(rocksdb::WriteOptions(), &write);
  if (!status.ok()) return make_error("cannot sweep the view: {}", status.ToString());
  if (deletes_pending_ >= compact_after_deletes_) hand_off_compaction();
  return swept;
}

void ViewStore::apply_counts(rocksdb::WriteBatch& write, const std::map<std::string, std::int64_t>& deltas) {
  std::vector<std::pair<std::string, std::int64_t>> forgotten;  // flows whose forgotten nodes changed: (key, count)
  for (const auto& [key, delta] : deltas) {
    if (delta == 0) continue;
    std::int64_t count = 0;
    if (auto stored = get(key); stored && stored->size() == 8) count = static_cast<std::int64_t>(get_be(*stored, 8));
    count = std::max<std::int64_t>(0, count + delta);
    std::string value;
    put_be(value, static_cast<std::uint64_t>(count), 8);
    (void)write.Put(key, value);
    if (key.front() == kFlowCount && key.ends_with(std::string_view("\0f", 2))) forgotten.emplace_back(key, count);
  }
  // A flow every node of which the view forgot (each ended, and was swept after the retention)
  // goes with its nodes' entries and counts: the view never grows with flows that ended.
  for (const auto& [key, count] : forgotten) {
    const auto slash = key.find('/');
    if (slash == std::string::npos || key.size() < slash + 3) continue;
    const auto tenant = std::string_view(key).substr(1, slash - 1);
    const auto id = std::string_view(key).substr(slash + 1, key.size() - slash - 3);
    auto value = get(flow_key(tenant, id));
    v1::FlowView flow;
    if (!value || !flow.ParseFromString(*value) || count < static_cast<std::int64_t>(flow.nodes())) continue;
    (void)write.Delete(flow_key(tenant, id));
    (void)write.Delete(flow_time_key(tenant, flow.submitted_ms(), id));
    const auto nodes = flow_node_prefix(tenant, id);
    (void)write.DeleteRange(nodes, prefix_end(nodes));
    const auto counts = flow_count_prefix(tenant, id);
    (void)write.DeleteRange(counts, prefix_end(counts));
  }
}

std::optional<v1::FlowView> ViewStore::flow(std::string_view tenant, std::string_view id) const {
  auto value = get(flow_key(tenant_or_default(tenant), id));
  v1::FlowView flow;
  if (!value || !flow.ParseFromString(*value)) return std::nullopt;
  return flow;
}

FlowCounts ViewStore::flow_counts(std::string_view tenant, std::string_view id) const {
  FlowCounts counts;
  const auto prefix = flow_count_prefix(tenant_or_default(tenant), id);
  const PrefixIterator iterator(*db_, prefix);
  for (iterator->Seek(prefix); iterator->Valid() && iterator->key().starts_with(prefix); iterator->Next()) {
    const auto rest = iterator->key().ToStringView().substr(prefix.size());
    if (rest.empty() || iterator->value().size() != 8) continue;
    const auto count = static_cast<std::int64_t>(get_be(iterator->value().ToStringView(), 8));
    if (rest[0] == 'f' && rest.size() == 1) {
      counts.forgotten = count;
    } else if (rest[0] == 's' && rest.size() == 2 && count > 0) {
      counts.by_state[static_cast<v1::JobState>(static_cast<unsigned char>(rest[1]))] = count;
    }
  }
  return counts;
}

ListPage<v1::FlowViewNode> ViewStore::flow_nodes(std::string_view tenant, std::string_view id, std::string_view after,
                                                 std::size_t limit) const {
  return page_under<v1::FlowViewNode>(
      *db_, flow_node_prefix(tenant_or_default(tenant), id), after, limit, Order::kKeyOrder,
      [](std::string_view, std::string_view value) { return parse_value<v1::FlowViewNode>(value); });
}

ListPage<v1::FlowView> ViewStore::flows(std::string_view tenant, std::string_view after, std::size_t limit) const {
  const auto name = tenant_or_default(tenant);
  // Keys: the 8-byte start time, then the flow id.
  return page_under<v1::FlowView>(*db_, tenant_prefix(kFlowByTime, name), after, limit, Order::kNewestFirst,
                                  [&](std::string_view rest, std::string_view) -> std::optional<v1::FlowView> {
                                    if (rest.size() <= 8) return std::nullopt;
                                    return this->flow(name, rest.substr(8));
                                  });
}

std::optional<std::string> ViewStore::get(const std::string& key) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), key, &value).ok()) return std::nullopt;
  return value;
}

std::optional<v1::TenantSettings> ViewStore::tenant_settings(std::string_view tenant) const {
  auto value = get(std::string(1, kTenant) + std::string(tenant_or_default(tenant)));
  v1::TenantSettings settings;
  if (!value || !settings.ParseFromString(*value)) return std::nullopt;
  return settings;
}

std::optional<v1::Schedule> ViewStore::schedule(std::string_view tenant, std::string_view id) const {
  auto key = tenant_prefix(kSchedule, tenant_or_default(tenant));
  key += id;
  auto value = get(key);
  v1::Schedule schedule;
  if (!value || !schedule.ParseFromString(*value)) return std::nullopt;
  return schedule;
}

ListPage<v1::Schedule> ViewStore::schedules(std::string_view tenant, std::string_view after, std::size_t limit) const {
  return page_under<v1::Schedule>(*db_, tenant_prefix(kSchedule, tenant_or_default(tenant)), after, limit, Order::kKeyOrder,
                                  [](std::string_view, std::string_view value) { return parse_value<v1::Schedule>(value); });
}

ListPage<DeadLetterEntry> ViewStore::dead_letters(std::string_view tenant, std::string_view after, std::size_t limit) const {
  return page_under<DeadLetterEntry>(*db_, tenant_prefix(kDeadLetter, tenant_or_default(tenant)), after, limit,
                                     Order::kNewestFirst,
                                     [](std::string_view, std::string_view value) { return decode_dead_letter(value); });
}

std::optional<DeadLetterEntry> ViewStore::dead_letter(std::string_view tenant, std::string_view id) const {
  auto latest = tenant_prefix(kLatestDeadLetter, tenant_or_default(tenant));
  latest += id;
  auto key = get(latest);
  if (!key) return std::nullopt;
  auto value = get(*key);
  if (!value) return std::nullopt;
  return decode_dead_letter(*value);
}

std::vector<v1::WorkerHeartbeat> ViewStore::workers() const {
  std::vector<v1::WorkerHeartbeat> workers;
  const std::string prefix(1, kWorker);
  const PrefixIterator iterator(*db_, prefix);
  for (iterator->Seek(prefix); iterator->Valid() && iterator->key().starts_with(prefix) && workers.size() < 10000;
       iterator->Next()) {
    v1::WorkerHeartbeat heartbeat;
    if (heartbeat.ParseFromArray(iterator->value().data(), static_cast<int>(iterator->value().size())))
      workers.push_back(heartbeat);
  }
  return workers;
}

ListPage<v1::AuditRecord> ViewStore::audit(std::string_view tenant, std::string_view after, std::size_t limit,
                                           std::string_view job) const {
  return page_under<v1::AuditRecord>(
      *db_, tenant_prefix(kAudit, tenant_or_default(tenant)), after, limit, Order::kNewestFirst,
      [&](std::string_view, std::string_view value) -> std::optional<v1::AuditRecord> {
        auto record = parse_value<v1::AuditRecord>(value);
        if (!record || (!job.empty() && record->job_id() != job)) return std::nullopt;
        return record;
      },
      20 * limit + 1000);
}

ViewStats ViewStore::stats(std::string_view tenant) const {
  ViewStats stats;
  const auto prefix = tenant_prefix(kCount, tenant_or_default(tenant));
  const PrefixIterator iterator(*db_, prefix);
  for (iterator->Seek(prefix); iterator->Valid() && iterator->key().starts_with(prefix); iterator->Next()) {
    const auto rest = iterator->key().ToStringView().substr(prefix.size());
    if (rest.empty() || iterator->value().size() != 8) continue;
    const auto count = static_cast<std::int64_t>(get_be(iterator->value().ToStringView(), 8));
    if (rest[0] == 't') {
      stats.jobs = count;
    } else if (rest[0] == 's' && rest.size() == 2 && count > 0) {
      stats.by_state[static_cast<v1::JobState>(static_cast<unsigned char>(rest[1]))] = count;
    } else if (rest[0] == 'q' && count > 0) {
      stats.by_queue[std::string(rest.substr(1))] = count;
    }
  }
  return stats;
}

std::vector<JobEvent> ViewStore::events(std::string_view tenant, std::uint64_t cursor, std::size_t limit, std::size_t budget,
                                        std::uint64_t& next_cursor, EventsCut* cut) const {
  std::vector<JobEvent> events;
  next_cursor = cursor;
  if (cut != nullptr) *cut = EventsCut{};
  const auto name = tenant_or_default(tenant);
  const std::string prefix(1, kEvent);
  const PrefixIterator iterator(*db_, prefix);
  std::size_t examined = 0;
  for (iterator->Seek(event_key(cursor + 1)); iterator->Valid() && iterator->key().starts_with(prefix); iterator->Next()) {
    if (events.size() == limit || examined++ == budget) {
      if (cut != nullptr) cut->more = true;
      break;
    }
    const auto sequence = get_be(iterator->key().ToStringView().substr(1), 8);
    next_cursor = sequence;
    auto event = decode_event(sequence, iterator->value().ToStringView());
    if (event && cut != nullptr) cut->last_committed_ms = event->committed_ms;
    if (event && event->tenant == name) events.push_back(std::move(*event));
  }
  return events;
}

ViewStore::RecentTransitions ViewStore::recent_transitions(std::string_view tenant, std::int64_t now_ms, std::int64_t window_ms,
                                                           std::size_t budget) const {
  RecentTransitions recent;
  const auto name = tenant_or_default(tenant);
  const auto since = now_ms - window_ms;
  const std::string prefix(1, kEvent);
  const PrefixIterator iterator(*db_, prefix);
  std::size_t examined = 0;
  for (iterator->Seek(event_key(event_cursor_at(since) + 1)); iterator->Valid() && iterator->key().starts_with(prefix);
       iterator->Next()) {
    if (examined++ == budget) {
      recent.complete = false;
      break;
    }
    const auto event = decode_event(get_be(iterator->key().ToStringView().substr(1), 8), iterator->value().ToStringView());
    // A view that replays the topics commits old changes now: their own time leaves them out.
    if (event && event->tenant == name && event->at_ms >= since && event->at_ms <= now_ms) ++recent.by_state[event->state];
  }
  return recent;
}

std::uint64_t ViewStore::event_cursor_at(std::int64_t committed_ms) const {
  std::string key(1, kEventTime);
  put_be(key, static_cast<std::uint64_t>(std::max<std::int64_t>(0, committed_ms) / 1000 * 1000), 8);
  const PrefixIterator iterator(*db_, std::string(1, kEventTime));
  iterator->Seek(key);
  if (!iterator->Valid() || !iterator->key().starts_with(std::string_view(&kEventTime, 1)) || iterator->value().size() != 8) {
    return last_event();
  }
  const auto first = get_be(iterator->value().ToStringView(), 8);
  return first > 0 ? first - 1 : 0;
}

std::uint64_t ViewStore::last_event() const {
  std::lock_guard lock(event_mutex_);
  return last_event_;
}

std::uint64_t ViewStore::approximate_jobs() const {
  std::uint64_t keys = 0;
  db_->GetIntProperty("rocksdb.estimate-num-keys", &keys);
  return keys / 4;  // a view and three index entries per job
}

}  // namespace kcron::api
