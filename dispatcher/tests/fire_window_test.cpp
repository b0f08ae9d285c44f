#include "core/fire_window.h"

#include <catch2/catch.hpp>

using namespace kcron;
using namespace kcron::dispatcher;

namespace {

constexpr Instant kNow = instant_from_ms(1'790'000'000'000);
constexpr Millis kWidth{1000};

FireAheadSettings settings(Millis max = Millis(5000)) {
  return FireAheadSettings{.max = max, .min_lead = Millis(500), .max_per_exec_partition = 100, .assumed_fire_rate = 20000};
}

}  // namespace

TEST_CASE("the lead is the floor while commits are fast, four mean commits when slow, never beyond W_max") {
  FireWindow window(settings());
  CHECK(window.lead() == Millis(500));
  window.observe_commit(10, Millis(20), Millis(100));
  CHECK(window.lead() == Millis(500));
  for (int commit = 0; commit < 50; ++commit) window.observe_commit(10, Millis(300), Millis(400));
  CHECK(window.lead() >= Millis(1150));
  CHECK(window.lead() <= Millis(1200));
  for (int commit = 0; commit < 50; ++commit) window.observe_commit(10, Millis(4000), Millis(4000));
  CHECK(window.lead() == Millis(5000));
}

TEST_CASE("with little coming due the window is the lead") {
  FireWindow window(settings());
  CHECK(window.window(kNow, {}, kWidth) == Millis(500));
  CHECK(window.window(kNow, {{kNow + Millis(2000), 10}, {kNow + Millis(3000), 10}}, kWidth) == Millis(500));
}

TEST_CASE("a burst widens the window by the time to fire it at the measured rate, with a margin") {
  FireWindow window(settings());
  for (int batch = 0; batch < 60; ++batch) window.observe_commit(10'000, Millis(50), Millis(200));  // 50k jobs/s
  CHECK(window.fire_rate() == Approx(50'000).epsilon(0.001));
  // 100k due in 3.6 s: need = 0.5 s + 1.5 * 100k / 50k = 3.5 s: not yet.
  CHECK(window.window(kNow, {{kNow + Millis(3600), 100'000}}, kWidth) == Millis(500));
  // In 3.4 s: the window reaches it.
  const auto widened = window.window(kNow, {{kNow + Millis(3400), 100'000}}, kWidth);
  CHECK(widened >= Millis(3500));
  CHECK(widened <= Millis(3502));  // the measured rate is 50k/s to within rounding
  // Jobs due before the burst count as queued ahead of it.
  CHECK(window.window(kNow, {{kNow, 50'000}, {kNow + Millis(4000), 100'000}}, kWidth) == Millis(5000));
}

TEST_CASE("the window never exceeds W_max and is zero when fire-ahead is off") {
  FireWindow capped(settings(Millis(2000)));
  CHECK(capped.window(kNow, {{kNow + Millis(1500), 1'000'000}}, kWidth) == Millis(2000));
  FireWindow off(settings(Millis(0)));
  CHECK(off.window(kNow, {{kNow, 1'000'000}}, kWidth) == Millis(0));
}

TEST_CASE("only batches that fired many jobs measure the fire rate, each moving the mean from the assumption") {
  FireWindow window(settings());
  window.observe_commit(999, Millis(10), Millis(10));
  CHECK(window.fire_rate() == Approx(20'000));            // still the assumption
  window.observe_commit(5000, Millis(100), Millis(500));  // 10k/s: a fifth of the way there
  CHECK(window.fire_rate() == Approx(18'000));
  window.observe_commit(5000, Millis(100), Millis(250));  // 20k/s
  CHECK(window.fire_rate() == Approx(18'400));
}
