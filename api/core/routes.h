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
enum class RouteId : std::uint8_t { kSubmit, kBatch, kUpdate, kList, kCancel, kGet, kWhoami, kOpenApi };

struct RouteSpec {
  RouteId id;
  std::string_view method;  // GET, POST, PUT, DELETE
  std::string_view path;    // an OpenAPI path template: "{name}" is one parameter, e.g. "/v1/jobs/{id}:cancel"
  std::string_view name;    // in the access log
};

// In registration order: where two templates match a path, the earlier one serves it.
inline constexpr std::array<RouteSpec, 8> kRoutes{{
    {RouteId::kSubmit, "POST", "/v1/jobs", "submit"},
    {RouteId::kBatch, "POST", "/v1/jobs:batch", "batch"},
    {RouteId::kUpdate, "PUT", "/v1/jobs/{id}", "update"},
    {RouteId::kList, "GET", "/v1/jobs", "list"},
    {RouteId::kCancel, "POST", "/v1/jobs/{id}:cancel", "cancel"},
    {RouteId::kGet, "GET", "/v1/jobs/{id}", "get"},
    {RouteId::kWhoami, "GET", "/v1/whoami", "whoami"},
    {RouteId::kOpenApi, "GET", "/v1/openapi.json", "openapi"},
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
