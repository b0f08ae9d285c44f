#include "core/rate_limiter.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>

using namespace std::chrono_literals;

TEST_CASE("a bucket allows its burst, then its rate, and says how long to wait") {
  kcron::api::RateLimiter limiter(10, 5);
  const auto start = std::chrono::steady_clock::time_point(100s);
  for (int index = 0; index < 5; ++index) CHECK_FALSE(limiter.take("alice@acme", start).has_value());
  const auto refused = limiter.take("alice@acme", start);
  REQUIRE(refused.has_value());
  CHECK(*refused == 100ms);
  CHECK_FALSE(limiter.take("bob@acme", start).has_value());  // buckets are per key
  CHECK_FALSE(limiter.take("alice@acme", start + 100ms).has_value());
  CHECK(limiter.take("alice@acme", start + 100ms).has_value());
  CHECK_FALSE(limiter.take("alice@acme", start + 10s).has_value());
}

TEST_CASE("a cost takes several tokens, and a cost above the burst waits for a full bucket and pays the rest after") {
  kcron::api::RateLimiter limiter(100, 50);
  const auto start = std::chrono::steady_clock::time_point(100s);
  CHECK_FALSE(limiter.take("acme", start, 40).has_value());
  CHECK(*limiter.take("acme", start, 20) == 100ms);
  CHECK_FALSE(limiter.take("acme", start + 400ms, 1000).has_value());  // full again: a batch bigger than the burst goes
  // ...and leaves 950 tokens of debt: 9.5 s at 100/s before one more job, so 1000 jobs took 10 s.
  CHECK(*limiter.take("acme", start + 400ms, 1) == 9510ms);
  CHECK(limiter.take("acme", start + 9900ms, 1).has_value());
  CHECK_FALSE(limiter.take("acme", start + 9920ms, 1).has_value());
}

TEST_CASE("a limiter with no rate allows everything, and idle buckets are forgotten past the bound") {
  kcron::api::RateLimiter off(0, 0);
  for (int index = 0; index < 1000; ++index) CHECK_FALSE(off.take("x", std::chrono::steady_clock::time_point(1s)).has_value());
  kcron::api::RateLimiter limiter(1, 1, 10);
  const auto start = std::chrono::steady_clock::time_point(100s);
  for (int index = 0; index < 10; ++index) (void)limiter.take(fmt::format("k{}", index), start);
  CHECK(limiter.keys() == 10);
  (void)limiter.take("new", start + 5s);  // the ten refilled: forgotten
  CHECK(limiter.keys() == 1);
}
