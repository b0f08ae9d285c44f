// Errors as kcron-api answers them: RFC 9457 problem details (application/problem+json), with a
// message the caller can act on and, for a bad request, the field at fault. Never a stack trace,
// never an internal name. Pure.
#pragma once

#include <string>
#include <string_view>

namespace kcron::api {

inline constexpr std::string_view kProblemContentType = "application/problem+json";

struct Problem {
  int status = 500;
  std::string title;   // short, per status: "Bad Request", "Unauthorized"...
  std::string detail;  // what went wrong and what to do
  std::string field;   // the request field at fault, if any
  std::string request_id;
};

// A problem for `status` with the standard title for it.
Problem make_problem(int status, std::string detail, std::string field = {});
std::string problem_json(const Problem& problem);

}  // namespace kcron::api
