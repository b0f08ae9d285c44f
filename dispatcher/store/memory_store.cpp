#include "store/memory_store.h"

#include <algorithm>

namespace kcron::dispatcher {

BucketKey MemoryPartitionState::key_for(std::string_view key, const Slot& slot) const {
  return {bucket_of(slot.due, bucket_width_), slot.priority, slot.due, std::string(key)};
}

Result<std::optional<std::string>> MemoryPartitionState::get(std::string_view key) {
  const auto found = working_.index.find(key);
  if (found == working_.index.end()) return std::optional<std::string>();
  return std::optional<std::string>(found->second.value);
}

Status MemoryPartitionState::put(std::string_view key, std::string_view value, std::optional<Slot> slot) {
  (void)erase(key);
  working_.index[std::string(key)] = Item{std::string(value), slot};
  if (slot) {
    working_.buckets.insert(key_for(key, *slot));
    next_due_hint_ = std::min(next_due_hint_, slot->due);
  }
  return Status::success();
}

Status MemoryPartitionState::erase(std::string_view key) {
  const auto found = working_.index.find(key);
  if (found == working_.index.end()) return Status::success();
  if (found->second.slot) working_.buckets.erase(key_for(key, *found->second.slot));
  working_.index.erase(found);
  return Status::success();
}

Result<std::vector<std::string>> MemoryPartitionState::keys_after(std::string_view prefix, std::string_view after,
                                                                  std::size_t limit) {
  std::vector<std::string> keys;
  auto found = after.empty() ? working_.index.lower_bound(prefix) : working_.index.upper_bound(after);
  for (; found != working_.index.end() && keys.size() < limit; ++found) {
    if (found->first.compare(0, prefix.size(), prefix) != 0) {
      if (found->first > prefix) break;
      continue;  // `after` sorted before the prefix
    }
    keys.push_back(found->first);
  }
  return keys;
}

Result<std::vector<DueEntry>> MemoryPartitionState::due(Instant now, std::size_t limit) {
  std::vector<DueEntry> entries;
  const auto current = bucket_of(now, bucket_width_);
  Instant hint = bucket_begin(current + 1, bucket_width_);  // the next bucket's start
  for (const auto& key : working_.buckets) {
    if (entries.size() >= limit) {
      hint = now;  // more may be due already
      break;
    }
    if (key.bucket > current) break;
    if (key.due <= now) {
      entries.push_back({JobId(key.job_id), Slot{key.due, key.priority}});
    } else {
      hint = std::min(hint, key.due);
    }
  }
  next_due_hint_ = hint;
  return entries;
}

Result<std::vector<BucketCount>> MemoryPartitionState::bucket_counts(Instant from, Instant until) {
  const auto first = bucket_of(from, bucket_width_);
  const auto last = bucket_of(until, bucket_width_);
  std::vector<BucketCount> counts;
  for (const auto& key : working_.buckets) {
    if (key.bucket < first) continue;
    if (key.bucket > last) break;
    const Instant begin = bucket_begin(key.bucket, bucket_width_);
    if (counts.empty() || counts.back().begin != begin) counts.push_back({begin, 0});
    ++counts.back().count;
  }
  return counts;
}

Status MemoryPartitionState::commit(const Checkpoint& checkpoint) {
  working_.checkpoint = checkpoint;
  committed_ = working_;
  return Status::success();
}

Status MemoryPartitionState::wipe() {
  next_due_hint_ = Instant::min();
  committed_ = Data{};
  working_ = Data{};
  return Status::success();
}

Result<PartitionState*> MemoryDelayStore::open(Partition partition) {
  auto& slot = partitions_[partition];
  if (!slot) slot = std::make_unique<MemoryPartitionState>(bucket_width_);
  return static_cast<PartitionState*>(slot.get());
}

}  // namespace kcron::dispatcher
