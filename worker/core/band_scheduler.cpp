#include "core/band_scheduler.h"

#include <utility>

namespace kcron::worker {

Status validate(const BandPolicy& policy) {
  for (const auto band : kAllBands) {
    const auto weight = policy.weights[band_index(band)];
    if (weight < 1 || weight > kMaxBandWeight)
      return make_error("bands.{}_weight: {} is outside 1-{}", band_name(band), weight, kMaxBandWeight);
  }
  if (policy.aging.count() < 0) return make_error("bands.aging_ms: {} is negative (0 turns aging off)", policy.aging.count());
  return Status::success();
}

BandScheduler::BandScheduler(BandPolicy policy) : policy_(policy) {}

std::optional<Band> BandScheduler::pick(const BandBacklogs& backlogs, Instant now) {
  if (policy_.aging.count() > 0) {
    std::optional<Band> aged;
    for (const auto band : kAllBands) {
      const auto& backlog = backlogs[band_index(band)];
      if (backlog.waiting == 0 || now - backlog.oldest_fetched < policy_.aging) continue;
      if (!aged || backlog.oldest_fetched < backlogs[band_index(*aged)].oldest_fetched) aged = band;
    }
    if (aged) return aged;
  }
  // Smooth weighted round robin: every waiting band earns its weight, the richest is served and
  // pays the total. Bands are visited high first and only a strictly larger credit wins.
  std::optional<Band> chosen;
  std::int64_t total = 0;
  for (const auto band : kAllBands) {
    auto& credit = credits_[band_index(band)];
    if (backlogs[band_index(band)].waiting == 0) {
      credit = 0;
      continue;
    }
    const auto weight = policy_.weights[band_index(band)];
    credit += weight;
    total += weight;
    if (!chosen || credit > credits_[band_index(*chosen)]) chosen = band;
  }
  if (chosen) credits_[band_index(*chosen)] -= total;
  return chosen;
}

}  // namespace kcron::worker
