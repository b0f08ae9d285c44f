// Token buckets by key (a caller, a tenant): `rate` per second, up to `burst` at once. kcron-api
// answers 429 with Retry-After when a bucket is empty. Time is passed in, so tests step it.
// Thread-safe; memory is bounded by forgetting full (idle) buckets past `max_keys`.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kcron::api {

class RateLimiter {
 public:
  // rate <= 0 turns the limiter off (every take succeeds).
  RateLimiter(double rate_per_second, double burst, std::size_t max_keys = 100000);

  // Takes `cost` tokens from `key`'s bucket at `now`. When the bucket cannot cover them, takes
  // nothing and returns how long until it can. A cost above the burst waits for a full bucket and
  // leaves it that much below zero: what comes next waits until the rate paid for it.
  std::optional<std::chrono::milliseconds> take(std::string_view key, std::chrono::steady_clock::time_point now, double cost = 1);

  bool enabled() const { return rate_ > 0; }
  std::size_t keys() const;

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point updated;
  };
  void refill(Bucket& bucket, std::chrono::steady_clock::time_point now) const;
  void forget_idle(std::chrono::steady_clock::time_point now);

  double rate_;
  double burst_;
  std::size_t max_keys_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace kcron::api
