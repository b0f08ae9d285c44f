// In-memory DelayStore with the same staging semantics as the RocksDB one, for unit tests. Its
// reads cannot fail.
#pragma once

#include <map>
#include <set>
#include <tuple>

#include "core/bucket_key.h"
#include "core/delay_store.h"

namespace kcron::dispatcher {

class MemoryPartitionState final : public PartitionState {
 public:
  explicit MemoryPartitionState(Millis bucket_width) : bucket_width_(bucket_width) {}

  Result<std::optional<std::string>> get(std::string_view key) override;
  Status put(std::string_view key, std::string_view value, std::optional<Slot> slot) override;
  Status erase(std::string_view key) override;
  Result<std::vector<std::string>> keys_after(std::string_view prefix, std::string_view after, std::size_t limit) override;
  Result<std::vector<DueEntry>> due(Instant now, std::size_t limit) override;
  Result<std::vector<BucketCount>> bucket_counts(Instant from, Instant until) override;
  Instant next_due_hint() const override { return next_due_hint_; }
  std::int64_t slotted_count() const override { return static_cast<std::int64_t>(working_.buckets.size()); }
  Status commit(const Checkpoint& checkpoint) override;
  void discard() override {
    working_ = committed_;
    next_due_hint_ = Instant::min();  // what the dropped batch fired is due again
  }
  std::optional<Checkpoint> checkpoint() const override { return committed_.checkpoint; }
  Status wipe() override;

 private:
  struct Item {
    std::string value;
    std::optional<Slot> slot;
  };
  // Firing order, as the encoded keys sort: bucket, higher priority, due instant, id.
  struct FiringOrder {
    bool operator()(const BucketKey& left, const BucketKey& right) const {
      return std::tuple(left.bucket, 9 - static_cast<int>(left.priority), left.due, left.job_id) <
             std::tuple(right.bucket, 9 - static_cast<int>(right.priority), right.due, right.job_id);
    }
  };
  struct Data {
    std::map<std::string, Item, std::less<>> index;
    std::set<BucketKey, FiringOrder> buckets;
    std::optional<Checkpoint> checkpoint;
  };
  BucketKey key_for(std::string_view key, const Slot& slot) const;

  Millis bucket_width_;
  Data committed_;
  Data working_;
  Instant next_due_hint_ = Instant::min();
};

class MemoryDelayStore final : public DelayStore {
 public:
  explicit MemoryDelayStore(Millis bucket_width) : bucket_width_(bucket_width) {}
  Result<PartitionState*> open(Partition partition) override;
  void close(Partition /*partition*/) override {}

 private:
  Millis bucket_width_;
  std::map<Partition, std::unique_ptr<MemoryPartitionState>> partitions_;
};

}  // namespace kcron::dispatcher
