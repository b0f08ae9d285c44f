#include "core/retry_policy.h"

#include <catch2/catch.hpp>

using namespace kcron::worker;
using std::chrono::milliseconds;

TEST_CASE("the backoff grows by the multiplier from the initial delay and stops at the cap") {
  const Backoff backoff{milliseconds(1000), 2.0, milliseconds(10000), false};
  CHECK(backoff_before(backoff, 1, 0.5) == milliseconds(1000));
  CHECK(backoff_before(backoff, 2, 0.5) == milliseconds(2000));
  CHECK(backoff_before(backoff, 3, 0.5) == milliseconds(4000));
  CHECK(backoff_before(backoff, 4, 0.5) == milliseconds(8000));
  CHECK(backoff_before(backoff, 5, 0.5) == milliseconds(10000));
  CHECK(backoff_before(backoff, 4000, 0.5) == milliseconds(10000));  // no overflow
}

TEST_CASE("full jitter draws uniformly between zero and the exponential delay") {
  const Backoff backoff{milliseconds(1000), 3.0, milliseconds(60000), true};
  CHECK(backoff_before(backoff, 3, 0.0) == milliseconds(0));
  CHECK(backoff_before(backoff, 3, 0.5) == milliseconds(4500));
  CHECK(backoff_before(backoff, 3, 0.999) == milliseconds(8991));
  CHECK(backoff_before(backoff, 3, 7.0) == milliseconds(9000));  // a draw out of range is clamped
}

TEST_CASE("a multiplier below one or not a number is treated as a constant backoff") {
  CHECK(backoff_before({milliseconds(500), 0.5, milliseconds(10000), false}, 4, 0) == milliseconds(500));
  CHECK(backoff_before({milliseconds(500), std::nan(""), milliseconds(10000), false}, 4, 0) == milliseconds(500));
}

TEST_CASE("a retriable failure retries while retries are left, then the job is dead") {
  const Backoff backoff{milliseconds(100), 2.0, milliseconds(1000), false};
  auto first = decide_retry(backoff, 2, 0, true, 0);
  CHECK(first.retry);
  CHECK(first.delay == milliseconds(100));
  auto second = decide_retry(backoff, 2, 1, true, 0);
  CHECK(second.retry);
  CHECK(second.delay == milliseconds(200));
  auto third = decide_retry(backoff, 2, 2, true, 0);
  CHECK_FALSE(third.retry);
  CHECK(third.reason == "2 retries used");
}

TEST_CASE("a failure that is not retriable is dead at once, whatever retries are left") {
  auto decision = decide_retry({}, 5, 0, false, 0);
  CHECK_FALSE(decision.retry);
  CHECK(decision.reason == "the failure is not retriable");
  CHECK(decide_retry({}, 0, 0, true, 0).reason == "the job allows no retries");
}
