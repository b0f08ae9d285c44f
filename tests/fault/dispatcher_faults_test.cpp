// Fault tests (label `fault`): two dispatchers share the jobs partitions; one is killed with
// SIGKILL, or frozen with SIGSTOP past its session timeout and thawed. The committed exec
// records are then counted per job id: each must be there exactly once.
#include <signal.h>

#include <catch2/catch.hpp>
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
    env_vars.push_back("KCRON_LOG_LEVEL=info");
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

TEST_CASE("two dispatchers, one killed with SIGKILL: the survivor restores its partitions and fires every job once", "[fault]") {
  TestEnv env("failover");
  TwoDispatchers dispatchers(env);
  constexpr int kJobs = 3000;
  TestProducer producer;
  submit_spread(producer, env.prefix, "f-", kJobs, 4000, 8000);  // due 4..12 s from now
  std::this_thread::sleep_for(2s);
  dispatchers.second->kill_hard();
  const auto killed_at = std::chrono::system_clock::now();

  const auto exec = read_exec_until_all(env.prefix, "f-", kJobs, 120s);
  const auto result = tally(exec, "f-", kJobs);
  // When did the survivor take over? The latest fire relative to the kill tells the failover time.
  std::int64_t last_fired_ms = 0;
  for (const auto& record : exec) {
    v1::Execution execution;
    if (execution.ParseFromString(record.value)) last_fired_ms = std::max(last_fired_ms, execution.fired_ms());
  }
  const auto kill_ms = std::chrono::duration_cast<std::chrono::milliseconds>(killed_at.time_since_epoch()).count();
  WARN(result.line("failover-sigkill") + fmt::format(" last_fire_after_kill_s={:.1f} survivor_restores={}",
                                                     static_cast<double>(last_fired_ms - kill_ms) / 1000.0,
                                                     count_in_log(dispatchers.first->log_path(), "event=restore_done")));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == kJobs);
}

TEST_CASE("a dispatcher frozen past its session timeout commits nothing when it wakes up", "[fault]") {
  TestEnv env("zombie");
  TwoDispatchers dispatchers(env);
  constexpr int kJobs = 3000;
  TestProducer producer;
  submit_spread(producer, env.prefix, "z-", kJobs, 2000, 20000);  // a steady stream for 20 s
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

  const auto result = tally(read_exec_until_all(env.prefix, "z-", kJobs, 120s, 4s), "z-", kJobs);
  WARN(result.line("zombie-sigstop") + fmt::format(" zombie_aborts={} zombie_exited={}",
                                                   count_in_log(dispatchers.second->log_path(), "event=transaction_abort"),
                                                   dispatchers.second->running() ? "no" : "yes"));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == kJobs);
}

TEST_CASE("a rebalance storm of dispatchers joining, leaving and dying loses and duplicates nothing", "[fault]") {
  TestEnv env("storm");
  const char* seconds_text = std::getenv("KCRON_STORM_SECONDS");
  const int storm_seconds = seconds_text != nullptr ? std::atoi(seconds_text) : 40;
  const int jobs = 100 * storm_seconds;
  TestProducer producer;
  submit_spread(producer, env.prefix, "s-", jobs, 3000, storm_seconds * 1000);

  std::map<std::string, std::unique_ptr<Process>> running;
  int launches = 0;
  auto launch = [&](const std::string& instance) {
    auto vars = env.program_env(instance);
    running[instance] = std::make_unique<Process>(program_path("kcron-dispatcher"), vars,
                                                  fmt::format("{}/{}-{}.log", env.state_root, instance, ++launches));
  };
  launch("d1");
  std::mt19937 random(20261123);
  int terms = 0;
  int kills = 0;
  const auto storm_end = std::chrono::steady_clock::now() + std::chrono::seconds(storm_seconds);
  while (std::chrono::steady_clock::now() < storm_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000 + random() % 3000));
    const std::string instance = fmt::format("d{}", 1 + random() % 3);
    auto found = running.find(instance);
    if (found == running.end() || !found->second->running()) {
      launch(instance);
    } else if (random() % 2 == 0) {
      found->second->terminate(std::chrono::seconds(20));
      ++terms;
    } else {
      found->second->kill_hard();
      ++kills;
    }
  }
  for (const auto* instance : {"d1", "d2"}) {
    if (running[instance] == nullptr || !running[instance]->running()) launch(instance);
  }
  const auto result = tally(read_exec_until_all(env.prefix, "s-", jobs, 120s, 3s), "s-", jobs);
  WARN(result.line("rebalance-storm") +
       fmt::format(" seconds={} launches={} sigterm={} sigkill={}", storm_seconds, launches, terms, kills));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == jobs);
}
