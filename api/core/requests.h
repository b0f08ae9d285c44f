// What kcron-api accepts in a request, checked before anything is produced: a job body in the
// canonical JSON form of v1::Job, list filters and page tokens. Every refusal names the field, so
// the 400 it becomes tells the caller what to fix. Pure.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/result.h"
#include "kcron/templates.h"

namespace kcron::api {

// A refusal of one field of a request.
struct FieldError {
  std::string field;  // e.g. "id", "delay", "page_size"; empty when the body as a whole is wrong
  std::string message;
};

template <typename T>
struct Checked {
  std::optional<T> value;
  FieldError error;
  bool ok() const { return value.has_value(); }
};

inline constexpr std::size_t kMaxBodyBytes = 1 << 20;

// A job to submit. The tenant comes from the caller's token, never from the body: a body naming
// another tenant is refused, and so are the fields only kcron sets (attempt, history,
// submitted_by). A body without an id gets `generated_id`.
Checked<v1::Job> parse_job_body(std::string_view body, std::string_view tenant, std::string_view subject,
                                std::string_view generated_id);

// POST /v1/jobs naming a template (docs/templates.md#kcron-api): {"template": "name@version",
// "params": {name: string, number or boolean}, "id": "..."}, and no other key. nullopt: the body is
// not one (no string "template", or a task key: a job body, checked by parse_job_body).
struct TemplateSubmission {
  templates::Ref ref;
  templates::Params params;
  std::optional<std::string> id;
};
std::optional<Checked<TemplateSubmission>> parse_template_submission(std::string_view body);
// The same for a body parsed already (a batch's item, taken as it came: not dumped and parsed again).
// A template taking nlohmann::json only, so text (which converts to json too) picks the one above.
template <typename Json>
requires std::same_as<Json, nlohmann::json> std::optional<Checked<TemplateSubmission>> parse_template_submission(
    const Json& object);

// The template versions the items of one POST /v1/jobs:batch name (docs/api.md#templates), by
// "name@version": each distinct version of the valid template bodies among `submissions` is looked
// up once with no wait. When some are missing and `wait` is positive, `may_wait()` is asked once
// (a wait holds a request thread: the caller's bound); if it grants it, each missing version is
// looked up again with what is left of `wait` on `clock`, so the request waits at most `wait` in
// all however many versions are missing: each look-up is given a wait within [0, wait], so a clock
// that steps (backwards or forwards) cannot stretch it. A version still missing has no `found`.
struct BatchVersions {
  struct Version {
    templates::Ref ref;
    std::optional<v1::Template> found;
    // How long the request had waited when this version's look-up ended, on `clock`, within
    // [0, wait]; 0 for a version found without a wait (what a 404 says it waited).
    Millis waited{0};
  };
  std::map<std::string, Version> versions;
  bool wait_refused = false;  // some were missing and may_wait() said no: they were not waited for
};
using FindVersion = std::function<std::optional<v1::Template>(const templates::Ref& ref, Millis wait)>;
BatchVersions find_batch_versions(const std::vector<std::optional<Checked<TemplateSubmission>>>& submissions,
                                  const FindVersion& find, Millis wait, const std::function<bool()>& may_wait,
                                  const Clock& clock);

// A flow to submit (docs/flows.md): the bare Flow or {"flow": {...}}. The tenant and submitted_by
// come from the caller; the graph is checked as the dispatcher checks it (a cycle is named), and
// each node's job as a job body is, under the field "nodes[<i>].job.<field>". Node jobs get their
// ids from the flow ("<flow>/<node>"): a node job naming another id is refused. A node naming a
// template version (template_ref, docs/templates.md#templates-in-flows) is checked for its shape
// only: the caller renders it, and checks the rendered flow with
// templates::check_rendered_flow.
Checked<v1::Flow> parse_flow_body(std::string_view body, std::string_view tenant, std::string_view subject);

// A schedule's flow_template (docs/flows.md#scheduled-flows), checked as each run `<schedule>@<instant>`
// will be, fields under "flow_template.": kcron sets id, tenant, run_at_ms and schedule_run; a node's
// job may not have run_at (the same instant for every run). submitted_by becomes `subject`.
Checked<v1::Flow> check_flow_template(v1::Flow flow, std::string_view schedule_id, std::string_view tenant,
                                      std::string_view subject);

// The id a submission gets when its body names none: derived from the Idempotency-Key when there
// is one (the same key gives the same id, so a retried request is deduplicated by the dispatcher),
// else `random_suffix`.
std::string generated_job_id(std::string_view subject, std::string_view idempotency_key, std::string_view random_suffix);

// A position in a list ordered by (submitted_ms, id), newest first. Opaque to clients.
struct PageKey {
  std::int64_t submitted_ms = 0;
  std::string id;
};
std::string encode_page_token(const PageKey& key);
Result<PageKey> decode_page_token(std::string_view token);

struct ListQuery {
  std::optional<v1::JobState> state;
  std::string queue;
  std::string schedule_id;
  std::string label_key;  // label=key=value
  std::string label_value;
  std::int64_t since_ms = 0;  // submitted at or after
  std::int64_t until_ms = 0;  // submitted before (0: no bound)
  std::size_t page_size = 50;
  std::optional<PageKey> after;
};
inline constexpr std::size_t kMaxPageSize = 500;

// A URL's query string (after '?') as name/value pairs: split on '&', each at its FIRST '=' (so
// `label=team=data` is label -> "team=data"), percent-decoded, '+' as a space. At most
// `max_parameters` pairs; nullopt when there are more or an escape is malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> split_query(std::string_view query,
                                                                            std::size_t max_parameters = 32);

// GET /v1/jobs's query parameters, by name (a lookup function so this stays free of HTTP types).
// Unknown parameters are refused.
Checked<ListQuery> parse_list_query(const std::vector<std::pair<std::string, std::string>>& parameters);

// An instant given as RFC 3339 or epoch milliseconds.
Result<std::int64_t> parse_instant_ms(std::string_view text);

}  // namespace kcron::api
