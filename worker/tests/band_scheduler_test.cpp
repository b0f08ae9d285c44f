#include "core/band_scheduler.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

using namespace kcron;
using namespace kcron::worker;
using std::chrono::milliseconds;

namespace {

const Instant kStart = instant_from_ms(1'700'000'000'000);

// Every band in `bands` has `waiting` jobs, the oldest fetched at `fetched`.
BandBacklogs backlog(std::initializer_list<Band> bands, Instant fetched = kStart, std::size_t waiting = 5) {
  BandBacklogs backlogs{};
  for (const auto band : bands) backlogs[band_index(band)] = {waiting, fetched};
  return backlogs;
}

std::map<Band, int> shares(BandScheduler& scheduler, const BandBacklogs& backlogs, int picks) {
  std::map<Band, int> counts;
  for (int pick = 0; pick < picks; ++pick) {
    const auto band = scheduler.pick(backlogs, kStart);
    REQUIRE(band);
    ++counts[*band];
  }
  return counts;
}

BandPolicy no_aging() {
  BandPolicy policy;
  policy.aging = milliseconds(0);
  return policy;
}

}  // namespace

TEST_CASE("with every band backlogged, picks are shared by the weights 8:4:1, spread out") {
  BandScheduler scheduler(no_aging());
  std::string round;
  for (int pick = 0; pick < 13; ++pick) {
    const auto band = scheduler.pick(backlog({Band::kHigh, Band::kNormal, Band::kLow}), kStart);
    REQUIRE(band);
    round += band == Band::kHigh ? 'H' : band == Band::kNormal ? 'N' : 'L';
  }
  CHECK(round == "HNHHNHLHNHHNH");
  const auto counts = shares(scheduler, backlog({Band::kHigh, Band::kNormal, Band::kLow}), 13 * 100);
  CHECK(counts.at(Band::kHigh) == 800);
  CHECK(counts.at(Band::kNormal) == 400);
  CHECK(counts.at(Band::kLow) == 100);
}

TEST_CASE("custom weights set the shares, smoothly: a band never waits longer than its fair gap") {
  BandPolicy policy = no_aging();
  policy.weights = {3, 2, 1};
  BandScheduler scheduler(policy);
  const auto all = backlog({Band::kHigh, Band::kNormal, Band::kLow});
  std::map<Band, int> last_pick;
  for (int pick = 0; pick < 600; ++pick) {
    const auto band = scheduler.pick(all, kStart);
    REQUIRE(band);
    if (last_pick.contains(*band)) CHECK(pick - last_pick[*band] <= 6);  // low: once per round of 6
    last_pick[*band] = pick;
  }
  CHECK(shares(scheduler, all, 600) == std::map<Band, int>{{Band::kHigh, 300}, {Band::kNormal, 200}, {Band::kLow, 100}});
}

TEST_CASE("high is served first, and low once in every round of nine against high") {
  BandScheduler scheduler(no_aging());
  const auto high_and_low = backlog({Band::kHigh, Band::kLow});
  CHECK(scheduler.pick(high_and_low, kStart) == Band::kHigh);
  BandScheduler fresh(no_aging());
  CHECK(fresh.pick(backlog({Band::kNormal, Band::kLow}), kStart) == Band::kNormal);
  BandScheduler round(no_aging());
  const auto counts = shares(round, high_and_low, 9);
  CHECK(counts.at(Band::kHigh) == 8);
  CHECK(counts.at(Band::kLow) == 1);
}

TEST_CASE("a band with nothing waiting is never picked, and nothing waiting picks none") {
  BandScheduler scheduler(no_aging());
  CHECK_FALSE(scheduler.pick(BandBacklogs{}, kStart));
  const auto counts = shares(scheduler, backlog({Band::kNormal, Band::kLow}), 500);
  CHECK_FALSE(counts.contains(Band::kHigh));
  CHECK(counts.at(Band::kNormal) == 400);
  CHECK(counts.at(Band::kLow) == 100);
  CHECK(shares(scheduler, backlog({Band::kLow}), 50).at(Band::kLow) == 50);
}

TEST_CASE("a low job past the aging threshold is served before a flood of high jobs") {
  BandPolicy policy;
  policy.aging = milliseconds(30000);
  BandScheduler scheduler(policy);
  BandBacklogs backlogs = backlog({Band::kHigh}, kStart + milliseconds(29000));
  backlogs[band_index(Band::kLow)] = {1, kStart};
  // Not aged yet: high wins, as its weight says.
  CHECK(scheduler.pick(backlogs, kStart + milliseconds(29999)) == Band::kHigh);
  // Aged: low goes first, even though the round robin would serve high.
  CHECK(scheduler.pick(backlogs, kStart + milliseconds(30000)) == Band::kLow);
  // Once the aged job is served, the next low job is fresh and high is served again.
  backlogs[band_index(Band::kLow)] = {1, kStart + milliseconds(30000)};
  CHECK(scheduler.pick(backlogs, kStart + milliseconds(30001)) == Band::kHigh);
}

TEST_CASE("among aged bands the one that waited longest goes first, and aging 0 is off") {
  BandPolicy policy;
  policy.aging = milliseconds(1000);
  BandScheduler scheduler(policy);
  BandBacklogs backlogs{};
  backlogs[band_index(Band::kHigh)] = {3, kStart + milliseconds(500)};
  backlogs[band_index(Band::kNormal)] = {3, kStart + milliseconds(200)};
  backlogs[band_index(Band::kLow)] = {3, kStart + milliseconds(100)};
  CHECK(scheduler.pick(backlogs, kStart + milliseconds(1150)) == Band::kLow);
  CHECK(scheduler.pick(backlogs, kStart + milliseconds(1150)) == Band::kLow);  // still the oldest
  backlogs[band_index(Band::kLow)] = {3, kStart + milliseconds(1150)};
  CHECK(scheduler.pick(backlogs, kStart + milliseconds(1250)) == Band::kNormal);
  // Same fetch instant: the higher band.
  backlogs[band_index(Band::kNormal)] = {3, kStart + milliseconds(100)};
  backlogs[band_index(Band::kHigh)] = {3, kStart + milliseconds(100)};
  CHECK(scheduler.pick(backlogs, kStart + milliseconds(5000)) == Band::kHigh);

  BandScheduler off(no_aging());
  BandBacklogs ancient{};
  ancient[band_index(Band::kHigh)] = {1, kStart};
  ancient[band_index(Band::kLow)] = {1, instant_from_ms(0)};
  CHECK(off.pick(ancient, kStart) == Band::kHigh);
}

TEST_CASE("an aged pick leaves the round-robin credits unchanged") {
  BandPolicy policy;
  policy.aging = milliseconds(1000);
  BandScheduler scheduler(policy);
  const auto fresh = backlog({Band::kHigh, Band::kLow}, kStart);
  CHECK(scheduler.pick(fresh, kStart) == Band::kHigh);
  const auto high_credit = scheduler.credit(Band::kHigh);
  const auto low_credit = scheduler.credit(Band::kLow);
  BandBacklogs aged = fresh;
  aged[band_index(Band::kLow)].oldest_fetched = kStart - milliseconds(5000);
  CHECK(scheduler.pick(aged, kStart) == Band::kLow);
  CHECK(scheduler.credit(Band::kHigh) == high_credit);
  CHECK(scheduler.credit(Band::kLow) == low_credit);
}

TEST_CASE("a band that empties and refills saves up no credit") {
  BandScheduler scheduler(no_aging());
  // Low waits alone for a long time, then high floods in: high is served at once and low gets its
  // 1 in 9, not a burst for the picks it made alone.
  shares(scheduler, backlog({Band::kLow}), 1000);
  CHECK(scheduler.credit(Band::kHigh) == 0);
  const auto counts = shares(scheduler, backlog({Band::kHigh, Band::kLow}), 9);
  CHECK(counts.at(Band::kHigh) == 8);
  CHECK(counts.at(Band::kLow) == 1);
  // High empty for many picks: its credit stays at zero, so it does not come back owed picks.
  shares(scheduler, backlog({Band::kNormal, Band::kLow}), 1000);
  CHECK(scheduler.credit(Band::kHigh) == 0);
  CHECK(shares(scheduler, backlog({Band::kHigh, Band::kNormal, Band::kLow}), 13) ==
        std::map<Band, int>{{Band::kHigh, 8}, {Band::kNormal, 4}, {Band::kLow, 1}});
}

TEST_CASE("credits stay bounded while bands empty and refill at random") {
  BandScheduler scheduler(no_aging());
  std::mt19937 random(42);
  std::bernoulli_distribution waits(0.5);
  constexpr std::int64_t kTotalWeight = 8 + 4 + 1;
  std::int64_t largest = 0;
  for (int pick = 0; pick < 200000; ++pick) {
    BandBacklogs backlogs{};
    for (const auto band : kAllBands) {
      if (waits(random)) backlogs[band_index(band)] = {1, kStart};
    }
    const auto band = scheduler.pick(backlogs, kStart);
    const bool any_waiting = backlogs[0].waiting + backlogs[1].waiting + backlogs[2].waiting > 0;
    if (band.has_value() != any_waiting || (band && backlogs[band_index(*band)].waiting == 0)) FAIL("picked " << pick);
    for (const auto each : kAllBands) largest = std::max(largest, std::abs(scheduler.credit(each)));
  }
  CHECK(largest <= 2 * kTotalWeight);
}

TEST_CASE("band weights must be 1-1000 and aging not negative") {
  CHECK(validate(BandPolicy{}).ok());
  BandPolicy zero;
  zero.weights = {8, 0, 1};
  const auto refused = validate(zero);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message() == "bands.normal_weight: 0 is outside 1-1000");
  BandPolicy huge;
  huge.weights = {1001, 4, 1};
  CHECK_FALSE(validate(huge).ok());
  BandPolicy negative;
  negative.aging = milliseconds(-1);
  CHECK_FALSE(validate(negative).ok());
}
