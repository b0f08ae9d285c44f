#include "core/fire_window.h"

#include <algorithm>
#include <cmath>

namespace kcron::dispatcher {
namespace {

// Batches firing fewer jobs than this say little about the rate (their cycle is mostly waiting).
constexpr std::size_t kRateSampleFires = 1000;
constexpr double kSmoothing = 0.2;  // weight of the newest sample in the moving means
constexpr double kRateMargin = 1.5;
constexpr double kCommitsPerLead = 4;

}  // namespace

void FireWindow::observe_commit(std::size_t fired, Millis took, Millis cycle) {
  const auto took_ms = static_cast<double>(std::max<std::int64_t>(0, took.count()));
  commit_ms_ = commit_ms_ == 0 ? took_ms : commit_ms_ + kSmoothing * (took_ms - commit_ms_);
  if (fired < kRateSampleFires || cycle.count() <= 0) return;
  const double rate = static_cast<double>(fired) * 1000.0 / static_cast<double>(cycle.count());
  // Every measurement moves the mean, the first one too: one batch says little, and a rate
  // taken too high would hold back the fires a burst needs.
  fire_rate_ += kSmoothing * (rate - fire_rate_);
}

Millis FireWindow::lead() const {
  const auto from_commits = Millis(static_cast<std::int64_t>(std::ceil(kCommitsPerLead * commit_ms_)));
  return std::min(settings_.max, std::max(settings_.min_lead, from_commits));
}

Millis FireWindow::window(Instant now, const std::vector<BucketCount>& upcoming, Millis bucket_width) const {
  if (settings_.max.count() <= 0) return Millis(0);
  const Millis lead = this->lead();
  Millis window = lead;
  const double rate = std::max(1.0, fire_rate_);
  std::int64_t queued = 0;  // jobs due up to the end of the bucket at hand
  for (const auto& bucket : upcoming) {
    queued += std::max<std::int64_t>(0, bucket.count);
    const auto to_fire = Millis(static_cast<std::int64_t>(std::ceil(kRateMargin * 1000.0 * static_cast<double>(queued) / rate)));
    const Millis need = lead + to_fire;
    if (bucket.begin - now <= need) window = std::max(window, std::min(bucket.begin + bucket_width - now, need));
  }
  return std::min(window, settings_.max);
}

}  // namespace kcron::dispatcher
