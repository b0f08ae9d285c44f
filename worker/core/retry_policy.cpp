#include "core/retry_policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace kcron::worker {

std::chrono::milliseconds backoff_before(const Backoff& backoff, std::uint32_t next_attempt, double unit_random) {
  const double initial = static_cast<double>(std::max<std::int64_t>(0, backoff.initial.count()));
  const double cap = static_cast<double>(std::max<std::int64_t>(0, backoff.max.count()));
  const double multiplier = std::isfinite(backoff.multiplier) && backoff.multiplier >= 1.0 ? backoff.multiplier : 1.0;
  const double exponent = next_attempt == 0 ? 0.0 : static_cast<double>(next_attempt - 1);
  // pow overflows to inf for large exponents; min() with the cap keeps the result finite.
  double delay = std::min(cap, initial * std::pow(multiplier, exponent));
  if (!std::isfinite(delay)) delay = cap;
  if (backoff.full_jitter) delay *= std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(delay));
}

RetryDecision decide_retry(const Backoff& backoff, std::uint32_t max_retries, std::uint32_t attempt, bool retriable,
                           double unit_random) {
  if (!retriable) return {false, {}, "the failure is not retriable"};
  if (attempt >= max_retries) {
    return {false, {}, max_retries == 0 ? std::string("the job allows no retries") : fmt::format("{} retries used", max_retries)};
  }
  return {true, backoff_before(backoff, attempt + 1, unit_random), {}};
}

}  // namespace kcron::worker
