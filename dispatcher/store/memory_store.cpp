#include "store/memory_store.h"

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
  if (slot) working_.buckets.insert(key_for(job_id, *slot));
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
  for (const auto& key : working_.buckets) {
    if (entries.size() >= limit || key.bucket > current) break;
    if (key.due_ms <= now_ms) entries.push_back({key.job_id, Slot{key.due_ms, key.priority}});
  }
  return entries;
}

Status MemoryPartitionState::commit(const Checkpoint& checkpoint) {
  working_.checkpoint = checkpoint;
  committed_ = working_;
  return Status::success();
}

Status MemoryPartitionState::wipe() {
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
