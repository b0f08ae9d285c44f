#include <catch2/catch.hpp>

#include "core/offset_tracker.h"
#include "core/runner.h"

using namespace kcron;
using namespace kcron::worker;

TEST_CASE("the committable offset trails the oldest running job when slots finish out of order") {
  OffsetTracker tracker;
  CHECK_FALSE(tracker.committable().has_value());
  tracker.started(10);
  tracker.started(11);
  tracker.started(12);
  tracker.finished(12);
  tracker.finished(11);
  CHECK(tracker.committable() == std::optional<std::int64_t>(10));
  tracker.finished(10);
  CHECK(tracker.committable() == std::optional<std::int64_t>(13));
  CHECK(tracker.idle());
}

TEST_CASE("the runner runs noop, sleep and registered handlers and fails what it cannot run") {
  ManualClock clock(instant_from_ms(0));
  Runner runner(SystemClock::instance());
  std::atomic<bool> stop{false};
  v1::Job job;
  job.mutable_noop();
  CHECK(runner.run(job, stop).state == v1::SUCCEEDED);

  job.mutable_sleep()->mutable_duration()->set_nanos(30'000'000);
  job.mutable_sleep()->set_fail(true);
  CHECK(runner.run(job, stop).state == v1::FAILED);

  job.mutable_handler()->set_name("double");
  CHECK_THAT(runner.run(job, stop).error, Catch::Contains("no handler named 'double'"));
  runner.register_handler("double", [](const v1::Job&, const std::atomic<bool>&) { return Outcome{v1::SUCCEEDED, "", "ok", 0}; });
  CHECK(runner.run(job, stop).output == "ok");

  v1::Job empty;
  CHECK(runner.run(empty, stop).state == v1::FAILED);
}

TEST_CASE("a sleep stops early when asked, and says so") {
  Runner runner(SystemClock::instance());
  std::atomic<bool> stop{true};
  v1::Job job;
  job.mutable_sleep()->mutable_duration()->set_seconds(30);
  const auto outcome = runner.run(job, stop);
  CHECK(outcome.state == v1::FAILED);
  CHECK_THAT(outcome.error, Catch::Contains("interrupted"));
}
