// Fault test (label `fault`): two cron-producers share the schedules; one is killed with SIGKILL
// and never comes back. Every tick of every schedule must be emitted exactly once, as read back
// from kcron.jobs with read_committed.
#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

TEST_CASE("two cron-producers, one killed with SIGKILL: every tick is emitted exactly once", "[fault]") {
  TestEnv env("cronkill");
  auto start = [&](const std::string& instance) {
    auto vars = env.program_env(instance);
    vars.push_back("KCRON_SCHEDULES_PARTITIONS=2");
    return std::make_unique<Process>(program_path("kcron-cron-producer"), vars,
                                     fmt::format("{}/{}.log", env.state_root, instance));
  };
  auto first = start("c1");
  REQUIRE(wait_for_log(*first, "event=assigned", 60s));
  auto second = start("c2");
  REQUIRE(wait_for_log(*second, "event=assigned", 60s));
  std::this_thread::sleep_for(2s);

  constexpr int kSchedules = 8;
  TestProducer producer;
  for (int index = 0; index < kSchedules; ++index) {
    const auto id = fmt::format("tick-{}", index);
    producer.send(env.prefix + "schedules", id,
                  fmt::format(R"({{"id":"{}","expression":"*/1 * * * * *","misfire":"FIRE_ALL","catchup_window":"120s",)"
                              R"("job_template":{{"noop":{{}}}}}})",
                              id),
                  -1, {{"content-type", "application/json"}});
  }
  producer.flush();
  std::this_thread::sleep_for(5s);
  second->kill_hard();
  std::this_thread::sleep_for(25s);  // session timeout, the dead transaction's timeout, restore, catch-up

  std::map<std::string, std::map<std::int64_t, int>> emitted;  // schedule -> nominal second -> times
  for (const auto& record : read_topics({env.prefix + "jobs"}, 10s)) {
    v1::Command command;
    if (!command.ParseFromString(record.value) || !command.has_submit()) continue;
    const auto& run = command.submit().schedule_run();
    ++emitted[run.schedule_id()][run.nominal_instant().seconds()];
  }
  REQUIRE(emitted.size() == kSchedules);
  int ticks = 0;
  int missing = 0;
  int doubled = 0;
  for (const auto& [schedule, seconds] : emitted) {
    for (auto second_of = seconds.begin()->first; second_of <= seconds.rbegin()->first; ++second_of) {
      const auto found = seconds.find(second_of);
      ++ticks;
      missing += found == seconds.end() ? 1 : 0;
      doubled += found != seconds.end() && found->second > 1 ? 1 : 0;
    }
    CHECK(seconds.rbegin()->first - seconds.begin()->first >= 20);  // the survivor carried on
  }
  WARN(report_fault("cron-producer-sigkill", ticks, ticks - missing - doubled, missing, doubled, -1,
                    fmt::format("schedules={} unit=ticks", kSchedules)));
  CHECK(missing == 0);
  CHECK(doubled == 0);
}

TEST_CASE("a cron-producer frozen past its session timeout emits nothing when it wakes up, every tick once", "[fault]") {
  TestEnv env("cronzombie");
  auto start = [&](const std::string& instance) {
    auto vars = env.program_env(instance);
    vars.push_back("KCRON_SCHEDULES_PARTITIONS=2");
    return std::make_unique<Process>(program_path("kcron-cron-producer"), vars,
                                     fmt::format("{}/{}.log", env.state_root, instance));
  };
  auto first = start("c1");
  REQUIRE(wait_for_log(*first, "event=assigned", 60s));
  auto second = start("c2");
  REQUIRE(wait_for_log(*second, "event=assigned", 60s));
  std::this_thread::sleep_for(2s);

  constexpr int kSchedules = 8;
  TestProducer producer;
  for (int index = 0; index < kSchedules; ++index) {
    const auto id = fmt::format("tick-{}", index);
    producer.send(env.prefix + "schedules", id,
                  fmt::format(R"({{"id":"{}","expression":"*/1 * * * * *","misfire":"FIRE_ALL","catchup_window":"120s",)"
                              R"("job_template":{{"noop":{{}}}}}})",
                              id),
                  -1, {{"content-type", "application/json"}});
  }
  producer.flush();
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

  std::map<std::string, std::map<std::int64_t, int>> emitted;  // schedule -> nominal second -> times
  for (const auto& record : read_topics({env.prefix + "jobs"}, 10s)) {
    v1::Command command;
    if (!command.ParseFromString(record.value) || !command.has_submit()) continue;
    const auto& run = command.submit().schedule_run();
    ++emitted[run.schedule_id()][run.nominal_instant().seconds()];
  }
  REQUIRE(emitted.size() == kSchedules);
  int ticks = 0;
  int missing = 0;
  int doubled = 0;
  for (const auto& [schedule, seconds] : emitted) {
    for (auto second_of = seconds.begin()->first; second_of <= seconds.rbegin()->first; ++second_of) {
      const auto found = seconds.find(second_of);
      ++ticks;
      missing += found == seconds.end() ? 1 : 0;
      doubled += found != seconds.end() && found->second > 1 ? 1 : 0;
    }
  }
  WARN(report_fault("cron-producer-zombie-sigstop", ticks, ticks - missing - doubled, missing, doubled, takeover_s,
                    fmt::format("schedules={} unit=ticks zombie_exited={}", kSchedules, second->running() ? "no" : "yes")));
  CHECK(missing == 0);
  CHECK(doubled == 0);
}
