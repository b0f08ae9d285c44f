// The cron-producer end to end on the real broker: a schedule produced to kcron.schedules runs
// on a worker at each tick, exactly once, across a SIGKILL of the cron-producer.
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Process> start_program(TestEnv& env, const std::string& program, const std::string& instance, int launch) {
  auto vars = env.program_env(instance);
  vars.push_back("KCRON_SCHEDULES_PARTITIONS=2");
  auto process =
      std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}-{}.log", env.state_root, instance, launch));
  INFO(tail_file(process->log_path()));
  REQUIRE(wait_for_log(*process, "event=assigned", 60s));
  return process;
}

// Nominal instants (epoch s) of the committed runs of a schedule, with how often each fired.
std::map<std::int64_t, int> runs_of(const std::vector<Record>& exec, const std::string& schedule_id) {
  std::map<std::int64_t, int> runs;
  for (const auto& record : exec) {
    v1::Execution execution;
    REQUIRE(execution.ParseFromString(record.value));
    if (execution.job().schedule_run().schedule_id() == schedule_id)
      ++runs[execution.job().schedule_run().nominal_instant().seconds()];
  }
  return runs;
}

}  // namespace

TEST_CASE("a schedule runs at every tick, exactly once, across a SIGKILL of the cron-producer", "[integration]") {
  TestEnv env("cron");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", 1);
  auto worker = start_program(env, "kcron-worker", "w1", 1);
  auto producer_process = start_program(env, "kcron-cron-producer", "c1", 1);

  TestProducer producer;
  producer.send(env.prefix + "schedules", "every-2s",
                R"({"id":"every-2s","expression":"*/2 * * * * *","time_zone":"Europe/Berlin","misfire":"FIRE_ALL",)"
                R"("catchup_window":"60s","job_template":{"noop":{}}})",
                -1, {{"content-type", "application/json"}});
  producer.send(env.prefix + "schedules", "broken", R"({"id":"broken","expression":"0 0 30 2 *","job_template":{"noop":{}}})", -1,
                {{"content-type", "application/json"}});
  producer.flush();
  std::this_thread::sleep_for(8s);
  producer_process->kill_hard();
  std::this_thread::sleep_for(1s);
  producer_process = start_program(env, "kcron-cron-producer", "c1", 2);
  std::this_thread::sleep_for(8s);

  const auto exec = read_topics(exec_topics(env.prefix), 10s);
  const auto runs = runs_of(exec, "every-2s");
  REQUIRE(runs.size() >= 6);
  // Every 2 s from the first run to the last: none missing, none twice.
  const auto first = runs.begin()->first;
  const auto last = runs.rbegin()->first;
  int doubled = 0;
  int missing = 0;
  for (auto instant = first; instant <= last; instant += 2) {
    const auto found = runs.find(instant);
    missing += found == runs.end() ? 1 : 0;
    doubled += found != runs.end() && found->second > 1 ? 1 : 0;
  }
  WARN(fmt::format("cron-failover: runs={} first={} last={} missing={} doubled={}", runs.size(), first, last, missing, doubled));
  CHECK(missing == 0);
  CHECK(doubled == 0);
  CHECK(last - first >= 12);

  bool rejected = false;
  for (const auto& record : read_topics({env.prefix + "dead-letters"}, 3s)) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    if (record.key == "broken") {
      rejected = true;
      CHECK_THAT(letter.reason(), Catch::Contains("never"));
    }
  }
  CHECK(rejected);
}
