#include "kcron/recovery_budget.h"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using kcron::RecoveryBudget;

TEST_CASE("recovery budget: at most N recoveries within the window, then refused until the oldest ages out",
          "[recovery_budget]") {
  RecoveryBudget budget(3, 10min);
  const RecoveryBudget::TimePoint start{};
  CHECK(budget.try_spend(start));
  CHECK(budget.try_spend(start + 1min));
  CHECK(budget.try_spend(start + 2min));
  CHECK_FALSE(budget.try_spend(start + 3min));
  CHECK_FALSE(budget.try_spend(start + 9min + 59s));  // a refusal is not recorded
  CHECK(budget.try_spend(start + 10min));             // the first one aged out
  CHECK_FALSE(budget.try_spend(start + 10min + 30s));
  CHECK(budget.try_spend(start + 11min));
}

TEST_CASE("recovery budget: spread-out recoveries are never refused", "[recovery_budget]") {
  RecoveryBudget budget(2, 1min);
  RecoveryBudget::TimePoint now{};
  for (int index = 0; index < 100; ++index) {
    REQUIRE(budget.try_spend(now));
    now += 31s;
  }
}
