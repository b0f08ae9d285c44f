#include "kcron/flow_graph.h"

#include <catch2/catch.hpp>

using namespace kcron;
using namespace kcron::flow;

namespace {

std::vector<NodeShape> diamond() {
  return {{"load", {"transform", "validate"}}, {"transform", {"extract"}}, {"validate", {"extract"}}, {"extract", {}}};
}

std::string error_of(const Result<std::vector<std::size_t>>& checked) {
  REQUIRE_FALSE(checked);
  return checked.error().message();
}

Tally tally(std::uint32_t parents, std::uint32_t succeeded, std::uint32_t failed, std::uint32_t cancelled) {
  Tally counted{parents, 0, 0, 0};
  for (std::uint32_t n = 0; n < succeeded; ++n) counted.add(Ending::kSucceeded);
  for (std::uint32_t n = 0; n < failed; ++n) counted.add(Ending::kFailed);
  for (std::uint32_t n = 0; n < cancelled; ++n) counted.add(Ending::kCancelled);
  return counted;
}

}  // namespace

TEST_CASE("a diamond's order puts every node after its parents") {
  const auto nodes = diamond();
  auto order = check_graph("etl", nodes);
  REQUIRE(order);
  REQUIRE(order->size() == 4);
  std::vector<std::size_t> position(nodes.size());
  for (std::size_t at = 0; at < order->size(); ++at) position[(*order)[at]] = at;
  CHECK(position[3] < position[1]);
  CHECK(position[3] < position[2]);
  CHECK(position[1] < position[0]);
  CHECK(position[2] < position[0]);
}

TEST_CASE("a cycle is refused and named, each node depending on the next") {
  const std::vector<NodeShape> nodes = {{"a", {"c"}}, {"b", {"a"}}, {"c", {"b"}}, {"root", {}}, {"d", {"root", "b"}}};
  const auto message = error_of(check_graph("f", nodes));
  CHECK(message.starts_with("flow 'f' has a cycle: "));
  // The cycle may be entered at any of its nodes; it is always the three, in dependency order.
  const bool named = message.ends_with("'a', which depends on 'c', which depends on 'b', which depends on 'a'") ||
                     message.ends_with("'c', which depends on 'b', which depends on 'a', which depends on 'c'") ||
                     message.ends_with("'b', which depends on 'a', which depends on 'c', which depends on 'b'");
  CHECK(named);
  CHECK(message.find("root") == std::string::npos);
  CHECK(message.find("'d'") == std::string::npos);
}

TEST_CASE("a long cycle is named in one bounded line") {
  std::vector<NodeShape> nodes;
  for (int n = 0; n < 500; ++n) nodes.push_back({fmt::format("n{}", n), {fmt::format("n{}", (n + 1) % 500)}});
  const auto message = error_of(check_graph("big", nodes));
  CHECK(message.find("has a cycle") != std::string::npos);
  CHECK(message.find("more)") != std::string::npos);
  CHECK(message.size() < 600);
}

TEST_CASE("a self-dependency, a missing parent, a duplicate name and a repeated parent are refused by name") {
  CHECK(error_of(check_graph("f", {{"a", {"a"}}})) == "node 'a' depends on itself");
  CHECK(error_of(check_graph("f", {{"a", {}}, {"b", {"a", "z"}}})) == "node 'b' depends on 'z', which is not a node of flow 'f'");
  CHECK(error_of(check_graph("f", {{"a", {}}, {"a", {}}})) == "node name 'a' is used twice");
  CHECK(error_of(check_graph("f", {{"a", {}}, {"b", {"a", "a"}}})) == "node 'b' lists 'a' twice in depends_on");
  CHECK(error_of(check_graph("f", {})) == "flow 'f' has no nodes");
}

TEST_CASE("node names, flow ids and the node's job id length are checked against the limits") {
  CHECK(error_of(check_graph("f", {{"", {}}})) == "node 1: a node has no name");
  CHECK(error_of(check_graph("f", {{"ok", {}}, {"has space", {}}})) ==
        "node 2: node name 'has space' may hold only letters, digits, '_', '.' and '-'");
  CHECK(error_of(check_graph("f", {{"x/y", {}}})).find("may hold only") != std::string::npos);
  CHECK(error_of(check_graph("f", {{std::string(65, 'n'), {}}})).find("65 bytes, over the limit of 64") != std::string::npos);
  CHECK(error_of(check_graph("a/b", {{"n", {}}})).find("contains '/'") != std::string::npos);
  CHECK(error_of(check_graph("", {{"n", {}}})) == "flow id is empty");
  // A flow id near the job id limit (a schedule's long id and a run's instant) leaves no room for long names.
  const std::string long_id = std::string(200, 's') + "@2026-12-07T00:00:00Z";
  CHECK(check_graph(long_id, {{"n", {}}}));
  const auto message = error_of(check_graph(long_id, {{"n", {}}, {std::string(40, 'm'), {"n"}}}));
  CHECK(message.find("would be 262 bytes, over the limit of 256") != std::string::npos);

  Limits small;
  small.max_nodes = 3;
  small.max_edges = 2;
  CHECK(error_of(check_graph("f", diamond(), small)) == "flow 'f' has 4 nodes, over the limit of 3");
  small.max_nodes = 4;
  CHECK(error_of(check_graph("f", diamond(), small)) == "flow 'f' has more than 2 dependencies (depends_on entries), the limit");
}

TEST_CASE("a plain job id with the flow separator is refused with the rule") {
  CHECK(validate_plain_job_id("invoice-42"));
  CHECK(validate_plain_job_id("nightly@2026-12-07T00:00:00Z"));
  const auto refused = validate_plain_job_id("etl/load");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message().find("'etl/load' would be node 'load' of flow 'etl'") != std::string::npos);
  CHECK(node_job_id("etl", "load") == "etl/load");
}

TEST_CASE("all_success runs when every parent succeeded and fails upstream as soon as one did not") {
  CHECK(decide(Trigger::kAllSuccess, tally(0, 0, 0, 0)) == Decision::kRun);
  CHECK(decide(Trigger::kAllSuccess, tally(3, 2, 0, 0)) == Decision::kWait);
  CHECK(decide(Trigger::kAllSuccess, tally(3, 3, 0, 0)) == Decision::kRun);
  CHECK(decide(Trigger::kAllSuccess, tally(3, 1, 1, 0)) == Decision::kUpstreamFailed);
  CHECK(decide(Trigger::kAllSuccess, tally(3, 0, 0, 1)) == Decision::kUpstreamFailed);
}

TEST_CASE("all_done runs once every parent ended, however") {
  CHECK(decide(Trigger::kAllDone, tally(3, 1, 1, 0)) == Decision::kWait);
  CHECK(decide(Trigger::kAllDone, tally(3, 1, 1, 1)) == Decision::kRun);
  CHECK(decide(Trigger::kAllDone, tally(2, 0, 2, 0)) == Decision::kRun);
  CHECK(decide(Trigger::kAllDone, tally(0, 0, 0, 0)) == Decision::kRun);
}

TEST_CASE("none_failed runs when every parent succeeded or was cancelled, and fails upstream on a failure") {
  CHECK(decide(Trigger::kNoneFailed, tally(3, 2, 0, 1)) == Decision::kRun);
  CHECK(decide(Trigger::kNoneFailed, tally(3, 2, 0, 0)) == Decision::kWait);
  CHECK(decide(Trigger::kNoneFailed, tally(3, 0, 1, 0)) == Decision::kUpstreamFailed);
  CHECK(decide(Trigger::kNoneFailed, tally(2, 0, 0, 2)) == Decision::kRun);
}

TEST_CASE("one_failed runs as soon as one parent failed, and is skipped when none did") {
  CHECK(decide(Trigger::kOneFailed, tally(3, 0, 1, 0)) == Decision::kRun);
  CHECK(decide(Trigger::kOneFailed, tally(3, 2, 0, 0)) == Decision::kWait);
  CHECK(decide(Trigger::kOneFailed, tally(3, 2, 0, 1)) == Decision::kSkip);
  CHECK(decide(Trigger::kOneFailed, tally(0, 0, 0, 0)) == Decision::kRun);
}
