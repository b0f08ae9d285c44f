// The cancels a worker has read from the control topic, remembered for a while: a job whose
// cancel arrived before its exec record is CANCELLED when the record arrives. Bounded in time
// (`lookback` before now) and in count (the oldest are forgotten first). Main thread only.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "kcron/clock.h"

namespace kcron::worker {

class CancelMemory {
 public:
  static constexpr std::size_t kDefaultMaxEntries = 100000;
  explicit CancelMemory(Millis lookback, std::size_t max_entries = kDefaultMaxEntries)
      : lookback_(lookback), max_entries_(max_entries) {}

  // Remembers a cancel of `job_id` that arrived at `at`, and forgets what is older than
  // `now - lookback` or beyond the bound. False when that job's cancel was already remembered.
  bool remember(const std::string& job_id, Instant at, Instant now) {
    if (!arrived_.emplace(job_id, at).second) return false;
    order_.push_back(job_id);
    while (!order_.empty() && (order_.size() > max_entries_ || arrived_.at(order_.front()) < now - lookback_)) {
      arrived_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }
  // For a cancel that may come again and whose latest arrival counts (a tenant-wide cancel: each
  // dispatcher partition's purge sends one): remembers `at` if it is later than what is kept.
  void remember_latest(const std::string& key, Instant at, Instant now) {
    const auto found = arrived_.find(key);
    if (found == arrived_.end()) {
      remember(key, at, now);
    } else if (at > found->second) {
      found->second = at;
    }
  }
  // True when a cancel of `job_id` arrived within the lookback before `now`.
  bool contains(const std::string& job_id, Instant now) const {
    const auto found = arrived_.find(job_id);
    return found != arrived_.end() && found->second >= now - lookback_;
  }
  // When the cancel of `job_id` arrived, if within the lookback before `now`.
  std::optional<Instant> arrived_at(const std::string& job_id, Instant now) const {
    const auto found = arrived_.find(job_id);
    if (found == arrived_.end() || found->second < now - lookback_) return std::nullopt;
    return found->second;
  }
  std::size_t size() const { return arrived_.size(); }

 private:
  Millis lookback_;
  std::size_t max_entries_;
  std::map<std::string, Instant> arrived_;
  std::deque<std::string> order_;  // oldest first
};

}  // namespace kcron::worker
