#include "kcron/fault_points.h"

#include <catch2/catch.hpp>

using kcron::fault::Action;
using kcron::fault::parse;

TEST_CASE("fault points: a spec names points, hit numbers and actions", "[fault_points]") {
  auto points = parse("dispatcher.after_commit@3,worker.after_offsets,dispatcher.commit_outcome@2:unknown,x:crash_soon");
  REQUIRE(points);
  REQUIRE(points->size() == 4);
  CHECK((*points)[0].name == "dispatcher.after_commit");
  CHECK((*points)[0].nth == 3);
  CHECK((*points)[0].action == Action::kCrash);
  CHECK((*points)[1].nth == 1);
  CHECK((*points)[2].action == Action::kUnknown);
  CHECK((*points)[2].nth == 2);
  CHECK((*points)[3].action == Action::kCrashSoon);
  CHECK(parse("")->empty());
}

TEST_CASE("fault points: invalid specs are errors that say why", "[fault_points]") {
  CHECK_THAT(parse("a@0").error().message(), Catch::Contains("hit number"));
  CHECK_THAT(parse("a@x").error().message(), Catch::Contains("hit number"));
  CHECK_THAT(parse("a:explode").error().message(), Catch::Contains("unknown action 'explode'"));
  CHECK_FALSE(parse("@2"));
}

TEST_CASE("fault points: without KCRON_FAULT_POINTS every hit is a no-op", "[fault_points]") {
  CHECK(kcron::fault::hit("dispatcher.after_commit") == Action::kNone);
}
