// Fault test (label `fault`): two cron-producers share the schedules; one is killed with SIGKILL
// and never comes back. Every tick of every schedule must be emitted exactly once, as read back
// from kcron.jobs with read_committed.
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
  WARN(fmt::format("cron-producer-sigkill: schedules={} ticks={} missing={} doubled={}", kSchedules, ticks, missing, doubled));
  CHECK(missing == 0);
  CHECK(doubled == 0);
}
