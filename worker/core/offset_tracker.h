// Which offset a worker may commit for one exec partition. Slots finish out of order, so the
// committable position is the oldest offset still running (or one past the newest finished
// when nothing runs): everything before it is done. Pure; the worker loop owns one per partition.
#pragma once

#include <cstdint>
#include <optional>
#include <set>

namespace kcron::worker {

class OffsetTracker {
 public:
  void started(std::int64_t offset) {
    running_.insert(offset);
    newest_ = std::max(newest_, offset);
  }
  void finished(std::int64_t offset) { running_.erase(offset); }
  bool idle() const { return running_.empty(); }
  std::size_t running() const { return running_.size(); }

  // Position to commit, if any record has been seen.
  std::optional<std::int64_t> committable() const {
    if (!running_.empty()) return *running_.begin();
    if (newest_ < 0) return std::nullopt;
    return newest_ + 1;
  }

 private:
  std::set<std::int64_t> running_;
  std::int64_t newest_ = -1;
};

}  // namespace kcron::worker
