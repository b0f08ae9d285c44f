#include "store/memory_store.h"

#include <algorithm>

namespace kcron::dispatcher {

BucketKey MemoryPartitionState::key_for(std::string_view job_id, const Slot& slot) const {
  return {bucket_of(slot.due_ms, bucket_width_), slot.priority, slot.due_ms, std::string(job_id)};
}

std::optional<std::string> MemoryPartitionState::get(std::string_view job_id) {
  const auto found = working_.index.find(job_id);
  if (found == working_.index.end()) return std::nullopt;
  return found->second.value;
}

void MemoryPartitionState::put(std::string_view job_id, std::string_view value, std::optional<Slot> slot) {
  erase(job_id);
  working_.index[std::string(job_id)] = Item{std::string(value), slot};
  if (slot) {
    working_.buckets.insert(key_for(job_id, *slot));
    next_due_hint_ = std::min(next_due_hint_, slot->due_ms);
  }
}

void MemoryPartitionState::erase(std::string_view job_id) {
  const auto found = working_.index.find(job_id);
  if (found == working_.index.end()) return;
  if (found->second.slot) working_.buckets.erase(key_for(job_id, *found->second.slot));
  working_.index.erase(found);
}

std::vector<DueEntry> MemoryPartitionState::due(std::int64_t now_ms, std::size_t limit) {
  std::vector<DueEntry> entries;
  const auto current = bucket_of(now_ms, bucket_width_);
  std::int64_t hint = (current + 1) * bucket_width_.count();  // the next bucket's start
  for (const auto& key : working_.buckets) {
    if (entries.size() >= limit) {
      hint = now_ms;  // more may be due already
      break;
    }
    if (key.bucket > current) break;
    if (key.due_ms <= now_ms) {
      entries.push_back({key.job_id, Slot{key.due_ms, key.priority}});
    } else {
      hint = std::min(hint, key.due_ms);
    }
  }
  next_due_hint_ = hint;
  return entries;
}

Status MemoryPartitionState::commit(const Checkpoint& checkpoint) {
  working_.checkpoint = checkpoint;
  committed_ = working_;
  return Status::success();
}

Status MemoryPartitionState::wipe() {
  next_due_hint_ = std::numeric_limits<std::int64_t>::min();
  committed_ = Data{};
  working_ = Data{};
  return Status::success();
}

Result<PartitionState*> MemoryDelayStore::open(std::int32_t partition) {
  auto& slot = partitions_[partition];
  if (!slot) slot = std::make_unique<MemoryPartitionState>(bucket_width_);
  return static_cast<PartitionState*>(slot.get());
}

}  // namespace kcron::dispatcher
