// Flows in kcron-api's view: the header and node entries a Flow record leaves, the node jobs it
// defines, the per-flow counts kept as node views change state, tenant isolation, rejection and
// forgetting (api/core/flow_view.h, api/view/view_store.h).
#include "core/flow_view.h"

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "core/job_view.h"
#include "view/view_store.h"

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir()
      : path(std::filesystem::temp_directory_path() /
             (fmt::format("kcron-api-flow-{}", ::getpid()) + fmt::format("-{}", counter()++))) {
    std::filesystem::remove_all(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  static int& counter() {
    static int value = 0;
    return value;
  }
};

// extract -> (transform, validate) -> load
kcron::v1::Flow etl(const std::string& id, const std::string& tenant) {
  kcron::v1::Flow flow;
  flow.set_id(id);
  flow.set_tenant(tenant);
  flow.set_submitted_by("alice");
  flow.set_fail_fast(true);
  (*flow.mutable_labels())["team"] = "data";
  const std::vector<std::pair<std::string, std::vector<std::string>>> shape{
      {"extract", {}}, {"transform", {"extract"}}, {"validate", {"extract"}}, {"load", {"transform", "validate"}}};
  for (const auto& [name, parents] : shape) {
    auto* node = flow.add_nodes();
    node->set_name(name);
    node->mutable_job()->mutable_noop();
    (*node->mutable_job()->mutable_labels())["team"] = "own";
    for (const auto& parent : parents) node->add_depends_on(parent);
  }
  flow.mutable_nodes(3)->set_trigger(kcron::v1::FlowNode::ALL_DONE);
  return flow;
}

void set_state(kcron::api::ViewBatch& batch, std::string_view tenant, const std::string& id, kcron::v1::JobState state,
               std::uint64_t sequence, std::uint32_t attempt = 0) {
  kcron::v1::StatusRecord record;
  record.set_job_id(id);
  record.set_tenant(std::string(tenant));
  record.set_state(state);
  record.set_attempt(attempt);
  record.set_sequence(sequence);
  record.set_at_ms(5000);
  kcron::api::fold_status(batch.job(tenant, id), record);
}

kcron::api::FlowSummary summary(const kcron::api::ViewStore& store, std::string_view tenant, std::string_view id) {
  return kcron::api::summarize_flow(*store.flow(tenant, id), store.flow_counts(tenant, id).by_state, 0);
}

}  // namespace

TEST_CASE("a node's job is the flow's node job: its id, tenant, flow ref, labels and submitter") {
  const auto flow = etl("f", "acme");
  const auto job = kcron::api::flow_node_job(flow, flow.nodes(1), "acme");
  CHECK(job.id() == "f/transform");
  CHECK(job.tenant() == "acme");
  CHECK(job.flow().id() == "f");
  CHECK(job.flow().node() == "transform");
  CHECK(job.labels().at("team") == "own");  // its own label wins
  CHECK(job.submitted_by() == "alice");
  kcron::v1::JobView view;
  view.set_id("f/transform");
  *view.mutable_job() = job;
  CHECK(kcron::api::counted_flow(view) == std::optional<std::string>("f"));
  view.set_id("other");  // a job naming a flow ref that is not its own id's
  CHECK_FALSE(kcron::api::counted_flow(view).has_value());
  // A schedule's flow run: its nodes carry the run's schedule, so they list with the schedule's runs.
  auto run = etl("nightly@2026-12-08T01:00:00Z", "acme");
  run.mutable_schedule_run()->set_schedule_id("nightly");
  CHECK(kcron::api::flow_node_job(run, run.nodes(0), "acme").schedule_run().schedule_id() == "nightly");
  CHECK_FALSE(job.has_schedule_run());
}

TEST_CASE("a flow's state is derived from its node counts as kcron flow status derives it") {
  kcron::v1::FlowView flow;
  flow.set_nodes(4);
  using kcron::api::summarize_flow;
  CHECK(summarize_flow(flow, {}, 0).state == "RUNNING");
  CHECK(summarize_flow(flow, {}, 0).waiting == 4);
  CHECK(summarize_flow(flow, {{kcron::v1::SUCCEEDED, 3}, {kcron::v1::RUNNING, 1}}, 0).state == "RUNNING");
  CHECK(summarize_flow(flow, {{kcron::v1::SUCCEEDED, 4}}, 0).state == "SUCCEEDED");
  // A start still ahead: SCHEDULED, its nodes PENDING (waiting for it) or not read yet; RUNNING
  // from the instant on.
  flow.set_run_at_ms(5'000);
  CHECK(summarize_flow(flow, {}, 4'999).state == "SCHEDULED");
  CHECK(summarize_flow(flow, {{kcron::v1::PENDING, 3}, {kcron::v1::JOB_STATE_UNSPECIFIED, 1}}, 4'999).state == "SCHEDULED");
  CHECK(summarize_flow(flow, {{kcron::v1::PENDING, 4}}, 5'000).state == "RUNNING");
  flow.clear_run_at_ms();
  CHECK(summarize_flow(flow, {{kcron::v1::SUCCEEDED, 2}, {kcron::v1::DEAD, 1}, {kcron::v1::UPSTREAM_FAILED, 1}}, 0).state ==
        "FAILED");
  const auto ended = summarize_flow(flow, {{kcron::v1::SUCCEEDED, 2}, {kcron::v1::CANCELLED, 1}, {kcron::v1::SKIPPED, 1}}, 0);
  CHECK(ended.state == "ENDED");
  CHECK(ended.cancelled == 2);
  CHECK(ended.ended == 4);
  flow.set_cancel_requested(true);
  CHECK(summarize_flow(flow, {{kcron::v1::RUNNING, 4}}, 0).state == "CANCELLING");
  flow.set_rejected_reason("flow 'f' has a cycle");
  CHECK(summarize_flow(flow, {}, 0).state == "REJECTED");
  CHECK(kcron::api::flow_node_state_name(kcron::v1::JOB_STATE_UNSPECIFIED) == "WAITING");
}

TEST_CASE("a flow record leaves its header, its nodes by name and each node's job in the view, for its tenant only") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  batch.flow(etl("f", "acme"), 1000, "kcron.jobs/0@7");
  REQUIRE((*store)->commit(batch).ok());
  const auto flow = (*store)->flow("acme", "f");
  REQUIRE(flow.has_value());
  CHECK(flow->nodes() == 4);
  CHECK(flow->fail_fast());
  CHECK(flow->submitted_by() == "alice");
  CHECK(flow->submitted_ms() == 1000);
  CHECK(flow->labels().at("team") == "data");
  CHECK_FALSE((*store)->flow("globex", "f").has_value());
  CHECK_FALSE((*store)->flow("default", "f").has_value());
  CHECK((*store)->flow_nodes("globex", "f", "", 10).items.empty());
  const auto node = (*store)->job("acme", "f/load");
  REQUIRE(node.has_value());
  CHECK(node->job().flow().node() == "load");
  CHECK(node->submitted_ms() == 1000);
  CHECK(node->submitted_by() == "alice");
  CHECK(node->source() == "kcron.jobs/0@7");
  // Pages of nodes by name.
  auto page = (*store)->flow_nodes("acme", "f", "", 3);
  REQUIRE(page.items.size() == 3);
  CHECK(page.items[0].name() == "extract");
  CHECK(page.items[1].name() == "load");
  CHECK(page.items[1].depends_on_size() == 2);
  CHECK(page.items[1].trigger() == kcron::v1::FlowNode::ALL_DONE);
  CHECK(page.items[2].name() == "transform");
  CHECK(page.items[2].trigger() == kcron::v1::FlowNode::ALL_SUCCESS);
  REQUIRE(page.next == "transform");
  page = (*store)->flow_nodes("acme", "f", page.next, 3);
  REQUIRE(page.items.size() == 1);
  CHECK(page.items[0].name() == "validate");
  CHECK(page.next.empty());
  auto counts = (*store)->flow_counts("acme", "f");
  CHECK(counts.by_state.at(kcron::v1::JOB_STATE_UNSPECIFIED) == 4);
  CHECK(summary(**store, "acme", "f").state == "RUNNING");
  // A flow whose graph the dispatcher refuses (here a cycle) leaves nothing.
  auto cyclic = etl("c", "acme");
  cyclic.mutable_nodes(0)->add_depends_on("load");
  batch.flow(cyclic, 1000, "");
  REQUIRE((*store)->commit(batch).ok());
  CHECK_FALSE((*store)->flow("acme", "c").has_value());
  CHECK_FALSE((*store)->job("acme", "c/extract").has_value());
  // A repeated flow record is a duplicate: nothing changes.
  auto again = etl("f", "acme");
  again.set_fail_fast(false);
  batch.flow(again, 2000, "kcron.jobs/0@9");
  REQUIRE((*store)->commit(batch).ok());
  CHECK((*store)->flow("acme", "f")->fail_fast());
  CHECK((*store)->flow_counts("acme", "f").by_state.at(kcron::v1::JOB_STATE_UNSPECIFIED) == 4);
}

TEST_CASE("a flow's counts follow its nodes' states, also when a status came before the flow record") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  set_state(batch, "acme", "f/extract", kcron::v1::QUEUED, 2);  // read before the flow: no definition, not counted yet
  REQUIRE((*store)->commit(batch).ok());
  CHECK((*store)->flow_counts("acme", "f").by_state.empty());
  batch.flow(etl("f", "acme"), 1000, "");
  REQUIRE((*store)->commit(batch).ok());
  auto counts = (*store)->flow_counts("acme", "f").by_state;
  CHECK(counts.at(kcron::v1::QUEUED) == 1);
  CHECK(counts.at(kcron::v1::JOB_STATE_UNSPECIFIED) == 3);
  set_state(batch, "acme", "f/extract", kcron::v1::SUCCEEDED, 4);
  set_state(batch, "acme", "f/transform", kcron::v1::PENDING, 1);
  REQUIRE((*store)->commit(batch).ok());
  set_state(batch, "acme", "f/transform", kcron::v1::DEAD, 4);
  set_state(batch, "acme", "f/validate", kcron::v1::SUCCEEDED, 4);
  set_state(batch, "acme", "f/transform", kcron::v1::RUNNING, 3);  // older: changes nothing
  REQUIRE((*store)->commit(batch).ok());
  counts = (*store)->flow_counts("acme", "f").by_state;
  CHECK(counts.at(kcron::v1::SUCCEEDED) == 2);
  CHECK(counts.at(kcron::v1::DEAD) == 1);
  CHECK(counts.at(kcron::v1::JOB_STATE_UNSPECIFIED) == 1);
  CHECK_FALSE(counts.contains(kcron::v1::QUEUED));
  CHECK_FALSE(counts.contains(kcron::v1::PENDING));
  set_state(batch, "acme", "f/load", kcron::v1::UPSTREAM_FAILED, 1);
  REQUIRE((*store)->commit(batch).ok());
  auto state = summary(**store, "acme", "f");
  CHECK(state.state == "FAILED");
  CHECK(state.ended == 4);
  CHECK(state.failed == 2);
  // A retry: the DEAD node and its dependant run again as new attempts.
  batch.flow_cancel_requested("acme", "f", false);
  set_state(batch, "acme", "f/transform", kcron::v1::PENDING, 1, 1);
  set_state(batch, "acme", "f/load", kcron::v1::JOB_STATE_UNSPECIFIED, 0, 1);
  REQUIRE((*store)->commit(batch).ok());
  CHECK(summary(**store, "acme", "f").state == "RUNNING");
  // Another tenant's flow of the same id counts apart.
  batch.flow(etl("f", "globex"), 1000, "");
  REQUIRE((*store)->commit(batch).ok());
  CHECK((*store)->flow_counts("globex", "f").by_state.at(kcron::v1::JOB_STATE_UNSPECIFIED) == 4);
  CHECK((*store)->flow_counts("acme", "f").by_state.at(kcron::v1::SUCCEEDED) == 2);
  // A plain job with a '/' (refused by the dispatcher) never counts toward a flow.
  kcron::v1::Job plain;
  plain.set_id("f/extra");
  plain.set_tenant("acme");
  plain.mutable_noop();
  kcron::api::fold_definition(batch.job("acme", "f/extra"), plain, 3000, "", false);
  REQUIRE((*store)->commit(batch).ok());
  CHECK((*store)->flow_counts("acme", "f").by_state.at(kcron::v1::SUCCEEDED) == 2);
  CHECK(summary(**store, "acme", "f").nodes == 4);
}

TEST_CASE("a flow cancel makes a running flow CANCELLING until its nodes end") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  batch.flow(etl("f", ""), 1000, "");
  batch.flow_cancel_requested("", "f", true);
  REQUIRE((*store)->commit(batch).ok());
  CHECK(summary(**store, "default", "f").state == "CANCELLING");
  for (const auto* node : {"f/extract", "f/transform", "f/validate", "f/load"})
    set_state(batch, "", node, kcron::v1::CANCELLED, 2);
  REQUIRE((*store)->commit(batch).ok());
  CHECK(summary(**store, "default", "f").state == "ENDED");
}

TEST_CASE("a flow refused as a whole says so, and its nodes end REJECTED") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  batch.flow(etl("f", "acme"), 1000, "");
  REQUIRE((*store)->commit(batch).ok());
  kcron::v1::DeadLetter letter;
  letter.set_state(kcron::v1::REJECTED);
  letter.set_reason("a flow of 4 nodes would take tenant 'acme' past its limit");
  letter.set_at_ms(1500);
  batch.flow_rejected("acme", "f", letter);
  REQUIRE((*store)->commit(batch).ok());
  const auto state = summary(**store, "acme", "f");
  CHECK(state.state == "REJECTED");
  CHECK((*store)->flow("acme", "f")->rejected_reason() == letter.reason());
  CHECK((*store)->job("acme", "f/load")->state() == kcron::v1::REJECTED);
  CHECK((*store)->flow_counts("acme", "f").by_state.at(kcron::v1::REJECTED) == 4);
  // A flow some node of which ran was accepted: a later refusal under its id is another record's.
  batch.flow(etl("g", "acme"), 1000, "");
  set_state(batch, "acme", "g/extract", kcron::v1::QUEUED, 2);
  REQUIRE((*store)->commit(batch).ok());
  batch.flow_rejected("acme", "g", letter);
  REQUIRE((*store)->commit(batch).ok());
  CHECK(summary(**store, "acme", "g").state == "RUNNING");
}

TEST_CASE("a flow leaves the view once every node of it was swept, and keeps its counts until then") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  batch.flow(etl("f", "acme"), 1000, "");
  batch.flow(etl("g", "acme"), 2000, "");
  REQUIRE((*store)->commit(batch).ok());
  auto flows = (*store)->flows("acme", "", 1);
  REQUIRE(flows.items.size() == 1);
  CHECK(flows.items[0].id() == "g");  // newest first
  REQUIRE_FALSE(flows.next.empty());
  flows = (*store)->flows("acme", flows.next, 1);
  REQUIRE(flows.items.size() == 1);
  CHECK(flows.items[0].id() == "f");
  CHECK(flows.next.empty());
  CHECK((*store)->flows("globex", "", 10).items.empty());
  for (const auto* node : {"f/extract", "f/transform", "f/validate"}) set_state(batch, "acme", node, kcron::v1::SUCCEEDED, 4);
  set_state(batch, "acme", "f/load", kcron::v1::RUNNING, 3);
  REQUIRE((*store)->commit(batch).ok());
  auto swept = (*store)->sweep_finished(1'000'000, 100);  // the three that ended
  REQUIRE(swept.ok());
  CHECK(*swept == 3);
  REQUIRE((*store)->flow("acme", "f").has_value());
  CHECK((*store)->flow_counts("acme", "f").forgotten == 3);
  CHECK((*store)->flow_counts("acme", "f").by_state.at(kcron::v1::SUCCEEDED) == 3);  // kept
  set_state(batch, "acme", "f/load", kcron::v1::SUCCEEDED, 4);
  REQUIRE((*store)->commit(batch).ok());
  CHECK(summary(**store, "acme", "f").state == "SUCCEEDED");
  swept = (*store)->sweep_finished(1'000'000, 100);
  REQUIRE(swept.ok());
  CHECK(*swept == 1);
  CHECK_FALSE((*store)->flow("acme", "f").has_value());
  CHECK((*store)->flow_nodes("acme", "f", "", 10).items.empty());
  CHECK((*store)->flow_counts("acme", "f").by_state.empty());
  flows = (*store)->flows("acme", "", 10);
  REQUIRE(flows.items.size() == 1);
  CHECK(flows.items[0].id() == "g");
}

TEST_CASE("a flow's refusal read before its record still marks it REJECTED, and a letter of another record does not") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  const auto letter_for = [](const std::string& id, std::int64_t offset) {
    kcron::api::DeadLetterEntry entry;
    entry.id = id;
    entry.source = fmt::format("kcron.dead-letters/0@{}", offset);
    entry.letter.set_state(kcron::v1::REJECTED);
    entry.letter.set_reason("node 'load': unknown queue 'nope'");
    entry.letter.set_source_topic("kcron.jobs");
    entry.letter.set_source_partition(0);
    entry.letter.set_source_offset(offset);
    entry.letter.set_at_ms(1500);
    return entry;
  };
  batch.dead_letter("acme", letter_for("f", 7));
  REQUIRE((*store)->commit(batch).ok());  // the letter, then (another batch) the record it refused
  batch.flow(etl("f", "acme"), 1000, "kcron.jobs/0@7");
  // In one batch, and refusing an earlier record of that id (not this one).
  batch.dead_letter("acme", letter_for("h", 8));
  batch.flow(etl("h", "acme"), 1000, "kcron.jobs/0@9");
  REQUIRE((*store)->commit(batch).ok());
  CHECK(summary(**store, "acme", "f").state == "REJECTED");
  CHECK((*store)->flow_counts("acme", "f").by_state.at(kcron::v1::REJECTED) == 4);
  CHECK(summary(**store, "acme", "h").state == "RUNNING");
}

TEST_CASE("a node view that named its flow before the view held the flow counts once, from the flow record on") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  const auto flow = etl("f", "acme");
  // E.g. from the dispatcher's changelog: the node's definition, with its flow ref, then its state.
  kcron::api::fold_definition(batch.job("acme", "f/extract"), kcron::api::flow_node_job(flow, flow.nodes(0), "acme"), 900, "",
                              false);
  set_state(batch, "acme", "f/extract", kcron::v1::QUEUED, 2);
  REQUIRE((*store)->commit(batch).ok());
  CHECK((*store)->flow_counts("acme", "f").by_state.empty());  // no flow held: nothing counted
  batch.flow(flow, 1000, "");
  REQUIRE((*store)->commit(batch).ok());
  auto counts = (*store)->flow_counts("acme", "f").by_state;
  CHECK(counts.at(kcron::v1::QUEUED) == 1);
  CHECK(counts.at(kcron::v1::JOB_STATE_UNSPECIFIED) == 3);
  set_state(batch, "acme", "f/extract", kcron::v1::SUCCEEDED, 4);
  REQUIRE((*store)->commit(batch).ok());
  counts = (*store)->flow_counts("acme", "f").by_state;
  CHECK(counts.at(kcron::v1::SUCCEEDED) == 1);
  CHECK_FALSE(counts.contains(kcron::v1::QUEUED));
}
