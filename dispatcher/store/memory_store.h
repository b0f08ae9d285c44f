// In-memory DelayStore with the same staging semantics as the RocksDB one, for unit tests.
#pragma once

#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "core/bucket_key.h"
#include "core/delay_store.h"

namespace kcron::dispatcher {

class MemoryPartitionState final : public PartitionState {
 public:
  explicit MemoryPartitionState(Millis bucket_width) : bucket_width_(bucket_width) {}

  std::optional<std::string> get(std::string_view job_id) override;
  void put(std::string_view job_id, std::string_view value, std::optional<Slot> slot) override;
  void erase(std::string_view job_id) override;
  std::vector<DueEntry> due(std::int64_t now_ms, std::size_t limit) override;
  std::int64_t next_due_hint() const override { return next_due_hint_; }
  std::int64_t slotted_count() override { return static_cast<std::int64_t>(working_.buckets.size()); }
  Status commit(const Checkpoint& checkpoint) override;
  void discard() override {
    working_ = committed_;
    next_due_hint_ = std::numeric_limits<std::int64_t>::min();  // what the dropped batch fired is due again
  }
  std::optional<Checkpoint> checkpoint() override { return committed_.checkpoint; }
  Status wipe() override;

 private:
  struct Item {
    std::string value;
    std::optional<Slot> slot;
  };
  // Firing order, as the encoded keys sort: bucket, higher priority, due instant, id.
  struct FiringOrder {
    bool operator()(const BucketKey& left, const BucketKey& right) const {
      return std::tuple(left.bucket, 9 - static_cast<int>(left.priority), left.due_ms, left.job_id) <
             std::tuple(right.bucket, 9 - static_cast<int>(right.priority), right.due_ms, right.job_id);
    }
  };
  struct Data {
    std::map<std::string, Item, std::less<>> index;
    std::set<BucketKey, FiringOrder> buckets;
    std::optional<Checkpoint> checkpoint;
  };
  BucketKey key_for(std::string_view job_id, const Slot& slot) const;

  Millis bucket_width_;
  Data committed_;
  Data working_;
  std::int64_t next_due_hint_ = std::numeric_limits<std::int64_t>::min();
};

class MemoryDelayStore final : public DelayStore {
 public:
  explicit MemoryDelayStore(Millis bucket_width) : bucket_width_(bucket_width) {}
  Result<PartitionState*> open(std::int32_t partition) override;
  void close(std::int32_t /*partition*/) override {}

 private:
  Millis bucket_width_;
  std::map<std::int32_t, std::unique_ptr<MemoryPartitionState>> partitions_;
};

}  // namespace kcron::dispatcher
