// The port between the dispatcher's decisions and its durable state. One PartitionState per
// assigned partition of the jobs topic holds the index (job id -> entry) and the delay buckets.
// Writes are staged: reads see them at once, but they reach durable storage only through
// commit(), which the Kafka loop calls after the transaction that carried the same changes to
// the changelog has committed. So the store is always a prefix of the committed changelog.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/result.h"

namespace kcron::dispatcher {

// When an entry next needs attention (fire, or expire) and with which priority.
struct Slot {
  std::int64_t due_ms = 0;
  std::uint32_t priority = 0;
};

struct DueEntry {
  std::string job_id;
  Slot slot;
};

struct Checkpoint {
  std::int64_t changelog_offset = 0;  // next changelog offset to replay
  std::int64_t written_ms = 0;        // wall time of the commit that wrote it
};

class PartitionState {
 public:
  virtual ~PartitionState() = default;

  virtual std::optional<std::string> get(std::string_view job_id) = 0;
  // Stores the entry value; with a slot it is (also) placed in the delay buckets, replacing any
  // previous slot of the same job.
  virtual void put(std::string_view job_id, std::string_view value, std::optional<Slot> slot) = 0;
  virtual void erase(std::string_view job_id) = 0;
  // Entries whose slot is due at `now_ms`, in firing order (bucket, higher priority, due, id).
  virtual std::vector<DueEntry> due(std::int64_t now_ms, std::size_t limit) = 0;
  // When to look again: no entry that the last due() did not return comes due before this instant
  // (the earliest not-yet-due entry that scan saw in the current bucket, else the next bucket's
  // start; `now` when it stopped at its limit), lowered by every put() since. Before the first
  // due(): the minimum (look at once). The loop sleeps until then instead of a fixed interval.
  virtual std::int64_t next_due_hint() const = 0;
  // Entries with a slot (pending jobs, markers and retained ids), staged writes included.
  virtual std::int64_t slotted_count() = 0;

  // Makes staged writes durable together with the checkpoint.
  virtual Status commit(const Checkpoint& checkpoint) = 0;
  virtual void discard() = 0;
  virtual std::optional<Checkpoint> checkpoint() = 0;
  // Drops everything (committed and staged) of this partition.
  virtual Status wipe() = 0;
};

// Owns the PartitionStates of one process.
class DelayStore {
 public:
  virtual ~DelayStore() = default;
  virtual Result<PartitionState*> open(std::int32_t partition) = 0;
  virtual void close(std::int32_t partition) = 0;
};

}  // namespace kcron::dispatcher
