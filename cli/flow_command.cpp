#include "flow_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include "inspect_command.h"
#include "kcron/codec.h"
#include "kcron/flow_graph.h"
#include "kcron/kafka.h"
#include "kcron/records.h"
#include "kcron/templates.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"
#include "kcron/upgrade_gate.h"
#include "template_command.h"
#include "template_wait.h"
#include "text.h"
#include "upgrade_check.h"

namespace kcron::cli {

namespace {

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

Result<std::string> read_source(const std::string& source) {
  if (source == "-") return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  if (!source.empty() && source.front() == '{') return source;
  std::ifstream file(source);
  if (!file) return make_error("cannot read '{}'", source);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// The tenant the command acts in, and the one a body names, which must agree.
Result<std::string> tenant_for(const Config& config, std::string_view named) {
  const std::string given = config.get("tenant");
  const std::string tenant(tenant_or_default(given));
  if (named.empty() || named == tenant) return tenant;
  if (given.empty()) return std::string(named);
  return make_error("the flow names tenant '{}' but --tenant is '{}'", named, tenant);
}

Status produce(const Config& config, const v1::Command& command, const std::string& tenant, const std::string& id) {
  if (auto open = check_upgrade(config, tenant, feature::kFlows); !open) return open;
  auto producer = kafka::make_producer(kafka::client_properties(config, "kcron-cli"), "");
  if (!producer) return producer.error();
  const TopicNames names(config.get("topic_prefix"));
  if (auto status = kafka::produce(**producer, command_record(names, command, tenant, id)); !status) return status;
  if ((*producer)->flush(15000) != RdKafka::ERR_NO_ERROR) return make_error("the record was not acknowledged within 15 s");
  return Status::success();
}

// Renders the flow's template nodes (docs/templates.md#templates-in-flows): kcron.templates is
// read once, and again only while a version named is missing, up to `wait` in all. The rendered
// flow is checked as the dispatcher checks it (each rendered job, the record limit). The number of
// nodes rendered, or an error naming the node.
Result<std::size_t> render_template_nodes(const Config& config, const std::string& tenant, v1::Flow& flow, Millis wait) {
  auto refs = templates::flow_template_refs(flow);
  if (!refs) return refs.error();
  if (refs->empty()) return std::size_t{0};
  auto catalog = read_catalog_until([&] { return read_catalog(config); }, tenant, *refs, CatalogWait{wait, Millis(500), {}});
  if (!catalog) return catalog.error();
  auto rendered = templates::render_flow_nodes(flow, *catalog, tenant, templates::kMaxFlowRecordBytes);
  if (!rendered) return rendered.error();
  if (rendered->is_missing()) {
    return make_error("node '{}': {}", rendered->missing_node, missing_version(*catalog, tenant, rendered->missing, wait));
  }
  if (auto refused = templates::check_rendered_flow(flow, templates::RenderedFlowRules{}))
    return make_error("{}", refused->message);
  return rendered->rendered;
}

std::string_view entry_state(const v1::DispatcherEntry& entry) {
  switch (entry.state()) {
    case v1::DispatcherEntry::WAITING:
      return "WAITING";
    case v1::DispatcherEntry::PENDING:
      return "PENDING";
    case v1::DispatcherEntry::FIRED:
      return entry.cancel_requested() ? "FIRED (cancel sent)" : "FIRED";
    case v1::DispatcherEntry::SUCCEEDED:
      return "SUCCEEDED";
    case v1::DispatcherEntry::DEAD:
      return "DEAD";
    case v1::DispatcherEntry::CANCELLED:
      return "CANCELLED";
    case v1::DispatcherEntry::SKIPPED:
      return "SKIPPED";
    case v1::DispatcherEntry::UPSTREAM_FAILED:
      return "UPSTREAM_FAILED";
    default:
      return "UNKNOWN";
  }
}

}  // namespace

FlowCommands::FlowCommands(CLI::App& app) {
  auto* flow = app.add_subcommand("flow", "flows of dependent jobs: submit, cancel, status (docs/flows.md)");
  flow->require_subcommand(1);
  submit_ = flow->add_subcommand("submit", "submit a flow: a JSON file, '-' for stdin, or the JSON itself");
  submit_
      ->add_option("flow", input_, R"(e.g. flow.json holding {"flow":{"id":"etl","nodes":[...]}} or {"id":"etl","nodes":[...]})")
      ->required();
  submit_
      ->add_option("--template-wait", template_wait_s_,
                   "seconds to wait for a template version a node names and this CLI does not see yet, then refuse")
      ->capture_default_str();
  retry_ = flow->add_subcommand("retry", "run a flow's DEAD nodes and what depends on them again (the flow must have ended)");
  retry_->add_option("flow-id", flow_id_)->required();
  cancel_ = flow->add_subcommand("cancel", "cancel every node of a flow that has not ended");
  cancel_->add_option("flow-id", flow_id_)->required();
  cancel_->add_option("--reason", reason_);
  status_ = flow->add_subcommand("status", "a flow's counts and every node's state, attempt and reason");
  status_->add_option("flow-id", flow_id_)->required();
  status_->add_flag("--json", json_, "JSON lines: the header, then one line per node");
}

bool FlowCommands::parsed() const {
  return submit_->parsed() || cancel_->parsed() || retry_->parsed() || status_->parsed();
}

int FlowCommands::run(const Config& config, std::ostream& out, std::ostream& err) const {
  if (submit_->parsed()) {
    auto text = read_source(input_);
    if (!text) return fail(err, text.error().message());
    v1::Command command;
    // Either a Command holding the flow, or the bare Flow.
    if (!decode_message(*text, header::kJson, command) || !command.has_flow()) {
      command.Clear();
      if (auto decoded = decode_message(*text, header::kJson, *command.mutable_flow()); !decoded) {
        return fail(err, decoded.error().message());
      }
    }
    auto& flow = *command.mutable_flow();
    const auto tenant = tenant_for(config, flow.tenant());
    if (!tenant) return fail(err, tenant.error().message());
    flow.set_tenant(std::string(tenant_field(*tenant)));
    if (!(template_wait_s_ >= 0 && template_wait_s_ <= 3600)) return fail(err, "--template-wait is seconds from 0 to 3600");
    // The graph first: it does not depend on the rendered jobs, so a cycle is reported at once.
    std::vector<flow::NodeShape> shapes;
    for (const auto& node : flow.nodes()) shapes.push_back({node.name(), {node.depends_on().begin(), node.depends_on().end()}});
    if (auto checked = flow::check_graph(flow.id(), shapes); !checked) return fail(err, checked.error().message());
    const auto rendered =
        render_template_nodes(config, *tenant, flow, Millis(static_cast<std::int64_t>(template_wait_s_ * 1000)));
    if (!rendered) return fail(err, rendered.error().message());
    if (auto produced = produce(config, command, *tenant, flow.id()); !produced) return fail(err, produced.error().message());
    out << fmt::format("submitted flow {} ({} nodes{}){}\n", flow.id(), flow.nodes_size(),
                       *rendered > 0 ? fmt::format(", {} rendered from templates", *rendered) : "",
                       is_default_tenant(*tenant) ? "" : " for tenant " + *tenant);
    return 0;
  }
  const std::string tenant(tenant_or_default(config.get("tenant")));
  if (retry_->parsed()) {
    v1::Command command;
    command.mutable_replay()->set_job_id(flow_id_);
    command.mutable_replay()->set_tenant(std::string(tenant_field(tenant)));
    command.mutable_replay()->set_flow(true);
    if (auto produced = produce(config, command, tenant, flow_id_); !produced) return fail(err, produced.error().message());
    out << fmt::format("retry sent for flow {}: its DEAD nodes and their dependants run again (kcron flow status {})\n", flow_id_,
                       flow_id_);
    return 0;
  }
  if (cancel_->parsed()) {
    v1::Command command;
    command.mutable_cancel()->set_job_id(flow_id_);
    command.mutable_cancel()->set_tenant(std::string(tenant_field(tenant)));
    command.mutable_cancel()->set_reason(reason_);
    command.mutable_cancel()->set_flow(true);
    if (auto produced = produce(config, command, tenant, flow_id_); !produced) return fail(err, produced.error().message());
    out << fmt::format("cancel sent for flow {}\n", flow_id_);
    return 0;
  }
  // status: the flow's partition of the changelog, last value per key (a tombstone forgets it).
  const TopicNames names(config.get("topic_prefix"));
  const std::string flow_key = scoped_key(tenant, flow_id_);
  const std::string header = flow::header_key(flow_key);
  const std::string node_prefix = flow_key + flow::kSeparator;
  auto records = read_to_end(config, names.dispatcher_changelog(), scoped_routing_key(tenant, flow_id_));
  if (!records) return fail(err, records.error().message());
  std::map<std::string, std::string> latest;
  for (auto& record : *records) {
    if (record.key != header && !record.key.starts_with(node_prefix)) continue;
    if (record.tombstone) {
      latest.erase(record.key);
    } else {
      latest[record.key] = std::move(record.value);
    }
  }
  const auto found = latest.find(header);
  if (found == latest.end()) {
    return fail(err, fmt::format("no flow '{}'{} (or it ended longer ago than the dispatcher keeps ids)", flow_id_,
                                 is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant)));
  }
  v1::DispatcherEntry head;
  if (!head.ParseFromString(found->second)) return fail(err, "the flow's header does not parse");
  const auto& counts = head.flow();
  std::vector<v1::DispatcherEntry> nodes;
  for (const auto& [key, value] : latest) {
    v1::DispatcherEntry entry;
    if (key == header || !entry.ParseFromString(value) || !entry.has_node()) continue;
    nodes.push_back(std::move(entry));
  }
  if (json_) {
    out << to_json(head) << "\n";
    for (const auto& entry : nodes) out << to_json(entry) << "\n";
    return 0;
  }
  const bool ended = counts.ended() >= counts.nodes();
  out << fmt::format("flow {}: {} - {} of {} nodes ended: {} succeeded, {} failed, {} cancelled or skipped{}\n", flow_id_,
                     ended ? (counts.failed() > 0      ? "FAILED"
                              : counts.cancelled() > 0 ? "ENDED"
                                                       : "SUCCEEDED")
                           : (counts.cancel_requested() ? "CANCELLING"
                              : counts.starts_ms() > 0  ? "WAITING TO START"
                                                        : "RUNNING"),
                     counts.ended(), counts.nodes(), counts.succeeded(), counts.failed(), counts.cancelled(),
                     counts.fail_fast() ? " (fail_fast)" : "");
  out << fmt::format("submitted {}{}{}\n", rfc3339_ms(counts.submitted_ms()),
                     counts.starts_ms() > 0 ? ", starts " + rfc3339_ms(counts.starts_ms()) : "",
                     counts.ended_ms() > 0 ? ", ended " + rfc3339_ms(counts.ended_ms()) : "");
  out << fmt::format("{:<24} {:<20} {:>7}  {:<9} {:<12} {:<24} {}\n", "NODE", "STATE", "ATTEMPT", "PARENTS", "TRIGGER", "DUE",
                     "REASON");
  for (const auto& entry : nodes) {
    const auto& node = entry.node();
    const auto trigger = v1::FlowNode::Trigger_Name(
        node.trigger() == v1::FlowNode::TRIGGER_UNSPECIFIED ? v1::FlowNode::ALL_SUCCESS : node.trigger());
    out << fmt::format("{:<24} {:<20} {:>7}  {:<9} {:<12} {:<24} {}\n", node.name(), entry_state(entry), entry.attempt(),
                       fmt::format("{}/{}", node.parents_ended(), node.parents()), trigger,
                       entry.due_ms() > 0 ? rfc3339_ms(entry.due_ms()) : "-", one_line(node.reason()));
  }
  return 0;
}

}  // namespace kcron::cli
