// Job templates (docs/templates.md): a named job with typed parameters and immutable versions,
// kept on the compacted kcron.templates. Here: the checks a template passes before it is written,
// rendering a version with parameter values into a concrete job (every `{{param}}` replaced, the
// job's `template` set to "name@version"), the content comparison that keeps versions immutable,
// and a catalog folded from the topic's records. Pure: no Kafka; the writers (the CLI) read and
// write the topic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/ids.h"
#include "kcron/result.h"

namespace kcron::templates {

inline constexpr std::size_t kMaxNameBytes = 64;             // a template's and a parameter's name
inline constexpr std::size_t kMaxParams = 64;                // parameters of one template
inline constexpr std::size_t kMaxValueBytes = 4096;          // one parameter value (or default)
inline constexpr std::size_t kMaxDescriptionBytes = 1024;    // a template's or a parameter's description
inline constexpr std::size_t kMaxTemplateBytes = 262'144;    // a template, encoded (256 KiB)
inline constexpr std::size_t kMaxRenderedBytes = 1'000'000;  // a rendered job, encoded (under the record limit)
// The default record limit (max_record_bytes) of the dispatcher and the cron-producer: a flow
// written to kcron.jobs larger than it is REJECTED there.
inline constexpr std::size_t kMaxFlowRecordBytes = 900'000;

// A template's name: 1-64 of [a-z0-9_.-], starting with a letter or digit.
bool is_valid_template_name(std::string_view name);
// A parameter's name: 1-64 of [a-z0-9_], not starting with a digit.
bool is_valid_param_name(std::string_view name);

// A reference to a template version as users write it: "name@version", or "name" (version 0:
// the latest) where `version_required` is false.
struct Ref {
  std::string name;
  std::uint32_t version = 0;
  std::string text() const;  // "name@version"
};
Result<Ref> parse_ref(std::string_view text, bool version_required);

// The record key of a version on kcron.templates: the tenant-scoped key (tenant.h) of
// "name@version": bare for the default tenant, `<tenant>~name@version` for any other.
std::string template_key(std::string_view tenant, std::string_view name, std::uint32_t version);

// Whether `value` is a value of `param`'s type. The message names the parameter and the value:
// "parameter 'n' must be an integer, got 'x'".
Status check_param_value(const v1::TemplateParam& param, std::string_view value);

// Everything a template must be before it is written: a valid name and tenant, version >= 1,
// parameters with valid unique names, known types, typed defaults (a required parameter has
// none), bounded sizes, a job with a task and none of the fields kcron sets (template, attempt,
// history, flow, schedule_run; no sealed task), and every `{{x}}` in the job a declared
// parameter. Messages start "template 'name@version': ".
Status validate_template(const v1::Template& definition);

// Parameter values by name, as the writer got them (text, as on a command line).
using Params = std::map<std::string, std::string, std::less<>>;

// `name=value` assignments (a command line's --param) as Params: the first '=' splits; an error
// for one without '=', with an invalid name, or naming a parameter twice.
Result<Params> parse_params(const std::vector<std::string>& assignments);

// The concrete job of `definition` with `params`: each placeholder replaced by its parameter's
// value (given, else its default, else empty), its tenant the template's, `template` set to
// "name@version". Refused, naming the template version and the parameter, for an unknown
// parameter, a missing required one, a value not of its type, or a `{{` left in the result.
Result<v1::Job> render(const v1::Template& definition, const Params& params);

// Whether two versions hold the same template (everything but written_by and written_at_ms):
// writing a version again with the same content is a no-op, with other content a refusal.
bool same_content(const v1::Template& left, const v1::Template& right);

class Catalog;

// Whether `definition` is to be written over what `catalog` holds: true for a new version, false
// for a version that exists with the same content (nothing to write); an error for one that
// exists with other content, naming the next free version.
Result<bool> is_new_version(const Catalog& catalog, const v1::Template& definition);

// The templates as kcron.templates holds them, folded from its records (latest value per key; a
// tombstone forgets a version). Pure, not thread-safe.
class Catalog {
 public:
  // One record. A value that does not decode, does not validate or does not match its key is
  // refused with the reason (what the key held before stays) and its version is remembered as
  // unusable: a version a later release wrote, or a damaged record, is still taken, never
  // written over as if it were free.
  Status apply(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone);
  void put(const v1::Template& definition);

  // One version of a tenant's template ("default" or "" for the default tenant); null: none.
  const v1::Template* find(std::string_view tenant, std::string_view name, std::uint32_t version) const;
  // The highest version of a tenant's template; null: none.
  const v1::Template* latest(std::string_view tenant, std::string_view name) const;
  // Every version of a tenant's template, oldest first.
  std::vector<const v1::Template*> versions(std::string_view tenant, std::string_view name) const;
  // The latest version of each of a tenant's templates, by name.
  std::vector<const v1::Template*> latest_of_each(std::string_view tenant) const;
  // Why a version's latest record could not be taken; null: it could (or there is none).
  const std::string* unusable(std::string_view tenant, std::string_view name, std::uint32_t version) const;
  // A catalog of only `refs` of `tenant` (the versions held and the unusable ones): a copy to
  // render from without holding what guards this one.
  Catalog subset(std::string_view tenant, const std::vector<Ref>& refs) const;
  // The first of `refs` that is neither held nor unusable for `tenant`; null: none.
  const Ref* first_missing(std::string_view tenant, const std::vector<Ref>& refs) const;

 private:
  Status apply_record(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone);

  // (tenant as "default" or its name, template name, version) -> the template
  std::map<std::string, std::map<std::string, std::map<std::uint32_t, v1::Template>, std::less<>>, std::less<>> templates_;
  // key (tenant as "default" or its name, name@version) -> why its latest record was refused
  std::map<std::pair<std::string, std::string>, std::string, std::less<>> unusable_;
};

// ---- Templates in flows (docs/templates.md#templates-in-flows) ----
// A flow node names a version with template_ref instead of a job. The writer renders every such
// node before it checks or writes the flow, so the flow on kcron.jobs is always concrete.

// The versions a flow's template nodes name, each once, in node order, after checking each such
// node's shape: it sets job or template_ref, not both; its ref names a version; its parameter
// names are names and its values at most kMaxValueBytes. The error names the node: "node 'b':
// template_ref: ...".
Result<std::vector<Ref>> flow_template_refs(const v1::Flow& flow);

// What render_flow_nodes did.
struct FlowRender {
  std::size_t rendered = 0;  // template nodes rendered (0 with `missing` empty: the flow names no template)
  // The first template node whose version the catalog does not hold (yet), and that version:
  // then nothing was rendered, and a writer may wait for the version and try again.
  std::string missing_node;
  Ref missing;
  bool is_missing() const { return !missing_node.empty(); }
};

// Renders every template node of `flow` from `tenant`'s versions in `catalog` (a tenant sees only
// its own templates): the node's job becomes the rendered job, carrying `template` =
// "name@version", with no id and no tenant (a node's id is "<flow>/<node>" and its tenant the
// flow's), and its template_ref is cleared. Nodes with a job are left as they are. Changes
// `flow` only when every template node rendered. Every version is looked up before any node is
// rendered: a version not in the catalog is not an error but FlowRender::missing (nothing was
// rendered), so the writer can wait for it. `max_bytes` bounds the rendered jobs' encoded sizes
// in total (the writer's record limit): rendering stops at the node that takes it over. An error
// names the node: "node 'b': template 'report@3': required parameter 'day' is missing", and
// `failure` (when given) says which node and whether it was the budget.
struct RenderFailure {
  int node = -1;           // the index of the node an error names; -1: none
  bool too_large = false;  // the rendered jobs went over max_bytes
};
Result<FlowRender> render_flow_nodes(v1::Flow& flow, const Catalog& catalog, std::string_view tenant, std::size_t max_bytes,
                                     RenderFailure* failure = nullptr);

// The checks a flow whose template nodes were rendered passes before it is written (the API, the
// CLI and the cron-producer share them): each rendered node's job has a task, a known queue
// (when `queues` is given) and a priority of 0-9, and no run_at where `refuse_run_at` (a
// schedule's run); the flow, encoded, plus `overhead_bytes` is within `max_record_bytes`.
struct RenderedFlowRules {
  const std::set<std::string, std::less<>>* queues = nullptr;  // null: any queue
  bool refuse_run_at = false;
  std::size_t max_record_bytes = kMaxFlowRecordBytes;
  std::size_t overhead_bytes = 0;  // added by the writer after the check (a run's ids)
};
struct RenderedFlowProblem {
  int node = -1;           // the node refused; -1: the flow as a whole (too_large)
  std::string field;       // the job's field refused: "task", "queue", "priority", "run_at"; empty when too_large
  std::string message;     // "node 'b': template 'report@3' renders a job that is refused: ..."
  bool too_large = false;  // over max_record_bytes
};
// What a schedule's run adds to its flow_template when written (its id, each node's id, its
// schedule_run), at most.
inline constexpr std::size_t kRunOverheadBytes = 3 * kMaxJobIdBytes;
// The rules a schedule's run passes (the cron-producer's, and the schedule writers' check):
// no run_at, room for the run's ids; `queues` when the writer knows them.
inline RenderedFlowRules schedule_run_rules(const std::set<std::string, std::less<>>* queues = nullptr,
                                            std::size_t max_record_bytes = kMaxFlowRecordBytes) {
  return {queues, true, max_record_bytes, kRunOverheadBytes};
}
std::optional<RenderedFlowProblem> check_rendered_flow(const v1::Flow& flow, const RenderedFlowRules& rules);

}  // namespace kcron::templates
