// A 1,000-node flow (docs/flows.md) run while its dispatcher is SIGKILLed twice and its worker
// once. Checked from the committed topics: every node fired exactly once (one exec record), and
// none started before every one of its parents had finished.
#include <catch2/catch.hpp>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

constexpr int kWidth = 100;  // nodes per level
constexpr int kDepth = 10;   // levels

std::string node_name(int level, int index) {
  return fmt::format("l{}-n{}", level, index);
}

// Level 0 has no parents; a node of level d > 0 depends on nodes i and i+1 (mod width) of level d-1.
std::vector<std::string> parents_of(int level, int index) {
  if (level == 0) return {};
  return {node_name(level - 1, index), node_name(level - 1, (index + 1) % kWidth)};
}

std::string flow_json(const std::string& flow_id) {
  std::string nodes;
  for (int level = 0; level < kDepth; ++level) {
    for (int index = 0; index < kWidth; ++index) {
      const auto parents = parents_of(level, index);
      std::string depends;
      for (const auto& parent : parents) depends += fmt::format("{}\"{}\"", depends.empty() ? "" : ",", parent);
      nodes += fmt::format(R"({}{{"name":"{}","job":{{"sleep":{{"duration":"0.02s"}}}},"depends_on":[{}]}})",
                           nodes.empty() ? "" : ",", node_name(level, index), depends);
    }
  }
  return fmt::format(R"({{"flow":{{"id":"{}","nodes":[{}]}}}})", flow_id, nodes);
}

// Node id -> committed SUCCEEDED results.
std::map<std::string, std::vector<v1::Result>> succeeded(const std::vector<Record>& records) {
  std::map<std::string, std::vector<v1::Result>> by_id;
  for (const auto& record : records) {
    v1::Result result;
    if (result.ParseFromString(record.value) && result.state() == v1::SUCCEEDED) by_id[result.job_id()].push_back(result);
  }
  return by_id;
}

std::size_t distinct_succeeded(const std::string& prefix) {
  return succeeded(read_topics({prefix + "results"}, 2s, [](const auto&) { return false; })).size();
}

// Waits until at least `count` nodes succeeded, at most `timeout`.
void wait_for_nodes(const std::string& prefix, std::size_t count, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (distinct_succeeded(prefix) < count && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(200ms);
}

}  // namespace

TEST_CASE(
    "flow: a 1000-node flow whose dispatcher is SIGKILLed twice and worker once fires every node once and never before its "
    "parents",
    "[fault]") {
  TestEnv env("flow-faults", 4, 2);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "dispatcher-1");
  auto worker = start_program(env, "kcron-worker", "w1", "worker-1");
  TestProducer producer;
  const std::string flow_id = "big";
  const auto json = flow_json(flow_id);
  REQUIRE(json.size() < 900'000);
  const auto submitted = std::chrono::steady_clock::now();
  producer.send(env.prefix + "jobs", flow_id, json);
  producer.flush();

  const std::size_t nodes = static_cast<std::size_t>(kWidth) * kDepth;
  int dispatcher_runs = 1;
  int worker_runs = 1;
  wait_for_nodes(env.prefix, nodes / 5, 120s);
  dispatcher->kill_hard();
  dispatcher = start_program(env, "kcron-dispatcher", "d1", fmt::format("dispatcher-{}", ++dispatcher_runs));
  wait_for_nodes(env.prefix, nodes * 2 / 5, 120s);
  worker->kill_hard();
  worker = start_program(env, "kcron-worker", "w1", fmt::format("worker-{}", ++worker_runs));
  wait_for_nodes(env.prefix, nodes * 3 / 5, 120s);
  dispatcher->kill_hard();
  dispatcher = start_program(env, "kcron-dispatcher", "d1", fmt::format("dispatcher-{}", ++dispatcher_runs));
  wait_for_nodes(env.prefix, nodes, 180s);
  const double seconds = seconds_since(submitted);
  std::this_thread::sleep_for(3s);  // late duplicates, if any, show

  const auto results = succeeded(read_topics({env.prefix + "results"}, 5s, [](const auto&) { return false; }));
  const auto exec = count_by_key(read_topics(exec_topics(env.prefix), 5s, [](const auto&) { return false; }));
  int fired_once = 0;
  int fired_twice = 0;
  int never_fired = 0;
  int early = 0;
  for (int level = 0; level < kDepth; ++level) {
    for (int index = 0; index < kWidth; ++index) {
      const std::string id = flow_id + "/" + node_name(level, index);
      const auto fired = exec.find(id);
      if (fired == exec.end()) {
        ++never_fired;
      } else if (fired->second == 1) {
        ++fired_once;
      } else {
        ++fired_twice;
      }
      const auto ran = results.find(id);
      if (ran == results.end()) continue;
      for (const auto& parent : parents_of(level, index)) {
        const auto parent_ran = results.find(fmt::format("{}/{}", flow_id, parent));
        // Every committed run of a parent finished before any run of the child started.
        if (parent_ran == results.end()) {
          ++early;
          continue;
        }
        for (const auto& child_run : ran->second) {
          for (const auto& parent_run : parent_ran->second) {
            if (child_run.started_ms() < parent_run.finished_ms()) ++early;
          }
        }
      }
    }
  }
  const auto status = run_cli(env, "flow status " + flow_id);
  const auto header = status.output.substr(0, status.output.find("NODE"));
  WARN(
      fmt::format("flow-faults: nodes={} fired_once={} fired_twice={} never_fired={} started_before_a_parent={} "
                  "succeeded={} seconds={:.1f} dispatcher_runs={} worker_runs={}\n$ kcron flow status {}\n{}",
                  nodes, fired_once, fired_twice, never_fired, early, results.size(), seconds, dispatcher_runs, worker_runs,
                  flow_id, header));
  CHECK(fired_once == static_cast<int>(nodes));
  CHECK(fired_twice == 0);
  CHECK(never_fired == 0);
  CHECK(early == 0);
  CHECK(results.size() == nodes);
  CHECK(status.output.find("1000 of 1000 nodes ended: 1000 succeeded") != std::string::npos);
}
