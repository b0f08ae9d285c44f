// Tenants on the real broker: a job's identity is (tenant, id). Two tenants whose names share a
// prefix (a, ab) use the same job id from the CLI; each runs once, a cancel and a cancel before
// the submit act inside their own tenant, and every output record is keyed by the tenant-scoped key.
// kcron-dispatcher and kcron-worker run as child processes on a fresh topic prefix.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Process> start(TestEnv& env, const std::string& program, const std::string& instance) {
  static int launches = 0;
  auto process = std::make_unique<Process>(program_path(program), env.program_env(instance),
                                           fmt::format("{}/{}-{}.log", env.state_root, instance, ++launches));
  INFO(tail_file(process->log_path()));
  REQUIRE(wait_for_log(*process, "event=assigned", 60s));
  return process;
}

// The results by record key, once `done` holds for them (bounded).
std::map<std::string, std::vector<v1::Result>> results_by_key(const TestEnv& env, std::chrono::seconds timeout,
                                                              const std::function<bool(std::size_t)>& done) {
  std::map<std::string, std::vector<v1::Result>> by_key;
  const auto collect = [&](const std::vector<Record>& records) {
    by_key.clear();
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value)) by_key[record.key].push_back(result);
    }
    return by_key.size();
  };
  collect(read_topics({env.prefix + "results"}, timeout, [&](const auto& records) { return done(collect(records)); }));
  return by_key;
}

void require_cli(const TestEnv& env, const std::string& arguments, const std::string& expected_output) {
  const auto run = run_cli(env, arguments);
  INFO(arguments << "\n" << run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains(expected_output));
}

}  // namespace

TEST_CASE("tenants a and ab both run same-id from the CLI, once each, keyed apart", "[integration]") {
  TestEnv env("tenants-same-id");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  require_cli(env, R"(--tenant a submit '{"id":"same-id","noop":{}}')", "submitted same-id for tenant a");
  require_cli(env, R"(--tenant ab submit '{"id":"same-id","noop":{}}')", "submitted same-id for tenant ab");
  require_cli(env, R"(submit '{"id":"same-id","noop":{}}')", "submitted same-id");
  const auto results = results_by_key(env, 60s, [](std::size_t keys) { return keys >= 3; });
  REQUIRE(results.size() == 3);
  for (const auto& [key, tenant] :
       std::map<std::string, std::string>{{"a~same-id", "a"}, {"ab~same-id", "ab"}, {"same-id", ""}}) {
    INFO(key);
    REQUIRE(results.contains(key));
    REQUIRE(results.at(key).size() == 1);
    CHECK(results.at(key)[0].state() == v1::SUCCEEDED);
    CHECK(results.at(key)[0].job_id() == "same-id");
    CHECK(results.at(key)[0].tenant() == tenant);
  }
  // `kcron status` answers inside the tenant it is given.
  require_cli(env, "--tenant ab status same-id", "job same-id: SUCCEEDED");
  const auto unknown = run_cli(env, "--tenant nobody status same-id");
  CHECK(unknown.exit_code == 1);
  CHECK_THAT(unknown.output, Catch::Contains("no status for job 'same-id' of tenant 'nobody'"));
}

TEST_CASE("a's cancel of same-id leaves ab's job alone, and a's cancel of an unseen id does not cancel ab's later submit",
          "[integration]") {
  TestEnv env("tenants-cancel");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  require_cli(env, R"(--tenant a submit '{"id":"same-id","delay":"4s","noop":{}}')", "submitted");
  require_cli(env, R"(--tenant ab submit '{"id":"same-id","delay":"4s","noop":{}}')", "submitted");
  require_cli(env, "--tenant a cancel same-id", "cancel sent for same-id of tenant a");
  // The pre-cancel: a's marker for `later` must not touch ab's `later`.
  require_cli(env, "--tenant a cancel later", "cancel sent for later of tenant a");
  require_cli(env, R"(--tenant ab submit '{"id":"later","noop":{}}')", "submitted");
  require_cli(env, R"(--tenant a submit '{"id":"later","noop":{}}')", "submitted");

  const auto results = results_by_key(env, 60s, [](std::size_t keys) { return keys >= 2; });
  REQUIRE(results.size() >= 2);
  // Give a wrongly fired job of a time to show up before concluding it never ran.
  std::this_thread::sleep_for(2s);
  const auto settled = results_by_key(env, 5s, [](std::size_t) { return false; });
  CHECK(settled.size() == 2);
  CHECK(settled.contains("ab~same-id"));
  CHECK(settled.contains("ab~later"));
  CHECK_FALSE(settled.contains("a~same-id"));
  CHECK_FALSE(settled.contains("a~later"));
  require_cli(env, "--tenant a status same-id", "job same-id: CANCELLED");
  require_cli(env, "--tenant a status later", "job later: CANCELLED");
  require_cli(env, "--tenant ab status same-id", "job same-id: SUCCEEDED");
}

TEST_CASE("a's cancel of a running same-id stops a's job on the worker, and ab's running same-id succeeds", "[integration]") {
  TestEnv env("tenants-running");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  require_cli(env, R"(--tenant a submit '{"id":"same-id","sleep":{"duration":"5s"}}')", "submitted");
  require_cli(env, R"(--tenant ab submit '{"id":"same-id","sleep":{"duration":"5s"}}')", "submitted");
  // Both run on the worker before the cancel: the cancel goes through kcron.control to a running job.
  const auto port = http_port_of(*worker);
  bool both_running = false;
  for (int tries = 0; tries < 200 && !both_running; ++tries) {
    httplib::Client client("127.0.0.1", port);
    const auto response = client.Get("/metrics");
    both_running = response && metric_value(response->body, "kcron_worker_running_jobs") == 2;
    if (!both_running) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(both_running);
  require_cli(env, "--tenant a cancel same-id --reason 'not needed'", "cancel sent for same-id of tenant a");

  const auto results = results_by_key(env, 60s, [](std::size_t keys) { return keys >= 2; });
  REQUIRE(results.size() == 2);
  REQUIRE(results.at("a~same-id").size() == 1);
  CHECK(results.at("a~same-id")[0].state() == v1::CANCELLED);
  REQUIRE(results.at("ab~same-id").size() == 1);
  CHECK(results.at("ab~same-id")[0].state() == v1::SUCCEEDED);
  // a's job stopped when the cancel reached it, well before its 5 s.
  CHECK(results.at("a~same-id")[0].finished_ms() < results.at("ab~same-id")[0].finished_ms());
}
