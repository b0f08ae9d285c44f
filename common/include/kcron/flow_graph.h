// Flows as a graph, free of Kafka, RocksDB and Protobuf (docs/flows.md): the checks a flow passes
// on arrival (ids, names, dependencies, no cycle, limits) and the trigger rules that decide, from
// a node's parents' endings so far, whether it runs, fails upstream, is skipped or waits. The
// dispatcher decides with them; the CLI and the API run the same checks before they write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/ids.h"
#include "kcron/result.h"

namespace kcron::flow {

// Separates a flow's id from a node's name in the node's job id: "<flow id>/<node>".
inline constexpr char kSeparator = '/';

// When a node runs, over its parents' endings (docs/flows.md#triggers).
enum class Trigger { kAllSuccess, kAllDone, kNoneFailed, kOneFailed };
std::string_view trigger_name(Trigger trigger);

// How a node ended, as its children count it.
enum class Ending { kSucceeded, kFailed, kCancelled };  // kFailed: DEAD or UPSTREAM_FAILED; kCancelled: or SKIPPED

// A node's parents and what they did so far. Invariant: succeeded + failed <= ended <= parents.
struct Tally {
  std::uint32_t parents = 0;
  std::uint32_t ended = 0;
  std::uint32_t succeeded = 0;
  std::uint32_t failed = 0;
  void add(Ending ending);
};

enum class Decision {
  kWait,            // the trigger cannot be decided yet
  kRun,             // the trigger holds: the node's job is submitted
  kUpstreamFailed,  // it can no longer hold because parents failed: UPSTREAM_FAILED, which its children see as failed
  kSkip,            // a one_failed node whose parents all ended without a failure: SKIPPED
};
// A node without parents runs at once. Decided as early as possible: an all_success node fails
// upstream as soon as one parent ended other than SUCCEEDED, a one_failed node runs as soon as
// one parent failed.
Decision decide(Trigger trigger, const Tally& tally);
std::string_view decision_name(Decision decision);

struct Limits {
  std::size_t max_nodes = 10'000;
  std::size_t max_edges = 100'000;  // depends_on entries over the whole flow
  std::size_t max_parents = 256;    // depends_on entries of one node (each parent's ending rewrites the node's entry)
  std::size_t max_name_bytes = 64;
  std::size_t max_job_id_bytes = kMaxJobIdBytes;  // "<flow id>/<node>" must fit it
};

// A flow id: 1 byte and up, no control characters, no '/'; every node's job id must also fit
// (checked with the names, in check_graph).
Status validate_flow_id(std::string_view flow_id);
// A node name: 1 to limits.max_name_bytes of [A-Za-z0-9_.-].
Status validate_node_name(std::string_view name, const Limits& limits);
// The job id of a flow's node.
std::string node_job_id(std::string_view flow_id, std::string_view node);
// The key of a flow's header in the dispatcher's store and changelog, from the flow's
// tenant-scoped key: a control byte first, so it never collides with a job's key.
std::string header_key(std::string_view scoped_flow_key);
// A job submitted on its own may not have '/' in its id: "etl/load" would be node "load" of flow
// "etl" (and route with it). Refused with the reason.
Status validate_plain_job_id(std::string_view job_id);

struct NodeShape {
  std::string name;
  std::vector<std::string> depends_on;
};

// Checks a flow's graph and returns its nodes' indices in an order where every node comes after
// its parents. The error names what is wrong: the limit passed, the duplicate or missing name,
// the node that depends on itself, or a cycle as "a -> b -> c -> a".
Result<std::vector<std::size_t>> check_graph(std::string_view flow_id, const std::vector<NodeShape>& nodes,
                                             const Limits& limits = {});

}  // namespace kcron::flow
