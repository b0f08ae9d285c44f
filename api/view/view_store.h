// kcron-api's read view: every job of every tenant as a v1::JobView in RocksDB, with per-tenant
// indexes by submit time, state and queue, and the topic positions the view covers, written in one
// WriteBatch with the views they produced, so a restart (even after SIGKILL) resumes exactly where
// the view is. One writer thread (the follower); any number of reader threads.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/requests.h"
#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron::api {

// (topic, partition) -> the next offset to read.
using Positions = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;

class ViewStore;

// One change of a job's state, as GET /v1/events returns it.
struct JobEvent {
  std::uint64_t sequence = 0;     // the cursor: strictly increasing over the whole view
  std::int64_t committed_ms = 0;  // when this view committed it (its clock); 0 for events of an older layout
  std::string tenant;
  std::string id;
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::uint32_t attempt = 0;
  std::int64_t at_ms = 0;
  std::string reason;
};

// A dead letter as the view keeps it: the letter, the job id it names, where it was read.
struct DeadLetterEntry {
  std::string id;      // the job id (empty for input nothing decoded)
  std::string source;  // "<topic>/<partition>@<offset>" of the dead letter itself: its identity
  v1::DeadLetter letter;
};

// Changes gathered from one batch of records, written together by ViewStore::commit.
class ViewBatch {
 public:
  explicit ViewBatch(const ViewStore& store) : store_(store) {}
  // The view of (tenant, id) to fold into: from this batch, else the store, else a new one.
  v1::JobView& job(std::string_view tenant, std::string_view id);
  // The view of (tenant, id) as this batch or the store holds it, without adding it to the batch.
  std::optional<v1::JobView> peek_job(std::string_view tenant, std::string_view id) const;
  // Forgets (tenant, id): the job, its indexes and counts go at commit (no event).
  void forget_job(std::string_view tenant, std::string_view id);
  // A schedule as the schedules topic holds it now (nullopt: deleted).
  void schedule(std::string_view tenant, std::string_view id, std::optional<v1::Schedule> schedule);
  // A tenant's settings as kcron.tenants holds them now (nullopt: deleted).
  void tenant_settings(std::string_view tenant, std::optional<v1::TenantSettings> settings);
  void dead_letter(std::string_view tenant, const DeadLetterEntry& entry);
  void worker(const v1::WorkerHeartbeat& heartbeat);
  // An audit record, identified by where it was read ("<topic>/<partition>@<offset>").
  void audit(std::string_view tenant, const std::string& source, const v1::AuditRecord& record);
  void advance(const std::string& topic, std::int32_t partition, std::int64_t next_offset);
  // A Flow record (docs/flows.md): the flow's header and each node's place in the graph, and each
  // node's job folded into the node's JobView as a submit would. A flow the view holds already is
  // a duplicate (to the dispatcher too) and changes nothing.
  void flow(const v1::Flow& flow, std::int64_t record_ms, std::string_view source);
  // The flow as this batch or the store holds it.
  std::optional<v1::FlowView> peek_flow(std::string_view tenant, std::string_view id) const;
  // A flow cancel (true) or retry (false) was read: the flow's summary says CANCELLING meanwhile.
  void flow_cancel_requested(std::string_view tenant, std::string_view id, bool requested);
  // The dispatcher refused the flow as a whole (a REJECTED dead letter of its Flow record): the
  // flow says so, and each node's view that has no state yet becomes REJECTED with the reason, so
  // it ends (and is swept) like any refused job.
  void flow_rejected(std::string_view tenant, std::string_view id, const v1::DeadLetter& letter);
  // The latest dead letter of (tenant, id) as this batch or the store holds it.
  std::optional<DeadLetterEntry> peek_dead_letter(std::string_view tenant, std::string_view id) const;
  // Nothing to commit: no job, raw key or position changed since the last commit.
  bool empty() const { return changed_.empty() && raw_.empty() && positions_.empty(); }
  std::size_t jobs() const { return changed_.size(); }
  const Positions& positions() const { return positions_; }

 private:
  friend class ViewStore;
  struct Changed {
    v1::JobView view;
    std::optional<v1::JobView> stored;  // what the store held before: its index entries go
    bool forget = false;                // the job leaves the view
  };
  const ViewStore& store_;
  std::map<std::string, Changed> changed_;                 // by view key
  std::map<std::string, std::optional<std::string>> raw_;  // other keys: a value, or deleted
  Positions positions_;
};

// Counts of a tenant's jobs, for dashboards.
struct ViewStats {
  std::map<v1::JobState, std::int64_t> by_state;  // JOB_STATE_UNSPECIFIED: submitted, not yet decided
  std::map<std::string, std::int64_t> by_queue;
  std::int64_t jobs = 0;
};

template <typename T>
struct ListPage {
  std::vector<T> items;
  std::string next;  // the key to pass back to go on; empty: the last page
};

// A flow's nodes counted by the state of their views (JOB_STATE_UNSPECIFIED: no state yet), kept
// as the views change. A node the view forgot (swept) keeps its last state here and counts in
// `forgotten`; once every node was forgotten, the flow goes too.
struct FlowCounts {
  std::map<v1::JobState, std::int64_t> by_state;
  std::int64_t forgotten = 0;
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
  // Forgets up to `max_jobs` jobs that finished (a terminal state) before `finished_before_ms`, with
  // their index entries and counts. Called by the writer thread, between commits. How many went.
  Result<std::size_t> sweep_finished(std::int64_t finished_before_ms, std::size_t max_jobs);

  std::optional<v1::FlowView> flow(std::string_view tenant, std::string_view id) const;
  FlowCounts flow_counts(std::string_view tenant, std::string_view id) const;
  // A flow's nodes by name; `after` is a name a previous page ended with.
  ListPage<v1::FlowViewNode> flow_nodes(std::string_view tenant, std::string_view id, std::string_view after,
                                        std::size_t limit) const;
  // A tenant's flows, newest submitted first; `after` is a `next` a previous page gave.
  ListPage<v1::FlowView> flows(std::string_view tenant, std::string_view after, std::size_t limit) const;

  std::optional<v1::TenantSettings> tenant_settings(std::string_view tenant) const;
  std::optional<v1::Schedule> schedule(std::string_view tenant, std::string_view id) const;
  ListPage<v1::Schedule> schedules(std::string_view tenant, std::string_view after, std::size_t limit) const;
  // Newest first; `after` is a `next` a previous page gave.
  ListPage<DeadLetterEntry> dead_letters(std::string_view tenant, std::string_view after, std::size_t limit) const;
  // The latest dead letter of a job.
  std::optional<DeadLetterEntry> dead_letter(std::string_view tenant, std::string_view id) const;
  std::vector<v1::WorkerHeartbeat> workers() const;
  // A tenant's audit records, newest first; `job` keeps only those of one job id.
  ListPage<v1::AuditRecord> audit(std::string_view tenant, std::string_view after, std::size_t limit, std::string_view job) const;
  ViewStats stats(std::string_view tenant) const;
  // A tenant's events after `cursor`, oldest first, examining at most `budget` events of any
  // tenant; `next_cursor` is where the next call starts (the last event examined).
  // `cut`, when given, says whether the answer stopped before the log's end and when the last
  // event examined was committed: a cursor for another instance must go back from there.
  struct EventsCut {
    bool more = false;
    std::int64_t last_committed_ms = 0;
  };
  std::vector<JobEvent> events(std::string_view tenant, std::uint64_t cursor, std::size_t limit, std::size_t budget,
                               std::uint64_t& next_cursor, EventsCut* cut = nullptr) const;
  std::uint64_t last_event() const;
  // A tenant's state changes of the last `window_ms` before `now_ms` (by each change's own time),
  // by state: the events committed since the window began (event_cursor_at), at most `budget` of
  // any tenant examined; `complete` is false when the budget ran out first.
  struct RecentTransitions {
    std::map<v1::JobState, std::int64_t> by_state;
    bool complete = true;
  };
  RecentTransitions recent_transitions(std::string_view tenant, std::int64_t now_ms, std::int64_t window_ms,
                                       std::size_t budget) const;
  // This view's identity (random, made when its directory was first opened): an event cursor is
  // a sequence of one view, and another instance's view numbers its events differently.
  const std::string& view_id() const { return view_id_; }
  // The cursor after which come every event this view committed at or after `committed_ms` (by its
  // clock, to the second); the latest event when none was committed since.
  std::uint64_t event_cursor_at(std::int64_t committed_ms) const;
  // Events kept: older ones are dropped on commit.
  void set_event_retention(std::uint64_t events) { event_retention_ = events; }
  // The wall clock commit stamps events with (tests set their own).
  void set_clock(std::function<std::int64_t()> now_ms) { now_ms_ = std::move(now_ms); }
  // Jobs in the view (an estimate from RocksDB).
  std::uint64_t approximate_jobs() const;
  // Deleted index entries are compacted away once this many were deleted (see kCompactAfterDeletes).
  void set_compact_after_deletes(std::uint64_t deletes) { compact_after_deletes_ = deletes; }
  // Called by the writer thread now and then: once no index entry was deleted for a while (a burst
  // ended), the deleted entries not yet compacted are (when at least a tenth of the hand-off's
  // count), rather than wait for more deletes.
  void maintain(std::chrono::steady_clock::time_point now);
  // Compactions of deleted index entries done so far, and whether one is queued or running.
  std::uint64_t compactions() const { return compactions_.load(); }
  bool compacting() const;
  // A RocksDB property of the view's database (tests, diagnostics); empty when unknown.
  std::string property(const std::string& name) const;

 private:
  explicit ViewStore(std::unique_ptr<rocksdb::DB> db);
  std::optional<std::string> get(const std::string& key) const;
  // Adds count deltas to the stored counts; a flow all of whose nodes were forgotten goes.
  void apply_counts(rocksdb::WriteBatch& write, const std::map<std::string, std::int64_t>& deltas);
  Status build_indexes();  // the indexes a view of an older layout lacks
  std::unique_ptr<rocksdb::DB> db_;
  std::uint64_t event_retention_ = 1'000'000;
  std::string view_id_;
  std::function<std::int64_t()> now_ms_;
  std::int64_t indexed_second_ = 0;  // the last second with an event-time index entry (commit's thread)
  // Index entries deleted since the last compaction was handed off: the span of keys they cover
  // per index (per state for the state index), and how many (commit's thread).
  std::map<std::string, std::pair<std::string, std::string>> deleted_spans_;
  std::uint64_t deletes_pending_ = 0;
  std::uint64_t compact_after_deletes_;
  std::uint64_t quiet_deletes_ = 0;  // deletes_pending_ when maintain() last saw it change
  std::chrono::steady_clock::time_point quiet_since_;
  void note_deleted(const std::string& key, std::size_t id_size);
  void hand_off_compaction();
  // The compactor thread (started on the first hand-off): compacts the spans it is handed.
  mutable std::mutex compact_mutex_;
  std::condition_variable compact_wake_;
  std::vector<std::pair<std::string, std::string>> compact_queue_;
  bool compact_running_ = false;
  bool compact_stop_ = false;
  std::atomic<std::uint64_t> compactions_{0};
  std::thread compactor_;
  std::uint64_t last_event_ = 0;  // written by commit (one thread), read by others
  mutable std::mutex event_mutex_;
};

}  // namespace kcron::api
