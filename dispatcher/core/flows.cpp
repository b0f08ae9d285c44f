// Flows in the dispatcher (docs/flows.md): a flow arrives as one record on its partition, becomes
// a header entry and one entry per node (WAITING with its pending-parent tally, or released at
// once when it has no parents); a node's ending, consumed on the same partition, updates its
// children's tallies and releases, fails or skips each child whose trigger that decides, in the
// same batch. So each node fires exactly once, whatever crashes: the decision and the ending that
// caused it are committed together, and a repeated ending finds the node already ended.
#include <deque>
#include <map>
#include <set>

#include "core/dispatcher_core.h"
#include "kcron/codec.h"
#include "kcron/priority.h"
#include "kcron/records.h"
#include "kcron/routing.h"

namespace kcron::dispatcher {

namespace {

using Entry = v1::DispatcherEntry;

flow::Trigger trigger_of(v1::FlowNode::Trigger trigger) {
  switch (trigger) {
    case v1::FlowNode::ALL_DONE:
      return flow::Trigger::kAllDone;
    case v1::FlowNode::NONE_FAILED:
      return flow::Trigger::kNoneFailed;
    case v1::FlowNode::ONE_FAILED:
      return flow::Trigger::kOneFailed;
    default:
      return flow::Trigger::kAllSuccess;
  }
}

flow::Ending ending_of(v1::JobState state) {
  switch (state) {
    case v1::SUCCEEDED:
      return flow::Ending::kSucceeded;
    case v1::DEAD:
    case v1::UPSTREAM_FAILED:
      return flow::Ending::kFailed;
    default:
      return flow::Ending::kCancelled;
  }
}

Entry::State entry_state_of(v1::JobState state) {
  switch (state) {
    case v1::SUCCEEDED:
      return Entry::SUCCEEDED;
    case v1::DEAD:
      return Entry::DEAD;
    case v1::UPSTREAM_FAILED:
      return Entry::UPSTREAM_FAILED;
    case v1::SKIPPED:
      return Entry::SKIPPED;
    default:
      return Entry::CANCELLED;
  }
}

flow::Tally tally_of(const v1::FlowNodeState& node) {
  return {node.parents(), node.parents_ended(), node.parents_succeeded(), node.parents_failed()};
}

}  // namespace

std::string DispatcherCore::flow_key(std::string_view scoped_flow_key) {
  return flow::header_key(scoped_flow_key);
}

Status DispatcherCore::submit_flow(Context& context, v1::Flow flow) {
  const ScopedName& ref = context.job;
  const InputRecord& record = context.record;
  const Partition partition = record.partition;
  auto refuse = [&](const std::string& reason) {
    reject(record, &ref, reason, context.out);
    return Status::success();
  };
  const std::string header_key = flow_key(ref.key);
  auto existing = load(context.state, header_key);
  if (!existing) return existing.error();
  if (*existing) {
    ++counts_.duplicates;  // a flow id is used once: a repeated record is the same flow
    return Status::success();
  }
  std::vector<flow::NodeShape> shapes;
  shapes.reserve(static_cast<std::size_t>(flow.nodes_size()));
  for (const auto& node : flow.nodes()) shapes.push_back({node.name(), {node.depends_on().begin(), node.depends_on().end()}});
  auto order = flow::check_graph(ref.id, shapes, settings_.flow_limits);
  if (!order) return refuse(order.error().message());
  if (!is_default_tenant(ref.tenant)) {
    auto purging = context.state.get(purging_key(ref.tenant));
    if (!purging) return purging.error();
    if (*purging)
      return refuse(fmt::format("tenant '{}' is being deleted: submit again once its deletion has ended", ref.tenant));
  }

  // A flow that starts later (or a schedule's run, whose policies decide at its start) waits as
  // one entry under the flow id's own key.
  const bool starts_later = flow.has_schedule_run() || flow.run_at_ms() > to_epoch_ms(clock_.now());
  if (flow.has_schedule_run()) {
    const auto& run = flow.schedule_run();
    if (run.schedule_id() != routing_key_for_job(ref.id)) {
      return refuse(fmt::format("schedule_run names schedule '{}', but flow '{}' is a run of '{}'",
                                run.schedule_id().substr(0, kMaxJobIdBytes), ref.id, routing_key_for_job(ref.id)));
    }
    if (!v1::MisfirePolicy_IsValid(run.misfire())) {
      return refuse(fmt::format("schedule_run: misfire policy {} is not a known value", static_cast<int>(run.misfire())));
    }
    if (!v1::OverlapPolicy_IsValid(run.overlap())) {
      return refuse(fmt::format("schedule_run: overlap policy {} is not a known value", static_cast<int>(run.overlap())));
    }
  }
  if (flow.run_at_ms() < 0) return refuse(fmt::format("run_at_ms {} is negative", flow.run_at_ms()));
  if (instant_from_ms(flow.run_at_ms()) - clock_.now() > settings_.max_horizon) {
    return refuse(fmt::format("run_at_ms {} is beyond the horizon of {} days", flow.run_at_ms(),
                              std::chrono::duration_cast<std::chrono::hours>(settings_.max_horizon).count() / 24));
  }
  bool cancelled_before = false;  // a cancel of the flow id's job came first: the flow is cancelled as it arrives
  if (starts_later) {
    auto taken = load(context.state, ref.key);
    if (!taken) return taken.error();
    if (*taken && (*taken)->state() == Entry::CANCEL_MARKER) {
      cancelled_before = instant_from_ms((*taken)->expires_ms()) > clock_.now();
    } else if (*taken) {
      return refuse(
          fmt::format("flow id '{}' is in use by a job of that id (a flow that starts later waits under its id)", ref.id));
    }
  }

  // Each node's job, as it will be released: id, tenant, provenance and labels set by the flow.
  std::map<std::string, std::vector<std::string>, std::less<>> children;
  for (const auto& node : flow.nodes()) {
    for (const auto& parent : node.depends_on()) children[parent].push_back(node.name());
  }
  std::vector<ScopedName> names;
  names.reserve(shapes.size());
  std::vector<bool> marked_cancelled(shapes.size(), false);  // a cancel for the node came before the flow
  for (auto& node : *flow.mutable_nodes()) {
    const std::string id = flow::node_job_id(ref.id, node.name());
    const std::string where = fmt::format("node '{}'", node.name());
    if (!v1::FlowNode::Trigger_IsValid(node.trigger())) {
      return refuse(fmt::format("{}: trigger {} is not a known value", where, static_cast<int>(node.trigger())));
    }
    if (node.has_template_ref()) {
      // Writers render template nodes before they write (docs/templates.md#templates-in-flows):
      // this one was written around them, and the dispatcher has no catalog to render it with.
      return refuse(
          fmt::format("{}: names template '{}' (template_ref): templates in flows are rendered by the writer (kcron flow submit, "
                      "kcron-api, the cron-producer), which writes the concrete job; the dispatcher runs only concrete jobs",
                      where, node.template_ref().ref().substr(0, 200)));
    }
    v1::Job& job = *node.mutable_job();
    if (!job.id().empty() && job.id() != id) {
      return refuse(
          fmt::format("{}: its job's id '{}' must be empty or '{}' (a node's id is '<flow>/<node>')", where, job.id(), id));
    }
    if (!job.tenant().empty() && tenant_or_default(job.tenant()) != ref.tenant) {
      return refuse(fmt::format("{}: its job names another tenant than the flow's", where));
    }
    if (job.has_schedule_run()) return refuse(fmt::format("{}: a node's job cannot be a schedule run", where));
    job.set_id(id);
    job.set_tenant(std::string(tenant_field(ref.tenant)));
    job.clear_attempt();
    job.clear_history();
    job.mutable_flow()->set_id(ref.id);
    job.mutable_flow()->set_node(node.name());
    job.mutable_flow()->clear_inputs();
    for (const auto& [label, value] : flow.labels()) job.mutable_labels()->try_emplace(label, value);
    if (!flow.submitted_by().empty()) job.set_submitted_by(flow.submitted_by());
    names.push_back(scoped(ref.tenant, id));
    v1::Job checked = job;  // resolved again, from its release, when its trigger holds
    if (auto due = resolve(checked, record.timestamp); !due) return refuse(due.error().within(where).message());
    if (auto refused = queue_refusal(names.back(), checked)) return refuse(refused->insert(0, where + ": "));
    // Released, the job also carries its parents' outputs (at most the inputs budget) and their
    // names: it must still fit a record.
    const std::size_t released_bytes =
        job.ByteSizeLong() + settings_.flow_inputs_budget +
        static_cast<std::size_t>(node.depends_on_size()) * (settings_.flow_limits.max_name_bytes + 32);
    if (released_bytes > settings_.max_record_bytes) {
      return refuse(
          fmt::format("{}: its job of {} bytes leaves no room for its parents' outputs (up to {} bytes) within the "
                      "record limit of {} bytes",
                      where, job.ByteSizeLong(), released_bytes - job.ByteSizeLong(), settings_.max_record_bytes));
    }
    auto taken = load(context.state, names.back().key);
    if (!taken) return taken.error();
    if (*taken && (*taken)->state() != Entry::CANCEL_MARKER) {
      return refuse(fmt::format("{}: job id '{}' is already in use (a flow's id is used once)", where, id));
    }
    marked_cancelled[names.size() - 1] =
        *taken && instant_from_ms((*taken)->expires_ms()) > clock_.now();  // an unexpired cancel marker
  }
  // The flow is one submission against its tenant's rate; every node counts against its pending
  // jobs, as each will be pending when it is released.
  auto first = flow.nodes(static_cast<int>(order->front())).job();
  if (flow.has_schedule_run()) *first.mutable_schedule_run() = flow.schedule_run();  // a schedule's run: not rate-limited
  auto first_due = resolve(first, record.timestamp);
  if (!first_due) return refuse(first_due.error().message());
  auto refused = check_limits(context.state, partition, names[order->front()], first, *first_due, record.timestamp, context.out);
  if (!refused) return refused.error();
  if (*refused) return refuse(**refused);
  if (const auto* tenant = tenants_ != nullptr ? tenants_->find(ref.tenant) : nullptr;
      tenant != nullptr && tenant->limits().max_pending_jobs() > 0) {
    auto usage = load_usage(context.state, ref.tenant);
    if (!usage) return usage.error();
    const std::uint64_t share = partition_share(tenant->limits().max_pending_jobs(), settings_.jobs_partitions);
    if (usage->pending() + shapes.size() + (starts_later ? 1 : 0) > share) {  // a start is pending too
      ++limit_refusals_[{ref.tenant, TenantLimit::kPendingJobs}];
      return refuse(
          fmt::format("a flow of {} nodes would take tenant '{}' past its limit of {} pending jobs: this partition "
                      "holds {} of its share of {}; submit it when some have fired, or raise the limit",
                      shapes.size(), ref.tenant, tenant->limits().max_pending_jobs(), usage->pending(), share));
    }
  }

  Entry header;
  header.set_state(Entry::FLOW);
  header.set_sequence(1);
  auto* state = header.mutable_flow();
  state->set_id(ref.id);
  state->set_fail_fast(flow.fail_fast());
  state->set_nodes(static_cast<std::uint32_t>(shapes.size()));
  state->set_submitted_ms(to_epoch_ms(clock_.now()));
  state->set_submitted_by(flow.submitted_by());
  const Instant starts = flow.run_at_ms() > 0 ? instant_from_ms(flow.run_at_ms()) : clock_.now();
  if (starts_later) state->set_starts_ms(to_epoch_ms(starts));
  if (auto stored = store(context.state, partition, header_key, header, context.out); !stored) return stored;
  ++counts_.flows;
  audit(record, &ref, "ACCEPTED", fmt::format("flow of {} nodes", shapes.size()), context.out);

  // Every node is stored WAITING first; then nodes cancelled before the flow came end, and the
  // roots are released: a decision that cascades finds every entry it needs.
  std::vector<Entry> roots;
  std::vector<std::size_t> root_at;
  for (const auto at : *order) {
    auto& node = *flow.mutable_nodes(static_cast<int>(at));
    Entry entry;
    entry.set_state(Entry::WAITING);
    entry.set_sequence(1);
    entry.set_priority(node.job().has_priority() ? node.job().priority() : kDefaultPriority);
    auto* graph = entry.mutable_node();
    graph->set_flow_id(ref.id);
    graph->set_name(node.name());
    graph->set_trigger(node.trigger());
    graph->set_parents(static_cast<std::uint32_t>(node.depends_on_size()));
    if (auto found = children.find(node.name()); found != children.end()) {
      for (auto& child : found->second) graph->add_children(std::move(child));
    }
    *entry.mutable_job() = std::move(*node.mutable_job());
    const ScopedName& name = names[at];
    if (auto stored = store(context.state, partition, name.key, entry, context.out); !stored) return stored;
    if (graph->parents() > 0 && !marked_cancelled[at]) {
      emit_status(name, entry, v1::PENDING,
                  fmt::format("waits for {} parent{} ({})", graph->parents(), graph->parents() == 1 ? "" : "s",
                              flow::trigger_name(trigger_of(graph->trigger()))),
                  context.out);
    } else {
      roots.push_back(std::move(entry));
      root_at.push_back(at);
    }
  }
  for (std::size_t at = 0; at < roots.size(); ++at) {
    Entry& entry = roots[at];
    const ScopedName& name = names[root_at[at]];
    if (marked_cancelled[root_at[at]]) {
      const std::string reason = "cancelled before its flow was submitted";
      if (auto ended = end_unfired_node(context.state, partition, name, entry, v1::CANCELLED, reason, context.out); !ended) {
        return ended;
      }
      if (auto ended = node_ended(context.state, partition, ref.tenant, entry.node(), v1::CANCELLED, {}, 0, context.out);
          !ended) {
        return ended;
      }
      continue;
    }
    if (starts_later) {  // released by start_flow
      emit_status(name, entry, v1::PENDING,
                  fmt::format("waits for its flow to start (in {} ms)", (starts - clock_.now()).count()), context.out);
      continue;
    }
    auto loaded = load(context.state, name.key);  // a cascade from a node cancelled above may have decided it
    if (!loaded) return loaded.error();
    if (!*loaded || (*loaded)->state() != Entry::WAITING) continue;
    auto released = release_node(context.state, partition, name, entry, context.out);
    if (!released) return released.error();
    if (!*released) {
      if (auto ended = node_ended(context.state, partition, ref.tenant, entry.node(), v1::DEAD, {}, 0, context.out); !ended) {
        return ended;
      }
    }
  }
  if (!starts_later) return Status::success();
  if (cancelled_before) {
    return cancel_flow(context.state, partition, ref, "cancelled before its flow was submitted", nullptr, context.out);
  }
  v1::Job start;
  start.set_id(ref.id);
  start.set_tenant(std::string(tenant_field(ref.tenant)));
  start.set_queue("default");
  start.set_priority(kDefaultPriority);
  start.mutable_flow()->set_id(ref.id);
  if (flow.has_schedule_run()) *start.mutable_schedule_run() = std::move(*flow.mutable_schedule_run());
  Entry entry = pending_entry(std::move(start), starts, 1);
  if (auto tracked = track_accepted_run(context.state, partition, entry.job(), starts, context.out); !tracked) return tracked;
  if (starts <= clock_.now()) return release(context.state, partition, ref.key, entry, context.out);
  return store(context.state, partition, ref.key, entry, context.out);
}

bool DispatcherCore::is_flow_start(const Entry& entry) {
  return !entry.has_node() && entry.job().has_flow() && entry.job().flow().node().empty() &&
         entry.job().flow().id() == entry.job().id();
}

Status DispatcherCore::start_flow(PartitionState& state, Partition partition, const std::string& stored_as, Entry& entry,
                                  std::vector<OutRecord>& out) {
  const ScopedName flow = scoped(entry.job().tenant(), entry.job().id());
  if (auto forgotten = forget(state, partition, stored_as, out); !forgotten) return forgotten;  // the header keeps the id taken
  const std::string header_key = flow_key(flow.key);
  auto loaded = load(state, header_key);
  if (!loaded) return loaded.error();
  if (!*loaded) return Status::success();
  Entry header = std::move(**loaded);
  if (header.flow().ended() >= header.flow().nodes() || header.flow().cancel_requested()) {
    return flow_ended(state, partition, flow, out);  // cancelled before its start: the slot it took goes
  }
  header.mutable_flow()->clear_starts_ms();
  header.set_sequence(header.sequence() + 1);
  if (auto stored = store(state, partition, header_key, header, out); !stored) return stored;
  // Every node still waiting (a flow has at most flow_limits.max_nodes): the roots, and the nodes
  // whose parents ended before the start (a node cancelled meanwhile) and whose trigger holds.
  std::vector<std::string> waiting;
  const std::string prefix = flow.key + flow::kSeparator;
  std::string after;
  for (;;) {
    auto keys = state.keys_after(prefix, after, 512);
    if (!keys) return keys.error().within(fmt::format("starting flow '{}'", flow.id));
    for (const auto& key : *keys) {
      auto node = load(state, key);
      if (!node) return node.error();
      if (*node && (*node)->has_node() && (*node)->state() == Entry::WAITING) waiting.push_back(key);
    }
    if (keys->size() < 512) break;
    after = keys->back();
  }
  for (const auto& key : waiting) {
    auto node = load(state, key);  // a cascade from a node decided above may have decided it
    if (!node) return node.error();
    if (!*node || (*node)->state() != Entry::WAITING) continue;
    Entry& waiter = **node;
    const ScopedName name = scoped(flow.tenant, flow::node_job_id(flow.id, waiter.node().name()));
    const auto decision = waiter.node().parents() == 0
                              ? flow::Decision::kRun
                              : flow::decide(trigger_of(waiter.node().trigger()), tally_of(waiter.node()));
    if (decision == flow::Decision::kWait) continue;
    if (decision == flow::Decision::kRun) {
      auto released = release_node(state, partition, name, waiter, out);
      if (!released) return released.error();
      if (!*released) {
        if (auto ended = node_ended(state, partition, flow.tenant, waiter.node(), v1::DEAD, {}, 0, out); !ended) return ended;
      }
      continue;
    }
    const auto as = decision == flow::Decision::kSkip ? v1::SKIPPED : v1::UPSTREAM_FAILED;
    const std::string reason = "its parents that ended before the flow started decide it";
    if (auto done = end_unfired_node(state, partition, name, waiter, as, reason, out); !done) return done;
    if (auto ended = node_ended(state, partition, flow.tenant, waiter.node(), as, {}, 0, out); !ended) return ended;
  }
  return Status::success();
}

Status DispatcherCore::drop_start(PartitionState& state, Partition partition, const ScopedName& flow,
                                  std::vector<OutRecord>& out) {
  auto start = load(state, flow.key);
  if (!start) return start.error();
  if (*start && is_flow_start(**start) && (*start)->state() == Entry::PENDING) return forget(state, partition, flow.key, out);
  return Status::success();
}

Status DispatcherCore::flow_ended(PartitionState& state, Partition partition, const ScopedName& flow,
                                  std::vector<OutRecord>& out) {
  return end_schedule_run(state, partition, flow, out);
}

Status DispatcherCore::retry_flow(Context& context) {
  const ScopedName& ref = context.job;
  const Partition partition = context.record.partition;
  auto refuse = [&](const std::string& reason) {
    reject(context.record, &ref, fmt::format("cannot retry flow '{}': {}", ref.id, reason), context.out);
    return Status::success();
  };
  const std::string header_key = flow_key(ref.key);
  auto loaded = load(context.state, header_key);
  if (!loaded) return loaded.error();
  if (!*loaded) return refuse("no such flow");
  Entry header = std::move(**loaded);
  // Every node, by name (a flow has at most flow_limits.max_nodes).
  std::map<std::string, Entry, std::less<>> nodes;
  const std::string prefix = ref.key + flow::kSeparator;
  std::string after;
  for (;;) {
    auto keys = context.state.keys_after(prefix, after, 512);
    if (!keys) return keys.error().within(fmt::format("retrying flow '{}'", ref.id));
    for (const auto& key : *keys) {
      auto node = load(context.state, key);
      if (!node) return node.error();
      if (*node && (*node)->has_node()) nodes.emplace((*node)->node().name(), std::move(**node));
    }
    if (keys->size() < 512) break;
    after = keys->back();
  }
  if (nodes.size() != header.flow().nodes()) {
    return refuse(fmt::format("{} of its {} nodes' records have been forgotten (they are kept for {} h after they end)",
                              header.flow().nodes() - std::min<std::size_t>(nodes.size(), header.flow().nodes()),
                              header.flow().nodes(),
                              std::chrono::duration_cast<std::chrono::hours>(settings_.dedupe_retention).count()));
  }
  if (!is_default_tenant(ref.tenant)) {
    auto purging = context.state.get(purging_key(ref.tenant));
    if (!purging) return purging.error();
    if (*purging) return refuse(fmt::format("tenant '{}' is being deleted", ref.tenant));
  }
  std::size_t running = 0;
  for (const auto& [name, entry] : nodes) {
    const auto state = entry.state();
    if (state == Entry::WAITING || state == Entry::PENDING || state == Entry::FIRED) ++running;
  }
  if (header.flow().never_started()) {
    return refuse(
        "it never started (cancelled before its start, or its schedule's run was skipped): submit it again, or "
        "trigger its schedule");
  }
  if (running > 0 || header.flow().ended() < header.flow().nodes()) {
    return refuse(fmt::format("it is still running ({} of {} nodes ended): retry it once it ended", header.flow().ended(),
                              header.flow().nodes()));
  }
  // The DEAD nodes and everything below them; in a flow that was cancelled (fail_fast, or a
  // flow cancel), also its CANCELLED nodes and everything below them.
  const bool was_cancelled = header.flow().cancel_requested();
  std::set<std::string, std::less<>> again;
  std::deque<std::string> walk;
  for (const auto& [name, entry] : nodes) {
    if (entry.state() == Entry::DEAD || (was_cancelled && entry.state() == Entry::CANCELLED)) walk.push_back(name);
  }
  while (!walk.empty()) {
    std::string name = std::move(walk.front());
    walk.pop_front();
    if (!nodes.contains(name) || !again.insert(name).second) continue;
    if (auto found = nodes.find(name); found != nodes.end()) {
      for (const auto& child : found->second.node().children()) walk.push_back(child);
    }
  }
  if (again.empty()) return refuse(was_cancelled ? "no node of it ended DEAD or was cancelled" : "no node of it ended DEAD");
  for (const auto& name : again) {
    const ScopedName node = scoped(ref.tenant, flow::node_job_id(ref.id, name));
    if (auto refused = queue_refusal(node, nodes.at(name).job())) return refuse(fmt::format("node '{}': {}", name, *refused));
  }
  std::map<std::string, std::vector<std::string>, std::less<>> parents;
  for (const auto& [name, entry] : nodes) {
    for (const auto& child : entry.node().children()) parents[child].push_back(name);
  }
  // The header counts what stays ended; the nodes run again count themselves as they end.
  auto* counts = header.mutable_flow();
  counts->set_ended(0);
  counts->set_succeeded(0);
  counts->set_failed(0);
  counts->set_cancelled(0);
  const auto ending_of_entry = [](Entry::State state) {
    return state == Entry::SUCCEEDED                                 ? flow::Ending::kSucceeded
           : state == Entry::DEAD || state == Entry::UPSTREAM_FAILED ? flow::Ending::kFailed
                                                                     : flow::Ending::kCancelled;
  };
  for (const auto& [name, entry] : nodes) {
    if (again.contains(name)) continue;
    const auto ending = ending_of_entry(entry.state());
    counts->set_ended(counts->ended() + 1);
    if (ending == flow::Ending::kSucceeded) counts->set_succeeded(counts->succeeded() + 1);
    if (ending == flow::Ending::kFailed) counts->set_failed(counts->failed() + 1);
    if (ending == flow::Ending::kCancelled) counts->set_cancelled(counts->cancelled() + 1);
  }
  counts->set_cancel_requested(false);
  counts->set_ended_ms(0);
  header.clear_expires_ms();
  header.set_sequence(header.sequence() + 1);
  if (auto stored = store(context.state, partition, header_key, header, context.out); !stored) return stored;
  audit(context.record, &ref, "REPLAYED", fmt::format("{} nodes run again", again.size()), context.out);

  // Each node run again waits anew, its tally from the parents that stay ended, their outputs kept.
  for (const auto& name : again) {
    Entry& old = nodes.at(name);
    Entry entry;
    entry.set_state(Entry::WAITING);
    entry.set_sequence(old.sequence() + 1);
    entry.set_attempt(old.attempt() + 1);
    entry.set_priority(old.priority());
    v1::Job job = old.job();
    job.set_attempt(old.attempt() + 1);
    auto* graph = entry.mutable_node();
    *graph = old.node();
    graph->clear_inputs();
    graph->clear_reason();
    graph->set_parents_ended(0);
    graph->set_parents_succeeded(0);
    graph->set_parents_failed(0);
    flow::Tally tally{graph->parents(), 0, 0, 0};
    std::size_t inputs_bytes = 0;
    for (const auto& parent : parents[name]) {
      if (again.contains(parent)) continue;
      const Entry& ended = nodes.at(parent);
      tally.add(ending_of_entry(ended.state()));
      // What the parent handed on, again, by the rule node_ended() follows.
      auto* input = graph->add_inputs();
      input->set_node(parent);
      input->set_state(ended.state() == Entry::SUCCEEDED         ? v1::SUCCEEDED
                       : ended.state() == Entry::DEAD            ? v1::DEAD
                       : ended.state() == Entry::UPSTREAM_FAILED ? v1::UPSTREAM_FAILED
                       : ended.state() == Entry::SKIPPED         ? v1::SKIPPED
                                                                 : v1::CANCELLED);
      const auto& output = ended.node().output();
      input->set_size(ended.node().output_size());
      const std::size_t copies = static_cast<std::size_t>(std::max(1, ended.node().children_size()));
      if (output.size() <= settings_.flow_inline_output && inputs_bytes + output.size() <= settings_.flow_inputs_budget &&
          ended.node().output_size() <= output.size() && output.size() * copies <= settings_.flow_fanout_output_budget) {
        input->set_output(output);
        inputs_bytes += output.size();
      } else if (ended.node().output_size() > 0) {
        input->set_too_large(true);
      }
    }
    graph->set_parents_ended(tally.ended);
    graph->set_parents_succeeded(tally.succeeded);
    graph->set_parents_failed(tally.failed);
    job.mutable_flow()->clear_inputs();
    *entry.mutable_job() = std::move(job);
    const ScopedName node = scoped(ref.tenant, flow::node_job_id(ref.id, name));
    if (auto stored = store(context.state, partition, node.key, entry, context.out); !stored) return stored;
    emit_status(node, entry, v1::PENDING,
                fmt::format("flow retried: waits for {} of {} parents", tally.parents - tally.ended, tally.parents), context.out);
  }
  // Then each is decided on what it has, as an ending would decide it.
  for (const auto& name : again) {
    const ScopedName node = scoped(ref.tenant, flow::node_job_id(ref.id, name));
    auto current = load(context.state, node.key);
    if (!current) return current.error();
    if (!*current || (*current)->state() != Entry::WAITING) continue;  // decided by a cascade
    Entry& entry = **current;
    const auto decision = flow::decide(trigger_of(entry.node().trigger()), tally_of(entry.node()));
    if (decision == flow::Decision::kWait) continue;
    if (decision == flow::Decision::kRun) {
      auto released = release_node(context.state, partition, node, entry, context.out);
      if (!released) return released.error();
      if (*released) continue;
      if (auto ended = node_ended(context.state, partition, ref.tenant, entry.node(), v1::DEAD, {}, 0, context.out); !ended) {
        return ended;
      }
      continue;
    }
    const auto as = decision == flow::Decision::kSkip ? v1::SKIPPED : v1::UPSTREAM_FAILED;
    const std::string reason = "flow retried: its parents that stay ended decide it";
    if (auto done = end_unfired_node(context.state, partition, node, entry, as, reason, context.out); !done) return done;
    if (auto ended = node_ended(context.state, partition, ref.tenant, entry.node(), as, {}, 0, context.out); !ended) return ended;
  }
  return Status::success();
}

Result<bool> DispatcherCore::release_node(PartitionState& state, Partition partition, const ScopedName& node, Entry& entry,
                                          std::vector<OutRecord>& out) {
  for (auto& input : *entry.mutable_node()->mutable_inputs())
    *entry.mutable_job()->mutable_flow()->add_inputs() = std::move(input);
  entry.mutable_node()->clear_inputs();
  v1::Job job = entry.job();  // the entry keeps it: a retry of the flow runs it again
  auto due = resolve(job, clock_.now());
  if (!due) {
    const std::string reason = fmt::format("its job could not be released: {}", due.error().message());
    if (auto ended = end_unfired_node(state, partition, node, entry, v1::DEAD, reason, out); !ended) return ended.error();
    return false;
  }
  Entry pending = pending_entry(std::move(job), *due, entry.sequence() + 1);
  *pending.mutable_node() = std::move(*entry.mutable_node());
  ++counts_.accepted;
  if (*due <= clock_.now()) {
    if (auto released = release(state, partition, node.key, pending, out); !released) return released.error();
    return true;
  }
  if (auto stored = store(state, partition, node.key, pending, out); !stored) return stored.error();
  emit_status(node, pending, v1::PENDING, "", out);
  return true;
}

Status DispatcherCore::end_unfired_node(PartitionState& state, Partition partition, const ScopedName& node, Entry& entry,
                                        v1::JobState ended_as, std::string_view reason, std::vector<OutRecord>& out) {
  entry.set_state(entry_state_of(ended_as));
  entry.set_sequence(entry.sequence() + 1);
  entry.set_expires_ms(ms_from_now(settings_.dedupe_retention));
  entry.mutable_node()->set_reason(std::string(reason));
  if (auto stored = store(state, partition, node.key, entry, out); !stored) return stored;
  emit_status(node, entry, ended_as, reason, out);
  if (ended_as == v1::UPSTREAM_FAILED) ++counts_.upstream_failed;
  if (ended_as == v1::CANCELLED) ++counts_.cancelled;
  if (ended_as == v1::SKIPPED) ++counts_.skipped;
  return Status::success();
}

Status DispatcherCore::node_ended(PartitionState& state, Partition partition, std::string_view tenant,
                                  const v1::FlowNodeState& node, v1::JobState ended_as, std::string output,
                                  std::uint64_t output_size, std::vector<OutRecord>& out) {
  struct Ended {
    v1::FlowNodeState node;
    v1::JobState state;
    std::string output;
    std::uint64_t size;
  };
  const ScopedName flow_name = scoped(tenant, node.flow_id());
  const std::string header_key = flow_key(flow_name.key);
  auto loaded = load(state, header_key);
  if (!loaded) return loaded.error();
  const bool has_header = loaded->has_value();
  Entry header = loaded->value_or(Entry());
  auto* counts = header.mutable_flow();
  bool fail_fast = false;
  std::deque<Ended> ended;
  ended.push_back({node, ended_as, std::move(output), output_size});
  while (!ended.empty()) {
    Ended parent = std::move(ended.front());
    ended.pop_front();
    const auto ending = ending_of(parent.state);
    counts->set_ended(counts->ended() + 1);
    if (ending == flow::Ending::kSucceeded) counts->set_succeeded(counts->succeeded() + 1);
    if (ending == flow::Ending::kFailed) counts->set_failed(counts->failed() + 1);
    if (ending == flow::Ending::kCancelled) counts->set_cancelled(counts->cancelled() + 1);
    if (parent.state == v1::DEAD && counts->fail_fast() && !counts->cancel_requested()) fail_fast = true;
    for (const auto& child_name : parent.node.children()) {
      const ScopedName child = scoped(tenant, flow::node_job_id(node.flow_id(), child_name));
      auto child_loaded = load(state, child.key);
      if (!child_loaded) return child_loaded.error();
      if (!*child_loaded || (*child_loaded)->state() != Entry::WAITING) continue;  // already decided (cancelled)
      Entry& entry = **child_loaded;
      auto* graph = entry.mutable_node();
      auto tally = tally_of(*graph);
      tally.add(ending);
      graph->set_parents_ended(tally.ended);
      graph->set_parents_succeeded(tally.succeeded);
      graph->set_parents_failed(tally.failed);
      // What the parent handed on: inline while it fits the bounds, else its size only.
      auto* input = graph->add_inputs();
      input->set_node(parent.node.name());
      input->set_state(parent.state);
      input->set_size(parent.size);
      std::size_t inputs_bytes = 0;
      for (const auto& held : graph->inputs()) inputs_bytes += held.output().size();
      // Inline while the output is whole, within its bound, within the child's budget, and its
      // copies to every child stay within the same budget (a wide fan-out gets sizes only).
      const std::size_t copies = static_cast<std::size_t>(std::max(1, parent.node.children_size()));
      if (parent.output.size() <= settings_.flow_inline_output &&
          inputs_bytes + parent.output.size() <= settings_.flow_inputs_budget && parent.size <= parent.output.size() &&
          parent.output.size() * copies <= settings_.flow_fanout_output_budget) {
        input->set_output(parent.output);
      } else if (parent.size > 0) {
        input->set_too_large(true);
      }
      auto decision = flow::decide(trigger_of(graph->trigger()), tally);
      if (decision == flow::Decision::kRun && counts->cancel_requested()) decision = flow::Decision::kSkip;  // CANCELLED below
      if (decision == flow::Decision::kRun && counts->starts_ms() > 0) decision = flow::Decision::kWait;  // start_flow decides it
      const std::string why =
          fmt::format("parent '{}' ended {} ({} of {} parents ended, trigger {})", parent.node.name(), state_name(parent.state),
                      tally.ended, tally.parents, flow::trigger_name(trigger_of(graph->trigger())));
      switch (decision) {
        case flow::Decision::kWait: {
          entry.set_sequence(entry.sequence() + 1);
          if (auto stored = store(state, partition, child.key, entry, out); !stored) return stored;
          break;
        }
        case flow::Decision::kRun: {
          auto released = release_node(state, partition, child, entry, out);
          if (!released) return released.error();
          if (!*released) ended.push_back({entry.node(), v1::DEAD, {}, 0});
          break;
        }
        case flow::Decision::kUpstreamFailed:
        case flow::Decision::kSkip: {
          const auto as = counts->cancel_requested()          ? v1::CANCELLED
                          : decision == flow::Decision::kSkip ? v1::SKIPPED
                                                              : v1::UPSTREAM_FAILED;
          const std::string reason = counts->cancel_requested() ? fmt::format("its flow was cancelled; {}", why) : why;
          if (auto done = end_unfired_node(state, partition, child, entry, as, reason, out); !done) return done;
          ended.push_back({entry.node(), as, {}, 0});
          break;
        }
      }
    }
  }
  if (has_header) {
    bool now_ended = false;
    if (counts->ended() >= counts->nodes() && counts->ended_ms() == 0) {
      counts->set_ended_ms(to_epoch_ms(clock_.now()));
      header.set_expires_ms(ms_from_now(settings_.dedupe_retention));
      now_ended = true;
      if (counts->starts_ms() > 0) {  // every node ended before the start: nothing is left to start
        if (auto dropped = drop_start(state, partition, flow_name, out); !dropped) return dropped;
        counts->clear_starts_ms();
        counts->set_never_started(true);
      }
    }
    header.set_sequence(header.sequence() + 1);
    if (auto stored = store(state, partition, header_key, header, out); !stored) return stored;
    if (now_ended) {
      if (auto freed = flow_ended(state, partition, flow_name, out); !freed) return freed;
    }
  }
  if (fail_fast) {
    return cancel_flow(state, partition, flow_name, fmt::format("fail_fast: node '{}' ended DEAD", node.name()), nullptr, out);
  }
  return Status::success();
}

Status DispatcherCore::cancel_flow(PartitionState& state, Partition partition, const ScopedName& flow, std::string_view reason,
                                   const InputRecord* record, std::vector<OutRecord>& out, v1::JobState as) {
  const std::string header_key = flow_key(flow.key);
  auto loaded = load(state, header_key);
  if (!loaded) return loaded.error();
  if (!*loaded) {
    if (record != nullptr) reject(*record, &flow, fmt::format("cannot cancel flow '{}': no such flow", flow.id), out);
    return Status::success();
  }
  Entry header = std::move(**loaded);
  auto* counts = header.mutable_flow();
  if (counts->cancel_requested() || counts->ended() >= counts->nodes()) {
    ++counts_.duplicates;
    if (record != nullptr) audit(*record, &flow, "IGNORED", "the flow has ended or is being cancelled", out);
    return Status::success();
  }
  counts->set_cancel_requested(true);
  if (record != nullptr) audit(*record, &flow, "CANCELLED", reason, out);
  if (counts->starts_ms() > 0) {  // it has not started: its start goes too
    if (auto dropped = drop_start(state, partition, flow, out); !dropped) return dropped;
    counts->clear_starts_ms();
    counts->set_never_started(true);
  }
  // Every node's key starts with the flow's scoped key and the separator; a flow has at most
  // flow_limits.max_nodes of them.
  const std::string prefix = flow.key + flow::kSeparator;
  std::string after;
  for (;;) {
    auto keys = state.keys_after(prefix, after, 512);
    if (!keys) return keys.error().within(fmt::format("cancelling flow '{}'", flow.id));
    for (const auto& key : *keys) {
      auto node_loaded = load(state, key);
      if (!node_loaded) return node_loaded.error();
      if (!*node_loaded || !(*node_loaded)->has_node()) continue;
      Entry& entry = **node_loaded;
      const ScopedName node = scoped(flow.tenant, flow::node_job_id(flow.id, entry.node().name()));
      if (entry.state() == Entry::WAITING || entry.state() == Entry::PENDING) {
        if (auto done = end_unfired_node(state, partition, node, entry, as, reason, out); !done) return done;
        counts->set_ended(counts->ended() + 1);
        counts->set_cancelled(counts->cancelled() + 1);
      } else if (entry.state() == Entry::FIRED && !entry.cancel_requested()) {
        entry.set_cancel_requested(true);
        entry.set_sequence(entry.sequence() + 1);
        if (auto stored = store(state, partition, key, entry, out); !stored) return stored;
        v1::Command command;
        command.mutable_cancel()->set_job_id(node.id);
        command.mutable_cancel()->set_tenant(std::string(tenant_field(flow.tenant)));
        command.mutable_cancel()->set_reason(std::string(reason));
        out.push_back(
            {settings_.names.control(), 0, node.key, encode(command), false, typed_headers("cancel", node.id, node.tenant)});
      }
    }
    if (keys->size() < 512) break;
    after = keys->back();
  }
  bool now_ended = false;
  if (counts->ended() >= counts->nodes() && counts->ended_ms() == 0) {
    counts->set_ended_ms(to_epoch_ms(clock_.now()));
    header.set_expires_ms(ms_from_now(settings_.dedupe_retention));
    now_ended = true;
  }
  header.set_sequence(header.sequence() + 1);
  if (auto stored = store(state, partition, header_key, header, out); !stored) return stored;
  return now_ended ? flow_ended(state, partition, flow, out) : Status::success();
}

}  // namespace kcron::dispatcher
