// How kcron-api keeps a flow (docs/flows.md) in its view: the flow's header and its nodes' places
// in the graph as the Flow record said them, each node's job as the dispatcher will release it
// (folded into the node's own JobView), and a flow's summary from its per-state node counts, so a
// flow's state never needs every node read. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "kcron.pb.h"

namespace kcron::api {

// The flow's header as the view keeps it: no node bodies, so it stays small for any flow size.
v1::FlowView flow_header(const v1::Flow& flow, std::string_view tenant, std::int64_t record_ms, std::string_view source);

// A node's place in the graph.
v1::FlowViewNode flow_node_entry(const v1::FlowNode& node);

// A node's job as the dispatcher releases it: id "<flow>/<node>", the flow's tenant, the flow ref,
// the flow's labels added to its own (its own win), the flow's submitter.
v1::Job flow_node_job(const v1::Flow& flow, const v1::FlowNode& node, std::string_view tenant);

// The flow a job view counts toward: its definition's flow ref, when the job's id is that flow's
// node's ("<flow>/<node>"); nullopt for any other job (a plain job, a node known only from its
// status records until its flow's record is read).
std::optional<std::string> counted_flow(const v1::JobView& view);

// A flow's state from its node counts, as `kcron flow status` derives it from the dispatcher's.
struct FlowSummary {
  std::uint32_t nodes = 0;
  std::uint32_t ended = 0;      // SUCCEEDED, DEAD, UPSTREAM_FAILED, CANCELLED, SKIPPED, REJECTED
  std::uint32_t succeeded = 0;  // SUCCEEDED
  std::uint32_t failed = 0;     // DEAD, UPSTREAM_FAILED, REJECTED
  std::uint32_t cancelled = 0;  // CANCELLED, SKIPPED
  std::uint32_t waiting = 0;    // no state yet: waiting for their parents (or the dispatcher)
  // REJECTED (refused as a whole), SUCCEEDED, FAILED (a node failed), ENDED (every node ended, some
  // cancelled or skipped), CANCELLING (a cancel was asked, nodes run on), SCHEDULED (its start,
  // Flow.run_at_ms, is after `now_ms`: no node released yet), RUNNING.
  std::string state;
};
// `by_state`: the nodes' views by state (JOB_STATE_UNSPECIFIED: no state yet); nodes the view
// holds no state for (not read yet) count as waiting.
FlowSummary summarize_flow(const v1::FlowView& flow, const std::map<v1::JobState, std::int64_t>& by_state, std::int64_t now_ms);

// A state's name in a flow's answers: the JobState's, "WAITING" for no state yet.
std::string_view flow_node_state_name(v1::JobState state);

}  // namespace kcron::api
