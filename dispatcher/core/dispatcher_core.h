// The dispatcher's decisions, free of Kafka and RocksDB: what a record of the jobs topic does to
// a partition's state (accept, fire at once, park in the delay buckets, cancel, dedupe, reject,
// forward to its murmur2 partition) and which due jobs fire now. Every decision is a set of
// staged state writes plus the records to produce (exec, changelog, status, events, dead
// letters); the Kafka loop makes both durable in one transaction. Driven by an injectable clock.
// Single-threaded: the dispatcher loop owns it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/delay_store.h"
#include "core/fire_window.h"
#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/flow_graph.h"
#include "kcron/ids.h"
#include "kcron/out_record.h"
#include "kcron/records.h"
#include "kcron/result.h"
#include "kcron/tenant.h"
#include "kcron/tenant_registry.h"
#include "kcron/topics.h"

namespace kcron::dispatcher {

// Which decisions go to the audit topic: every one (the default), refusals only, or none.
enum class AuditLevel { kAll, kRefusals, kOff };

struct Settings {
  TopicNames names{"kcron."};
  std::int32_t jobs_partitions = 12;
  std::set<std::string, std::less<>> queues = {"default", "critical", "batch"};
  Millis bucket_width{1000};
  std::size_t max_record_bytes = 900'000;                   // larger inputs are REJECTED
  std::size_t max_batch_jobs = 10'000;                      // jobs in one Batch record
  std::size_t max_dead_letter_copy = kDeadLetterCopyBytes;  // original bytes kept in a dead letter
  Millis max_horizon{std::chrono::hours(24 * 366 * 5)};
  Millis cancel_marker_ttl{std::chrono::hours(24)};
  Millis dedupe_retention{std::chrono::hours(24 * 7)};  // how long a fired id is remembered
  bool emit_events = false;                             // also write every transition to `events` (status holds the timeline)
  Millis misfire_threshold{5000};                       // a schedule run released later than this after its due instant misfired
  std::string component = "dispatcher";
  AuditLevel audit = AuditLevel::kAll;
  FireAheadSettings fire_ahead;  // docs/fire-ahead.md
  flow::Limits flow_limits;      // docs/flows.md#limits
  // A parent's output handed inline to each child up to this size (larger: its size only), and
  // at most this much of its parents' outputs in one child's record.
  std::size_t flow_inline_output = 4096;
  std::size_t flow_inputs_budget = 65'536;
  // At most this much of one parent's output copied to all its children (a wide fan-out of a large
  // output hands its size only).
  std::size_t flow_fanout_output_budget = 1U << 20U;
};

// One consumed record of the jobs topic.
struct InputRecord {
  Partition partition{0};
  std::int64_t offset = 0;
  std::string_view key;
  std::string_view value;
  std::string_view content_type;
  std::string_view kcron_type;
  Instant timestamp{};
  std::string_view request_id;  // the kcron-request-id header: the HTTP request that wrote it (its audit record names it)
};

struct Counts {
  std::uint64_t accepted = 0;
  std::uint64_t fired = 0;
  std::uint64_t rejected = 0;
  std::uint64_t forwarded = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t expired = 0;
  std::uint64_t skipped = 0;
  std::uint64_t unpublishable = 0;    // given up on: an input REJECTED or a due job DEAD (also counted there)
  std::uint64_t purged = 0;           // pending jobs cancelled because their tenant was deleted
  std::uint64_t recounts = 0;         // partitions whose tenants' pending jobs were counted again
  std::uint64_t fired_ahead = 0;      // of `fired`: committed before their due instant (fire-ahead)
  std::uint64_t batches = 0;          // batch records split (their jobs count as submits where they land)
  std::uint64_t flows = 0;            // flows accepted (their nodes count in `accepted` as they are released)
  std::uint64_t upstream_failed = 0;  // flow nodes that never ran: their trigger failed
};

// On a dispatcher-changelog record of a job entry: its writer keeps the tenants' pending counts.
inline constexpr std::string_view kCountedHeader = "kcron-counted";
// Store key of the marker a partition keeps once its tenants' counts are exact (recount()).
inline constexpr std::string_view kCountedMarker = "\x01tenant-counted";

// Which tenant limit refused a submit (docs/tenancy.md#limits).
enum class TenantLimit { kPendingJobs, kSubmissionRate, kQueue };
std::string_view limit_name(TenantLimit limit);

// Every decision that reads the state returns the state's error when a read fails (an I/O error,
// corruption, an entry that does not parse): it is never taken for an absent entry. Its staged
// writes and records may then be partial: the caller drops the whole batch and does not commit.
class DispatcherCore {
 public:
  // `tenants`: the registry followed live (owned by the caller, read on this thread); null: no
  // tenant has limits.
  DispatcherCore(Settings settings, const Clock& clock, const TenantRegistry* tenants = nullptr);

  // Applies one record consumed from `record.partition`, whose state is `state`.
  Status apply(PartitionState& state, const InputRecord& record, std::vector<OutRecord>& out);

  // Fires (or expires) up to `limit` due entries of one partition; returns how many.
  Result<std::size_t> fire_due(PartitionState& state, Partition partition, std::size_t limit, std::vector<OutRecord>& out);

  // For a batch that keeps aborting (docs/architecture.md#failure-handling-today: bisect, never stall): the loop narrows it to
  // one record or one fire, and if that alone still cannot commit, gives up on it here.
  // A consumed record whose outputs the broker refuses: REJECTED to dead-letters with `reason`.
  void reject_unpublishable(const InputRecord& record, std::string_view reason, std::vector<OutRecord>& out);
  // A due job (`job_key`: its tenant-scoped key, pending and due by now) whose records the broker
  // refuses: DEAD (dead letter, status, the id kept for dedupe like a fired one) instead of fired.
  // Returns false (and does nothing) when there is no such pending, due job.
  Result<bool> fail_due(PartitionState& state, Partition partition, const JobId& job_key, std::string_view reason,
                        std::vector<OutRecord>& out);
  // Replays one changelog record into a state (restore). `value` empty = tombstone. A value that
  // does not parse is an error (a changelog the dispatcher cannot read), not a delete.
  static Status restore(PartitionState& state, std::string_view key, std::string_view value, bool tombstone);

  const Counts& counts() const { return counts_; }
  // Submits refused by a tenant limit, by tenant and limit, since start. Its size is bounded by
  // the registry's: only a tenant with settings has limits.
  const std::map<std::pair<std::string, TenantLimit>, std::uint64_t>& limit_refusals() const { return limit_refusals_; }
  // Counts every tenant's pending jobs on a partition from its entries, and stages each tenant's
  // count (and a marker saying the partition is counted) with its changelog records. The loop
  // runs it when a partition was restored without the marker, or from changelog records a
  // release before tenant limits wrote (no kCountedHeader): their counts cannot be trusted.
  Status recount(PartitionState& state, Partition partition, std::vector<OutRecord>& out);
  static Result<bool> counted(PartitionState& state);
  // A tenant's pending jobs on one partition, as its usage entry counts them.
  Result<std::uint64_t> pending_of(PartitionState& state, std::string_view tenant) const;
  // Fire lags (fired minus due; negative: fired ahead) observed since the last call.
  std::vector<Millis> take_fire_lags();

  // Fire-ahead (docs/fire-ahead.md). fire_due() fires a pending job up to the window before its
  // instant; the worker holds the record until then. Closed (jobs fire at their instant) until
  // the loop says every worker holds records until their instant (the upgrade gate).
  void set_fire_ahead_open(bool open) { fire_ahead_open_ = open; }
  bool fire_ahead_open() const { return fire_ahead_open_; }
  // Exec topic -> its partitions, to bound the records fired ahead per exec partition (a topic not
  // listed counts as one partition).
  void set_exec_partitions(std::map<std::string, std::int32_t, std::less<>> counts) { exec_partitions_ = std::move(counts); }
  // The window for this batch, from the jobs coming due on every partition the loop owns (they
  // share this dispatcher's fire rate; a burst spread over 12 partitions is one burst). fire_due()
  // uses it until the next call; without one it counts its own partition's jobs (unit tests).
  Status plan_window(const std::vector<PartitionState*>& states);
  // A committed transaction: `fired` jobs, `took` to commit, `cycle` the batch's whole duration
  // (consuming, deciding and committing).
  // Its records fired ahead now count against their exec partitions for good.
  void observe_commit(std::size_t fired, Millis took, Millis cycle) {
    window_.observe_commit(fired, took, cycle);
    uncommitted_ahead_.clear();
  }
  // The transaction since the last observe_commit() did not commit (an abort, a fence, a dropped
  // batch): its records fired ahead no longer count (their jobs are pending again and fire anew).
  void discard_uncommitted();
  // The window the last fire_due() of any partition used.
  Millis last_window() const { return last_window_; }
  const FireWindow& fire_window() const { return window_; }
  // When fire_due() should next run for a partition: the store's next-due hint less half the
  // window its last fire_due() used (the next job is fired with between half and all of the
  // window to spare), or sooner when a job within the window waits for its instant (a
  // schedule run whose overlap policy decides at the instant, or an exec partition whose window
  // is full). A window that widens (a burst coming due) is noticed at the loop's next batch,
  // within its commit interval: the burst's margin covers that.
  Instant next_look(const PartitionState& state, Partition partition) const;
  // Records fired ahead and not yet due, over every exec partition.
  std::size_t ahead_count() const;
  const Settings& settings() const { return settings_; }
  const TenantRegistry* tenants() const { return tenants_; }

  // The slot an entry occupies in the delay buckets, if any (pending: due; others: expiry).
  static std::optional<Slot> slot_of(const v1::DispatcherEntry& entry);
  // Store key of a schedule's track, from the schedule's tenant-scoped key (cannot collide with a
  // job's key: those have no control bytes).
  static std::string track_key(std::string_view schedule_key);
  // Store key of a tenant's usage entry on a partition ("default" for the default tenant).
  static std::string usage_key(std::string_view tenant);
  // Store key of the marker a partition keeps while a purge of the tenant is under way.
  static std::string purging_key(std::string_view tenant);
  // Store key of a flow's header, from the flow's tenant-scoped key.
  static std::string flow_key(std::string_view scoped_flow_key);
  // How many keys one PurgeTenant record handles before it writes the rest of the work back.
  static constexpr std::size_t kPurgeKeysPerRecord = 2000;

 private:
  // One command: the job it names (tenant, id and key; commands resolve inside their tenant).
  struct Context {
    PartitionState& state;
    const InputRecord& record;
    std::vector<OutRecord>& out;
    const ScopedName& job;
  };
  using Entry = v1::DispatcherEntry;
  using MaybeEntry = std::optional<v1::DispatcherEntry>;

  Status submit(Context& context, v1::Job job);
  Status cancel(Context& context, const v1::Cancel& cancel);
  Status update(Context& context, v1::Job job);
  Status replay(Context& context, const v1::Replay& replay);
  Status retry(Context& context, const v1::Retry& retry);
  Status completion(Context& context, const v1::Completion& completion);

  // Flows (core/flows.cpp, docs/flows.md). A flow's header and nodes live on its partition; every
  // decision a node's ending causes is made in the batch that consumed that ending.
  Status submit_flow(Context& context, v1::Flow flow);
  // A Batch record (docs/batch.md): each job applied as a keyless Submit of this record, so it is
  // forwarded to its owner partition, or decided here, in this record's transaction.
  Status apply_batch(PartitionState& state, const InputRecord& record, v1::Batch batch, std::vector<OutRecord>& out);
  // Cancels every node of the flow that has not ended: waiting and pending ones here, fired ones
  // through `control` (their endings come back as completions). Refused: no such flow.
  // `as`: CANCELLED, or SKIPPED for a schedule's flow run its policies skipped.
  Status cancel_flow(PartitionState& state, Partition partition, const ScopedName& flow, std::string_view reason,
                     const InputRecord* record, std::vector<OutRecord>& out, v1::JobState as = v1::CANCELLED);
  // Forgets the flow's start, when it still waits.
  Status drop_start(PartitionState& state, Partition partition, const ScopedName& flow, std::vector<OutRecord>& out);
  // The flow's last node ended: a schedule's flow run frees the schedule's overlap slot.
  Status flow_ended(PartitionState& state, Partition partition, const ScopedName& flow, std::vector<OutRecord>& out);
  // A flow that starts later waits as one entry under the flow id's own key (its start): a
  // PENDING entry whose job names the flow and no node. At its instant release() admits it by
  // its schedule's policies, then this releases the flow's roots.
  static bool is_flow_start(const v1::DispatcherEntry& entry);
  Status start_flow(PartitionState& state, Partition partition, const std::string& stored_as, v1::DispatcherEntry& entry,
                    std::vector<OutRecord>& out);
  // Replay with `flow`: a flow that ended runs its DEAD nodes and their dependants again.
  Status retry_flow(Context& context);
  // A node's entry has just been stored ended (`ended_as`): the flow's counts follow, and each
  // child whose trigger that decides runs, fails upstream or is skipped, cascading.
  Status node_ended(PartitionState& state, Partition partition, std::string_view tenant, const v1::FlowNodeState& node,
                    v1::JobState ended_as, std::string output, std::uint64_t output_size, std::vector<OutRecord>& out);
  // A waiting node whose trigger held: PENDING in the buckets, or fired now when due. False: its
  // job could not be resolved (it is then DEAD, and the caller cascades that).
  Result<bool> release_node(PartitionState& state, Partition partition, const ScopedName& node, Entry& entry,
                            std::vector<OutRecord>& out);
  // Ends a node that has not fired (waiting or pending) as `ended_as` with `reason`.
  Status end_unfired_node(PartitionState& state, Partition partition, const ScopedName& node, Entry& entry, v1::JobState ended_as,
                          std::string_view reason, std::vector<OutRecord>& out);
  // A PurgeTenant record: acts on the partition it was written to, never forwarded.
  Status purge(PartitionState& state, const InputRecord& record, const v1::PurgeTenant& purge, std::vector<OutRecord>& out);
  // The reason a tenant's limits refuse this submit (its queue, its submission rate on this
  // partition, its pending jobs here), or nothing. Updates the tenant's rate tokens when admitted.
  Result<std::optional<std::string>> check_limits(PartitionState& state, Partition partition, const ScopedName& job,
                                                  const v1::Job& submitted, Instant due, Instant appended,
                                                  std::vector<OutRecord>& out);
  Result<v1::TenantUsage> load_usage(PartitionState& state, std::string_view tenant) const;
  Status store_usage(PartitionState& state, Partition partition, std::string_view tenant, const v1::TenantUsage& usage,
                     std::vector<OutRecord>& out);
  // A job entry under `key` entered (+1) or left (-1) PENDING: its tenant's count follows.
  Status count_pending(PartitionState& state, Partition partition, std::string_view key, int delta, std::vector<OutRecord>& out);
  // A changelog record that replaces the one this batch already holds for the key (usage entries
  // change with every job; the changelog needs only their last value per transaction).
  // nullopt: a tombstone.
  void upsert_changelog(Partition partition, const std::string& key, std::optional<std::string> value,
                        std::vector<OutRecord>& out);
  // The reason `job`'s tenant may not use its queue, or nothing (counted as a queue refusal).
  std::optional<std::string> queue_refusal(const ScopedName& job, const v1::Job& submitted);

  static Entry pending_entry(v1::Job job, Instant due, std::uint64_t sequence);
  // Validates a job and resolves its due instant (delay -> run_at on first acceptance).
  Result<Instant> resolve(v1::Job& job, Instant record_timestamp) const;
  // Fires a due entry, unless its schedule's misfire or overlap policy says skip. `stored_as` is
  // the key the entry lives under: the job's scoped key, or the bare id a release before tenants
  // stored a tenant's job under (it stays there, so it is never found PENDING again).
  Status release(PartitionState& state, Partition partition, const std::string& stored_as, v1::DispatcherEntry& entry,
                 std::vector<OutRecord>& out);
  // The schedule-run policies; false = the run was recorded as SKIPPED.
  Result<bool> admit_schedule_run(PartitionState& state, Partition partition, const std::string& stored_as,
                                  v1::DispatcherEntry& entry, std::vector<OutRecord>& out);
  // A schedule's run ended (completed, or cancelled with no attempt left to run): its track no
  // longer holds it as the running run, so overlap forbid/replace let the next run through.
  Status end_schedule_run(PartitionState& state, Partition partition, const ScopedName& job, std::vector<OutRecord>& out);
  Status skip(PartitionState& state, Partition partition, const std::string& stored_as, v1::DispatcherEntry& entry,
              const std::string& reason, std::vector<OutRecord>& out);
  Status track_accepted_run(PartitionState& state, Partition partition, const v1::Job& job, Instant due,
                            std::vector<OutRecord>& out);
  Result<MaybeEntry> load_track(PartitionState& state, std::string_view schedule_key) const;
  Status store_track(PartitionState& state, Partition partition, std::string_view schedule_key, v1::DispatcherEntry& track,
                     std::vector<OutRecord>& out);
  Status fire(PartitionState& state, Partition partition, const std::string& stored_as, v1::DispatcherEntry& entry,
              std::vector<OutRecord>& out);
  Status store(PartitionState& state, Partition partition, const std::string& key, const v1::DispatcherEntry& entry,
               std::vector<OutRecord>& out);
  Status forget(PartitionState& state, Partition partition, const std::string& key, std::vector<OutRecord>& out);
  void emit_status(const ScopedName& job, const v1::DispatcherEntry& entry, v1::JobState state, std::string_view reason,
                   std::vector<OutRecord>& out);
  // REJECTED: a dead letter keyed by the job's key, or (`job` null: nothing decoded says whose it
  // is) by the record's own key.
  void reject(const InputRecord& record, const ScopedName* job, std::string_view reason, std::vector<OutRecord>& out);
  void forward(const InputRecord& record, Partition partition, std::string_view key, std::vector<OutRecord>& out);
  // A decision on the command being applied (`action_`), to the audit topic (docs/tenancy.md#audit).
  void audit(const InputRecord& record, const ScopedName* job, std::string_view outcome, std::string_view reason,
             std::vector<OutRecord>& out);
  // The entry stored under `key`; an error when it cannot be read or does not parse.
  static Result<MaybeEntry> load(PartitionState& state, std::string_view key);
  // A protobuf *_ms field for an instant `after` from now.
  std::int64_t ms_from_now(Millis after) const { return to_epoch_ms(clock_.now() + after); }

  // Whether a pending job due within the window may fire before its instant; when not, `wake`
  // is lowered to when to look at it again.
  bool may_fire_ahead(const v1::DispatcherEntry& entry, const std::string& stored_as, Instant now, Instant& wake);
  // The exec partition a record keyed `job_key` goes to on `topic`.
  std::pair<std::string, std::int32_t> exec_partition_of(std::string topic, std::string_view job_key) const;
  void prune_ahead(Instant now);

  Settings settings_;
  const Clock& clock_;
  const TenantRegistry* tenants_;
  Counts counts_;
  std::map<std::pair<std::string, TenantLimit>, std::uint64_t> limit_refusals_;
  std::string_view action_ = "unknown";  // of the record apply() is deciding on
  // Where in the caller's output a usage entry's changelog record was put, to replace it there.
  std::map<std::pair<std::int32_t, std::string>, std::size_t> upserted_at_;
  std::vector<Millis> fire_lags_;
  FireWindow window_{settings_.fire_ahead};
  bool fire_ahead_open_ = false;
  Millis last_window_{0};
  std::optional<Millis> planned_window_;
  std::map<std::string, std::int32_t, std::less<>> exec_partitions_;
  // Exec partition -> due instants of the records fired ahead to it that are not due yet.
  std::map<std::pair<std::string, std::int32_t>, std::multiset<Instant>> ahead_;
  // Those of ahead_ fired since the last committed transaction.
  std::vector<std::pair<std::pair<std::string, std::int32_t>, Instant>> uncommitted_ahead_;
  // Per jobs partition: the window its last fire_due() used, and the earliest instant at which a
  // job it left in the window (waiting for its instant) wants another look.
  std::map<std::int32_t, Millis> window_of_;
  std::map<std::int32_t, Instant> deferred_wake_;
  std::map<std::int32_t, std::size_t> deferred_count_;
};

}  // namespace kcron::dispatcher
