// What happens after a failed attempt: retry after a backoff (exponential, capped, optionally
// with full jitter) while tries are left and the failure is retriable, otherwise the job is DEAD.
// Pure: the random draw is a parameter, so tests pin it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kcron::worker {

struct Backoff {
  std::chrono::milliseconds initial{1000};
  double multiplier = 2.0;
  std::chrono::milliseconds max{300000};
  bool full_jitter = false;
};

struct RetryDecision {
  bool retry = false;
  std::chrono::milliseconds delay{0};  // from now until the next attempt is due
  std::string reason;                  // why it is DEAD, when it is
};

// The backoff before attempt `next_attempt` (1 = the first retry): initial * multiplier^(n-1),
// capped at max; with full jitter a uniform draw in [0, that], `unit_random` in [0, 1).
std::chrono::milliseconds backoff_before(const Backoff& backoff, std::uint32_t next_attempt, double unit_random);

// `attempt` is the attempt that just failed (0 = the first try); `max_retries` the retries the
// job allows after its first try.
RetryDecision decide_retry(const Backoff& backoff, std::uint32_t max_retries, std::uint32_t attempt, bool retriable,
                           double unit_random);

}  // namespace kcron::worker
