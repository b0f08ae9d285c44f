#include "core/lag_window.h"

#include <algorithm>

namespace kcron::api {

LagWindow::LagWindow(std::size_t keep, std::size_t max_tenants)
    : keep_(std::max<std::size_t>(1, keep)), max_tenants_(std::max<std::size_t>(1, max_tenants)) {}

void LagWindow::add(std::string_view tenant, Kind kind, std::int64_t at_ms, std::int64_t lag_ms) {
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(std::string(tenant), kind);
  auto found = samples_.find(key);
  if (found == samples_.end()) {
    // Two kinds per tenant: the oldest series go when the tenants are beyond the bound.
    while (samples_.size() >= 2 * max_tenants_ && !recency_.empty()) {
      samples_.erase(recency_.back());
      recency_.pop_back();
    }
    recency_.push_front(key);
    found = samples_.emplace(std::move(key), Samples{}).first;
    found->second.recency = recency_.begin();
  } else {
    recency_.splice(recency_.begin(), recency_, found->second.recency);
  }
  auto& series = found->second;
  if (series.ring.size() < keep_) {
    series.ring.emplace_back(at_ms, lag_ms);
  } else {
    series.ring[series.next] = {at_ms, lag_ms};
  }
  series.next = (series.next + 1) % keep_;
}

LagWindow::Summary LagWindow::summary(std::string_view tenant, Kind kind, std::int64_t since_ms) const {
  std::vector<std::int64_t> lags;
  {
    std::lock_guard lock(mutex_);
    const auto found = samples_.find(std::make_pair(std::string(tenant), kind));
    if (found == samples_.end()) return {};
    for (const auto& [at_ms, lag_ms] : found->second.ring) {
      if (at_ms >= since_ms) lags.push_back(lag_ms);
    }
  }
  Summary summary;
  summary.count = lags.size();
  if (lags.empty()) return summary;
  std::sort(lags.begin(), lags.end());
  // Nearest rank: the smallest sample at or above the given share of them.
  const auto rank = [&lags](double share) {
    const auto index = static_cast<std::size_t>(std::max(1.0, share * static_cast<double>(lags.size()) + 0.999999)) - 1;
    return lags[std::min(index, lags.size() - 1)];
  };
  summary.p50_ms = rank(0.50);
  summary.p99_ms = rank(0.99);
  summary.max_ms = lags.back();
  return summary;
}

}  // namespace kcron::api
