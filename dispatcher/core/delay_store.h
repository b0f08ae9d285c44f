// The port between the dispatcher's decisions and its durable state. One PartitionState per
// assigned partition of the jobs topic holds the index (entry key -> entry) and the delay buckets.
// Writes are staged: reads see them at once, but they reach durable storage only through
// commit(), which the Kafka loop calls after the transaction that carried the same changes to
// the changelog has committed. So the store is always a prefix of the committed changelog.
// A read that fails (an I/O error, corruption) is an error, never "absent": a decision made on it
// could fire a job twice. After any error the caller drops the open batch (discard()).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/clock.h"
#include "kcron/ids.h"
#include "kcron/result.h"

namespace kcron::dispatcher {

// When an entry next needs attention (fire, or expire) and with which priority.
struct Slot {
  Instant due{};
  std::uint32_t priority = 0;
};

struct DueEntry {
  JobId job_id;
  Slot slot;
};

// How many entries hold a slot in one bucket (pending jobs, markers, retained ids).
struct BucketCount {
  Instant begin{};  // the bucket's first instant
  std::int64_t count = 0;
};

struct Checkpoint {
  std::int64_t changelog_offset = 0;  // next changelog offset to replay
  Instant written{};                  // wall time of the commit that wrote it
};

class PartitionState {
 public:
  virtual ~PartitionState() = default;

  // Entries are keyed by job id, or by a key the core derives (a schedule's track) that cannot
  // collide with one. Absent: nullopt. A stored value that cannot be read is an error.
  virtual Result<std::optional<std::string>> get(std::string_view key) = 0;
  // Stores the entry value; with a slot it is (also) placed in the delay buckets, replacing any
  // previous slot of the same key (which may take a read, and so fail like get()).
  virtual Status put(std::string_view key, std::string_view value, std::optional<Slot> slot) = 0;
  virtual Status erase(std::string_view key) = 0;
  // Up to `limit` keys that start with `prefix` and sort after `after` (bytewise; empty: from the
  // first), staged writes included, in key order. An error when the scan could not read.
  virtual Result<std::vector<std::string>> keys_after(std::string_view prefix, std::string_view after, std::size_t limit) = 0;
  // Entries whose slot is due at `now`, in firing order (bucket, higher priority, due, id). An
  // error when the scan could not read the buckets (no partial list).
  virtual Result<std::vector<DueEntry>> due(Instant now, std::size_t limit) = 0;
  // When to look again: no entry that the last due() did not return comes due before this instant
  // (the earliest not-yet-due entry that scan saw in the current bucket, else the next bucket's
  // start; `now` when it stopped at its limit), lowered by every put() since. Before the first
  // due(): Instant::min() (look at once). The loop sleeps until then instead of a fixed interval.
  virtual Instant next_due_hint() const = 0;
  // The entries in each bucket from the one holding `from` through the one holding `until`,
  // staged writes included, in bucket order; empty buckets left out. For the fire-ahead window
  // (docs/fire-ahead.md): a bucket is counted by one scan when first asked for, then followed in
  // memory by every put and erase (a discard forgets the counts). An error when a scan could not read.
  virtual Result<std::vector<BucketCount>> bucket_counts(Instant from, Instant until) = 0;
  // Entries with a slot (pending jobs, markers and retained ids), staged writes included. Kept in
  // memory: reading it cannot fail.
  virtual std::int64_t slotted_count() const = 0;

  // Makes staged writes durable together with the checkpoint.
  virtual Status commit(const Checkpoint& checkpoint) = 0;
  virtual void discard() = 0;
  // The checkpoint of the last commit, read when the partition was opened.
  virtual std::optional<Checkpoint> checkpoint() const = 0;
  // Drops everything (committed and staged) of this partition.
  virtual Status wipe() = 0;
};

// Owns the PartitionStates of one process. open() reads the partition's checkpoint and counters:
// it fails when they cannot be read.
class DelayStore {
 public:
  virtual ~DelayStore() = default;
  virtual Result<PartitionState*> open(Partition partition) = 0;
  virtual void close(Partition partition) = 0;
};

}  // namespace kcron::dispatcher
