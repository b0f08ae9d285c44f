#include "core/problem.h"

#include <nlohmann/json.hpp>
#include <utility>

namespace kcron::api {
namespace {

std::string_view title_for(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return status >= 500 ? "Internal Server Error" : "Error";
  }
}

}  // namespace

Problem make_problem(int status, std::string detail, std::string field) {
  return Problem{status, std::string(title_for(status)), std::move(detail), std::move(field), {}};
}

std::string problem_json(const Problem& problem) {
  nlohmann::json body{{"type", "about:blank"}, {"title", problem.title}, {"status", problem.status}, {"detail", problem.detail}};
  if (!problem.field.empty()) body["field"] = problem.field;
  if (!problem.request_id.empty()) body["request_id"] = problem.request_id;
  // Invalid UTF-8 from a request (an id, a field name) is replaced, never a throw.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace kcron::api
