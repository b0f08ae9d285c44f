// Fault tests (label `fault`): two dispatchers share the jobs partitions; one is killed with
// SIGKILL, or frozen with SIGSTOP past its session timeout and thawed. The committed exec
// records are then counted per job id: each must be there exactly once.
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

struct TwoDispatchers {
  TestEnv& env;
  std::unique_ptr<Process> first;
  std::unique_ptr<Process> second;

  explicit TwoDispatchers(TestEnv& test_env) : env(test_env) {
    first = start("d1");
    REQUIRE(wait_for_log(*first, "event=assigned", 60s));
    second = start("d2");
    REQUIRE(wait_for_log(*second, "event=assigned", 60s));
    // d1 was revoked and assigned again when d2 joined; wait until it holds its share.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (count_in_log(first->log_path(), "event=assigned") < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    REQUIRE(count_in_log(first->log_path(), "event=assigned") >= 2);
  }
  std::unique_ptr<Process> start(const std::string& instance) {
    auto env_vars = env.program_env(instance);
    env_vars.emplace_back("KCRON_LOG_LEVEL=info");
    return std::make_unique<Process>(program_path("kcron-dispatcher"), env_vars,
                                     fmt::format("{}/{}.log", env.state_root, instance));
  }
};

void submit_spread(TestProducer& producer, const std::string& prefix, const std::string& id_prefix, int count,
                   std::int64_t first_delay_ms, std::int64_t spread_ms) {
  for (int index = 0; index < count; ++index) {
    const auto id = fmt::format("{}{}", id_prefix, index);
    producer.send(prefix + "jobs", id, submit_json(id, delay_json(first_delay_ms + spread_ms * index / count)));
  }
  producer.flush();
}

}  // namespace

// Log lines of `path` from line `skip` on that contain `needle`.
std::vector<std::string> log_lines_after(const std::string& path, int skip, const std::string& needle) {
  std::ifstream file(path);
  std::string line;
  std::vector<std::string> lines;
  for (int index = 0; std::getline(file, line); ++index) {
    if (index >= skip && line.find(needle) != std::string::npos) lines.push_back(line);
  }
  return lines;
}

int line_count(const std::string& path) {
  std::ifstream file(path);
  std::string line;
  int count = 0;
  while (std::getline(file, line)) ++count;
  return count;
}

// Epoch ms of a log line's ts=2026-11-23T21:43:19.750Z.
std::int64_t log_time_ms(const std::string& line) {
  const auto at = line.find("ts=");
  if (at == std::string::npos) return 0;
  std::tm parts{};
  int millis = 0;
  if (std::sscanf(line.c_str() + at + 3, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &parts.tm_year, &parts.tm_mon, &parts.tm_mday,
                  &parts.tm_hour, &parts.tm_min, &parts.tm_sec, &millis) != 7) {
    return 0;
  }
  parts.tm_year -= 1900;
  parts.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&parts)) * 1000 + millis;
}

double field_seconds(const std::string& line, const std::string& name) {
  const auto at = line.find(name + "=");
  return at == std::string::npos ? 0.0 : std::atof(line.c_str() + at + name.size() + 1);
}

TEST_CASE("two dispatchers, one killed with SIGKILL: the survivor restores its partitions and fires every job once", "[fault]") {
  TestEnv env("failover");
  TwoDispatchers dispatchers(env);
  const int jobs = fault_jobs(3000);
  TestProducer producer;
  // Due after the kill, and the kill after both dispatchers have taken every job in: at the kill
  // the victim's share is all pending in its delay store.
  submit_spread(producer, env.prefix, "f-", jobs, 6000 + jobs / 5, 8000);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000 + jobs / 10));
  const auto survivor_lines = line_count(dispatchers.first->log_path());
  dispatchers.second->kill_hard();
  const auto kill_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();

  const auto exec = read_exec_until_all(env.prefix, "f-", jobs, std::max<std::chrono::milliseconds>(180s, jobs * 2ms));
  const auto result = tally(exec, "f-", jobs);
  std::int64_t worst_lag_ms = 0;
  for (const auto& record : exec) {
    v1::Execution execution;
    if (execution.ParseFromString(record.value)) worst_lag_ms = std::max(worst_lag_ms, execution.fired_ms() - execution.due_ms());
  }
  const auto assigned = log_lines_after(dispatchers.first->log_path(), survivor_lines, "event=assigned");
  double restore_seconds = 0;
  std::int64_t restored_records = 0;
  for (const auto& line : log_lines_after(dispatchers.first->log_path(), survivor_lines, "event=restore_done")) {
    restore_seconds += field_seconds(line, "seconds");
    restored_records += static_cast<std::int64_t>(field_seconds(line, "records"));
  }
  const double takeover_seconds = assigned.empty() ? -1.0 : static_cast<double>(log_time_ms(assigned.front()) - kill_ms) / 1000.0;
  WARN(report_fault("dispatcher-failover-sigkill", result, takeover_seconds,
                    fmt::format("restore_s={:.2f} restored_records={} worst_fire_lag_s={:.1f}", restore_seconds, restored_records,
                                static_cast<double>(worst_lag_ms) / 1000.0)));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == jobs);
}

TEST_CASE("a dispatcher frozen past its session timeout commits nothing when it wakes up", "[fault]") {
  TestEnv env("zombie");
  TwoDispatchers dispatchers(env);
  const int jobs = fault_jobs(3000);
  TestProducer producer;
  submit_spread(producer, env.prefix, "z-", jobs, 2000, 20000);  // a steady stream for 20 s
  std::this_thread::sleep_for(4s);
  const int assignments_before = count_in_log(dispatchers.first->log_path(), "event=assigned");
  REQUIRE(::kill(dispatchers.second->pid(), SIGSTOP) == 0);
  // Past session.timeout.ms (6 s) and transaction.timeout.ms (10 s): the group moves on.
  const auto deadline = std::chrono::steady_clock::now() + 40s;
  while (count_in_log(dispatchers.first->log_path(), "event=assigned") <= assignments_before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  REQUIRE(count_in_log(dispatchers.first->log_path(), "event=assigned") > assignments_before);
  std::this_thread::sleep_for(12s);
  REQUIRE(::kill(dispatchers.second->pid(), SIGCONT) == 0);

  const auto result =
      tally(read_exec_until_all(env.prefix, "z-", jobs, std::max<std::chrono::milliseconds>(120s, jobs * 2ms), 4s), "z-", jobs);
  WARN(report_fault(
      "dispatcher-zombie-sigstop", result, -1,
      fmt::format("zombie_aborts={} zombie_exited={}", count_in_log(dispatchers.second->log_path(), "event=transaction_abort"),
                  dispatchers.second->running() ? "no" : "yes")));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == jobs);
}

// Every program at once: 3 dispatchers, 3 workers and 2 cron-producers are started, stopped with
// SIGTERM and killed with SIGKILL at random every 1-4 s while a stream of delayed jobs comes due
// and 4 every-second schedules tick. At the end d1, d2, w1, w2 and c1 run. Every job fires once
// and succeeds once; every tick is emitted once.
TEST_CASE("a rebalance storm of dispatchers, workers and cron-producers joining, leaving and dying loses and duplicates nothing",
          "[fault]") {
  TestEnv env("storm");
  const char* seconds_text = std::getenv("KCRON_STORM_SECONDS");
  const int storm_seconds = seconds_text != nullptr ? std::atoi(seconds_text) : 25;
  const int jobs = fault_jobs(100 * storm_seconds);
  TestProducer producer;
  submit_spread(producer, env.prefix, "s-", jobs, 3000, std::int64_t{storm_seconds} * 1000);
  submit_every_second_schedules(producer, env.prefix, 4);

  std::map<std::string, std::unique_ptr<Process>> running;
  std::map<char, int> launches;
  auto launch = [&](const std::string& instance) {
    const auto program = instance.front() == 'd'   ? "kcron-dispatcher"
                         : instance.front() == 'w' ? "kcron-worker"
                                                   : "kcron-cron-producer";
    running[instance] = start_program(env, program, instance, fmt::format("{}-{}", instance, ++launches[instance.front()]),
                                      {"KCRON_SCHEDULES_PARTITIONS=2"}, false);
  };
  const std::vector<std::string> instances = {"d1", "d2", "d3", "w1", "w2", "w3", "c1", "c2"};
  for (const auto* instance : {"d1", "w1", "c1"}) launch(instance);
  std::mt19937 random(20261123);
  int terms = 0;
  int kills = 0;
  const auto storm_end = std::chrono::steady_clock::now() + std::chrono::seconds(storm_seconds);
  while (std::chrono::steady_clock::now() < storm_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000 + random() % 3000));
    const std::string& instance = instances[random() % instances.size()];
    auto found = running.find(instance);
    if (found == running.end() || !found->second->running()) {
      launch(instance);
    } else if (random() % 2 == 0) {
      found->second->terminate(std::chrono::seconds(40));
      ++terms;
    } else {
      found->second->kill_hard();
      ++kills;
    }
  }
  for (const auto* instance : {"d1", "d2", "w1", "w2", "c1"}) {
    if (running[instance] == nullptr || !running[instance]->running()) launch(instance);
  }
  const auto timeout = std::max<std::chrono::milliseconds>(120s, jobs * 2ms);
  const auto result = tally(read_exec_until_all(env.prefix, "s-", jobs, timeout, 3s), "s-", jobs);
  const auto succeeded = read_succeeded_until_all(env.prefix, "s-", jobs, timeout);
  std::this_thread::sleep_for(3s);  // the last ticks of the schedules' catch-up
  const auto ticks = tally_ticks(env.prefix, 10s + std::chrono::milliseconds(fault_jobs(0) / 5));
  WARN(report_fault("storm-all-programs", result, -1,
                    fmt::format("seconds={} launches=d{}/w{}/c{} sigterm={} sigkill={} succeeded_once={} "
                                "succeeded_lost={} succeeded_twice={} ticks={} ticks_missing={} ticks_doubled={}",
                                storm_seconds, launches['d'], launches['w'], launches['c'], terms, kills, succeeded.once,
                                succeeded.lost, succeeded.duplicated, ticks.ticks, ticks.missing, ticks.doubled)));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == jobs);
  CHECK(succeeded.lost == 0);
  CHECK(succeeded.duplicated == 0);
  CHECK(ticks.schedules == 4);
  CHECK(ticks.missing == 0);
  CHECK(ticks.doubled == 0);
}
