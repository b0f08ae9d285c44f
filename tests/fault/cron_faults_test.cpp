// Fault test (label `fault`): two cron-producers share the schedules; one is killed with SIGKILL
// and never comes back. Every tick of every schedule must be emitted exactly once, as read back
// from kcron.jobs with read_committed.
#include <catch2/catch.hpp>
#include <csignal>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

TEST_CASE("two cron-producers, one killed with SIGKILL: every tick is emitted exactly once", "[fault]") {
  TestEnv env("cronkill");
  auto start = [&](const std::string& instance) {
    return start_program(env, "kcron-cron-producer", instance, instance, {"KCRON_SCHEDULES_PARTITIONS=2"});
  };
  auto first = start("c1");
  auto second = start("c2");
  std::this_thread::sleep_for(2s);

  const int schedules = fault_schedules(8, 45);
  TestProducer producer;
  submit_every_second_schedules(producer, env.prefix, schedules);
  std::this_thread::sleep_for(5s);
  second->kill_hard();
  std::this_thread::sleep_for(25s);  // session timeout, the dead transaction's timeout, restore, catch-up

  const auto ticks = tally_ticks(env.prefix, 10s + std::chrono::milliseconds(fault_jobs(0) / 5));
  REQUIRE(ticks.schedules == schedules);
  CHECK(ticks.shortest_span_s >= 20);  // the survivor carried on
  WARN(report_fault("cron-producer-sigkill", ticks.ticks, ticks.once(), ticks.missing, ticks.doubled, -1,
                    fmt::format("schedules={} unit=ticks", schedules)));
  CHECK(ticks.missing == 0);
  CHECK(ticks.doubled == 0);
}

TEST_CASE("a cron-producer frozen past its session timeout emits nothing when it wakes up, every tick once", "[fault]") {
  TestEnv env("cronzombie");
  auto start = [&](const std::string& instance) {
    return start_program(env, "kcron-cron-producer", instance, instance, {"KCRON_SCHEDULES_PARTITIONS=2"});
  };
  auto first = start("c1");
  auto second = start("c2");
  std::this_thread::sleep_for(2s);

  const int schedules = fault_schedules(8, 49);
  TestProducer producer;
  submit_every_second_schedules(producer, env.prefix, schedules);
  std::this_thread::sleep_for(4s);
  const int assignments_before = count_in_log(first->log_path(), "event=assigned");
  REQUIRE(::kill(second->pid(), SIGSTOP) == 0);
  const auto frozen_at = std::chrono::steady_clock::now();
  const auto deadline = frozen_at + 40s;
  while (count_in_log(first->log_path(), "event=assigned") <= assignments_before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  const double takeover_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen_at).count();
  REQUIRE(count_in_log(first->log_path(), "event=assigned") > assignments_before);
  std::this_thread::sleep_for(12s);  // past the zombie's transaction timeout
  REQUIRE(::kill(second->pid(), SIGCONT) == 0);
  std::this_thread::sleep_for(8s);  // the zombie's late commits, if any, would show up now

  const auto ticks = tally_ticks(env.prefix, 10s + std::chrono::milliseconds(fault_jobs(0) / 5));
  REQUIRE(ticks.schedules == schedules);
  WARN(report_fault("cron-producer-zombie-sigstop", ticks.ticks, ticks.once(), ticks.missing, ticks.doubled, takeover_s,
                    fmt::format("schedules={} unit=ticks zombie_exited={}", schedules, second->running() ? "no" : "yes")));
  CHECK(ticks.missing == 0);
  CHECK(ticks.doubled == 0);
}
