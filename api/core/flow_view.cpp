#include "core/flow_view.h"

#include <algorithm>

#include "kcron/codec.h"
#include "kcron/flow_graph.h"
#include "kcron/tenant.h"

namespace kcron::api {

v1::FlowView flow_header(const v1::Flow& flow, std::string_view tenant, std::int64_t record_ms, std::string_view source) {
  v1::FlowView view;
  view.set_id(flow.id());
  view.set_tenant(std::string(tenant_or_default(tenant)));
  view.set_fail_fast(flow.fail_fast());
  *view.mutable_labels() = flow.labels();
  view.set_submitted_by(flow.submitted_by());
  view.set_submitted_ms(record_ms);
  view.set_nodes(static_cast<std::uint32_t>(flow.nodes_size()));
  view.set_source(std::string(source));
  view.set_run_at_ms(flow.run_at_ms());
  return view;
}

v1::FlowViewNode flow_node_entry(const v1::FlowNode& node) {
  v1::FlowViewNode entry;
  entry.set_name(node.name());
  *entry.mutable_depends_on() = node.depends_on();
  entry.set_trigger(node.trigger() == v1::FlowNode::TRIGGER_UNSPECIFIED ? v1::FlowNode::ALL_SUCCESS : node.trigger());
  return entry;
}

v1::Job flow_node_job(const v1::Flow& flow, const v1::FlowNode& node, std::string_view tenant) {
  v1::Job job = node.job();
  job.set_id(flow::node_job_id(flow.id(), node.name()));
  job.set_tenant(std::string(tenant_field(tenant)));
  job.clear_attempt();
  job.clear_history();
  job.mutable_flow()->set_id(flow.id());
  job.mutable_flow()->set_node(node.name());
  job.mutable_flow()->clear_inputs();
  for (const auto& [label, value] : flow.labels()) job.mutable_labels()->try_emplace(label, value);
  if (!flow.submitted_by().empty()) job.set_submitted_by(flow.submitted_by());
  // A schedule's flow run: its nodes are listed with the schedule's runs (GET /v1/jobs?schedule=).
  if (flow.has_schedule_run()) *job.mutable_schedule_run() = flow.schedule_run();
  return job;
}

std::optional<std::string> counted_flow(const v1::JobView& view) {
  if (!view.has_job() || !view.job().has_flow()) return std::nullopt;
  const auto& ref = view.job().flow();
  if (ref.id().empty() || ref.node().empty() || view.id() != flow::node_job_id(ref.id(), ref.node())) return std::nullopt;
  return ref.id();
}

FlowSummary summarize_flow(const v1::FlowView& flow, const std::map<v1::JobState, std::int64_t>& by_state, std::int64_t now_ms) {
  FlowSummary summary;
  summary.nodes = flow.nodes();
  std::int64_t known = 0;
  for (const auto& [state, count] : by_state) {
    if (count <= 0) continue;
    const auto value = static_cast<std::uint32_t>(count);
    known += count;
    switch (state) {
      case v1::SUCCEEDED:
        summary.succeeded += value;
        summary.ended += value;
        break;
      case v1::DEAD:
      case v1::UPSTREAM_FAILED:
      case v1::REJECTED:
        summary.failed += value;
        summary.ended += value;
        break;
      case v1::CANCELLED:
      case v1::SKIPPED:
        summary.cancelled += value;
        summary.ended += value;
        break;
      default:
        break;
    }
  }
  // Nodes the view holds no state for yet wait like those without one.
  const auto unspecified = by_state.find(v1::JOB_STATE_UNSPECIFIED);
  const std::int64_t without = std::max<std::int64_t>(0, static_cast<std::int64_t>(summary.nodes) - known);
  summary.waiting =
      static_cast<std::uint32_t>(without + (unspecified != by_state.end() ? std::max<std::int64_t>(0, unspecified->second) : 0));
  if (!flow.rejected_reason().empty()) {
    summary.state = "REJECTED";
  } else if (summary.nodes > 0 && summary.ended >= summary.nodes) {
    summary.state = summary.failed > 0 ? "FAILED" : summary.cancelled > 0 ? "ENDED" : "SUCCEEDED";
  } else if (flow.cancel_requested()) {
    summary.state = "CANCELLING";
  } else if (flow.run_at_ms() > now_ms && summary.ended == 0) {
    // Its start is still ahead (a start never fires early): its nodes wait, PENDING or no state.
    summary.state = "SCHEDULED";
  } else {
    summary.state = "RUNNING";
  }
  return summary;
}

std::string_view flow_node_state_name(v1::JobState state) {
  if (state == v1::JOB_STATE_UNSPECIFIED) return "WAITING";
  return state_name(state);
}

}  // namespace kcron::api
