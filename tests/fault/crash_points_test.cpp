// Crash-point fault tests (label `fault`): a program is started with KCRON_FAULT_POINTS (see
// common/include/kcron/fault_points.h) so that it dies with SIGKILL, or sees an unknown commit
// outcome, at a chosen point of its transaction path, in the middle of a stream of jobs. A
// crashed program is restarted (same instance id and state dir, no fault); then every committed
// exec record is counted per job id: each must be there exactly once.
// KCRON_CRASH_JOBS sets the number of jobs per scenario (default 400).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

int crash_jobs() {
  const char* text = std::getenv("KCRON_CRASH_JOBS");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : fault_jobs(400);
}

std::unique_ptr<Process> start_dispatcher(const TestEnv& env, const std::string& fault_spec, int run) {
  auto vars = env.program_env("d1");
  if (!fault_spec.empty()) vars.push_back("KCRON_FAULT_POINTS=" + fault_spec);
  return std::make_unique<Process>(program_path("kcron-dispatcher"), vars,
                                   fmt::format("{}/dispatcher-{}.log", env.state_root, run));
}

// Half the jobs due at once, half after 1-4 s, produced over ~2 s so that the dispatcher commits
// many small transactions while they arrive; the fault hits the 5th transaction.
void dispatcher_crash_scenario(const std::string& name, const std::string& fault_spec, bool crashes) {
  TestEnv env("crash-" + name);
  const int jobs = crash_jobs();
  auto dispatcher = start_dispatcher(env, fault_spec, 1);
  REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  TestProducer producer;
  const auto started = std::chrono::steady_clock::now();
  for (int index = 0; index < jobs; ++index) {
    const auto id = fmt::format("cp-{}", index);
    const auto when = index % 2 == 0 ? std::string() : delay_json(1000 + (index * 3000) / jobs);
    producer.send(env.prefix + "jobs", id, submit_json(id, when));
    if (index % 20 == 19) {
      producer.flush();
      std::this_thread::sleep_until(started + std::chrono::milliseconds((2000LL * index) / jobs));
    }
  }
  producer.flush();

  const auto fault_at = std::chrono::steady_clock::now();
  if (crashes) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (dispatcher->running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
    INFO(tail_file(dispatcher->log_path()));
    REQUIRE_FALSE(dispatcher->running());
    REQUIRE(count_in_log(dispatcher->log_path(), "event=fault_point point=") >= 1);
    dispatcher = start_dispatcher(env, "", 2);
    REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  } else {
    INFO(tail_file(dispatcher->log_path()));
    REQUIRE(wait_for_log(*dispatcher, "event=recover ", 60s));
  }
  const auto recovered_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - fault_at).count();
  const auto exec = read_exec_until_all(env.prefix, "cp-", jobs, std::max<std::chrono::milliseconds>(120s, jobs * 2ms));
  const auto result = tally(exec, "cp-", jobs);
  WARN(report_fault("dispatcher-crash-" + name, result, recovered_s, "fault=" + fault_spec));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == jobs);
  CHECK(dispatcher->running());
}

}  // namespace

TEST_CASE("dispatcher killed after producing a batch, before sending its offsets: every job fires once", "[fault]") {
  dispatcher_crash_scenario("after-produce", "dispatcher.after_produce@5", true);
}

TEST_CASE("dispatcher killed after sending offsets, before the commit: every job fires once", "[fault]") {
  dispatcher_crash_scenario("after-offsets", "dispatcher.after_offsets@5", true);
}

TEST_CASE("dispatcher killed during the commit: every job fires once", "[fault]") {
  dispatcher_crash_scenario("during-commit", "dispatcher.after_offsets@5:crash_soon", true);
}

TEST_CASE("dispatcher killed after the commit, before the RocksDB write: every job fires once", "[fault]") {
  dispatcher_crash_scenario("after-commit", "dispatcher.after_commit@5", true);
}

TEST_CASE("dispatcher commit outcome unknown and not committed: it recreates the producer, restores, fires every job once",
          "[fault]") {
  dispatcher_crash_scenario("unknown-aborted", "dispatcher.after_offsets@5:unknown", false);
}

TEST_CASE("dispatcher commit outcome unknown but committed: it recreates the producer, restores, fires every job once",
          "[fault]") {
  dispatcher_crash_scenario("unknown-committed", "dispatcher.after_commit@5:unknown", false);
}

namespace {

// A cron-producer with 4 every-second schedules hits the fault at its 4th transaction; a crashed
// one is restarted. Every tick from the first to the last emitted must be there exactly once.
void cron_crash_scenario(const std::string& name, const std::string& fault_spec, bool crashes) {
  TestEnv env("crash-cron-" + name);
  auto start = [&](const std::string& spec, int run) {
    auto vars = env.program_env("c1");
    vars.emplace_back("KCRON_SCHEDULES_PARTITIONS=2");
    if (!spec.empty()) vars.push_back("KCRON_FAULT_POINTS=" + spec);
    return std::make_unique<Process>(program_path("kcron-cron-producer"), vars,
                                     fmt::format("{}/cron-producer-{}.log", env.state_root, run));
  };
  auto cron = start(fault_spec, 1);
  REQUIRE(wait_for_log(*cron, "event=assigned", 60s));
  const int schedules = fault_schedules(4, 20);
  TestProducer producer;
  submit_every_second_schedules(producer, env.prefix, schedules);
  const auto fault_at = std::chrono::steady_clock::now();
  if (crashes) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (cron->running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
    INFO(tail_file(cron->log_path()));
    REQUIRE_FALSE(cron->running());
    REQUIRE(count_in_log(cron->log_path(), "event=fault_point point=") >= 1);
    cron = start("", 2);
    REQUIRE(wait_for_log(*cron, "event=assigned", 60s));
  } else {
    INFO(tail_file(cron->log_path()));
    REQUIRE(wait_for_log(*cron, "event=recover ", 60s));
  }
  const auto recovered_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - fault_at).count();
  std::this_thread::sleep_for(7s);  // the restarted producer catches up and carries on

  const auto ticks = tally_ticks(env.prefix, 10s + std::chrono::milliseconds(fault_jobs(0) / 5));
  REQUIRE(ticks.schedules == schedules);
  CHECK(ticks.shortest_span_s >= 6);  // it carried on after the fault
  WARN(report_fault("cron-producer-crash-" + name, ticks.ticks, ticks.once(), ticks.missing, ticks.doubled, recovered_s,
                    fmt::format("schedules={} unit=ticks fault={}", schedules, fault_spec)));
  CHECK(ticks.missing == 0);
  CHECK(ticks.doubled == 0);
  CHECK(cron->running());
}

}  // namespace

TEST_CASE("cron-producer killed after producing ticks, before the commit: every tick is emitted once", "[fault]") {
  cron_crash_scenario("after-produce", "cron.after_produce@4", true);
}

TEST_CASE("cron-producer killed after the commit: every tick is emitted once", "[fault]") {
  cron_crash_scenario("after-commit", "cron.after_commit@4", true);
}

TEST_CASE("cron-producer commit outcome unknown (committed): it rebuilds from Kafka and emits every tick once", "[fault]") {
  cron_crash_scenario("unknown-committed", "cron.after_commit@4:unknown", false);
}

namespace {

// A dispatcher and one worker (3 slots) with jobs of 50-250 ms; the worker dies at its 5th
// transaction and is restarted. Every job must end with exactly one SUCCEEDED result: what the
// dead worker had not committed runs again, what it had committed never does.
void worker_crash_scenario(const std::string& name, const std::string& fault_spec) {
  TestEnv env("crash-worker-" + name);
  const int jobs = fault_jobs(40);  // the first 40 sleep 50-250 ms, any more are noops
  auto dispatcher = start_dispatcher(env, "", 1);
  REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  auto start_worker = [&](const std::string& spec, int run) {
    auto vars = env.program_env("w1");
    vars.emplace_back("KCRON_SLOTS=3");
    if (!spec.empty()) vars.push_back("KCRON_FAULT_POINTS=" + spec);
    return std::make_unique<Process>(program_path("kcron-worker"), vars, fmt::format("{}/worker-{}.log", env.state_root, run));
  };
  auto worker = start_worker(fault_spec, 1);
  REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
  TestProducer producer;
  for (int index = 0; index < jobs; ++index) {
    const auto id = fmt::format("cp-{}", index);
    producer.send(env.prefix + "jobs", id,
                  index < 40
                      ? fmt::format(R"({{"id":"{}","sleep":{{"duration":"{:.3f}s"}}}})", id, 0.05 + ((index * 37) % 200) / 1000.0)
                      : submit_json(id, ""),
                  -1, {{"content-type", "application/json"}});
  }
  producer.flush();
  const auto fault_at = std::chrono::steady_clock::now();
  const auto deadline = fault_at + 60s;
  while (worker->running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  INFO(tail_file(worker->log_path()));
  REQUIRE_FALSE(worker->running());
  REQUIRE(count_in_log(worker->log_path(), "event=fault_point point=") >= 1);
  worker = start_worker("", 2);
  REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
  const auto recovered_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - fault_at).count();

  const auto result = read_succeeded_until_all(env.prefix, "cp-", jobs, std::max<std::chrono::milliseconds>(180s, jobs * 5ms));
  WARN(report_fault("worker-crash-" + name, result, recovered_s, "fault=" + fault_spec));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == jobs);
}

}  // namespace

TEST_CASE("worker killed after producing outcomes, before sending offsets: every job succeeds once", "[fault]") {
  worker_crash_scenario("after-produce", "worker.after_produce@5");
}

TEST_CASE("worker killed during the commit: every job succeeds once", "[fault]") {
  worker_crash_scenario("during-commit", "worker.after_offsets@5:crash_soon");
}

TEST_CASE("worker killed after the commit: every job succeeds once", "[fault]") {
  worker_crash_scenario("after-commit", "worker.after_commit@5");
}

namespace {

// Fire-ahead (docs/fire-ahead.md): jobs due 3-6 s after they are sent are committed to their exec
// topic ahead of their instant and held by the worker until it. The dispatcher dies right after
// a transaction that fired jobs ahead committed (before its store write), or the worker dies
// while it holds records fired ahead; the dead program is restarted (same instance and state).
// Every job must be fired once (one exec record), succeed once, and never start before its instant.
void fire_ahead_crash_scenario(const std::string& name, bool kill_dispatcher, const std::string& fault_spec) {
  TestEnv env("crash-ahead-" + name);
  const int jobs = crash_jobs();
  auto dispatcher = start_dispatcher(env, kill_dispatcher ? fault_spec : "", 1);
  REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  auto start_worker = [&](const std::string& spec, int run) {
    auto vars = env.program_env("w1");
    if (!spec.empty()) vars.push_back("KCRON_FAULT_POINTS=" + spec);
    return std::make_unique<Process>(program_path("kcron-worker"), vars, fmt::format("{}/worker-{}.log", env.state_root, run));
  };
  auto worker = start_worker(kill_dispatcher ? "" : fault_spec, 1);
  REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
  INFO(tail_file(dispatcher->log_path()));
  REQUIRE(wait_for_log(*dispatcher, "event=fire_ahead_open", 60s));  // the gate saw the worker's heartbeat

  TestProducer producer;
  for (int index = 0; index < jobs; ++index) {
    const auto id = fmt::format("fa-{}", index);
    producer.send(env.prefix + "jobs", id, submit_json(id, delay_json(3000 + (index * 3000) / jobs)));
  }
  producer.flush();
  auto& victim = kill_dispatcher ? dispatcher : worker;
  const auto fault_at = std::chrono::steady_clock::now();
  const auto deadline = fault_at + 60s;
  while (victim->running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  INFO(tail_file(victim->log_path()));
  REQUIRE_FALSE(victim->running());
  REQUIRE(count_in_log(victim->log_path(), "event=fault_point point=") >= 1);
  if (kill_dispatcher) {
    dispatcher = start_dispatcher(env, "", 2);
    REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  } else {
    worker = start_worker("", 2);
    REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
  }
  const auto recovered_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - fault_at).count();

  const auto succeeded = read_succeeded_until_all(env.prefix, "fa-", jobs, std::max<std::chrono::milliseconds>(120s, jobs * 5ms));
  const auto exec = read_exec_until_all(env.prefix, "fa-", jobs, 30s);
  const auto fired = tally(exec, "fa-", jobs);
  int fired_ahead = 0;
  for (const auto& record : exec) {
    v1::Execution execution;
    if (execution.ParseFromString(record.value) && execution.fired_ms() < execution.due_ms()) ++fired_ahead;
  }
  int started_early = 0;
  std::int64_t worst_start_lag_ms = 0;
  for (const auto& record : read_topics({env.prefix + "results"}, 10s)) {
    v1::Result result;
    if (!result.ParseFromString(record.value) || !result.job_id().starts_with("fa-") || result.state() != v1::SUCCEEDED) continue;
    if (result.started_ms() < result.due_ms()) ++started_early;
    worst_start_lag_ms = std::max(worst_start_lag_ms, result.started_ms() - result.due_ms());
  }
  WARN(report_fault("fire-ahead-crash-" + name, succeeded, recovered_s,
                    fmt::format("fault={} fired_once={} fired_twice={} fired_ahead={} started_early={} worst_start_lag_ms={}",
                                fault_spec, fired.once, fired.duplicated, fired_ahead, started_early, worst_start_lag_ms)));
  CHECK(fired.lost == 0);
  CHECK(fired.duplicated == 0);
  CHECK(succeeded.lost == 0);
  CHECK(succeeded.duplicated == 0);
  CHECK(succeeded.once == jobs);
  CHECK(fired_ahead > 0);
  CHECK(started_early == 0);
}

}  // namespace

TEST_CASE("dispatcher killed after a transaction that fired jobs ahead committed: each starts once, never early", "[fault]") {
  fire_ahead_crash_scenario("dispatcher", true, "dispatcher.after_fire_ahead@2");
}

TEST_CASE("worker killed while it holds jobs fired ahead: each starts once, never before its instant", "[fault]") {
  fire_ahead_crash_scenario("worker", false, "worker.hold@20");
}
