#include "kcron/flow_graph.h"

#include <algorithm>
#include <deque>
#include <unordered_map>

namespace kcron::flow {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

// Names printed in one error at most (a cycle through thousands of nodes is still one line).
constexpr std::size_t kNamesInError = 12;

// At most `limit` bytes of `text`, cut before a UTF-8 continuation byte, never inside a character.
std::string_view utf8_prefix(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text;
  while (limit > 0 && (static_cast<unsigned char>(text[limit]) & 0xC0U) == 0x80U) --limit;
  return text.substr(0, limit);
}

}  // namespace

std::string_view trigger_name(Trigger trigger) {
  switch (trigger) {
    case Trigger::kAllSuccess:
      return "all_success";
    case Trigger::kAllDone:
      return "all_done";
    case Trigger::kNoneFailed:
      return "none_failed";
    case Trigger::kOneFailed:
      return "one_failed";
  }
  return "all_success";
}

std::string_view decision_name(Decision decision) {
  switch (decision) {
    case Decision::kWait:
      return "wait";
    case Decision::kRun:
      return "run";
    case Decision::kUpstreamFailed:
      return "upstream_failed";
    case Decision::kSkip:
      return "skip";
  }
  return "wait";
}

void Tally::add(Ending ending) {
  ++ended;
  if (ending == Ending::kSucceeded) ++succeeded;
  if (ending == Ending::kFailed) ++failed;
}

Decision decide(Trigger trigger, const Tally& tally) {
  const bool all_ended = tally.ended >= tally.parents;
  switch (trigger) {
    case Trigger::kAllSuccess:
      if (tally.ended > tally.succeeded) return Decision::kUpstreamFailed;
      return all_ended ? Decision::kRun : Decision::kWait;
    case Trigger::kAllDone:
      return all_ended ? Decision::kRun : Decision::kWait;
    case Trigger::kNoneFailed:
      if (tally.failed > 0) return Decision::kUpstreamFailed;
      return all_ended ? Decision::kRun : Decision::kWait;
    case Trigger::kOneFailed:
      if (tally.failed > 0) return Decision::kRun;
      if (tally.parents == 0) return Decision::kRun;  // nothing to wait for: it runs like any root
      return all_ended ? Decision::kSkip : Decision::kWait;
  }
  return Decision::kWait;
}

Status validate_flow_id(std::string_view flow_id) {
  if (flow_id.empty()) return make_error("flow id is empty");
  if (flow_id.find(kSeparator) != std::string_view::npos) {
    return make_error("flow id '{}' contains '{}', which separates a flow's id from its nodes' names", flow_id, kSeparator);
  }
  if (auto valid = validate_job_id(flow_id); !valid) return valid.error().within("flow id");
  return Status::success();
}

Status validate_node_name(std::string_view name, const Limits& limits) {
  if (name.empty()) return make_error("a node has no name");
  if (name.size() > limits.max_name_bytes) {
    return make_error("node name '{}…' is {} bytes, over the limit of {}", utf8_prefix(name, 16), name.size(),
                      limits.max_name_bytes);
  }
  if (!std::all_of(name.begin(), name.end(), name_char)) {
    return make_error("node name '{}' may hold only letters, digits, '_', '.' and '-'", name);
  }
  return Status::success();
}

std::string node_job_id(std::string_view flow_id, std::string_view node) {
  std::string id;
  id.reserve(flow_id.size() + 1 + node.size());
  id.append(flow_id).push_back(kSeparator);
  id.append(node);
  return id;
}

std::string header_key(std::string_view scoped_flow_key) {
  std::string key(
      "\x01"
      "flow/");
  key.append(scoped_flow_key);
  return key;
}

Status validate_plain_job_id(std::string_view job_id) {
  const auto at = job_id.find(kSeparator);
  if (at == std::string_view::npos) return Status::success();
  return make_error(
      "job id '{}' contains '{}', which only a flow's nodes have ('{}' would be node '{}' of flow '{}'): submit it as a node "
      "of a flow, or choose an id without '{}'",
      job_id, kSeparator, job_id, job_id.substr(at + 1), job_id.substr(0, at), kSeparator);
}

Result<std::vector<std::size_t>> check_graph(std::string_view flow_id, const std::vector<NodeShape>& nodes,
                                             const Limits& limits) {
  if (auto valid = validate_flow_id(flow_id); !valid) return valid.error();
  if (nodes.empty()) return make_error("flow '{}' has no nodes", flow_id);
  if (nodes.size() > limits.max_nodes) {
    return make_error("flow '{}' has {} nodes, over the limit of {}", flow_id, nodes.size(), limits.max_nodes);
  }
  std::unordered_map<std::string_view, std::size_t> index;
  index.reserve(nodes.size());
  std::size_t edges = 0;
  for (std::size_t at = 0; at < nodes.size(); ++at) {
    const auto& node = nodes[at];
    if (auto valid = validate_node_name(node.name, limits); !valid) return valid.error().within(fmt::format("node {}", at + 1));
    if (!index.emplace(node.name, at).second) return make_error("node name '{}' is used twice", node.name);
    const auto id_bytes = flow_id.size() + 1 + node.name.size();
    if (id_bytes > limits.max_job_id_bytes) {
      return make_error("node '{}': its job id '{}/{}' would be {} bytes, over the limit of {} (shorten the flow id or the name)",
                        node.name, flow_id, node.name, id_bytes, limits.max_job_id_bytes);
    }
    if (node.depends_on.size() > limits.max_parents) {
      return make_error("node '{}' has {} parents, over the limit of {}", node.name, node.depends_on.size(), limits.max_parents);
    }
    edges += node.depends_on.size();
    if (edges > limits.max_edges) {
      return make_error("flow '{}' has more than {} dependencies (depends_on entries), the limit", flow_id, limits.max_edges);
    }
  }
  // Kahn's algorithm: a node is ready once every parent is placed.
  std::vector<std::uint32_t> waiting_on(nodes.size(), 0);
  std::vector<std::vector<std::size_t>> children(nodes.size());
  std::vector<std::vector<std::size_t>> parents(nodes.size());
  for (std::size_t at = 0; at < nodes.size(); ++at) {
    const auto& node = nodes[at];
    for (const auto& parent_name : node.depends_on) {
      const auto parent = index.find(parent_name);
      if (parent == index.end()) {
        return make_error("node '{}' depends on '{}', which is not a node of flow '{}'", node.name, parent_name, flow_id);
      }
      if (parent->second == at) return make_error("node '{}' depends on itself", node.name);
      if (std::find(parents[at].begin(), parents[at].end(), parent->second) != parents[at].end()) {
        return make_error("node '{}' lists '{}' twice in depends_on", node.name, parent_name);
      }
      parents[at].push_back(parent->second);
      children[parent->second].push_back(at);
      ++waiting_on[at];
    }
  }
  std::vector<std::size_t> order;
  order.reserve(nodes.size());
  std::deque<std::size_t> ready;
  for (std::size_t at = 0; at < nodes.size(); ++at) {
    if (waiting_on[at] == 0) ready.push_back(at);
  }
  while (!ready.empty()) {
    const auto at = ready.front();
    ready.pop_front();
    order.push_back(at);
    for (const auto child : children[at]) {
      if (--waiting_on[child] == 0) ready.push_back(child);
    }
  }
  if (order.size() == nodes.size()) return order;
  // Every node left waits on a parent that is also left: walking parents from one of them must
  // come back to a node already walked, and the walk from there is a cycle.
  std::size_t start = 0;
  while (waiting_on[start] == 0) ++start;
  std::vector<std::size_t> walk;
  std::vector<std::size_t> seen_at(nodes.size(), nodes.size());
  std::size_t current = start;
  while (seen_at[current] == nodes.size()) {
    seen_at[current] = walk.size();
    walk.push_back(current);
    for (const auto parent : parents[current]) {
      if (waiting_on[parent] > 0) {
        current = parent;
        break;
      }
    }
  }
  std::string cycle = fmt::format("'{}'", nodes[current].name);
  const auto begin = seen_at[current];
  for (std::size_t step = begin + 1; step < walk.size(); ++step) {
    if (step - begin >= kNamesInError) {
      cycle += fmt::format(", which depends on … ({} more)", walk.size() - step);
      break;
    }
    cycle += fmt::format(", which depends on '{}'", nodes[walk[step]].name);
  }
  cycle += fmt::format(", which depends on '{}'", nodes[current].name);
  return make_error("flow '{}' has a cycle: {}", flow_id, cycle);
}

}  // namespace kcron::flow
