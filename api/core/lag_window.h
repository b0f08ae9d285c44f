// Recent fire and start lags per tenant, for GET /v1/stats and the console's overview. The view's
// follower adds a sample per job fired (a QUEUED status: its time minus the due time; negative
// when fired ahead of the instant) and per attempt started (a result: its start minus the due
// time); a request reads the percentiles of the samples whose own time is in the last window, so
// a view replaying old records reports nothing stale. Bounded: the latest `keep` samples per
// tenant and kind, at most `max_tenants` tenants (the least recently added goes). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kcron::api {

class LagWindow {
 public:
  enum class Kind : std::uint8_t { kFire, kStart };
  struct Summary {
    std::size_t count = 0;  // samples in the window
    std::int64_t p50_ms = 0;
    std::int64_t p99_ms = 0;
    std::int64_t max_ms = 0;
  };

  explicit LagWindow(std::size_t keep = 4096, std::size_t max_tenants = 10000);
  void add(std::string_view tenant, Kind kind, std::int64_t at_ms, std::int64_t lag_ms);
  // The samples of `tenant` and `kind` whose time is at or after `since_ms`.
  Summary summary(std::string_view tenant, Kind kind, std::int64_t since_ms) const;

 private:
  struct Samples {
    std::vector<std::pair<std::int64_t, std::int64_t>> ring;  // (at_ms, lag_ms)
    std::size_t next = 0;
    std::list<std::pair<std::string, Kind>>::iterator recency;
  };
  std::size_t keep_;
  std::size_t max_tenants_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, Kind>, Samples, std::less<>> samples_;
  std::list<std::pair<std::string, Kind>> recency_;  // most recently added first
};

}  // namespace kcron::api
