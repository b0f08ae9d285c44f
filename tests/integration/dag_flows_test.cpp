// Flows of dependent jobs (docs/flows.md) against the real broker: kcron-dispatcher and
// kcron-worker as child processes on a fresh prefix; flows submitted as users do (the CLI, or
// JSON produced to the jobs topic); every check reads what was committed to the topics.
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

struct Deployment {
  TestEnv& env;
  std::unique_ptr<Process> dispatcher;
  std::unique_ptr<Process> worker;

  explicit Deployment(TestEnv& test_env, const std::vector<std::string>& worker_env = {}) : env(test_env) {
    dispatcher =
        std::make_unique<Process>(program_path("kcron-dispatcher"), env.program_env("d1"), env.state_root + "/dispatcher.log");
    REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
    auto vars = env.program_env("w1");
    vars.insert(vars.end(), worker_env.begin(), worker_env.end());
    worker = std::make_unique<Process>(program_path("kcron-worker"), vars, env.state_root + "/worker.log");
    REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
  }
};

// Node id -> its results, in the order committed.
std::map<std::string, std::vector<v1::Result>> results_by_job(const std::vector<Record>& records) {
  std::map<std::string, std::vector<v1::Result>> by_job;
  for (const auto& record : records) {
    v1::Result result;
    if (result.ParseFromString(record.value)) by_job[result.job_id()].push_back(result);
  }
  return by_job;
}

// Job id -> every state its status records say, in order.
std::map<std::string, std::vector<v1::JobState>> statuses_by_job(const std::vector<Record>& records) {
  std::map<std::string, std::vector<v1::JobState>> by_job;
  for (const auto& record : records) {
    v1::StatusRecord status;
    if (status.ParseFromString(record.value)) by_job[status.job_id()].push_back(status.state());
  }
  return by_job;
}

bool has_state(const std::vector<v1::JobState>& states, v1::JobState wanted) {
  return std::find(states.begin(), states.end(), wanted) != states.end();
}

// `kcron flow status ID` until its output holds `needle` (the dispatcher folds the last ending
// after the worker committed it), at most `timeout`.
CliRun flow_status_until(const TestEnv& env, const std::string& flow_id, const std::string& needle,
                         std::chrono::seconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  CliRun run;
  for (int tries = 0; tries < 200; ++tries) {
    run = run_cli(env, "flow status " + flow_id);
    if (run.output.find(needle) != std::string::npos || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(500ms);
  }
  return run;
}

}  // namespace

TEST_CASE("flow: a diamond A -> {B, C} -> D submitted with the CLI runs in order, D once, and flow status shows it",
          "[integration]") {
  TestEnv env("dag-diamond");
  Deployment deployment(env);
  const std::string flow = R"({"flow":{"id":"etl","nodes":[
      {"name":"extract","job":{"sleep":{"duration":"0.3s"}}},
      {"name":"transform","job":{"sleep":{"duration":"0.3s"}},"depends_on":["extract"]},
      {"name":"validate","job":{"sleep":{"duration":"0.5s"}},"depends_on":["extract"]},
      {"name":"load","job":{"noop":{}},"depends_on":["transform","validate"]}]}})";
  const auto submitted = run_cli(env, fmt::format("flow submit '{}'", flow));
  INFO(submitted.output);
  REQUIRE(submitted.exit_code == 0);
  CHECK(submitted.output.find("submitted flow etl (4 nodes)") != std::string::npos);

  const auto records = read_topics({env.prefix + "results"}, 60s, [](const auto& read) { return read.size() >= 4; });
  auto results = results_by_job(records);
  REQUIRE(results.size() == 4);
  for (const auto& [id, attempts] : results) {
    INFO(id);
    REQUIRE(attempts.size() == 1);
    CHECK(attempts[0].state() == v1::SUCCEEDED);
  }
  const auto& extract = results["etl/extract"][0];
  const auto& transform = results["etl/transform"][0];
  const auto& validate = results["etl/validate"][0];
  const auto& load = results["etl/load"][0];
  CHECK(transform.started_ms() >= extract.finished_ms());
  CHECK(validate.started_ms() >= extract.finished_ms());
  CHECK(load.started_ms() >= transform.finished_ms());
  CHECK(load.started_ms() >= validate.finished_ms());
  // Each node was fired once: one exec record per node.
  std::this_thread::sleep_for(1s);
  const auto exec = read_topics(exec_topics(env.prefix), 5s, [](const auto& read) { return read.size() >= 4; });
  const auto fired = count_by_key(exec);
  CHECK(fired.size() == 4);
  for (const auto& [key, count] : fired) CHECK(count == 1);

  const auto status = flow_status_until(env, "etl", "4 of 4 nodes ended");
  INFO(status.output);
  CHECK(status.exit_code == 0);
  CHECK(status.output.find("flow etl: SUCCEEDED - 4 of 4 nodes ended: 4 succeeded") != std::string::npos);
  CHECK(status.output.find("load") != std::string::npos);
  WARN(status.output);
}

TEST_CASE(
    "flow: a failing node retries, then ends DEAD, its all_done dependant runs and its all_success dependant is UPSTREAM_FAILED",
    "[integration]") {
  TestEnv env("dag-failure");
  Deployment deployment(env);
  TestProducer producer;
  producer.send(env.prefix + "jobs", "f", R"({"flow":{"id":"f","nodes":[
      {"name":"flaky","job":{"sleep":{"duration":"0.1s","fail":true},"retry":{"max_retries":1,"initial_backoff":"0.2s"}}},
      {"name":"strict","job":{"noop":{}},"depends_on":["flaky"]},
      {"name":"after_strict","job":{"noop":{}},"depends_on":["strict"]},
      {"name":"cleanup","job":{"noop":{}},"depends_on":["flaky"],"trigger":"all_done"}]}})");
  producer.flush();
  const auto records = read_topics({env.prefix + "results"}, 60s, [](const auto& read) {
    return std::any_of(read.begin(), read.end(),
                       [](const Record& record) { return record.key.find("cleanup") != std::string::npos; });
  });
  auto results = results_by_job(records);
  REQUIRE(results["f/flaky"].size() == 2);  // the first attempt and its retry
  CHECK(results["f/flaky"][1].attempt() == 1);
  REQUIRE(results["f/cleanup"].size() == 1);
  CHECK(results["f/cleanup"][0].state() == v1::SUCCEEDED);
  CHECK(results["f/cleanup"][0].started_ms() >= results["f/flaky"][1].finished_ms());
  CHECK(results.count("f/strict") == 0);

  const auto status_records = read_topics({env.prefix + "status"}, 20s, [](const auto& read) {
    return std::any_of(read.begin(), read.end(), [](const Record& record) {
      return record.key.find("after_strict") != std::string::npos && record.headers.count("kcron-status") &&
             record.headers.at("kcron-status") == "UPSTREAM_FAILED";
    });
  });
  auto states = statuses_by_job(status_records);
  CHECK(has_state(states["f/flaky"], v1::DEAD));
  CHECK(has_state(states["f/strict"], v1::UPSTREAM_FAILED));
  CHECK(has_state(states["f/after_strict"], v1::UPSTREAM_FAILED));
  const auto exec = count_by_key(read_topics(exec_topics(env.prefix), 3s, [](const auto&) { return false; }));
  CHECK(exec.count("f/strict") == 0);
  CHECK(exec.count("f/after_strict") == 0);

  const auto status = flow_status_until(env, "f", "4 of 4 nodes ended");
  INFO(status.output);
  CHECK(status.output.find("flow f: FAILED - 4 of 4 nodes ended: 1 succeeded, 3 failed") != std::string::npos);
  CHECK(status.output.find("parent 'flaky' ended DEAD") != std::string::npos);
}

TEST_CASE("flow: fail_fast cancels a running node on its worker and the nodes that wait", "[integration]") {
  TestEnv env("dag-failfast");
  Deployment deployment(env);
  TestProducer producer;
  producer.send(env.prefix + "jobs", "ff", R"({"flow":{"id":"ff","fail_fast":true,"nodes":[
      {"name":"slow","job":{"sleep":{"duration":"60s"}}},
      {"name":"bad","job":{"sleep":{"duration":"1s","fail":true}}},
      {"name":"after","job":{"noop":{}},"depends_on":["slow"],"trigger":"all_done"}]}})");
  producer.flush();
  const auto begun = std::chrono::steady_clock::now();
  const auto records = read_topics({env.prefix + "results"}, 40s, [](const auto& read) {
    return std::any_of(read.begin(), read.end(),
                       [](const Record& record) { return record.key.find("slow") != std::string::npos; });
  });
  auto results = results_by_job(records);
  REQUIRE(results["ff/slow"].size() == 1);
  CHECK(results["ff/slow"][0].state() == v1::CANCELLED);
  CHECK(seconds_since(begun) < 40);  // long before its 60 s
  REQUIRE(results["ff/bad"].size() == 1);
  const auto states = statuses_by_job(read_topics({env.prefix + "status"}, 5s, [](const auto&) { return false; }));
  CHECK(has_state(states.at("ff/after"), v1::CANCELLED));
  const auto exec = count_by_key(read_topics(exec_topics(env.prefix), 2s, [](const auto&) { return false; }));
  CHECK(exec.count("ff/after") == 0);
}

TEST_CASE("flow: a cyclic flow is REJECTED naming the cycle, and a plain job 'etl/load' is REJECTED by the id rule",
          "[integration]") {
  TestEnv env("dag-rejected");
  Deployment deployment(env);
  TestProducer producer;
  producer.send(env.prefix + "jobs", "loop", R"({"flow":{"id":"loop","nodes":[
      {"name":"a","job":{"noop":{}},"depends_on":["c"]},{"name":"b","job":{"noop":{}},"depends_on":["a"]},
      {"name":"c","job":{"noop":{}},"depends_on":["b"]}]}})");
  producer.send(env.prefix + "jobs", "etl", submit_json("etl/load", ""));
  producer.send(env.prefix + "jobs", "after", submit_json("after", ""));
  producer.flush();
  const auto letters = read_topics({env.prefix + "dead-letters"}, 30s, [](const auto& read) { return read.size() >= 2; });
  REQUIRE(letters.size() == 2);
  std::set<std::string> reasons;
  for (const auto& record : letters) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    CHECK(letter.state() == v1::REJECTED);
    reasons.insert(letter.reason());
  }
  INFO(fmt::format("{}", fmt::join(reasons, " | ")));
  CHECK(std::any_of(reasons.begin(), reasons.end(), [](const std::string& reason) {
    return reason.starts_with("flow 'loop' has a cycle: ") && reason.find("which depends on") != std::string::npos;
  }));
  CHECK(std::any_of(reasons.begin(), reasons.end(), [](const std::string& reason) {
    return reason.find("'etl/load' would be node 'load' of flow 'etl'") != std::string::npos;
  }));
  // The CLI refuses the same cycle before writing anything.
  const auto refused = run_cli(env, R"(flow submit '{"id":"x","nodes":[{"name":"a","job":{"noop":{}},"depends_on":["a"]}]}')");
  CHECK(refused.exit_code != 0);
  CHECK(refused.output.find("node 'a' depends on itself") != std::string::npos);
  const auto results = read_topics({env.prefix + "results"}, 20s, [](const auto& read) { return !read.empty(); });
  REQUIRE(results.size() == 1);
  CHECK(results[0].key == "after");
}

TEST_CASE("flow: kcron flow retry runs a DEAD node and its dependants again, and the flow then succeeds", "[integration]") {
  TestEnv env("dag-retry");
  Deployment deployment(env, {"KCRON_EXEC_PROGRAMS=/bin/sh"});
  const std::string marker = env.state_root + "/ready";
  const auto flow = fmt::format(R"({{"id":"r","nodes":[
      {{"name":"gate","job":{{"exec":{{"argv":["/bin/sh","-c","test -f {}"]}}}}}},
      {{"name":"after","job":{{"noop":{{}}}},"depends_on":["gate"]}}]}})",
                                marker);
  const auto submitted = run_cli(env, fmt::format("flow submit '{}'", flow));
  INFO(submitted.output);
  REQUIRE(submitted.exit_code == 0);
  auto status = flow_status_until(env, "r", "2 of 2 nodes ended");
  INFO(status.output);
  REQUIRE(status.output.find("flow r: FAILED - 2 of 2 nodes ended: 0 succeeded, 2 failed") != std::string::npos);

  std::ofstream(marker) << "ok";
  const auto retried = run_cli(env, "flow retry r");
  INFO(retried.output);
  REQUIRE(retried.exit_code == 0);
  status = flow_status_until(env, "r", "SUCCEEDED - 2 of 2");
  INFO(status.output);
  CHECK(status.output.find("flow r: SUCCEEDED - 2 of 2 nodes ended: 2 succeeded") != std::string::npos);
  const auto results =
      results_by_job(read_topics({env.prefix + "results"}, 10s, [](const auto& read) { return read.size() >= 3; }));
  REQUIRE(results.at("r/gate").size() == 2);
  CHECK(results.at("r/gate")[1].attempt() == 1);
  CHECK(results.at("r/gate")[1].state() == v1::SUCCEEDED);
  REQUIRE(results.at("r/after").size() == 1);
  CHECK(results.at("r/after")[0].attempt() == 1);
  WARN(status.output);
}

TEST_CASE(
    "flow: a flow_template schedule runs a flow at its ticks, each node once, and overlap forbid skips a run that would overlap",
    "[integration]") {
  TestEnv env("dag-scheduled");
  Deployment deployment(env);
  auto cron_producer = start_program(env, "kcron-cron-producer", "c1", "cron-producer", {"KCRON_SCHEDULES_PARTITIONS=2"});
  // Every 2 s; the root sleeps 2.5 s, so the run after each one that runs finds it still running.
  TestProducer producer;
  producer.send(env.prefix + "schedules", "etl",
                R"({"id":"etl","expression":"*/2 * * * * *","overlap":"FORBID","flow_template":{"nodes":[
                      {"name":"extract","job":{"sleep":{"duration":"2.5s"}}},
                      {"name":"load","job":{"noop":{}},"depends_on":["extract"]}]}})",
                -1, {{"content-type", "application/json"}});
  producer.flush();

  // Runs (flow ids) whose two nodes both have a result.
  const auto complete_runs = [](const std::vector<Record>& records) {
    std::map<std::string, int> nodes;
    for (const auto& [id, attempts] : results_by_job(records)) nodes[id.substr(0, id.find('/'))] += 1;
    return static_cast<std::size_t>(std::count_if(nodes.begin(), nodes.end(), [](const auto& run) { return run.second == 2; }));
  };
  const auto records = read_topics({env.prefix + "results"}, 40s, [&](const auto& read) { return complete_runs(read) >= 3; });
  REQUIRE(complete_runs(records) >= 3);
  auto results = results_by_job(records);
  std::map<std::string, std::pair<v1::Result, v1::Result>> runs;  // run -> (extract, load)
  for (const auto& [id, attempts] : results) {
    INFO(id);
    CHECK(id.starts_with("etl@"));
    REQUIRE(attempts.size() == 1);  // each node of each run once
    CHECK(attempts[0].state() == v1::SUCCEEDED);
    const auto run = id.substr(0, id.find('/'));
    (id.ends_with("/extract") ? runs[run].first : runs[run].second) = attempts[0];
  }
  std::int64_t previous_end = 0;
  for (const auto& [run, nodes] : runs) {
    if (nodes.first.job_id().empty() || nodes.second.job_id().empty()) continue;  // the last one, still running
    INFO(run);
    CHECK(nodes.second.started_ms() >= nodes.first.finished_ms());  // load after extract
    CHECK(nodes.first.started_ms() >= previous_end);                // never two runs at once (FORBID)
    previous_end = nodes.second.finished_ms();
  }
  // The runs in between were decided at their instants: every node of them SKIPPED, none fired.
  const auto statuses = statuses_by_job(read_topics({env.prefix + "status"}, 5s, [](const auto&) { return false; }));
  std::set<std::string> skipped;
  for (const auto& [id, states] : statuses) {
    if (has_state(states, v1::SKIPPED)) {
      skipped.insert(id.substr(0, id.find('/')));
      CHECK_FALSE(results.contains(id));
    }
  }
  CHECK(skipped.size() >= 2);
  for (const auto& run : skipped) CHECK_FALSE(runs.contains(run));
}
