#include "core/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace kcron::api {

RateLimiter::RateLimiter(double rate_per_second, double burst, std::size_t max_keys)
    : rate_(rate_per_second), burst_(std::max(1.0, burst)), max_keys_(std::max<std::size_t>(1, max_keys)) {}

void RateLimiter::refill(Bucket& bucket, std::chrono::steady_clock::time_point now) const {
  if (now <= bucket.updated) return;
  const double seconds = std::chrono::duration<double>(now - bucket.updated).count();
  bucket.tokens = std::min(burst_, bucket.tokens + seconds * rate_);
  bucket.updated = now;
}

void RateLimiter::forget_idle(std::chrono::steady_clock::time_point now) {
  for (auto entry = buckets_.begin(); entry != buckets_.end();) {
    refill(entry->second, now);
    entry = entry->second.tokens >= burst_ ? buckets_.erase(entry) : std::next(entry);
  }
}

std::optional<std::chrono::milliseconds> RateLimiter::take(std::string_view key, std::chrono::steady_clock::time_point now,
                                                           double cost) {
  if (rate_ <= 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto found = buckets_.find(std::string(key));
  if (found == buckets_.end()) {
    if (buckets_.size() >= max_keys_) forget_idle(now);
    found = buckets_.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  auto& bucket = found->second;
  refill(bucket, now);
  // A cost above the burst starts on a full bucket and leaves it in debt for the rest, so the
  // rate holds over time however the jobs are batched.
  const double needed = std::min(cost, burst_);
  if (bucket.tokens >= needed) {
    bucket.tokens -= cost;
    return std::nullopt;
  }
  const double wait_seconds = (needed - bucket.tokens) / rate_;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(wait_seconds * 1000)));
}

std::size_t RateLimiter::keys() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace kcron::api
