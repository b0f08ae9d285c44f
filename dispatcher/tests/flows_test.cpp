// Flows in the dispatcher core: arrival checks, triggers over parents' endings, the cascade,
// fail_fast, cancels, retries and repeated endings, all in the batch of the ending that caused them.
#include <catch2/catch.hpp>

#include "kcron/codec.h"
#include "tests/core_harness.h"

using namespace kcron;
using namespace kcron::dispatcher;
using namespace kcron::dispatcher::testing;

namespace {

// extract -> {transform, validate} -> load; `extra` nodes appended to the JSON list.
std::string diamond(const std::string& flow_id, const std::string& options = "", const std::string& extra = "") {
  return fmt::format(R"({{"flow":{{"id":"{}",{}"nodes":[)"
                     R"({{"name":"extract","job":{{"noop":{{}}}}}},)"
                     R"({{"name":"transform","job":{{"noop":{{}}}},"depends_on":["extract"]}},)"
                     R"({{"name":"validate","job":{{"noop":{{}}}},"depends_on":["extract"]}},)"
                     R"({{"name":"load","job":{{"noop":{{}}}},"depends_on":["transform","validate"]}}{}]}}}})",
                     flow_id, options, extra);
}

struct FlowHarness : Harness {
  void submit_flow(const std::string& json, const std::string& flow_id) { apply(json, flow_id); }
  void complete(const std::string& node_id, const std::string& state, std::uint32_t attempt = 0,
                const std::string& output_base64 = "", std::uint64_t size = 0) {
    apply(fmt::format(R"({{"completion":{{"job_id":"{}","attempt":{},"state":"{}","output":"{}","output_size":"{}"}}}})", node_id,
                      attempt, state, output_base64, size),
          std::string(routing_key_for_job(node_id)));
  }
  // The entry stored under `key` on the partition of `routed_by` (the key itself by default).
  v1::DispatcherEntry entry(const std::string& key, const std::string& routed_by = "") {
    auto value = state(partition_of(routed_by.empty() ? key : routed_by)).get(key);
    REQUIRE(value.ok());
    REQUIRE(value->has_value());
    v1::DispatcherEntry parsed;
    REQUIRE(parsed.ParseFromString(**value));
    return parsed;
  }
  v1::FlowState header(const std::string& flow_id) { return entry(DispatcherCore::flow_key(flow_id), flow_id).flow(); }
  // Status records taken from the output: job id -> the states written, in order.
  std::map<std::string, std::vector<v1::JobState>> statuses() {
    std::map<std::string, std::vector<v1::JobState>> states;
    for (const auto& record : take("kcron.status")) {
      v1::StatusRecord status;
      REQUIRE(status.ParseFromString(record.value));
      states[status.job_id()].push_back(status.state());
    }
    return states;
  }
  std::vector<std::string> dead_letter_reasons() {
    std::vector<std::string> reasons;
    for (const auto& record : take("dead-letters")) {
      v1::DeadLetter letter;
      REQUIRE(letter.ParseFromString(record.value));
      reasons.push_back(letter.reason());
    }
    return reasons;
  }
  std::vector<std::string> control_ids() {
    std::vector<std::string> ids;
    for (const auto& record : take("kcron.control")) ids.push_back(record.key);
    return ids;
  }
};

}  // namespace

TEST_CASE("flow: a diamond runs its root at once, each child when its parents succeeded, the join once") {
  FlowHarness harness;
  harness.submit_flow(diamond("etl"), "etl");
  CHECK(harness.exec_ids() == std::vector<std::string>{"etl/extract"});
  auto states = harness.statuses();
  CHECK(states["etl/extract"] == std::vector<v1::JobState>{v1::QUEUED});
  CHECK(states["etl/load"] == std::vector<v1::JobState>{v1::PENDING});
  CHECK(harness.entry("etl/load").state() == v1::DispatcherEntry::WAITING);
  CHECK(harness.header("etl").nodes() == 4);

  harness.complete("etl/extract", "SUCCEEDED");
  auto fired = harness.exec_ids();
  std::sort(fired.begin(), fired.end());
  CHECK(fired == std::vector<std::string>{"etl/transform", "etl/validate"});
  harness.complete("etl/transform", "SUCCEEDED");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.entry("etl/load").node().parents_ended() == 1);
  harness.complete("etl/transform", "SUCCEEDED");  // a repeated ending changes nothing
  CHECK(harness.entry("etl/load").node().parents_ended() == 1);
  harness.complete("etl/validate", "SUCCEEDED");
  CHECK(harness.exec_ids() == std::vector<std::string>{"etl/load"});
  harness.complete("etl/validate", "SUCCEEDED");
  CHECK(harness.exec_ids().empty());
  harness.complete("etl/load", "SUCCEEDED");
  const auto done = harness.header("etl");
  CHECK(done.ended() == 4);
  CHECK(done.succeeded() == 4);
  CHECK(done.ended_ms() > 0);
  CHECK(harness.entry("etl/load").state() == v1::DispatcherEntry::SUCCEEDED);

  harness.submit_flow(diamond("etl"), "etl");  // the same flow again: a duplicate
  CHECK(harness.exec_ids().empty());
  CHECK(harness.core.counts().flows == 1);
}

TEST_CASE("flow: a cycle, a missing parent and a node job naming another id are REJECTED with the reason") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"c","nodes":[{"name":"a","job":{"noop":{}},"depends_on":["b"]},{"name":"b","job":{"noop":{}},"depends_on":["a"]}]}})",
      "c");
  auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].find("flow 'c' has a cycle: ") != std::string::npos);
  harness.submit_flow(R"({"flow":{"id":"m","nodes":[{"name":"a","job":{"noop":{}},"depends_on":["zz"]}]}})", "m");
  reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] == "node 'a' depends on 'zz', which is not a node of flow 'm'");
  harness.submit_flow(R"({"flow":{"id":"i","nodes":[{"name":"a","job":{"id":"other","noop":{}}}]}})", "i");
  reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].find("node 'a': its job's id 'other' must be empty or 'i/a'") != std::string::npos);
  harness.submit_flow(R"({"flow":{"id":"q","nodes":[{"name":"a","job":{"queue":"nope","noop":{}}}]}})", "q");
  reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].starts_with("node 'a': unknown queue 'nope'"));
  CHECK(harness.exec_ids().empty());
  CHECK(harness.core.counts().flows == 0);
}

TEST_CASE("flow: a node that still names a template is REJECTED, saying that writers render templates") {
  FlowHarness harness;
  harness.submit_flow(R"({"flow":{"id":"t","nodes":[{"name":"a","job":{"noop":{}}},)"
                      R"({"name":"b","template_ref":{"ref":"report@3","params":{"day":"x"}},"depends_on":["a"]}]}})",
                      "t");
  auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(
      reasons[0].starts_with("node 'b': names template 'report@3' (template_ref): templates in flows are rendered by the "
                             "writer (kcron flow submit, kcron-api, the cron-producer)"));
  CHECK(harness.exec_ids().empty());
  CHECK(harness.core.counts().flows == 0);
  // A node whose job carries `template` text is a concrete job: the text is provenance only.
  harness.submit_flow(R"({"flow":{"id":"p","nodes":[{"name":"a","job":{"noop":{},"template":"report@3"}}]}})", "p");
  CHECK(harness.exec_ids() == std::vector<std::string>{"p/a"});
}

TEST_CASE("flow: a plain job whose id has the flow separator is REJECTED, and a flow's node id is not reusable") {
  FlowHarness harness;
  harness.submit(R"({"id":"etl/load","noop":{}})", "etl/load");
  auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].find("'etl/load' would be node 'load' of flow 'etl'") != std::string::npos);
  CHECK(harness.exec_ids().empty());
  CHECK(harness.statuses()["etl/load"] == std::vector<v1::JobState>{v1::REJECTED});
}

TEST_CASE(
    "flow: a DEAD node fails its all_success and none_failed dependants upstream, cascading, and runs all_done and one_failed "
    "ones") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"f","nodes":[
        {"name":"a","job":{"noop":{}}},
        {"name":"strict","job":{"noop":{}},"depends_on":["a"]},
        {"name":"after_strict","job":{"noop":{}},"depends_on":["strict"],"trigger":"all_done"},
        {"name":"grand","job":{"noop":{}},"depends_on":["strict"]},
        {"name":"cleanup","job":{"noop":{}},"depends_on":["a"],"trigger":"all_done"},
        {"name":"alert","job":{"noop":{}},"depends_on":["a"],"trigger":"one_failed"},
        {"name":"careful","job":{"noop":{}},"depends_on":["a"],"trigger":"NONE_FAILED"}]}})",
      "f");
  CHECK(harness.exec_ids() == std::vector<std::string>{"f/a"});
  harness.statuses();
  harness.complete("f/a", "DEAD");
  auto fired = harness.exec_ids();
  std::sort(fired.begin(), fired.end());
  CHECK(fired == std::vector<std::string>{"f/after_strict", "f/alert", "f/cleanup"});
  auto states = harness.statuses();
  CHECK(states["f/strict"] == std::vector<v1::JobState>{v1::UPSTREAM_FAILED});
  CHECK(states["f/grand"] == std::vector<v1::JobState>{v1::UPSTREAM_FAILED});
  CHECK(states["f/careful"] == std::vector<v1::JobState>{v1::UPSTREAM_FAILED});
  CHECK(harness.entry("f/grand").state() == v1::DispatcherEntry::UPSTREAM_FAILED);
  const auto header = harness.header("f");
  CHECK(header.ended() == 4);  // a, strict, grand, careful
  CHECK(header.failed() == 4);
  CHECK(harness.core.counts().upstream_failed == 3);
}

TEST_CASE("flow: a one_failed node is SKIPPED when every parent succeeded, and its all_success child follows") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"s","nodes":[{"name":"a","job":{"noop":{}}},{"name":"alert","job":{"noop":{}},"depends_on":["a"],"trigger":"one_failed"},
         {"name":"after","job":{"noop":{}},"depends_on":["alert"]},{"name":"tidy","job":{"noop":{}},"depends_on":["alert"],"trigger":"none_failed"}]}})",
      "s");
  harness.exec_ids();
  harness.statuses();
  harness.complete("s/a", "SUCCEEDED");
  CHECK(harness.exec_ids() == std::vector<std::string>{"s/tidy"});
  auto states = harness.statuses();
  CHECK(states["s/alert"] == std::vector<v1::JobState>{v1::SKIPPED});
  CHECK(states["s/after"] == std::vector<v1::JobState>{v1::UPSTREAM_FAILED});
}

TEST_CASE("flow: fail_fast cancels waiting and pending nodes and sends cancels to fired ones") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"ff","fail_fast":true,"nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","job":{"noop":{}}},
         {"name":"later","job":{"delay":"60s","noop":{}}},{"name":"c","job":{"noop":{}},"depends_on":["b"],"trigger":"all_done"}]}})",
      "ff");
  auto fired = harness.exec_ids();
  std::sort(fired.begin(), fired.end());
  CHECK(fired == std::vector<std::string>{"ff/a", "ff/b"});
  harness.statuses();
  harness.complete("ff/a", "DEAD");
  CHECK(harness.control_ids() == std::vector<std::string>{"ff/b"});
  auto states = harness.statuses();
  CHECK(states["ff/later"] == std::vector<v1::JobState>{v1::CANCELLED});
  CHECK(states["ff/c"] == std::vector<v1::JobState>{v1::CANCELLED});
  CHECK(harness.header("ff").cancel_requested());
  CHECK(harness.header("ff").ended() == 3);
  harness.complete("ff/b", "CANCELLED");  // its worker stopped it
  CHECK(harness.exec_ids().empty());
  CHECK(harness.header("ff").ended() == 4);
  CHECK(harness.header("ff").ended_ms() > 0);
  harness.clock.advance(Millis(61'000));
  CHECK(harness.fire("ff/later") == 0);  // cancelled: never fires
  CHECK(harness.exec_ids().empty());
}

TEST_CASE("flow: cancelling a flow cancels its nodes that have not ended, a second cancel changes nothing") {
  FlowHarness harness;
  harness.submit_flow(diamond("x"), "x");
  harness.exec_ids();
  harness.complete("x/extract", "SUCCEEDED");
  harness.exec_ids();
  harness.statuses();
  harness.apply(R"({"cancel":{"job_id":"x","flow":true,"reason":"operator"}})", "x");
  auto control = harness.control_ids();
  std::sort(control.begin(), control.end());
  CHECK(control == std::vector<std::string>{"x/transform", "x/validate"});
  CHECK(harness.statuses()["x/load"] == std::vector<v1::JobState>{v1::CANCELLED});
  harness.apply(R"({"cancel":{"job_id":"x","flow":true}})", "x");
  CHECK(harness.control_ids().empty());
  harness.complete("x/transform", "SUCCEEDED");  // finished before the cancel reached it
  harness.complete("x/validate", "CANCELLED");
  CHECK(harness.exec_ids().empty());
  const auto header = harness.header("x");
  CHECK(header.ended() == 4);
  CHECK(header.succeeded() == 2);
  CHECK(header.cancelled() == 2);
  harness.apply(R"({"cancel":{"job_id":"nope","flow":true}})", "nope");
  const auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] == "cannot cancel flow 'nope': no such flow");
}

TEST_CASE("flow: a node's own delay counts from its release, and its children wait for it") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"d","nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","job":{"delay":"5s","noop":{}},"depends_on":["a"]}]}})",
      "d");
  harness.exec_ids();
  harness.clock.advance(Millis(10'000));
  harness.complete("d/a", "SUCCEEDED");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.entry("d/b").state() == v1::DispatcherEntry::PENDING);
  CHECK(harness.entry("d/b").due_ms() == kStart + 15'000);
  harness.clock.advance(Millis(4'000));
  CHECK(harness.fire("d/b") == 0);
  harness.clock.advance(Millis(1'000));
  CHECK(harness.fire("d/b") == 1);
  CHECK(harness.exec_ids() == std::vector<std::string>{"d/b"});
}

TEST_CASE("flow: a child's job carries its parents' outputs inline, or their size when too large") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"o","nodes":[{"name":"a","job":{"noop":{}}},{"name":"big","job":{"noop":{}}},
         {"name":"c","job":{"noop":{}},"depends_on":["a","big"]}]}})",
      "o");
  harness.exec_ids();
  harness.complete("o/a", "SUCCEEDED", 0, "aGVsbG8=", 5);  // "hello"
  harness.complete("o/big", "SUCCEEDED", 0, "", 1'000'000);
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 1);
  v1::Execution execution;
  REQUIRE(execution.ParseFromString(exec[0].value));
  CHECK(execution.job().flow().id() == "o");
  CHECK(execution.job().flow().node() == "c");
  REQUIRE(execution.job().flow().inputs_size() == 2);
  CHECK(execution.job().flow().inputs(0).node() == "a");
  CHECK(execution.job().flow().inputs(0).output() == "hello");
  CHECK(execution.job().flow().inputs(1).node() == "big");
  CHECK(execution.job().flow().inputs(1).too_large());
  CHECK(execution.job().flow().inputs(1).size() == 1'000'000);
}

TEST_CASE("flow: a node retried by its worker keeps its place, and only its last attempt's ending counts") {
  FlowHarness harness;
  harness.submit_flow(diamond("r"), "r");
  harness.exec_ids();
  harness.complete("r/extract", "SUCCEEDED", 1);  // an ending of an attempt that is not the fired one
  CHECK(harness.exec_ids().empty());
  harness.apply(R"({"retry":{"job":{"id":"r/extract","attempt":1,"noop":{},"flow":{"id":"r","node":"extract"}},"due_ms":"0"}})",
                "r");
  CHECK(harness.exec_ids() == std::vector<std::string>{"r/extract"});
  CHECK(harness.entry("r/extract").has_node());
  harness.complete("r/extract", "SUCCEEDED", 1);
  auto fired = harness.exec_ids();
  CHECK(fired.size() == 2);
}

TEST_CASE("flow: cancelling a waiting node ends it CANCELLED and its dependants follow their triggers") {
  FlowHarness harness;
  harness.submit_flow(diamond("w", "", R"(,{"name":"report","job":{"noop":{}},"depends_on":["load"],"trigger":"all_done"})"),
                      "w");
  harness.exec_ids();
  harness.statuses();
  harness.apply(R"({"cancel":{"job_id":"w/load"}})", "w");
  auto states = harness.statuses();
  CHECK(states["w/load"] == std::vector<v1::JobState>{v1::CANCELLED});
  CHECK(harness.exec_ids() == std::vector<std::string>{"w/report"});
  harness.apply(R"({"update":{"job":{"id":"w/transform","noop":{}}}})", "w");
  const auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] == "cannot update job 'w/transform': it is a node of flow 'w'");
}

TEST_CASE("flow: the changelog restores a flow mid-way, and the restored state decides the same") {
  FlowHarness harness;
  harness.submit_flow(diamond("z"), "z");
  harness.complete("z/extract", "SUCCEEDED");
  harness.complete("z/transform", "SUCCEEDED");
  const auto partition = harness.partition_of("z/load");
  REQUIRE(harness.state(partition).commit({harness.offset, harness.clock.now()}).ok());
  // A second dispatcher restores the partition from the changelog this one wrote.
  FlowHarness restored;
  restored.clock.advance(harness.clock.now() - restored.clock.now());
  for (const auto& record : harness.take("dispatcher-changelog")) {
    REQUIRE(DispatcherCore::restore(restored.state(Partition(record.partition)), record.key, record.value, record.value.empty())
                .ok());
  }
  CHECK(restored.entry("z/load").node().parents_ended() == 1);
  restored.complete("z/validate", "SUCCEEDED");
  CHECK(restored.exec_ids() == std::vector<std::string>{"z/load"});
}

TEST_CASE("flow: deleting its tenant cancels a flow, and a running node's ending then releases nothing") {
  FlowHarness harness;
  const std::string key = scoped_key("acme", "t");
  harness.apply(
      R"({"flow":{"id":"t","tenant":"acme","nodes":[{"name":"a","job":{"noop":{}}},{"name":"w","job":{"delay":"60s","noop":{}}},
         {"name":"after_a","job":{"noop":{}},"depends_on":["a"],"trigger":"all_done"}]}})",
      key);
  CHECK(harness.exec_ids() == std::vector<std::string>{scoped_key("acme", "t/a")});
  harness.statuses();
  const auto partition = harness.partition_of(key);
  v1::Command purge;
  purge.mutable_purge_tenant()->set_tenant("acme");
  const std::string bytes = encode(purge);
  InputRecord record{partition, 99, "acme", bytes, "application/x-protobuf", "purge-tenant", harness.clock.now(), {}};
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());
  auto states = harness.statuses();
  CHECK(states["t/w"] == std::vector<v1::JobState>{v1::CANCELLED});
  CHECK(states["t/after_a"] == std::vector<v1::JobState>{v1::CANCELLED});
  CHECK(harness.entry(scoped_key("acme", "t/w"), key).has_node());
  harness.apply(R"({"completion":{"job_id":"t/a","tenant":"acme","attempt":0,"state":"CANCELLED"}})", key);
  CHECK(harness.exec_ids().empty());
  const auto header = harness.entry(DispatcherCore::flow_key(key), key).flow();
  CHECK(header.cancel_requested());
  CHECK(header.ended() == 3);
  CHECK(header.ended_ms() > 0);
}

TEST_CASE("flow: a cancel sent before its flow arrived cancels that node, and its dependants follow") {
  FlowHarness harness;
  harness.apply(R"({"cancel":{"job_id":"early/extract"}})", "early");
  harness.submit_flow(diamond("early", "", R"(,{"name":"report","job":{"noop":{}},"depends_on":["load"],"trigger":"all_done"})"),
                      "early");
  CHECK(harness.exec_ids() == std::vector<std::string>{"early/report"});
  auto states = harness.statuses();
  CHECK(states["early/extract"] == std::vector<v1::JobState>{v1::CANCELLED});
  CHECK(states["early/load"].back() == v1::UPSTREAM_FAILED);
}

TEST_CASE("flow: a flow whose nodes would take its tenant past its pending-jobs share is REJECTED") {
  FlowHarness harness;
  v1::TenantSettings settings;
  settings.set_name("acme");
  settings.mutable_limits()->set_max_pending_jobs(24);  // a share of 3 on each partition (with the slack)
  harness.tenants.put(settings);
  const std::string key = scoped_key("acme", "big");
  harness.apply(diamond("big", R"("tenant":"acme",)"), key);
  const auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].starts_with("a flow of 4 nodes would take tenant 'acme' past its limit of 24 pending jobs"));
  CHECK(harness.exec_ids().empty());
}

TEST_CASE("flow: a fired node never expires while it runs, and only its fired attempt's retry re-arms it") {
  FlowHarness harness;
  harness.submit_flow(diamond("k"), "k");
  harness.exec_ids();
  CHECK(harness.entry("k/extract").expires_ms() == 0);
  harness.clock.advance(Millis(2 * 3'600'000));  // past the dedupe retention
  CHECK(harness.fire("k/extract") == 0);
  CHECK(harness.entry("k/extract").state() == v1::DispatcherEntry::FIRED);
  // A retry of a waiting node, or one skipping an attempt, changes nothing.
  harness.apply(R"({"retry":{"job":{"id":"k/load","attempt":1,"noop":{}},"due_ms":"0"}})", "k");
  harness.apply(R"({"retry":{"job":{"id":"k/extract","attempt":2,"noop":{}},"due_ms":"0"}})", "k");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.entry("k/load").state() == v1::DispatcherEntry::WAITING);
  harness.complete("k/extract", "SUCCEEDED");
  CHECK(harness.entry("k/extract").expires_ms() > 0);
}

TEST_CASE("flow: a node with more parents than the limit, or a job too large to carry its inputs, is REJECTED") {
  FlowHarness harness;
  std::string nodes;
  std::string parents;
  for (int index = 0; index < 257; ++index) {
    nodes += fmt::format(R"({{"name":"p{}","job":{{"noop":{{}}}}}},)", index);
    parents += fmt::format(R"({}"p{}")", index == 0 ? "" : ",", index);
  }
  harness.submit_flow(
      fmt::format(R"({{"flow":{{"id":"wide","nodes":[{}{{"name":"join","job":{{"noop":{{}}}},"depends_on":[{}]}}]}}}})", nodes,
                  parents),
      "wide");
  auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] == "node 'join' has 257 parents, over the limit of 256");
  const std::string payload(850'000, 'x');
  harness.submit_flow(
      fmt::format(R"({{"flow":{{"id":"fat","nodes":[{{"name":"a","job":{{"noop":{{}},"labels":{{"big":"{}"}}}}}}]}}}})", payload),
      "fat");
  reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0].find("leaves no room for its parents' outputs") != std::string::npos);
}

TEST_CASE("flow: a retry runs the DEAD nodes and what depends on them again as new attempts, and keeps what succeeded") {
  FlowHarness harness;
  harness.submit_flow(diamond("rt", "", R"(,{"name":"report","job":{"noop":{}},"depends_on":["load"],"trigger":"all_done"})"),
                      "rt");
  harness.exec_ids();
  harness.apply(R"({"replay":{"job_id":"rt","flow":true}})", "rt");  // still running
  auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] == "cannot retry flow 'rt': it is still running (0 of 5 nodes ended): retry it once it ended");
  harness.complete("rt/extract", "SUCCEEDED", 0, "ZXh0cmFjdGVk", 9);  // "extracted"
  harness.exec_ids();
  harness.complete("rt/validate", "SUCCEEDED");
  harness.complete("rt/transform", "DEAD");
  CHECK(harness.exec_ids() == std::vector<std::string>{"rt/report"});  // load failed upstream, report runs all_done
  harness.complete("rt/report", "SUCCEEDED");
  CHECK(harness.header("rt").ended() == 5);
  harness.statuses();

  harness.apply(R"({"replay":{"job_id":"rt","flow":true}})", "rt");
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 1);  // transform again; load and report wait for it
  v1::Execution execution;
  REQUIRE(execution.ParseFromString(exec[0].value));
  CHECK(execution.job().id() == "rt/transform");
  CHECK(execution.job().attempt() == 1);
  REQUIRE(execution.job().flow().inputs_size() == 1);
  CHECK(execution.job().flow().inputs(0).output() == "extracted");
  CHECK(harness.entry("rt/load").state() == v1::DispatcherEntry::WAITING);
  CHECK(harness.entry("rt/load").node().parents_ended() == 1);  // validate stays SUCCEEDED
  CHECK(harness.entry("rt/validate").state() == v1::DispatcherEntry::SUCCEEDED);
  CHECK(harness.header("rt").ended() == 2);

  harness.complete("rt/transform", "SUCCEEDED", 0);  // the old attempt's ending changes nothing
  CHECK(harness.exec_ids().empty());
  harness.complete("rt/transform", "SUCCEEDED", 1);
  CHECK(harness.exec_ids() == std::vector<std::string>{"rt/load"});
  CHECK(harness.entry("rt/load").attempt() == 1);
  harness.complete("rt/load", "SUCCEEDED", 1);
  CHECK(harness.exec_ids() == std::vector<std::string>{"rt/report"});
  harness.complete("rt/report", "SUCCEEDED", 1);
  const auto header = harness.header("rt");
  CHECK(header.ended() == 5);
  CHECK(header.succeeded() == 5);
  CHECK(header.ended_ms() > 0);

  harness.apply(R"({"replay":{"job_id":"rt","flow":true}})", "rt");
  reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] == "cannot retry flow 'rt': no node of it ended DEAD");
}

TEST_CASE(
    "flow: a retry of a flow fail_fast cancelled runs its DEAD and cancelled nodes again, and one with forgotten nodes is "
    "refused") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"fr","fail_fast":true,"nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","job":{"noop":{}}},
         {"name":"c","job":{"noop":{}},"depends_on":["b"]}]}})",
      "fr");
  harness.exec_ids();
  harness.complete("fr/a", "DEAD");
  harness.complete("fr/b", "CANCELLED");  // stopped by fail_fast on its worker
  CHECK(harness.header("fr").ended() == 3);
  harness.statuses();
  harness.apply(R"({"replay":{"job_id":"fr","flow":true}})", "fr");
  auto fired = harness.exec_ids();
  std::sort(fired.begin(), fired.end());
  CHECK(fired == std::vector<std::string>{"fr/a", "fr/b"});
  CHECK(harness.entry("fr/c").state() == v1::DispatcherEntry::WAITING);
  CHECK_FALSE(harness.header("fr").cancel_requested());

  harness.complete("fr/a", "SUCCEEDED", 1);
  harness.complete("fr/b", "SUCCEEDED", 1);
  CHECK(harness.exec_ids() == std::vector<std::string>{"fr/c"});

  // A flow whose DEAD node's record was forgotten while the rest ran on cannot be retried.
  harness.submit_flow(R"({"flow":{"id":"fg","nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","job":{"noop":{}}}]}})", "fg");
  harness.complete("fg/a", "DEAD");
  harness.clock.advance(Millis(50 * 60'000));
  harness.complete("fg/b", "SUCCEEDED");
  harness.clock.advance(Millis(20 * 60'000));  // a's record (an hour's retention) is forgotten, the header is not
  harness.fire("fg/a");
  harness.dead_letter_reasons();
  harness.apply(R"({"replay":{"job_id":"fg","flow":true}})", "fg");
  const auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  INFO(reasons[0]);
  CHECK(reasons[0].starts_with("cannot retry flow 'fg': 1 of its 2 nodes' records have been forgotten"));
}

namespace {

// A two-node run `<schedule>@<run>` of schedule `nightly` (a -> b), starting at `run_at_ms`.
std::string scheduled_run(const std::string& run, std::int64_t run_at_ms, const std::string& policies) {
  return fmt::format(R"({{"flow":{{"id":"nightly@{}","run_at_ms":"{}","schedule_run":{{"schedule_id":"nightly",{}}},"nodes":[)"
                     R"({{"name":"a","job":{{"noop":{{}}}}}},{{"name":"b","job":{{"noop":{{}}}},"depends_on":["a"]}}]}}}})",
                     run, run_at_ms, policies);
}

}  // namespace

TEST_CASE("flow: a flow with run_at_ms waits as one entry, and its roots are released at that instant") {
  FlowHarness harness;
  harness.submit_flow(diamond("later", R"("run_at_ms":")" + std::to_string(kStart + 10'000) + R"(",)"), "later");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.header("later").starts_ms() == kStart + 10'000);
  CHECK(harness.entry("later").state() == v1::DispatcherEntry::PENDING);
  CHECK(harness.entry("later/extract").state() == v1::DispatcherEntry::WAITING);
  harness.clock.advance(Millis(9'999));
  CHECK(harness.fire("later") == 0);
  harness.clock.advance(Millis(1));
  CHECK(harness.fire("later") == 1);
  CHECK(harness.exec_ids() == std::vector<std::string>{"later/extract"});
  CHECK(harness.header("later").starts_ms() == 0);
  CHECK_FALSE(harness.state(harness.partition_of("later")).get("later")->has_value());  // its start is gone
  // While it waits, an update of the flow id's job is refused, and a second flow of that id is a duplicate.
  harness.submit_flow(diamond("soon", R"("run_at_ms":")" + std::to_string(kStart + 60'000) + R"(",)"), "soon");
  harness.apply(R"({"update":{"job":{"id":"soon","noop":{}}}})", "soon");
  CHECK(harness.dead_letter_reasons() == std::vector<std::string>{"cannot update job 'soon': it is the start of flow 'soon'"});
  const auto duplicates = harness.core.counts().duplicates;
  harness.submit_flow(diamond("soon"), "soon");
  CHECK(harness.core.counts().duplicates == duplicates + 1);
  CHECK(harness.exec_ids().empty());
  // A start beyond the horizon is refused, as a job's would be.
  harness.submit_flow(diamond("never", R"("run_at_ms":"9000000000000000",)"), "never");
  const auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK_THAT(reasons[0], Catch::Contains("is beyond the horizon of"));
}

TEST_CASE("flow: a node cancelled while its flow waits releases no child before the start, and the start decides them") {
  FlowHarness harness;
  harness.submit_flow(
      R"({"flow":{"id":"w","run_at_ms":")" + std::to_string(kStart + 60'000) +
          R"(","nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","job":{"noop":{}},"depends_on":["a"],"trigger":"all_done"},
         {"name":"c","job":{"noop":{}},"depends_on":["a"]},{"name":"r","job":{"noop":{}}}]}})",
      "w");
  harness.apply(R"({"cancel":{"job_id":"w/a"}})", "w");
  CHECK(harness.exec_ids().empty());  // b's trigger holds, but the flow has not started
  CHECK(harness.entry("w/b").state() == v1::DispatcherEntry::WAITING);
  CHECK(harness.entry("w/c").state() == v1::DispatcherEntry::UPSTREAM_FAILED);
  harness.clock.advance(Millis(60'000));
  CHECK(harness.fire("w") == 1);
  auto fired = harness.exec_ids();
  std::sort(fired.begin(), fired.end());
  CHECK(fired == std::vector<std::string>{"w/b", "w/r"});
}

TEST_CASE("flow: a waiting flow whose nodes all ended, or cancelled before it came, never starts, and a retry refuses it") {
  FlowHarness harness;
  const auto at = std::to_string(kStart + 60'000);
  harness.submit_flow(R"({"flow":{"id":"v","run_at_ms":")" + at + R"(","nodes":[{"name":"a","job":{"noop":{}}}]}})", "v");
  harness.apply(R"({"cancel":{"job_id":"v/a"}})", "v");
  CHECK(harness.header("v").ended() == 1);
  CHECK(harness.header("v").never_started());
  CHECK_FALSE(harness.state(harness.partition_of("v")).get("v")->has_value());  // its start is gone
  // A cancel of the flow id's job before the flow arrived cancels the flow when it comes.
  harness.apply(R"({"cancel":{"job_id":"m"}})", "m");
  harness.submit_flow(diamond("m", R"("run_at_ms":")" + at + R"(",)"), "m");
  CHECK(harness.header("m").ended() == 4);
  CHECK(harness.header("m").cancelled() == 4);
  harness.clock.advance(Millis(60'000));
  CHECK(harness.fire("v") == 0);
  harness.fire("m");  // its cancel marker expires: nothing fires
  CHECK(harness.exec_ids().empty());
  harness.dead_letter_reasons();
  harness.apply(R"({"replay":{"flow":true,"job_id":"v"}})", "v");
  const auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK_THAT(reasons[0], Catch::Contains("cannot retry flow 'v': it never started"));
}

TEST_CASE("flow: deleting its tenant cancels a flow that waits for its start, and its start goes") {
  FlowHarness harness;
  const std::string key = scoped_key("acme", "p");
  harness.apply(R"({"flow":{"id":"p","tenant":"acme","run_at_ms":")" + std::to_string(kStart + 60'000) +
                    R"(","nodes":[{"name":"a","job":{"noop":{}}}]}})",
                key);
  const auto partition = harness.partition_of(key);
  v1::Command purge;
  purge.mutable_purge_tenant()->set_tenant("acme");
  const std::string bytes = encode(purge);
  InputRecord record{partition, 99, "acme", bytes, "application/x-protobuf", "purge-tenant", harness.clock.now(), {}};
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());
  const auto header = harness.entry(DispatcherCore::flow_key(key), key).flow();
  CHECK(header.ended() == 1);
  CHECK(header.never_started());
  CHECK_FALSE(harness.state(partition).get(key)->has_value());
  harness.clock.advance(Millis(60'000));
  CHECK(harness.fire(key) == 0);
  CHECK(harness.exec_ids().empty());
}

TEST_CASE("flow: cancelling a flow before its start, or the job of its id, cancels every node and it never starts") {
  FlowHarness harness;
  const auto at = std::to_string(kStart + 10'000);
  harness.submit_flow(diamond("c1", R"("run_at_ms":")" + at + R"(",)"), "c1");
  harness.submit_flow(diamond("c2", R"("run_at_ms":")" + at + R"(",)"), "c2");
  harness.statuses();
  harness.apply(R"({"cancel":{"job_id":"c1","flow":true}})", "c1");
  harness.apply(R"({"cancel":{"job_id":"c2"}})", "c2");
  auto states = harness.statuses();
  for (const auto* id : {"c1/extract", "c1/load", "c2/extract", "c2/load"}) {
    CHECK(states[id] == std::vector<v1::JobState>{v1::CANCELLED});
  }
  CHECK(harness.header("c1").ended() == 4);
  CHECK(harness.header("c2").ended() == 4);
  CHECK(harness.header("c2").starts_ms() == 0);
  harness.clock.advance(Millis(20'000));
  CHECK(harness.fire("c1") == 0);
  CHECK(harness.fire("c2") == 0);
  CHECK(harness.exec_ids().empty());
}

TEST_CASE("flow: a schedule's flow runs follow overlap forbid, and the slot frees when the whole flow ended") {
  FlowHarness harness;
  const std::string forbid = R"("overlap":"FORBID")";
  harness.submit_flow(scheduled_run("1", kStart, forbid), "nightly");
  CHECK(harness.exec_ids() == std::vector<std::string>{"nightly@1/a"});
  harness.complete("nightly@1/a", "SUCCEEDED");
  CHECK(harness.exec_ids() == std::vector<std::string>{"nightly@1/b"});
  harness.statuses();
  // The second run's instant comes while b of the first runs: skipped, every node of it SKIPPED.
  harness.submit_flow(scheduled_run("2", kStart + 1'000, forbid), "nightly");
  harness.clock.advance(Millis(1'000));
  CHECK(harness.fire("nightly") == 1);
  CHECK(harness.exec_ids().empty());
  auto states = harness.statuses();
  CHECK(states["nightly@2/a"] == std::vector<v1::JobState>{v1::PENDING, v1::SKIPPED});
  CHECK(states["nightly@2/b"] == std::vector<v1::JobState>{v1::PENDING, v1::SKIPPED});
  CHECK(harness.header("nightly@2").ended() == 2);
  // The first run's last node ends: the third run goes through.
  harness.complete("nightly@1/b", "SUCCEEDED");
  harness.submit_flow(scheduled_run("3", kStart + 2'000, forbid), "nightly");
  harness.clock.advance(Millis(1'000));
  CHECK(harness.fire("nightly") == 1);
  CHECK(harness.exec_ids() == std::vector<std::string>{"nightly@3/a"});
}

TEST_CASE("flow: overlap replace cancels the running flow run's nodes, and misfire skip skips a late run") {
  FlowHarness harness;
  const std::string replace = R"("overlap":"REPLACE")";
  harness.submit_flow(scheduled_run("1", kStart, replace), "nightly");
  CHECK(harness.exec_ids() == std::vector<std::string>{"nightly@1/a"});
  harness.statuses();
  harness.submit_flow(scheduled_run("2", kStart + 1'000, replace), "nightly");
  harness.clock.advance(Millis(1'000));
  CHECK(harness.fire("nightly") == 1);
  CHECK(harness.control_ids() == std::vector<std::string>{"nightly@1/a"});
  CHECK(harness.exec_ids() == std::vector<std::string>{"nightly@2/a"});
  CHECK(harness.statuses()["nightly@1/b"] == std::vector<v1::JobState>{v1::CANCELLED});
  CHECK(harness.header("nightly@1").cancel_requested());
  // The replaced run's node ends: the slot stays the new run's (a FORBID run now is skipped).
  harness.complete("nightly@1/a", "CANCELLED");
  harness.submit_flow(scheduled_run("3", kStart + 2'000, R"("overlap":"FORBID")"), "nightly");
  harness.clock.advance(Millis(1'000));
  CHECK(harness.fire("nightly") == 1);
  CHECK(harness.exec_ids().empty());
  CHECK(harness.header("nightly@3").never_started());
  harness.complete("nightly@2/a", "SUCCEEDED");
  harness.exec_ids();
  harness.statuses();
  // A run that reaches the dispatcher long after its instant, under misfire skip.
  harness.clock.advance(Millis(60'000));
  harness.submit_flow(scheduled_run("late", kStart + 1'500, R"("misfire":"SKIP")"), "nightly");
  auto states = harness.statuses();
  CHECK(states["nightly@late/a"] == std::vector<v1::JobState>{v1::PENDING, v1::SKIPPED});
  CHECK(harness.exec_ids().empty());
  // A run whose schedule_run names another schedule than its id's is refused.
  harness.submit_flow(
      R"({"flow":{"id":"nightly@x","schedule_run":{"schedule_id":"other"},"nodes":[{"name":"a","job":{"noop":{}}}]}})",
      "nightly");
  const auto reasons = harness.dead_letter_reasons();
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] == "schedule_run names schedule 'other', but flow 'nightly@x' is a run of 'nightly'");
}
