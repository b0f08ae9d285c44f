// Rolling-upgrade test (label `fault`): a deployment of the previous release (its dispatcher,
// worker and cron-producer, built by scripts/previous-release from this clone's history) runs
// jobs and every-second schedules, and is upgraded program by program under load, in the order
// docs/tenancy.md gives: the dispatcher, then the worker, then the writers (the cron-producer, the
// CLI). Each new program starts on the state dir and topics the old one wrote. Counted from the
// topics: every job fires once and succeeds once, every tick is emitted once; a tenant's submit is
// refused while a program of the previous release runs, and works once all are upgraded.
#include <catch2/catch.hpp>
#include <cstdio>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

// The previous release's bin dir, built (or found built) by scripts/previous-release.
std::string previous_release_bin() {
  const std::string dir = std::string(KCRON_BIN_DIR) + "/../previous";
  const std::string command = fmt::format("{}/scripts/previous-release {} 2>&1", source_dir(), dir);
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (const auto read = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, read);
  const int status = pclose(pipe);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 77) skip_scenario("the previous release is not in this clone's history: " + output);
  INFO(output);
  REQUIRE(code == 0);
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return output.substr(output.rfind('\n') + 1);
}

}  // namespace

TEST_CASE(
    "a rolling upgrade from the previous release under load: every job and tick once, tenants refused until all are upgraded",
    "[fault][upgrade]") {
  const std::string previous = previous_release_bin();
  TestEnv env("upgrade", 4, 4);
  const auto start = [&](const std::string& bin_dir, const std::string& program, const std::string& instance,
                         const std::string& log_name) {
    auto vars = env.program_env(instance);
    vars.insert(vars.end(), {"KCRON_SCHEDULES_PARTITIONS=2", "KCRON_SLOTS=4"});
    auto process = std::make_unique<Process>(bin_dir + "/" + program, vars, fmt::format("{}/{}.log", env.state_root, log_name));
    const bool assigned = wait_for_log(*process, "event=assigned", 60s);
    INFO(log_name << ":\n" << tail_file(process->log_path()));
    REQUIRE(assigned);
    return process;
  };
  const std::string current = std::string(KCRON_BIN_DIR);
  auto dispatcher = start(previous, "kcron-dispatcher", "d1", "d1-old");
  auto worker = start(previous, "kcron-worker", "w1", "w1-old");
  auto cron = start(previous, "kcron-cron-producer", "c1", "c1-old");

  // Load for the whole upgrade: default-tenant jobs at about 40/s, each due 0-6 s after its
  // submit (so every restarted dispatcher holds pending ones), and three every-second schedules.
  TestProducer schedules;
  submit_every_second_schedules(schedules, env.prefix, 3);
  std::atomic<bool> loading{true};
  std::atomic<int> sent{0};
  std::thread load([&] {
    TestProducer producer;
    for (int index = 0; loading && index < 5000; ++index) {
      producer.send(env.prefix + "jobs", fmt::format("u-{}", index),
                    submit_json(fmt::format("u-{}", index), delay_json(std::int64_t{index % 7} * 1000)), -1,
                    {{"content-type", "application/json"}});
      producer.poll();
      sent = index + 1;
      std::this_thread::sleep_for(25ms);
    }
    producer.flush();
  });
  // Joins the load thread however the test leaves (a failed REQUIRE throws past it).
  struct LoadGuard {
    std::atomic<bool>& loading;
    std::thread& thread;
    void stop() {
      loading = false;
      if (thread.joinable()) thread.join();
    }
    ~LoadGuard() { stop(); }
  } load_guard{loading, load};

  // The old dispatcher sends no heartbeat: the CLI writes nothing for a tenant.
  const auto refused_first = run_cli(env, R"(--tenant acme submit '{"id":"after-upgrade","noop":{}}')");
  INFO(refused_first.output);
  CHECK(refused_first.exit_code != 0);
  CHECK_THAT(refused_first.output, Catch::Contains("dispatcher 'd1' sends no heartbeat"));

  std::this_thread::sleep_for(3s);
  REQUIRE(dispatcher->terminate() == 0);  // 1. the dispatcher, on the old one's state dir
  dispatcher = start(current, "kcron-dispatcher", "d1", "d1-new");
  // The old worker holds the gate closed: the CLI writes nothing for a tenant.
  const auto refused = run_cli(env, R"(--tenant acme submit '{"id":"after-upgrade","noop":{}}')");
  INFO(refused.output);
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.output, Catch::Contains("worker 'w1' does not advertise it"));

  std::this_thread::sleep_for(3s);
  REQUIRE(worker->terminate() == 0);  // 2. the worker
  worker = start(current, "kcron-worker", "w1", "w1-new");
  std::this_thread::sleep_for(3s);
  REQUIRE(cron->terminate() == 0);  // 3. the writers: the cron-producer, then the CLI below
  cron = start(current, "kcron-cron-producer", "c1", "c1-new");
  bool accepted = false;
  for (int tries = 0; tries < 30 && !accepted; ++tries) {
    accepted = run_cli(env, R"(--tenant acme submit '{"id":"after-upgrade","noop":{}}')").exit_code == 0;
    if (!accepted) std::this_thread::sleep_for(1s);
  }
  CHECK(accepted);
  std::this_thread::sleep_for(3s);
  load_guard.stop();

  const int jobs = sent;
  const auto fired = tally(read_exec_until_all(env.prefix, "u-", jobs, 90s), "u-", jobs);
  const auto succeeded = read_succeeded_until_all(env.prefix, "u-", jobs, 90s);
  const auto tenant_job = read_succeeded_until_all(env.prefix, "acme~after-upgrade", 1, 30s);
  const auto ticks = tally_ticks(env.prefix, 10s);
  WARN(report_fault("upgrade-fired", fired, -1));
  WARN(report_fault("upgrade-succeeded", succeeded, -1));
  WARN(fmt::format("upgrade ticks: {} schedules, {} ticks, {} missing, {} doubled", ticks.schedules, ticks.ticks, ticks.missing,
                   ticks.doubled));
  CHECK(jobs > 300);
  CHECK(fired.once == jobs);
  CHECK(fired.lost == 0);
  CHECK(fired.duplicated == 0);
  CHECK(succeeded.once == jobs);
  CHECK(succeeded.duplicated == 0);
  CHECK(tenant_job.once == 1);
  CHECK(ticks.schedules == 3);
  CHECK(ticks.missing == 0);
  CHECK(ticks.doubled == 0);
  // The new dispatcher counted the pending jobs the old one left (no count marker in its state).
  CHECK(count_in_log(dispatcher->log_path(), "event=tenant_recount_done") >= 1);
}
