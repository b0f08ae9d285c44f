// The routes kcron-api serves, as one table: method, OpenAPI path template and the handler's name.
// The server registers exactly these (api/http/api_server.cpp) and api/openapi/openapi.json must
// document exactly these (a unit test compares the two). Pure.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kcron::api {

// One per handler of ApiServer; its switch over RouteId makes a route without a handler a
// compile error.
enum class RouteId : std::uint8_t {
  kSubmit,
  kBatch,
  kSubmitFlow,
  kListFlows,
  kCancelFlow,
  kRetryFlow,
  kGetFlow,
  kUpdate,
  kList,
  kCancel,
  kGet,
  kWhoami,
  kReplayJob,
  kCloneJob,
  kListSchedules,
  kPreviewCron,
  kScheduleNext,
  kGetSchedule,
  kPauseSchedule,
  kResumeSchedule,
  kTriggerSchedule,
  kBackfill,
  kPutSchedule,
  kDeleteSchedule,
  kListDeadLetters,
  kReplayDeadLetter,
  kGetDeadLetter,
  kWorkers,
  kAudit,
  kStats,
  kEvents,
  kGetTenant,
  kPatchTenant,
  kListTemplates,
  kGetTemplateVersion,
  kGetTemplate,
  kPutTemplateVersion,
  kGetOutput,  // large outputs (docs/large-results.md)
  kOpenApi,
};

struct RouteSpec {
  RouteId id;
  std::string_view method;  // GET, POST, PUT, PATCH, DELETE
  std::string_view path;    // an OpenAPI path template: "{name}" is one parameter, e.g. "/v1/jobs/{id}:cancel"
  std::string_view name;    // in the access log
};

// In registration order: where two templates of one method match a path, the earlier one serves
// it (each "{id}" takes any characters), so ".../{id}/next" and ".../{id}:action" come before
// ".../{id}". CORS preflights (OPTIONS, only with api.cors_origin) are registered outside the table
// and are not part of the OpenAPI document.
inline constexpr std::array<RouteSpec, 39> kRoutes{{
    {RouteId::kSubmit, "POST", "/v1/jobs", "submit"},
    {RouteId::kBatch, "POST", "/v1/jobs:batch", "batch"},
    {RouteId::kSubmitFlow, "POST", "/v1/flows", "submit-flow"},
    {RouteId::kListFlows, "GET", "/v1/flows", "flows"},
    {RouteId::kCancelFlow, "POST", "/v1/flows/{id}:cancel", "flow-cancel"},
    {RouteId::kRetryFlow, "POST", "/v1/flows/{id}:retry", "flow-retry"},
    {RouteId::kGetFlow, "GET", "/v1/flows/{id}", "flow"},
    {RouteId::kUpdate, "PUT", "/v1/jobs/{id}", "update"},
    {RouteId::kList, "GET", "/v1/jobs", "list"},
    {RouteId::kCancel, "POST", "/v1/jobs/{id}:cancel", "cancel"},
    {RouteId::kGetOutput, "GET", "/v1/jobs/{id}/outputs/{name}", "job-output"},  // before /v1/jobs/{id}
    {RouteId::kGet, "GET", "/v1/jobs/{id}", "get"},
    {RouteId::kWhoami, "GET", "/v1/whoami", "whoami"},
    {RouteId::kReplayJob, "POST", "/v1/jobs/{id}:replay", "job-replay"},
    {RouteId::kCloneJob, "POST", "/v1/jobs/{id}:clone", "job-clone"},
    {RouteId::kListSchedules, "GET", "/v1/schedules", "schedules"},
    {RouteId::kPreviewCron, "GET", "/v1/schedules:preview", "schedule-preview"},
    {RouteId::kScheduleNext, "GET", "/v1/schedules/{id}/next", "schedule-next"},
    {RouteId::kGetSchedule, "GET", "/v1/schedules/{id}", "schedule"},
    {RouteId::kPauseSchedule, "POST", "/v1/schedules/{id}:pause", "schedule-pause"},
    {RouteId::kResumeSchedule, "POST", "/v1/schedules/{id}:resume", "schedule-resume"},
    {RouteId::kTriggerSchedule, "POST", "/v1/schedules/{id}:trigger", "schedule-trigger"},
    {RouteId::kBackfill, "POST", "/v1/schedules/{id}:backfill", "schedule-backfill"},
    {RouteId::kPutSchedule, "PUT", "/v1/schedules/{id}", "put-schedule"},
    {RouteId::kDeleteSchedule, "DELETE", "/v1/schedules/{id}", "delete-schedule"},
    {RouteId::kListDeadLetters, "GET", "/v1/dead-letters", "dead-letters"},
    {RouteId::kReplayDeadLetter, "POST", "/v1/dead-letters/{id}:replay", "replay-dead-letter"},
    {RouteId::kGetDeadLetter, "GET", "/v1/dead-letters/{id}", "dead-letter"},
    {RouteId::kWorkers, "GET", "/v1/workers", "workers"},
    {RouteId::kAudit, "GET", "/v1/audit", "audit"},
    {RouteId::kStats, "GET", "/v1/stats", "stats"},
    {RouteId::kEvents, "GET", "/v1/events", "events"},
    {RouteId::kGetTenant, "GET", "/v1/tenant", "tenant"},
    {RouteId::kPatchTenant, "PATCH", "/v1/tenant", "patch-tenant"},
    {RouteId::kOpenApi, "GET", "/v1/openapi.json", "openapi"},
    {RouteId::kListTemplates, "GET", "/v1/templates", "templates"},
    {RouteId::kGetTemplateVersion, "GET", "/v1/templates/{name}/versions/{version}", "template-version"},
    {RouteId::kGetTemplate, "GET", "/v1/templates/{name}", "template"},
    {RouteId::kPutTemplateVersion, "PUT", "/v1/templates/{name}/versions/{version}", "put-template-version"},
}};

// kRoutes as (method, path template) pairs: what ApiServer::routes() answers.
std::vector<std::pair<std::string, std::string>> route_list();

// The regular expression cpp-httplib matches a template with: each "{name}" becomes a group of
// one or more characters, every other character is literal. E.g. "/v1/jobs/{id}:cancel" ->
// "/v1/jobs/(.+):cancel".
std::string path_regex(std::string_view path_template);

// Whether `path` (no query) matches `path_template` as path_regex's expression does: each
// parameter takes one or more characters.
bool path_matches(std::string_view path_template, std::string_view path);

}  // namespace kcron::api
