// kcron-api against the real broker: two instances in front of a dispatcher and a worker, tokens
// minted with a key the instances trust, two tenants. Every answer is read over HTTP.
#include <arpa/inet.h>
#include <date/date.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "auth/jwt.h"
#include "core/roles.h"
#include "core/routes.h"
#include "kcron/codec.h"
#include "kcron/topics.h"
#include "openapi/contract.h"
#include "openapi/document.h"
#include "support/api_keys.h"
#include "support/harness.h"

using namespace kcron::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// One kcron-api instance and a client to it.
struct Api {
  std::unique_ptr<Process> process;
  int port = 0;

  std::vector<std::string> extra;

  Api(const TestEnv& env, const ApiKeys& keys, const std::string& instance, std::vector<std::string> extra_env = {})
      : extra(std::move(extra_env)) {
    start(env, keys, instance);
  }

  void start(const TestEnv& env, const ApiKeys& keys, const std::string& instance) {
    const auto log_path = fmt::format("{}/{}.log", env.state_root, instance);
    const int before = count_in_log(log_path, "event=api_listening");
    auto vars = extra;
    vars.emplace_back("KCRON_API_PORT=0");
    vars.push_back("KCRON_AUTH_JWKS_FILE=" + keys.jwks_path);
    process = start_program(env, "kcron-api", instance, instance, vars, false);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (count_in_log(log_path, "event=api_listening") <= before && std::chrono::steady_clock::now() < deadline) {
      INFO(tail_file(log_path));
      REQUIRE(process->running());
      std::this_thread::sleep_for(50ms);
    }
    port = api_port_from_log(log_path);
    REQUIRE(port > 0);
    INFO(tail_file(log_path));
    REQUIRE(wait_for_log(*process, "event=view_caught_up", 60s));
  }

  httplib::Result call(const std::string& method, const std::string& path, const std::string& bearer,
                       const std::string& body = "", const httplib::Headers& more_headers = {}) const {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30, 0);
    httplib::Headers headers = more_headers;
    if (!bearer.empty()) headers.emplace("Authorization", "Bearer " + bearer);
    auto result = method == "GET"      ? client.Get(path, headers)
                  : method == "PUT"    ? client.Put(path, headers, body, "application/json")
                  : method == "DELETE" ? client.Delete(path, headers)
                  : method == "PATCH"  ? client.Patch(path, headers, body, "application/merge-patch+json")
                                       : client.Post(path, headers, body, "application/json");
    if (result) {  // every answer must be one api/openapi/openapi.json describes
      const auto valid =
          kcron::api::openapi::check_answer(kcron::api::openapi::built_in_checker(), method, path,
                                            {result->status, {result->headers.begin(), result->headers.end()}, result->body});
      INFO("OpenAPI: " << (valid ? std::string() : valid.error().message()));
      CHECK(valid.ok());
    }
    return result;
  }
};

json body_of(const httplib::Result& result) {
  INFO("HTTP error: " << httplib::to_string(result.error()));
  REQUIRE(result);
  auto parsed = json::parse(result->body, nullptr, false);
  INFO(result->body);
  REQUIRE_FALSE(parsed.is_discarded());
  return parsed;
}

// GET until the job reaches `state` (bounded).
json wait_for_state(const Api& api, const std::string& bearer, const std::string& id, const std::string& state,
                    std::chrono::seconds timeout = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  json last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto result = api.call("GET", "/v1/jobs/" + id, bearer);
    if (result && result->status == 200) {
      last = json::parse(result->body);
      if (last.value("state", "") == state) return last;
    }
    std::this_thread::sleep_for(100ms);
  }
  FAIL("job " << id << " did not reach " << state << "; last: " << last.dump());
  return last;
}

}  // namespace

TEST_CASE(
    "two tenants through two API instances: each sees and changes only its own jobs, read-your-writes holds across instances",
    "[integration]") {
  TestEnv env("api-tenants");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api first(env, keys, "api1");
  Api second(env, keys, "api2");
  const auto acme = api_token(keys, "acme", "member");
  const auto beta = api_token(keys, "beta", "operator", "bob");

  // A cursor from one instance, before anything happened.
  const auto cursor = body_of(first.call("GET", "/v1/events?wait=0", acme))["cursor"].get<std::string>();

  // Both tenants submit a job with the same id; acme's runs now, beta's waits an hour.
  auto submitted = first.call("POST", "/v1/jobs", acme, R"({"id":"report","noop":{},"labels":{"team":"data"}})");
  REQUIRE(submitted);
  INFO(submitted->body);
  REQUIRE(submitted->status == 202);
  CHECK(submitted->get_header_value("Location") == "/v1/jobs/report");
  const auto consistency = submitted->get_header_value("Kcron-Consistency");
  REQUIRE_FALSE(consistency.empty());
  auto later = first.call("POST", "/v1/jobs", beta, R"({"id":"report","delay":"3600s","noop":{}})");
  REQUIRE(later);
  REQUIRE(later->status == 202);

  // The other instance answers the write at once when given its token.
  auto seen = second.call("GET", "/v1/jobs/report", acme, "", {{"Kcron-Consistency", consistency}});
  REQUIRE(seen);
  INFO(seen->body);
  REQUIRE(seen->status == 200);
  const auto view = json::parse(seen->body);
  CHECK(view["tenant"] == "acme");
  CHECK(view["submitted_by"] == "alice");
  CHECK(view["labels"]["team"] == "data");

  const auto done = wait_for_state(second, acme, "report", "SUCCEEDED");
  CHECK(done["result"]["state"] == "SUCCEEDED");
  CHECK_FALSE(done["history"].empty());

  // The other instance numbers its events its own way: given the first one's cursor, it goes back
  // by time and misses none of what came after it.
  std::vector<std::string> report_states;
  std::string since = cursor;
  for (int poll = 0; poll < 10; ++poll) {
    const auto page = body_of(second.call("GET", "/v1/events?wait=0&since=" + since, acme));
    for (const auto& event : page["events"]) {
      if (event["id"] == "report") report_states.push_back(event["state"]);
    }
    if (page["events"].empty()) break;
    since = page["cursor"];
  }
  CHECK(std::find(report_states.begin(), report_states.end(), "QUEUED") != report_states.end());
  CHECK(std::find(report_states.begin(), report_states.end(), "SUCCEEDED") != report_states.end());
  CHECK(second.call("GET", "/v1/events?wait=0&since=zz.1.2", acme)->status == 400);

  // The workers are everyone's: a tenant sees their capacity, not their host or others' jobs.
  const auto workers = body_of(second.call("GET", "/v1/workers", acme));
  REQUIRE_FALSE(workers["workers"].empty());
  for (const auto& entry : workers["workers"]) {
    CHECK_FALSE(entry.contains("host"));
    CHECK_FALSE(entry.contains("member_id"));
    CHECK(entry.contains("worker_id"));
  }
  const auto whole = body_of(second.call("GET", "/v1/workers", api_token(keys, "acme", "system", "ops")));
  REQUIRE_FALSE(whole["workers"].empty());
  CHECK(whole["workers"][0].contains("host"));
  const auto waiting = wait_for_state(first, beta, "report", "PENDING");
  CHECK(waiting["tenant"] == "beta");
  CHECK(waiting["submitted_by"] == "bob");

  // An id only acme has: beta gets 404, never 403, and cannot cancel it.
  REQUIRE(first.call("POST", "/v1/jobs", acme, R"({"id":"acme-only","delay":"3600s","noop":{}})")->status == 202);
  wait_for_state(first, acme, "acme-only", "PENDING");
  auto hidden = first.call("GET", "/v1/jobs/acme-only", beta);
  REQUIRE(hidden);
  CHECK(hidden->status == 404);
  CHECK(hidden->get_header_value("Content-Type") == "application/problem+json");
  CHECK(body_of(hidden)["detail"] == "no job \"acme-only\" in tenant beta");
  CHECK(first.call("POST", "/v1/jobs/acme-only:cancel", beta)->status == 404);
  CHECK(first.call("PUT", "/v1/jobs/acme-only", beta, R"({"noop":{}})")->status == 404);

  // Lists hold only the tenant's own jobs.
  auto listed = body_of(second.call("GET", "/v1/jobs", acme));
  std::set<std::string> ids;
  for (const auto& job : listed["jobs"]) ids.insert(job["id"].get<std::string>());
  CHECK(ids == std::set<std::string>{"report", "acme-only"});
  auto beta_list = body_of(second.call("GET", "/v1/jobs?state=PENDING", beta));
  REQUIRE(beta_list["jobs"].size() == 1);
  CHECK(beta_list["jobs"][0]["tenant"] == "beta");

  // beta cancels its own; the dispatcher's CANCELLED reaches the view.
  auto cancel = first.call("POST", "/v1/jobs/report:cancel", beta, R"({"reason":"not needed"})");
  REQUIRE(cancel);
  CHECK(cancel->status == 202);
  const auto cancelled = wait_for_state(second, beta, "report", "CANCELLED");
  CHECK(cancelled["reason"] == "not needed");
  // acme's job of the same id is untouched.
  CHECK(body_of(first.call("GET", "/v1/jobs/report", acme))["state"] == "SUCCEEDED");
}

TEST_CASE(
    "the API refuses missing, expired, unsigned, tampered and foreign tokens with 401, and roles beyond their rights with 403",
    "[integration]") {
  TestEnv env("api-auth");
  const auto keys = make_api_keys(env);
  Api api(env, keys, "api1");
  const std::string job = R"({"delay":"3600s","noop":{}})";

  CHECK(api.call("GET", "/v1/jobs", "")->status == 401);
  // The OpenAPI document needs no token.
  auto document = api.call("GET", "/v1/openapi.json", "");
  REQUIRE(document);
  CHECK(document->status == 200);
  CHECK(json::parse(document->body) == json::parse(kcron::api::openapi_document()));
  CHECK(api.call("GET", "/v1/jobs", "", "", {{"Authorization", "Basic YWxpY2U6cGFzcw=="}})->status == 401);
  auto expired =
      api.call("GET", "/v1/jobs", api_token(keys, "acme", "viewer", "alice", 60s, std::chrono::system_clock::now() - 2h));
  REQUIRE(expired);
  CHECK(expired->status == 401);
  CHECK(expired->get_header_value("WWW-Authenticate").find("invalid_token") != std::string::npos);
  CHECK(body_of(expired)["detail"].get<std::string>().find("expired") != std::string::npos);

  auto valid = api_token(keys, "acme", "viewer");
  const auto first_dot = valid.find('.');
  const auto second_dot = valid.find('.', first_dot + 1);
  // alg none: the same claims, no signature.
  const std::string none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0" + valid.substr(first_dot, second_dot - first_dot + 1);
  CHECK(api.call("GET", "/v1/jobs", none)->status == 401);
  // Tampered: the payload of an admin token under a viewer token's signature.
  const auto admin = api_token(keys, "acme", "admin");
  const auto tampered =
      valid.substr(0, first_dot) + admin.substr(first_dot, admin.find('.', first_dot + 1) - first_dot) + valid.substr(second_dot);
  CHECK(api.call("GET", "/v1/jobs", tampered)->status == 401);
  // Signed by a key the API does not trust.
  auto stranger = kcron::auth::generate_key("ES256", "test-key");
  REQUIRE(stranger.ok());
  ApiKeys foreign{*kcron::auth::load_signing_key(stranger->private_pem, "ES256", "test-key"), keys.jwks_path};
  CHECK(api.call("GET", "/v1/jobs", api_token(foreign, "acme", "admin"))->status == 401);

  // Roles: a viewer reads but cannot submit; a member cancels only its own jobs; an operator any.
  CHECK(api.call("GET", "/v1/jobs", valid)->status == 200);
  auto viewer_submit = api.call("POST", "/v1/jobs", valid, job);
  REQUIRE(viewer_submit);
  CHECK(viewer_submit->status == 403);
  CHECK(body_of(viewer_submit)["detail"] == "role viewer may not submit jobs (it needs member or above)");
  const auto alice = api_token(keys, "acme", "member", "alice");
  const auto carol = api_token(keys, "acme", "member", "carol");
  auto mine = api.call("POST", "/v1/jobs", alice, R"({"id":"alices","delay":"3600s","noop":{}})");
  REQUIRE(mine);
  REQUIRE(mine->status == 202);
  const httplib::Headers after_write{{"Kcron-Consistency", mine->get_header_value("Kcron-Consistency")}};
  CHECK(api.call("POST", "/v1/jobs/alices:cancel", carol, "", after_write)->status == 403);
  CHECK(api.call("PUT", "/v1/jobs/alices", carol, job, after_write)->status == 403);
  CHECK(api.call("POST", "/v1/jobs/alices:cancel", api_token(keys, "acme", "operator", "olga"), "", after_write)->status == 202);
  // Another tenant through ?tenant=: only the system role.
  CHECK(api.call("GET", "/v1/jobs?tenant=beta", admin)->status == 403);
  CHECK(api.call("GET", "/v1/jobs?tenant=beta", api_token(keys, "kcron", "system", "ops"))->status == 200);
}

namespace {

using kcron::api::Action;
using kcron::api::Principal;
using kcron::api::Role;
using kcron::api::RouteId;
using kcron::api::RouteSpec;

// The roles a token may name, in the order docs/api.md's matrix prints them.
constexpr std::array kWalkRoles{Role::kViewer, Role::kMember, Role::kOperator, Role::kAdmin, Role::kSystem};

constexpr std::string_view kScheduleBody = R"({"expression":"0 * * * *","job_template":{"noop":{}}})";

// What a route's "{id}" names; the walk creates one before it calls the route.
enum class Target : std::uint8_t { kNone, kPendingJob, kDeadJob, kDeadLetter, kSchedule, kFlow, kTemplate };

// A template version (its name and version come from the path): the walk writes version 1 of each
// template it names, and a PUT of it again is a no-op (200).
constexpr std::string_view kTemplateBody =
    R"({"params":[{"name":"day","type":"STRING"}],"job":{"noop":{},"labels":{"day":"{{day}}"}}})";

// How the walk calls a route: the authorizations its handler makes, in order (kManageJob against
// the job's submitter), and a valid request.
struct RouteUse {
  std::vector<Action> checks;
  bool needs_token = true;
  Target target = Target::kNone;
  std::string query;
  std::string body;
};

// No default: a route added to kRoutes does not compile until the walk knows how to call it.
RouteUse route_use(RouteId id, const std::string& caller, const std::string& backfill_range) {
  const std::string job = R"({"delay":"3600s","noop":{}})";
  switch (id) {
    case RouteId::kSubmit:
      return {{Action::kSubmitJob}, true, Target::kNone, "", job};
    case RouteId::kBatch:
      return {{Action::kSubmitJob}, true, Target::kNone, "", fmt::format(R"({{"jobs":[{}]}})", job)};
    case RouteId::kSubmitFlow:
      return {{Action::kSubmitJob},
              true,
              Target::kNone,
              "",
              fmt::format(R"({{"id":"walk-{}","nodes":[{{"name":"a","job":{}}}]}})", caller.substr(0, 40), job)};
    case RouteId::kListFlows:
      return {{Action::kReadJobs}, true, Target::kNone, "page_size=10", ""};
    case RouteId::kGetFlow:
      return {{Action::kReadJobs}, true, Target::kFlow, "page_size=1", ""};
    case RouteId::kCancelFlow:
      return {{Action::kReadJobs, Action::kManageJob}, true, Target::kFlow, "", R"({"reason":"the role walk"})"};
    case RouteId::kRetryFlow:
      return {{Action::kReadJobs, Action::kManageJob}, true, Target::kFlow, "", ""};
    case RouteId::kUpdate:
      return {{Action::kReadJobs, Action::kManageJob}, true, Target::kPendingJob, "", R"({"delay":"7200s","noop":{}})"};
    case RouteId::kList:
      return {{Action::kReadJobs}, true, Target::kNone, "page_size=10", ""};
    case RouteId::kCancel:
      return {{Action::kReadJobs, Action::kManageJob}, true, Target::kPendingJob, "", R"({"reason":"the role walk"})"};
    case RouteId::kGet:
      return {{Action::kReadJobs}, true, Target::kPendingJob, "", ""};
    case RouteId::kGetOutput:  // a dead job has a result: its (empty) inline stdout
      return {{Action::kReadJobs}, true, Target::kDeadJob, "", ""};
    case RouteId::kWhoami:
      return {{}, true, Target::kNone, "", ""};
    case RouteId::kReplayJob:
      return {{Action::kReadJobs, Action::kManageJob}, true, Target::kDeadJob, "", ""};
    case RouteId::kCloneJob:
      return {{Action::kReadJobs, Action::kSubmitJob}, true, Target::kPendingJob, "", R"({"delay":"3600s"})"};
    case RouteId::kListSchedules:
      return {{Action::kReadSchedules}, true, Target::kNone, "page_size=10", ""};
    case RouteId::kPreviewCron:
      return {{Action::kReadSchedules},
              true,
              Target::kNone,
              "expression=0%209%20*%20*%20MON-FRI&time_zone=Europe/Berlin&count=3",
              ""};
    case RouteId::kScheduleNext:
      return {{Action::kReadSchedules}, true, Target::kSchedule, "count=3", ""};
    case RouteId::kGetSchedule:
      return {{Action::kReadSchedules}, true, Target::kSchedule, "", ""};
    case RouteId::kPauseSchedule:
    case RouteId::kResumeSchedule:
    case RouteId::kTriggerSchedule:
      return {{Action::kManageSchedule}, true, Target::kSchedule, "", ""};
    case RouteId::kBackfill:
      return {{Action::kManageSchedule}, true, Target::kSchedule, "", backfill_range};
    case RouteId::kPutSchedule:
      return {{Action::kManageSchedule}, true, Target::kSchedule, "", std::string(kScheduleBody)};
    case RouteId::kDeleteSchedule:
      return {{Action::kManageSchedule}, true, Target::kSchedule, "", ""};
    case RouteId::kListDeadLetters:
      return {{Action::kReadDeadLetters}, true, Target::kNone, "page_size=10", ""};
    case RouteId::kReplayDeadLetter:
      return {{Action::kReplayDeadLetter}, true, Target::kDeadLetter, "", ""};
    case RouteId::kGetDeadLetter:
      return {{Action::kReadDeadLetters}, true, Target::kDeadLetter, "", ""};
    case RouteId::kWorkers:
      return {{Action::kReadWorkers}, true, Target::kNone, "", ""};
    case RouteId::kAudit:
      return {{Action::kReadAudit}, true, Target::kNone, "", ""};
    case RouteId::kStats:
      return {{Action::kReadStats}, true, Target::kNone, "", ""};
    case RouteId::kEvents:
      return {{Action::kReadStats}, true, Target::kNone, "wait=0", ""};
    case RouteId::kGetTenant:
      return {{Action::kReadTenant}, true, Target::kNone, "", ""};
    case RouteId::kPatchTenant:
      return {{Action::kManageTenant}, true, Target::kNone, "", fmt::format(R"({{"description":"set by {}"}})", caller)};
    case RouteId::kListTemplates:
      return {{Action::kReadSchedules}, true, Target::kNone, "", ""};
    case RouteId::kGetTemplate:
    case RouteId::kGetTemplateVersion:
      return {{Action::kReadSchedules}, true, Target::kTemplate, "", ""};
    case RouteId::kPutTemplateVersion:
      return {{Action::kManageSchedule}, true, Target::kTemplate, "", std::string(kTemplateBody)};
    case RouteId::kOpenApi:
      return {{}, false, Target::kNone, "", ""};
  }
  return {};
}

// The route that serves a request, as the server registers kRoutes: the first of its method whose
// template matches the path.
std::optional<RouteId> serving_route(std::string_view method, const std::string& path) {
  for (const auto& spec : kcron::api::kRoutes) {
    if (spec.method == method && kcron::api::path_matches(spec.path, path)) return spec.id;
  }
  return std::nullopt;
}

// One Kcron-Consistency value covering every write whose tokens `headers` hold (each header may
// hold several): the highest offset of each partition.
std::string covering(const std::vector<std::string>& headers) {
  std::map<std::string, long long> highest;  // "topic/partition" -> offset
  for (const auto& header : headers) {
    std::string_view rest = header;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      auto token = rest.substr(0, comma);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      const auto slash = token.rfind('/');
      INFO("consistency token " << token);
      REQUIRE(slash != std::string_view::npos);
      const auto offset = std::stoll(std::string(token.substr(slash + 1)));
      auto [entry, inserted] = highest.emplace(std::string(token.substr(0, slash)), offset);
      if (!inserted) entry->second = std::max(entry->second, offset);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  std::string joined;
  for (const auto& [where, offset] : highest) joined += fmt::format("{}{}/{}", joined.empty() ? "" : ",", where, offset);
  return joined;
}

// The role matrix as docs/api.md prints it ("Roles per tenant"): each row's first cell, and its
// cells for viewer .. system.
std::map<std::string, std::vector<std::string>> documented_matrix() {
  std::ifstream in(std::string(KCRON_SOURCE_DIR) + "/docs/api.md");
  REQUIRE(in);
  std::map<std::string, std::vector<std::string>> rows;
  bool inside = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("## ")) inside = line == "## Roles per tenant";
    if (!inside || !line.starts_with("|")) continue;
    std::vector<std::string> cells;
    std::size_t at = 1;
    for (auto bar = line.find('|', at); bar != std::string::npos; at = bar + 1, bar = line.find('|', at)) {
      auto cell = line.substr(at, bar - at);
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      cells.push_back(cell);
    }
    if (cells.size() == 2 + kWalkRoles.size()) rows[cells[0]] = {cells.begin() + 2, cells.end()};
  }
  return rows;
}

}  // namespace

TEST_CASE("the console is served at / with a strict CSP, hashed assets cached for a year, ETags and gzip, and can be off",
          "[integration]") {
  TestEnv env("api-console");
  const auto keys = make_api_keys(env);
  Api api(env, keys, "api1");
  httplib::Client client("127.0.0.1", api.port);
  client.set_decompress(false);  // the bytes as sent
  auto page = client.Get("/", {{"Accept-Encoding", "identity"}});
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").starts_with("text/html"));
  CHECK(page->get_header_value_count("Content-Security-Policy") == 1);
  const auto csp = page->get_header_value("Content-Security-Policy");
  CHECK(csp.find("script-src 'self'") != std::string::npos);
  CHECK(csp.find("connect-src 'self'") != std::string::npos);
  CHECK(csp.find("unsafe") == std::string::npos);
  CHECK(page->get_header_value("Cache-Control") == "no-cache");
  CHECK(page->get_header_value("X-Frame-Options") == "DENY");
  CHECK_FALSE(page->has_header("Content-Encoding"));
#ifndef KCRON_CONSOLE_BUILT
  // Built with KCRON_CONSOLE=OFF: one page that says so.
  CHECK(page->body.find("KCRON_CONSOLE=OFF") != std::string::npos);
  return;
#endif
  // Only the console's own script, no inline one.
  std::smatch script;
  REQUIRE(std::regex_search(page->body, script,
                            std::regex(R"re(<script type="module" src="(/assets/app-[A-Z0-9]+\.js)"></script>)re")));
  CHECK(page->body.find("<script>") == std::string::npos);
  auto code = client.Get(script[1].str(), {{"Accept-Encoding", "gzip, deflate, br"}});
  REQUIRE(code);
  CHECK(code->status == 200);
  CHECK(code->get_header_value("Content-Type").starts_with("text/javascript"));
  CHECK(code->get_header_value("Cache-Control") == "public, max-age=31536000, immutable");
  CHECK(code->get_header_value_count("Content-Encoding") == 1);
  CHECK(code->get_header_value("Content-Encoding") == "gzip");
  CHECK(code->body.starts_with("\x1f\x8b"));
  // Unchanged since the browser's copy: 304, no body. Each encoding has its own ETag.
  auto again = client.Get("/", {{"If-None-Match", page->get_header_value("ETag")}, {"Accept-Encoding", "identity"}});
  REQUIRE(again);
  CHECK(again->status == 304);
  CHECK(again->body.empty());
  auto plain_code = client.Get(script[1].str(), {{"Accept-Encoding", "identity"}});
  REQUIRE(plain_code);
  CHECK(plain_code->get_header_value("ETag") != code->get_header_value("ETag"));
  CHECK(client.Get(script[1].str(), {{"Accept-Encoding", "gzip"}, {"If-None-Match", code->get_header_value("ETag")}})->status ==
        304);
  // Nothing else is served: an unknown asset is a problem like any unknown path.
  auto missing = client.Get("/assets/app-NOTHERE.js");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(missing->get_header_value("Content-Type").starts_with("application/problem+json"));

  // The schedule form's preview: explained instants, or a 400 saying why (as the cron-producer would).
  const auto viewer = api_token(keys, "acme", "viewer");
  auto preview = body_of(
      api.call("GET", "/v1/schedules:preview?expression=0%209%20*%20*%20MON-FRI&time_zone=Europe/Berlin&count=2", viewer));
  CHECK(preview["next"].size() == 2);
  CHECK(preview["time_zone"] == "Europe/Berlin");
  for (const auto* bad : {"0%200%2030%202%20*", "61%20*%20*%20*%20*", ""}) {
    auto refused = api.call("GET", fmt::format("/v1/schedules:preview?expression={}", bad), viewer);
    REQUIRE(refused);
    CHECK(refused->status == 400);
    CHECK(body_of(refused)["field"] == "expression");
  }
  auto bad_zone = api.call("GET", "/v1/schedules:preview?expression=@daily&time_zone=Mars/Olympus", viewer);
  REQUIRE(bad_zone);
  CHECK(bad_zone->status == 400);
  CHECK(body_of(bad_zone)["field"] == "time_zone");

  Api without(env, keys, "api2", {"KCRON_API_CONSOLE=false"});
  httplib::Client plain("127.0.0.1", without.port);
  auto off = plain.Get("/");
  REQUIRE(off);
  CHECK(off->status == 404);
}

TEST_CASE("every route checks its role: each role over each route through HTTP", "[integration]") {
  // The walk expects what the server's own matrix says (authorize); that this matrix is the one
  // docs/api.md prints is checked first, so a changed entry fails here until the docs follow it.
  const auto documented = documented_matrix();
  std::vector<std::string> columns;
  for (const auto role : kWalkRoles) columns.emplace_back(kcron::api::role_name(role));
  REQUIRE(documented.count("action") == 1);
  CHECK(documented.at("action") == columns);
  for (std::size_t index = 0; index < kcron::api::kActionCount; ++index) {
    const auto action = static_cast<Action>(index);
    const std::string name(kcron::api::action_name(action));
    INFO("docs/api.md, Roles per tenant, row " << name);
    REQUIRE(documented.count(name) == 1);
    for (std::size_t column = 0; column < kWalkRoles.size(); ++column) {
      const Principal alice{"alice", "acme", kWalkRoles[column]};
      const auto cell = kcron::api::authorize(alice, action, "bob").ok()     ? "yes"
                        : kcron::api::authorize(alice, action, "alice").ok() ? "its own"
                                                                             : "–";
      INFO("column " << kcron::api::role_name(kWalkRoles[column]));
      CHECK(documented.at(name).at(column) == cell);
    }
  }

  TestEnv env("api-roles");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");  // dead jobs, for the replays
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1");
  const auto owner = api_token(keys, "acme", "admin", "owner");

  // The callers: each role (system from its own tenant, naming acme with ?tenant=), and no token.
  struct Caller {
    std::string label;
    std::optional<Principal> principal;  // none: no token
    std::string token;
    std::string query;
  };
  std::vector<Caller> callers;
  for (const auto role : kWalkRoles) {
    const std::string name(kcron::api::role_name(role));
    const bool system = role == Role::kSystem;
    Principal principal{"user-" + name, system ? "kcron" : "acme", role};
    callers.push_back({name, principal, api_token(keys, principal.tenant, name, principal.subject), system ? "tenant=acme" : ""});
  }
  callers.push_back({"anonymous", std::nullopt, "", ""});

  // The object each call names: its own per route, caller and (for a job) submitter, so no call
  // depends on another's effect. "theirs" jobs are the owner's; "own" ones the caller's subject's.
  const auto object_id = [](const RouteSpec& spec, const Caller& caller, bool own) {
    return fmt::format("{}-{}{}", spec.name, caller.label, own ? "-own" : "");
  };
  const auto owned_variants = [](Target target) {
    return target == Target::kPendingJob || target == Target::kDeadJob || target == Target::kFlow ? std::vector<bool>{false, true}
                                                                                                  : std::vector<bool>{false};
  };
  const auto hour = std::chrono::floor<std::chrono::hours>(std::chrono::system_clock::now());
  const auto backfill_range =
      fmt::format(R"({{"from":"{}","to":"{}"}})", date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(hour - 3h)),
                  date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(hour - 1h)));

  std::map<std::string, json> batches;  // submitter -> jobs
  std::set<std::string> dead;
  std::vector<std::string> writes;  // consistency tokens of every write below
  for (const auto& caller : callers) {
    if (!caller.principal) continue;
    for (const auto& spec : kcron::api::kRoutes) {
      const auto use = route_use(spec.id, caller.label, backfill_range);
      for (const bool own : owned_variants(use.target)) {
        const auto id = object_id(spec, caller, own);
        const auto submitter = own ? caller.principal->subject : std::string("owner");
        switch (use.target) {
          case Target::kNone:
            break;
          case Target::kPendingJob:
            batches[submitter].push_back({{"id", id}, {"delay", "3600s"}, {"noop", json::object()}});
            break;
          case Target::kDeadJob:
          case Target::kDeadLetter:
            batches[submitter].push_back(
                {{"id", id}, {"sleep", {{"duration", "0s"}, {"fail", true}}}, {"retry", {{"max_retries", 0}}}});
            dead.insert(id);
            break;
          case Target::kFlow: {  // one node, waiting an hour: its cancel and retry change nothing else
            const auto bearer = submitter == "owner" ? owner : api_token(keys, "acme", "member", submitter);
            auto flow =
                api.call("POST", "/v1/flows", bearer,
                         fmt::format(R"({{"id":"{}","nodes":[{{"name":"a","job":{{"delay":"3600s","noop":{{}}}}}}]}})", id));
            REQUIRE(flow);
            INFO(flow->body);
            REQUIRE(flow->status == 202);
            writes.push_back(flow->get_header_value("Kcron-Consistency"));
            break;
          }
          case Target::kTemplate: {
            auto put = api.call("PUT", fmt::format("/v1/templates/{}/versions/1", id), owner, std::string(kTemplateBody));
            REQUIRE(put);
            INFO(put->body);
            REQUIRE(put->status == 201);
            break;
          }
          case Target::kSchedule: {
            auto put = api.call("PUT", "/v1/schedules/" + id, owner, std::string(kScheduleBody));
            REQUIRE(put);
            INFO(put->body);
            REQUIRE(put->status == 202);
            writes.push_back(put->get_header_value("Kcron-Consistency"));
            break;
          }
        }
      }
    }
  }
  for (const auto& [submitter, jobs] : batches) {
    const auto bearer = submitter == "owner" ? owner : api_token(keys, "acme", "member", submitter);
    auto submitted = api.call("POST", "/v1/jobs:batch", bearer, json{{"jobs", jobs}}.dump());
    REQUIRE(submitted);
    INFO(submitted->body);
    REQUIRE(submitted->status == 200);
    REQUIRE(body_of(submitted)["accepted"] == jobs.size());
    writes.push_back(submitted->get_header_value("Kcron-Consistency"));
  }
  // The tenant's settings record, which only system creates (an admin then changes it).
  auto registered = api.call("PATCH", "/v1/tenant", api_token(keys, "acme", "system", "ops"), R"({"description":"acme"})");
  REQUIRE(registered);
  REQUIRE(registered->status == 202);
  writes.push_back(registered->get_header_value("Kcron-Consistency"));
  const httplib::Headers after{{"Kcron-Consistency", covering(writes)}};
  {  // every dead job's letter in the view (bounded)
    std::set<std::string> letters;
    std::string last;
    const auto deadline = std::chrono::steady_clock::now() + 90s;
    while (!std::includes(letters.begin(), letters.end(), dead.begin(), dead.end()) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(200ms);
      auto page = api.call("GET", "/v1/dead-letters?page_size=500", owner, "", after);
      if (!page) continue;
      last = fmt::format("{} {}", page->status, page->body.substr(0, 400));
      if (page->status != 200) continue;
      const auto listed = json::parse(page->body);
      for (const auto& letter : listed.value("dead_letters", json::array())) letters.insert(letter.value("id", ""));
    }
    INFO("dead letters in the view: " << json(letters).dump() << "; the last answer: " << last);
    REQUIRE(std::includes(letters.begin(), letters.end(), dead.begin(), dead.end()));
  }

  // The walk: every caller over every route of kRoutes, expecting what authorize says of the
  // checks the route's handler makes.
  std::map<std::string, std::set<RouteId>> exercised;
  for (const auto& caller : callers) {
    for (const auto& spec : kcron::api::kRoutes) {
      const auto use = route_use(spec.id, caller.label, backfill_range);
      for (const bool own : caller.principal ? owned_variants(use.target) : std::vector<bool>{false}) {
        std::string path(spec.path);
        const auto parameter = path.find(use.target == Target::kTemplate ? "{name}" : "{id}");
        REQUIRE((parameter != std::string::npos) == (use.target != Target::kNone));
        if (parameter != std::string::npos)
          path.replace(parameter, use.target == Target::kTemplate ? 6 : 4, object_id(spec, caller, own));
        if (const auto version = path.find("{version}"); version != std::string::npos) path.replace(version, 9, "1");
        if (const auto name = path.find("{name}"); name != std::string::npos) path.replace(name, 6, "stdout");
        const auto served = serving_route(spec.method, path);
        INFO(caller.label << " " << spec.method << " " << path << (own ? " (its own job)" : ""));
        REQUIRE(served.has_value());
        CHECK(*served == spec.id);
        exercised[caller.label].insert(*served);

        std::string query = use.query;
        if (!caller.query.empty()) {
          if (!query.empty()) query += '&';
          query += caller.query;
        }
        std::string target = path;
        if (!query.empty()) {
          target += '?';
          target += query;
        }
        auto result = api.call(std::string(spec.method), target, caller.token, use.body, after);
        REQUIRE(result);
        INFO(result->status << " " << result->body.substr(0, 400));
        if (!caller.principal) {
          CHECK(result->status == (use.needs_token ? 401 : 200));
          continue;
        }
        std::optional<std::string> refusal;
        for (const auto action : use.checks) {
          const auto submitter = action != Action::kManageJob ? std::string()
                                 : own                        ? caller.principal->subject
                                                              : std::string("owner");
          if (auto allowed = kcron::api::authorize(*caller.principal, action, submitter); !allowed) {
            refusal = allowed.error().message();
            break;
          }
        }
        if (refusal) {
          CHECK(result->status == 403);
          CHECK(result->get_header_value("Content-Type") == "application/problem+json");
          const auto problem = body_of(result);
          CHECK(problem.value("status", 0) == 403);
          CHECK(problem.value("detail", "") == *refusal);
        } else {
          CHECK(result->status / 100 == 2);
        }
        if (spec.id == RouteId::kWhoami && result->status == 200) {
          const auto whoami = body_of(result);
          CHECK(whoami.value("role", "") == caller.label);
          CHECK(whoami.value("tenant", "") == "acme");
        }
      }
    }
  }
  for (const auto& caller : callers) {
    INFO(caller.label);
    REQUIRE(exercised[caller.label].size() == kcron::api::kRoutes.size());
  }
}

TEST_CASE("bad requests get a 400 naming the field, and the next request is served", "[integration]") {
  TestEnv env("api-bad-input");
  const auto keys = make_api_keys(env);
  Api api(env, keys, "api1");
  const auto member = api_token(keys, "acme", "member");
  const std::vector<std::pair<std::string, std::string>> bodies{
      {"{not json", ""},
      {R"({"colour":"red","noop":{}})", "colour"},
      {R"({"delay":5,"noop":{}})", "delay"},
      {R"({"id":"a\u0001b","noop":{}})", "id"},
      {R"({"tenant":"beta","noop":{}})", "tenant"},
      {R"({"submitted_by":"mallory","noop":{}})", "submitted_by"},
      {R"({"id":"x"})", "task"},
  };
  for (const auto& [body, field] : bodies) {
    auto result = api.call("POST", "/v1/jobs", member, body);
    REQUIRE(result);
    INFO(body << " -> " << result->body);
    CHECK(result->status == 400);
    CHECK(result->get_header_value("Content-Type") == "application/problem+json");
    const auto problem = json::parse(result->body);
    CHECK(problem["status"] == 400);
    CHECK(problem.value("field", "") == field);
  }
  auto huge = api.call("POST", "/v1/jobs", member, std::string(2 << 20, ' '));
  REQUIRE(huge);
  CHECK(huge->status == 413);
  CHECK(api.call("GET", "/v1/jobs?page_size=0", member)->status == 400);
  CHECK(api.call("GET", "/v1/jobs?page_token=forged", member)->status == 400);
  CHECK(api.call("GET", "/v1/nothing", member)->status == 404);
  auto batch =
      body_of(api.call("POST", "/v1/jobs:batch", member, R"({"jobs":[{"noop":{}},{"colour":1},{"id":"b2","noop":{}}]})"));
  CHECK(batch["accepted"] == 2);
  CHECK(batch["results"][1]["status"] == 400);
  CHECK(batch["results"][1]["field"] == "colour");
  CHECK(batch["results"][2]["id"] == "b2");
  // Path ids with control characters, numbers with trailing junk, consistency tokens for partitions
  // that do not exist: each a 400 at once, never a wait or a 404.
  auto control = api.call("GET", "/v1/jobs/bad%01id", member);
  REQUIRE(control);
  CHECK(control->status == 400);
  CHECK(body_of(control)["field"] == "id");
  CHECK(api.call("GET", "/v1/jobs?page_size=10x", member)->status == 400);
  CHECK(api.call("GET", "/v1/schedules/s/next?count=3z", member)->status == 400);
  auto nowhere = api.call("GET", "/v1/jobs", member, "", {{"Kcron-Consistency", "jobs/999/5"}});
  REQUIRE(nowhere);
  CHECK(nowhere->status == 400);
  CHECK(body_of(nowhere)["detail"] == "Kcron-Consistency names partition 999 of jobs, which does not exist");
  CHECK(api.call("POST", "/v1/jobs", member, R"({"noop":{}})")->status == 202);

  // A retried submit with the same Idempotency-Key names the same job (the dispatcher keeps one);
  // another key, or another caller with the same key, is another job.
  const auto retried = [&](const std::string& bearer, const std::string& key) {
    return body_of(api.call("POST", "/v1/jobs", bearer, R"({"noop":{}})", {{"Idempotency-Key", key}}))["id"].get<std::string>();
  };
  const auto first_id = retried(member, "order-17");
  CHECK(first_id.starts_with("idem-"));
  CHECK(retried(member, "order-17") == first_id);
  CHECK(retried(member, "order-18") != first_id);
  CHECK(retried(api_token(keys, "acme", "member", "bob"), "order-17") != first_id);
}

TEST_CASE("a caller over its request rate and a tenant over its submission rate get 429 with Retry-After", "[integration]") {
  TestEnv env("api-limits");
  const auto keys = make_api_keys(env);
  Api api(
      env, keys, "api1",
      {"KCRON_API_REQUESTS_PER_TOKEN=2", "KCRON_API_REQUEST_BURST=5", "KCRON_API_JOBS_PER_TENANT=10", "KCRON_API_JOBS_BURST=20"});
  const auto alice = api_token(keys, "acme", "member", "alice");
  int answered = 0;
  std::optional<httplib::Response> refused;
  for (int index = 0; index < 10 && !refused; ++index) {
    auto result = api.call("GET", "/v1/jobs", alice);
    REQUIRE(result);
    if (result->status == 429) {
      refused = *result;
    } else {
      ++answered;
    }
  }
  REQUIRE(refused);
  CHECK(answered >= 5);
  CHECK(std::stoi(refused->get_header_value("Retry-After")) >= 1);
  CHECK(json::parse(refused->body)["detail"].get<std::string>().find("requests per second for this caller") != std::string::npos);
  // Another caller of the same tenant has its own bucket; the tenant's submissions share one.
  const auto bob = api_token(keys, "acme", "member", "bob");
  json batch{{"jobs", json::array()}};
  for (int index = 0; index < 20; ++index) batch["jobs"].push_back({{"delay", "3600s"}, {"noop", json::object()}});
  CHECK(body_of(api.call("POST", "/v1/jobs:batch", bob, batch.dump()))["accepted"] == 20);
  // The burst is spent: single submits by fresh callers (their own request buckets are full) meet
  // the tenant's limit within a few tries, whatever the timing (it refills 10 per second).
  std::optional<httplib::Response> over;
  for (int index = 0; index < 30 && !over; ++index) {
    auto result = api.call("POST", "/v1/jobs", api_token(keys, "acme", "member", fmt::format("u{}", index)),
                           R"({"delay":"3600s","noop":{}})");
    REQUIRE(result);
    if (result->status == 429) over = *result;
  }
  REQUIRE(over);
  CHECK(json::parse(over->body)["detail"].get<std::string>().find("tenant acme is over 10 submissions per second") == 0);
}

TEST_CASE("a batch of 1000 jobs all run once and pages over 10000 jobs return each once while they change state",
          "[integration]") {
  TestEnv env("api-batch");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1", {"KCRON_API_JOBS_PER_TENANT=0"});
  const auto member = api_token(keys, "acme", "member");
  constexpr int kBatches = 10;
  constexpr int kPerBatch = 1000;
  std::string consistency;
  for (int batch = 0; batch < kBatches; ++batch) {
    json body{{"jobs", json::array()}};
    for (int index = 0; index < kPerBatch; ++index) {
      // The first batch runs now; the others run 2-6 s later, so states change while we page.
      json item{{"id", fmt::format("b{}-{}", batch, index)}, {"noop", json::object()}};
      if (batch > 0) item["delay"] = fmt::format("{}s", 2 + batch % 5);
      body["jobs"].push_back(item);
    }
    auto answer = body_of(api.call("POST", "/v1/jobs:batch", member, body.dump()));
    REQUIRE(answer["accepted"] == kPerBatch);
    consistency = answer["consistency"];
  }
  std::set<std::string> seen;
  int pages = 0;
  std::string page_token;
  std::set<std::string> states;
  while (pages < 200) {
    const auto path = "/v1/jobs?page_size=500" + (page_token.empty() ? std::string() : "&page_token=" + page_token);
    auto page = body_of(api.call("GET", path, member, "", {{"Kcron-Consistency", consistency}}));
    ++pages;
    for (const auto& job : page["jobs"]) {
      INFO(job.dump());
      CHECK(seen.insert(job["id"].get<std::string>()).second);
      states.insert(job.value("state", "SUBMITTED"));
    }
    if (!page.contains("next_page_token")) break;
    page_token = page["next_page_token"];
    std::this_thread::sleep_for(100ms);  // let states move between pages
  }
  CHECK(seen.size() == static_cast<std::size_t>(kBatches) * kPerBatch);
  const auto tally = read_succeeded_until_all(env.prefix, "acme~b0-", kPerBatch, 120s);
  CHECK(tally.once == kPerBatch);
  CHECK(tally.lost == 0);
  CHECK(tally.duplicated == 0);
}

TEST_CASE("the view survives a SIGKILL of kcron-api and answers the same afterwards", "[integration]") {
  TestEnv env("api-restart");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1");
  const auto member = api_token(keys, "acme", "member");
  json body{{"jobs", json::array()}};
  for (int index = 0; index < 200; ++index)
    body["jobs"].push_back({{"id", fmt::format("r-{}", index)}, {"noop", json::object()}});
  auto answer = body_of(api.call("POST", "/v1/jobs:batch", member, body.dump()));
  REQUIRE(answer["accepted"] == 200);
  CHECK(read_succeeded_until_all(env.prefix, "acme~r-", 200, 120s).once == 200);
  wait_for_state(api, member, "r-199", "SUCCEEDED");
  const auto before = body_of(api.call("GET", "/v1/jobs?page_size=500&state=SUCCEEDED", member));
  api.process->kill_hard();
  api.start(env, keys, "api1");
  const auto after = body_of(api.call("GET", "/v1/jobs?page_size=500&state=SUCCEEDED", member));
  CHECK(after["jobs"].size() == before["jobs"].size());
  CHECK(after == before);
  INFO(tail_file(api.process->log_path()));
  CHECK(count_in_log(api.process->log_path(), "stored_positions=0") == 1);  // the restart resumed from its positions
}

TEST_CASE("a new instance shows the jobs still waiting after their own records left kcron.jobs and kcron.status",
          "[integration]") {
  TestEnv env("api-changelog");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  Api first(env, keys, "api1");
  const auto member = api_token(keys, "acme", "member");
  REQUIRE(first.call("POST", "/v1/jobs", member, R"({"id":"far","delay":"86400s","noop":{},"labels":{"team":"data"}})")->status ==
          202);
  wait_for_state(first, member, "far", "PENDING");
  // Updated before it fires: the dispatcher's changelog holds the job as it will fire.
  REQUIRE(first.call("PUT", "/v1/jobs/far", member, R"({"delay":"90000s","noop":{},"labels":{"team":"ops"}})")->status == 202);
  json before;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    before = body_of(first.call("GET", "/v1/jobs/far", member));
    if (before["labels"]["team"] == "ops" && before["reason"] == "updated") break;
    std::this_thread::sleep_for(100ms);
  }
  REQUIRE(before["labels"]["team"] == "ops");
  REQUIRE(first.call("POST", "/v1/jobs", member, R"({"id":"forgotten","delay":"86400s","noop":{}})")->status == 202);
  wait_for_state(first, member, "forgotten", "PENDING");

  // Retention takes every record of the job from the topics a view reads first.
  const kcron::TopicNames names(env.prefix);
  delete_all_records(names.jobs());
  delete_all_records(names.status());
  Api second(env, keys, "api2");
  const auto after = body_of(second.call("GET", "/v1/jobs/far", member));
  CHECK(after["state"] == "PENDING");
  CHECK(after["due_ms"] == before["due_ms"]);
  CHECK(after["labels"]["team"] == "ops");
  CHECK(after["submitted_by"] == "alice");
  CHECK(after["queue"] == before["queue"]);
  auto pending = body_of(second.call("GET", "/v1/jobs?state=PENDING", member));
  REQUIRE(pending["jobs"].size() == 2);
  CHECK(pending["jobs"][0]["id"] == "forgotten");
  CHECK(pending["jobs"][1]["id"] == "far");
  CHECK(body_of(second.call("GET", "/v1/stats", member))["by_state"]["PENDING"] == 2);

  // When the changelog forgets a job the view knows only from it (as the dispatcher does days
  // after it fired), the view forgets it too: nothing else will ever say what became of it.
  const auto changelog = read_topics({names.dispatcher_changelog()}, 30s, [](const std::vector<Record>& seen) {
    return std::any_of(seen.begin(), seen.end(), [](const Record& record) { return record.key.ends_with("forgotten"); });
  });
  const auto entry =
      std::find_if(changelog.begin(), changelog.end(), [](const Record& record) { return record.key.ends_with("forgotten"); });
  REQUIRE(entry != changelog.end());
  TestProducer producer;
  producer.send_tombstone(names.dispatcher_changelog(), entry->key, entry->partition);
  producer.flush();
  int status = 200;
  for (int poll = 0; poll < 100 && status == 200; ++poll) {
    status = second.call("GET", "/v1/jobs/forgotten", member)->status;
    if (status == 200) std::this_thread::sleep_for(100ms);
  }
  CHECK(status == 404);
  CHECK(body_of(second.call("GET", "/v1/stats", member))["by_state"]["PENDING"] == 1);
  CHECK(body_of(first.call("GET", "/v1/jobs/forgotten", member))["state"] == "PENDING");  // its status record is its own

  // It is a job like any other: a cancel through the new instance ends it, the status record
  // takes the place of what the changelog said.
  REQUIRE(second.call("POST", "/v1/jobs/far:cancel", member, R"({"reason":"not needed"})")->status == 202);
  const auto cancelled = wait_for_state(second, member, "far", "CANCELLED");
  CHECK(cancelled["reason"] == "not needed");
  CHECK(wait_for_state(first, member, "far", "CANCELLED")["reason"] == "not needed");
}

namespace {

// Jobs of a schedule in the view (every page), by id.
std::set<std::string> schedule_runs(const Api& api, const std::string& bearer, const std::string& schedule) {
  std::set<std::string> ids;
  std::string page_token;
  for (int page = 0; page < 50; ++page) {
    auto body = body_of(api.call(
        "GET", "/v1/jobs?page_size=500&schedule=" + schedule + (page_token.empty() ? std::string() : "&page_token=" + page_token),
        bearer));
    for (const auto& job : body["jobs"]) ids.insert(job["id"].get<std::string>());
    if (!body.contains("next_page_token")) break;
    page_token = body["next_page_token"];
  }
  return ids;
}

}  // namespace

TEST_CASE("a schedule created, paused, triggered, resumed and deleted through the API behaves like one created on Kafka",
          "[integration]") {
  TestEnv env("api-schedules");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  auto cron = start_program(env, "kcron-cron-producer", "c1", "c1", {"KCRON_LOOKAHEAD_MS=1000", "KCRON_SCHEDULES_PARTITIONS=2"});
  Api api(env, keys, "api1");
  const auto operator_token = api_token(keys, "acme", "operator", "olga");
  const auto viewer = api_token(keys, "acme", "viewer", "vic");
  const auto stranger = api_token(keys, "beta", "admin", "bea");

  const std::string definition = R"({"expression":"@every 1s","job_template":{"noop":{}},"misfire":"FIRE_ONCE"})";
  CHECK(api.call("PUT", "/v1/schedules/tick", viewer, definition)->status == 403);
  auto bad = api.call("PUT", "/v1/schedules/tick", operator_token, R"({"expression":"61 * * * *","job_template":{"noop":{}}})");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(body_of(bad)["field"] == "expression");
  auto created = api.call("PUT", "/v1/schedules/tick", operator_token, definition);
  REQUIRE(created);
  INFO(created->body);
  REQUIRE(created->status == 202);
  CHECK(body_of(created)["created"] == true);
  const httplib::Headers after{{"Kcron-Consistency", created->get_header_value("Kcron-Consistency")}};
  auto stored = body_of(api.call("GET", "/v1/schedules/tick", viewer, "", after));
  CHECK(stored["expression"] == "@every 1s");
  CHECK(stored["tenant"] == "acme");
  CHECK(stored["job_template"]["submitted_by"] == "olga");
  CHECK(api.call("GET", "/v1/schedules/tick", stranger, "", after)->status == 404);
  auto listed = body_of(api.call("GET", "/v1/schedules", viewer));
  REQUIRE(listed["schedules"].size() == 1);
  CHECK(listed["runs"]["tick"].contains("next"));
  auto next = body_of(api.call("GET", "/v1/schedules/tick/next?count=3", viewer));
  CHECK(next["next"].size() == 3);
  CHECK_FALSE(next["explain"].get<std::string>().empty());

  // Runs arrive and succeed; each is a job of the tenant, listed by its schedule.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (schedule_runs(api, viewer, "tick").size() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(200ms);
  REQUIRE(schedule_runs(api, viewer, "tick").size() >= 3);

  // Paused: after the runs already emitted, no more.
  REQUIRE(api.call("POST", "/v1/schedules/tick:pause", operator_token)->status == 202);
  std::this_thread::sleep_for(4s);
  const auto paused_runs = schedule_runs(api, viewer, "tick").size();
  std::this_thread::sleep_for(3s);
  CHECK(schedule_runs(api, viewer, "tick").size() == paused_runs);
  CHECK(body_of(api.call("GET", "/v1/schedules/tick", viewer))["paused"] == true);
  // The list says when each schedule runs next (none while paused) and how its last run ended.
  auto listed_paused = body_of(api.call("GET", "/v1/schedules", viewer));
  CHECK_FALSE(listed_paused["runs"]["tick"].contains("next"));
  // The last run that ended: one that succeeded, or one emitted ahead of the pause, which the
  // pause cancelled before it started (docs/fire-ahead.md).
  const auto last_state = listed_paused["runs"]["tick"]["last"]["state"];
  CHECK((last_state == "SUCCEEDED" || last_state == "CANCELLED"));
  CHECK(listed_paused["runs"]["tick"]["last"]["id"].get<std::string>().starts_with("tick@"));

  // Triggered while paused: one run now.
  auto triggered = api.call("POST", "/v1/schedules/tick:trigger", operator_token);
  REQUIRE(triggered);
  REQUIRE(triggered->status == 202);
  const auto run_id = body_of(triggered)["id"].get<std::string>();
  CHECK(run_id.starts_with("tick@manual-"));
  wait_for_state(api, viewer, run_id, "SUCCEEDED");

  // Resumed: runs again. Deleted: gone, and no more runs.
  REQUIRE(api.call("POST", "/v1/schedules/tick:resume", operator_token)->status == 202);
  const auto resumed_deadline = std::chrono::steady_clock::now() + 30s;
  while (schedule_runs(api, viewer, "tick").size() < paused_runs + 3 && std::chrono::steady_clock::now() < resumed_deadline) {
    std::this_thread::sleep_for(200ms);
  }
  CHECK(schedule_runs(api, viewer, "tick").size() >= paused_runs + 3);
  auto deleted = api.call("DELETE", "/v1/schedules/tick", operator_token);
  REQUIRE(deleted);
  REQUIRE(deleted->status == 202);
  CHECK(api.call("GET", "/v1/schedules/tick", viewer, "", {{"Kcron-Consistency", deleted->get_header_value("Kcron-Consistency")}})
            ->status == 404);
  std::this_thread::sleep_for(4s);
  const auto final_runs = schedule_runs(api, viewer, "tick").size();
  std::this_thread::sleep_for(3s);
  CHECK(schedule_runs(api, viewer, "tick").size() == final_runs);
}

TEST_CASE("a dead job is in the dead letters and replayed through the API, a clone is a new job, events and stats follow",
          "[integration]") {
  TestEnv env("api-dead-letters");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1");
  const auto alice = api_token(keys, "acme", "member", "alice");
  const auto operator_token = api_token(keys, "acme", "operator", "olga");

  // Follow events from now.
  auto start = body_of(api.call("GET", "/v1/events?wait=0", alice));
  const auto cursor = start["cursor"].get<std::string>();

  REQUIRE(api.call("POST", "/v1/jobs", alice, R"({"id":"flaky","sleep":{"duration":"0s","fail":true},"retry":{"max_retries":0}})")
              ->status == 202);
  wait_for_state(api, alice, "flaky", "DEAD");
  auto letters = body_of(api.call("GET", "/v1/dead-letters", alice));
  REQUIRE(letters["dead_letters"].size() == 1);
  CHECK(letters["dead_letters"][0]["id"] == "flaky");
  CHECK(letters["dead_letters"][0]["letter"]["state"] == "DEAD");
  CHECK(body_of(api.call("GET", "/v1/dead-letters/flaky", alice))["id"] == "flaky");
  CHECK(api.call("GET", "/v1/dead-letters/flaky", api_token(keys, "beta", "admin"))->status == 404);

  // A member may not replay dead letters; it may replay its own job. An operator replays the letter.
  CHECK(api.call("POST", "/v1/dead-letters/flaky:replay", alice)->status == 403);
  auto replayed = api.call("POST", "/v1/jobs/flaky:replay", alice);
  REQUIRE(replayed);
  INFO(replayed->body);
  REQUIRE(replayed->status == 202);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  json view;
  while (std::chrono::steady_clock::now() < deadline) {
    view = body_of(api.call("GET", "/v1/jobs/flaky", alice));
    if (view.value("attempt", 0) == 1 && view["state"] == "DEAD") break;
    std::this_thread::sleep_for(200ms);
  }
  CHECK(view["attempt"] == 1);
  CHECK(view["state"] == "DEAD");
  CHECK(api.call("POST", "/v1/dead-letters/flaky:replay", operator_token)->status == 202);
  CHECK(api.call("POST", "/v1/jobs/never:replay", operator_token)->status == 404);

  // Clone: a new job from flaky's definition with the task changed.
  auto cloned = api.call("POST", "/v1/jobs/flaky:clone", alice, R"({"id":"fixed","noop":{}})");
  REQUIRE(cloned);
  INFO(cloned->body);
  REQUIRE(cloned->status == 202);
  CHECK(body_of(cloned)["cloned_from"] == "flaky");
  const auto fixed = wait_for_state(api, alice, "fixed", "SUCCEEDED");
  CHECK(fixed["job"]["retry"].is_object());  // carried over from the original

  // Events from the cursor name the transitions, in order, and only acme's.
  std::vector<std::string> flaky_states;
  std::string since = cursor;
  for (int poll = 0; poll < 20; ++poll) {
    auto page = body_of(api.call("GET", fmt::format("/v1/events?since={}&wait=2", since), alice));
    for (const auto& event : page["events"]) {
      if (event["id"] == "flaky") flaky_states.push_back(event["state"]);
    }
    since = page["cursor"];
    if (std::find(flaky_states.begin(), flaky_states.end(), "DEAD") != flaky_states.end() && flaky_states.size() >= 3) break;
  }
  CHECK(std::find(flaky_states.begin(), flaky_states.end(), "DEAD") != flaky_states.end());
  CHECK(body_of(api.call("GET", fmt::format("/v1/events?since={}&wait=0", cursor), api_token(keys, "beta", "viewer")))["events"]
            .empty());

  // The audit log: the API's request record names alice; the dispatcher's decision carries its request id.
  const auto admin = api_token(keys, "acme", "admin", "ada");
  CHECK(api.call("GET", "/v1/audit", alice)->status == 403);
  json audit;
  const auto audit_deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < audit_deadline) {
    audit = body_of(api.call("GET", "/v1/audit?job=fixed", admin));
    if (audit["records"].size() >= 2) break;
    std::this_thread::sleep_for(200ms);
  }
  REQUIRE(audit["records"].size() >= 2);
  std::map<std::string, json> by_component;
  for (const auto& record : audit["records"]) by_component[record["component"]] = record;
  REQUIRE(by_component.count("api") == 1);
  REQUIRE(by_component.count("dispatcher") == 1);
  CHECK(by_component["api"]["principal"] == "alice");
  CHECK(by_component["api"]["outcome"] == "REQUESTED");
  CHECK(by_component["dispatcher"]["outcome"] == "ACCEPTED");
  CHECK(by_component["dispatcher"]["request_id"] == by_component["api"]["request_id"]);
  CHECK(body_of(api.call("GET", "/v1/audit", api_token(keys, "beta", "admin")))["records"].empty());

  auto stats = body_of(api.call("GET", "/v1/stats", alice));
  CHECK(stats["jobs"] == 2);
  CHECK(stats["by_state"]["SUCCEEDED"] == 1);
  // This minute's changes: the clone's run succeeded, the flaky job died (once, then replayed).
  CHECK(stats["rates"]["window_s"] == 60);
  CHECK(stats["rates"]["complete"] == true);
  CHECK(stats["rates"]["per_second"]["SUCCEEDED"].get<double>() > 0);
  CHECK(stats["rates"]["per_second"]["DEAD"].get<double>() > 0);
  // Both jobs' attempts started and were fired in the last minute: their lags are the tenant's.
  CHECK(stats["lag"]["start"]["count"].get<int>() >= 2);
  CHECK(stats["lag"]["fire"]["count"].get<int>() >= 2);
  CHECK(stats["lag"]["start"]["max_ms"].get<std::int64_t>() >= stats["lag"]["start"]["p50_ms"].get<std::int64_t>());
  const auto beta_stats = body_of(api.call("GET", "/v1/stats", api_token(keys, "beta", "viewer")));
  CHECK(beta_stats["rates"]["per_second"].empty());
  CHECK(beta_stats["lag"]["start"]["count"] == 0);
  auto workers = body_of(api.call("GET", "/v1/workers", alice));
  REQUIRE_FALSE(workers["workers"].empty());
  bool alive = false;
  for (const auto& entry : workers["workers"]) alive = alive || entry["alive"] == true;
  CHECK(alive);
}

namespace {

// GET over a raw socket (Connection: close), for threads other than the test's: Api::call checks
// answers with Catch assertions, which must stay on the test's thread, and httplib's shared
// std::regex objects race under TSan when the test's thread parses an answer at the same time.
// The answer's first bytes (empty when none came within 30 s).
std::string raw_get(int port, const std::string& path, const std::string& bearer) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{};
  timeout.tv_sec = 30;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const auto request =
        fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", path, bearer);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buffer[256];
      const auto got = ::recv(fd, buffer, sizeof(buffer), 0);
      if (got > 0) answer.assign(buffer, static_cast<std::size_t>(got));
    }
  }
  ::close(fd);
  return answer;
}

}  // namespace

TEST_CASE("an events cursor of one instance works on another that numbered the same events differently", "[integration]") {
  TestEnv env("api-cursor");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api first(env, keys, "api1");
  const auto member = api_token(keys, "acme", "member");
  json body{{"jobs", json::array()}};
  for (int index = 0; index < 20; ++index)
    body["jobs"].push_back({{"id", fmt::format("early-{}", index)}, {"noop", json::object()}});
  REQUIRE(body_of(first.call("POST", "/v1/jobs:batch", member, body.dump()))["accepted"] == 20);
  CHECK(read_succeeded_until_all(env.prefix, "acme~early-", 20, 120s).once == 20);
  for (int index = 0; index < 20; ++index) wait_for_state(first, member, fmt::format("early-{}", index), "SUCCEEDED");
  // The first instance saw each job's every change; one started now reads them all at once and
  // numbers far fewer events.
  const auto cursor = body_of(first.call("GET", "/v1/events?wait=0", member))["cursor"].get<std::string>();
  Api second(env, keys, "api2");
  const auto first_last = body_of(first.call("GET", "/v1/stats", member))["view"]["last_event"].get<std::uint64_t>();
  const auto second_last = body_of(second.call("GET", "/v1/stats", member))["view"]["last_event"].get<std::uint64_t>();
  INFO("events numbered: first " << first_last << ", second " << second_last);
  REQUIRE(second_last < first_last);

  REQUIRE(first.call("POST", "/v1/jobs", member, R"({"id":"after-cursor","noop":{}})")->status == 202);
  wait_for_state(second, member, "after-cursor", "SUCCEEDED");
  std::set<std::string> states;
  std::string since = cursor;
  for (int poll = 0; poll < 20; ++poll) {
    const auto page = body_of(second.call("GET", "/v1/events?wait=0&limit=5&since=" + since, member));
    for (const auto& event : page["events"]) {
      if (event["id"] == "after-cursor") states.insert(event["state"].get<std::string>());
    }
    if (page["events"].empty()) break;
    since = page["cursor"];
  }
  CHECK(states.contains("SUCCEEDED"));
}

TEST_CASE("SIGTERM drains kcron-api: a waiting long-poll is answered, an acknowledged write is on Kafka, the exit is clean",
          "[integration]") {
  TestEnv env("api-drain");
  const auto keys = make_api_keys(env);
  Api api(env, keys, "api1");
  const auto alice = api_token(keys, "acme", "member", "alice");
  auto written = api.call("POST", "/v1/jobs", alice, R"({"id":"before-stop","delay":"3600s","noop":{}})");
  REQUIRE(written);
  REQUIRE(written->status == 202);
  // A poll of a tenant nothing changes: only the drain can answer it before its 25 s.
  const auto quiet = api_token(keys, "beta", "viewer", "bob");
  std::string polled;
  std::thread poller([&] { polled = raw_get(api.port, "/v1/events?wait=25", quiet); });
  const int metrics_port = http_port_of(*api.process);
  double waiting = 0;
  for (int poll = 0; poll < 200 && waiting < 1; ++poll) {  // until the poll is waiting
    httplib::Client metrics("127.0.0.1", metrics_port);
    auto scraped = metrics.Get("/metrics");
    if (scraped && scraped->status == 200) waiting = metric_value(scraped->body, "kcron_api_long_polls_waiting");
    if (waiting < 1) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(waiting == 1);
  const auto exit_code = api.process->terminate(10s);  // well before the poll's 25 s: the drain answers it
  poller.join();
  INFO(tail_file(api.process->log_path()));
  CHECK(exit_code == 0);
  CHECK(polled.starts_with("HTTP/1.1 200"));
  CHECK(count_in_log(api.process->log_path(), "event=stopped") == 1);
  const auto records = read_topics({kcron::TopicNames(env.prefix).jobs()}, 30s, [](const std::vector<Record>& seen) {
    return std::any_of(seen.begin(), seen.end(), [](const Record& record) { return record.key.ends_with("before-stop"); });
  });
  CHECK(std::any_of(records.begin(), records.end(), [](const Record& record) { return record.key.ends_with("before-stop"); }));
}

TEST_CASE("idle long-polls and slow clients do not stop submits from being answered", "[integration]") {
  TestEnv env("api-long-polls");
  const auto keys = make_api_keys(env);
  Api api(env, keys, "api1", {"KCRON_API_THREADS=8", "KCRON_API_READ_TIMEOUT_MS=3000"});
  const auto alice = api_token(keys, "acme", "member", "alice");
  // The long-polls wait on another tenant, which nothing changes: acme's submits below must not
  // wake them (they would, as events, if they followed acme).
  const auto quiet = api_token(keys, "beta", "viewer", "bob");
  // Twelve long-polls (more than the pool's 8 threads) and four clients that connect and send nothing.
  std::vector<std::thread> pollers;
  std::atomic<int> polls_answered{0};
  for (int index = 0; index < 12; ++index) {
    pollers.emplace_back([&] {
      (void)raw_get(api.port, "/v1/events?wait=20", quiet);  // the answer's first bytes are enough: the poll returned
      ++polls_answered;
    });
  }
  std::vector<int> silent;
  for (int index = 0; index < 4; ++index) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(api.port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    silent.push_back(fd);
  }
  std::this_thread::sleep_for(500ms);
  for (int index = 0; index < 5; ++index) {
    auto result = api.call("POST", "/v1/jobs", alice, R"({"delay":"3600s","noop":{}})");
    REQUIRE(result);
    CHECK(result->status == 202);
  }
  // The submits were answered while the waiting long-polls still wait: at most the four beyond
  // the cap of waiting requests (8 threads / 2) answered at once, with no events.
  CHECK(polls_answered.load() <= 8);
  CHECK(polls_answered.load() >= 4);
  for (auto& poller : pollers) poller.join();
  for (const int fd : silent) ::close(fd);
}

TEST_CASE(
    "the API serves HTTPS with the configured certificate, CORS only to the configured origin, and its port to no second "
    "instance",
    "[integration]") {
  TestEnv env("api-tls");
  const auto keys = make_api_keys(env);
  const auto cert = env.state_root + "/api-cert.pem";
  const auto key = env.state_root + "/api-key.pem";
  const auto command = fmt::format(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {} -out {} -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
      key, cert);
  REQUIRE(std::system(command.c_str()) == 0);
  Api api(env, keys, "api1",
          {"KCRON_API_TLS_CERT_FILE=" + cert, "KCRON_API_TLS_KEY_FILE=" + key, "KCRON_API_CORS_ORIGIN=https://console.example"});
  httplib::SSLClient client("127.0.0.1", api.port);
  client.set_ca_cert_path(cert.c_str());
  client.enable_server_certificate_verification(true);
  const httplib::Headers headers{{"Authorization", "Bearer " + api_token(keys, "acme", "viewer")},
                                 {"Origin", "https://console.example"}};
  auto answer = client.Get("/v1/whoami", headers);
  INFO("HTTPS error: " << httplib::to_string(answer.error()));
  REQUIRE(answer);
  CHECK(answer->status == 200);
  CHECK(answer->get_header_value("Access-Control-Allow-Origin") == "https://console.example");
  const httplib::Headers elsewhere{{"Authorization", "Bearer " + api_token(keys, "acme", "viewer")},
                                   {"Origin", "https://evil.example"}};
  auto other = client.Get("/v1/whoami", elsewhere);
  REQUIRE(other);
  CHECK_FALSE(other->has_header("Access-Control-Allow-Origin"));
  auto preflight = client.Options("/v1/jobs", {{"Origin", "https://console.example"}, {"Access-Control-Request-Method", "POST"}});
  REQUIRE(preflight);
  CHECK(preflight->status == 204);
  CHECK(preflight->get_header_value("Access-Control-Allow-Headers").find("Authorization") != std::string::npos);
  // Plain HTTP to the TLS port gets no answer; a client that does not trust the certificate refuses it.
  httplib::Client plain("127.0.0.1", api.port);
  plain.set_read_timeout(5, 0);
  auto refused = plain.Get("/v1/whoami", headers);
  CHECK((!refused || refused->status != 200));
  httplib::SSLClient untrusting("127.0.0.1", api.port);
  untrusting.enable_server_certificate_verification(true);
  untrusting.set_ca_cert_path(keys.jwks_path.c_str());  // not a certificate: trusts nothing
  CHECK_FALSE(untrusting.Get("/v1/whoami", headers));

  // A second instance given the port in use fails and says so (no silent SO_REUSEPORT sharing).
  auto second = start_program(env, "kcron-api", "api2", "api2",
                              {fmt::format("KCRON_API_PORT={}", api.port), "KCRON_AUTH_JWKS_FILE=" + keys.jwks_path}, false);
  const auto exit_code = second->wait_exit(60s);
  INFO(tail_file(second->log_path()));
  REQUIRE(exit_code.has_value());
  CHECK(*exit_code != 0);
  CHECK(count_in_log(second->log_path(), fmt::format("cannot listen on 127.0.0.1:{} (in use", api.port)) == 1);
}

TEST_CASE("a backfill runs a past range as the misfire policy says, each run once", "[integration]") {
  TestEnv env("api-backfill");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1");
  const auto operator_token = api_token(keys, "acme", "operator", "olga");
  const auto now = std::chrono::floor<std::chrono::hours>(std::chrono::system_clock::now());
  const auto from = date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(now - 6h));
  const auto to = date::format("%FT%TZ", std::chrono::floor<std::chrono::seconds>(now - 1h));
  for (const auto& [id, misfire] :
       std::vector<std::pair<std::string, std::string>>{{"all", "FIRE_ALL"}, {"once", "FIRE_ONCE"}, {"skip", "SKIP"}}) {
    auto put = api.call("PUT", "/v1/schedules/" + id, operator_token,
                        fmt::format(R"({{"expression":"0 * * * *","job_template":{{"noop":{{}}}},"misfire":"{}"}})", misfire));
    REQUIRE(put);
    REQUIRE(put->status == 202);
    const httplib::Headers after{{"Kcron-Consistency", put->get_header_value("Kcron-Consistency")}};
    auto backfilled = api.call("POST", "/v1/schedules/" + id + ":backfill", operator_token,
                               fmt::format(R"({{"from":"{}","to":"{}"}})", from, to), after);
    REQUIRE(backfilled);
    INFO(id << ": " << backfilled->body);
    if (misfire == "SKIP") {
      CHECK(backfilled->status == 409);
      continue;
    }
    REQUIRE(backfilled->status == 202);
    const auto runs = body_of(backfilled)["runs"];
    CHECK(runs.size() == (misfire == "FIRE_ALL" ? 5u : 1u));  // the hours now-6h .. now-2h
    for (const auto& run : runs) wait_for_state(api, operator_token, run.get<std::string>(), "SUCCEEDED");
    // Backfilled again: the same ids, which the dispatcher deduplicates: each run still ran once.
    REQUIRE(api.call("POST", "/v1/schedules/" + id + ":backfill", operator_token,
                     fmt::format(R"({{"from":"{}","to":"{}"}})", from, to))
                ->status == 202);
  }
  const auto tally = read_succeeded_until_all(env.prefix, "acme~all@", 5, 60s);
  CHECK(tally.once == 5);
  CHECK(tally.duplicated == 0);
  CHECK(api.call("POST", "/v1/schedules/all:backfill", operator_token,
                 R"({"from":"2026-01-01T00:00:00Z","to":"2099-01-01T00:00:00Z"})")
            ->status == 400);
}

TEST_CASE("tenant settings through the API: an admin sets limits within the operators' ceilings, the dispatcher enforces them",
          "[integration]") {
  TestEnv env("api-tenant-settings", 1);  // one jobs partition: it holds ceil(2 * 1.25) = 3 pending jobs under a limit of 2
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  Api api(env, keys, "api1");
  const auto admin = api_token(keys, "acme", "admin", "ann");
  const auto member = api_token(keys, "acme", "member", "alice");
  const auto operators = api_token(keys, "ops", "system", "root");

  // A tenant without a record: its name, no limits, version 0.
  auto fresh = api.call("GET", "/v1/tenant", member);
  REQUIRE(fresh);
  CHECK(fresh->status == 200);
  CHECK(fresh->get_header_value("ETag") == "\"0\"");
  CHECK(body_of(fresh)["name"] == "acme");

  // Only kcron's operators create a tenant's record (system scope, naming the tenant).
  auto unregistered = api.call("PATCH", "/v1/tenant", admin, R"({"description":"mine"})");
  REQUIRE(unregistered);
  CHECK(unregistered->status == 403);
  CHECK_THAT(body_of(unregistered)["detail"].get<std::string>(), Catch::Contains("no settings record"));
  auto created = api.call("PATCH", "/v1/tenant?tenant=acme", operators, R"({"description":"created by ops"})");
  REQUIRE(created);
  REQUIRE(created->status == 202);

  // Without a ceiling an admin may not set a limit; a member changes nothing.
  auto uncapped = api.call("PATCH", "/v1/tenant", admin, R"({"limits":{"max_pending_jobs":2}})");
  REQUIRE(uncapped);
  CHECK(uncapped->status == 403);
  CHECK(body_of(uncapped)["field"] == "limits.max_pending_jobs");
  CHECK(api.call("PATCH", "/v1/tenant", member, R"({"description":"mine"})")->status == 403);

  // The operators set the ceiling; the admin then sets a limit within it.
  auto ceiling = api.call("PATCH", "/v1/tenant?tenant=acme", operators,
                          R"({"admin_ceilings":{"max_pending_jobs":10},"description":"payments"})");
  REQUIRE(ceiling);
  INFO(ceiling->body);
  REQUIRE(ceiling->status == 202);
  const auto written = ceiling->get_header_value("Kcron-Consistency");
  CHECK(written.starts_with("tenants/"));
  auto read = api.call("GET", "/v1/tenant", admin, "", {{"Kcron-Consistency", written}});
  REQUIRE(read);
  REQUIRE(read->status == 200);
  CHECK(body_of(read)["admin_ceilings"]["max_pending_jobs"] == "10");
  CHECK(body_of(read)["description"] == "payments");
  const auto version = read->get_header_value("ETag");
  CHECK(version != "\"0\"");

  CHECK(api.call("PATCH", "/v1/tenant", admin, R"({"limits":{"max_pending_jobs":11}})")->status == 403);
  CHECK(api.call("PATCH", "/v1/tenant", admin, R"({"admin_ceilings":{"max_pending_jobs":100}})")->status == 403);
  CHECK(api.call("PATCH", "/v1/tenant", admin, R"({"allowed_queues":["gpu"]})")->status == 403);
  auto stale = api.call("PATCH", "/v1/tenant", admin, R"({"limits":{"max_pending_jobs":2}})", {{"If-Match", "\"0\""}});
  REQUIRE(stale);
  CHECK(stale->status == 412);
  CHECK(stale->get_header_value("ETag") == version);
  auto limited = api.call("PATCH", "/v1/tenant", admin, R"({"limits":{"max_pending_jobs":2}})", {{"If-Match", version}});
  REQUIRE(limited);
  INFO(limited->body);
  REQUIRE(limited->status == 202);
  CHECK(body_of(limited)["settings"]["limits"]["max_pending_jobs"] == "2");
  // The same patch again changes nothing and writes nothing.
  auto again = api.call("PATCH", "/v1/tenant", admin, R"({"limits":{"max_pending_jobs":2}})",
                        {{"Kcron-Consistency", limited->get_header_value("Kcron-Consistency")}});
  REQUIRE(again);
  CHECK(again->status == 200);

  // Another tenant's admin sees its own settings, not acme's.
  auto other = api.call("GET", "/v1/tenant", api_token(keys, "beta", "admin", "bea"));
  REQUIRE(other);
  CHECK(body_of(other)["name"] == "beta");
  CHECK_FALSE(body_of(other).contains("description"));
  CHECK(api.call("GET", "/v1/tenant?tenant=acme", api_token(keys, "beta", "admin", "bea"))->status == 403);

  // The dispatcher follows kcron.tenants: once it applied the three records, the fourth pending job is refused.
  const auto applied_deadline = std::chrono::steady_clock::now() + 60s;
  while (count_in_log(dispatcher->log_path(), "event=tenant_record_applied tenant=acme ") < 3 &&
         std::chrono::steady_clock::now() < applied_deadline) {
    std::this_thread::sleep_for(50ms);
  }
  INFO(tail_file(dispatcher->log_path(), 20));
  REQUIRE(count_in_log(dispatcher->log_path(), "event=tenant_record_applied tenant=acme ") == 3);
  std::vector<std::string> states;
  for (int index = 0; index < 5; ++index) {
    const auto id = fmt::format("limited-{}", index);
    auto submitted = api.call("POST", "/v1/jobs", member, fmt::format(R"({{"id":"{}","delay":"3600s","noop":{{}}}})", id));
    REQUIRE(submitted);
    REQUIRE(submitted->status == 202);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    json view;
    while (std::chrono::steady_clock::now() < deadline) {
      view = body_of(api.call("GET", "/v1/jobs/" + id, member));
      if (view.value("state", "") == "PENDING" || view.value("state", "") == "REJECTED") break;
      std::this_thread::sleep_for(100ms);
    }
    states.push_back(view.value("state", ""));
    if (view.value("state", "") == "REJECTED") CHECK_THAT(view.value("reason", ""), Catch::Contains("limit of 2 pending jobs"));
  }
  CHECK(states == std::vector<std::string>{"PENDING", "PENDING", "PENDING", "REJECTED", "REJECTED"});

  // The audit log names who changed the settings, and to what.
  auto audit = body_of(api.call("GET", "/v1/audit", admin));
  int changes = 0;
  for (const auto& record : audit["records"]) {
    if (record.value("action", "") != "patch_tenant") continue;
    ++changes;
    CHECK_THAT(record.value("reason", ""), Catch::Contains("settings of acme now"));
  }
  CHECK(changes == 3);
}

TEST_CASE(
    "a flow submitted through the API is read back with its state and paged nodes, cancelled, retried, and hidden from "
    "other tenants",
    "[integration]") {
  TestEnv env("api-flows");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1");
  const auto alice = api_token(keys, "acme", "member", "alice");
  const auto stranger = api_token(keys, "beta", "admin", "bob");

  // extract -> (transform, validate)
  auto submitted = api.call("POST", "/v1/flows", alice,
                            R"({"flow":{"id":"etl","labels":{"team":"data"},"nodes":[
                                  {"name":"extract","job":{"noop":{}}},
                                  {"name":"transform","job":{"noop":{}},"depends_on":["extract"]},
                                  {"name":"validate","job":{"noop":{}},"depends_on":["extract"],"trigger":"all_done"}]}})");
  REQUIRE(submitted);
  INFO(submitted->body);
  REQUIRE(submitted->status == 202);
  CHECK(submitted->get_header_value("Location") == "/v1/flows/etl");
  const httplib::Headers after{{"Kcron-Consistency", submitted->get_header_value("Kcron-Consistency")}};
  // Read-your-writes: the flow is in the view at once, its nodes waiting or further.
  auto first = body_of(api.call("GET", "/v1/flows/etl", alice, "", after));
  CHECK(first["id"] == "etl");
  CHECK(first["tenant"] == "acme");
  CHECK(first["submitted_by"] == "alice");
  CHECK(first["counts"]["nodes"] == 3);

  json flow;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    flow = body_of(api.call("GET", "/v1/flows/etl", alice));
    if (flow["state"] == "SUCCEEDED") break;
    std::this_thread::sleep_for(100ms);
  }
  INFO(flow.dump());
  REQUIRE(flow["state"] == "SUCCEEDED");
  CHECK(flow["counts"]["succeeded"] == 3);
  CHECK(flow["counts"]["ended"] == 3);
  CHECK(flow["counts"]["by_state"]["SUCCEEDED"] == 3);
  CHECK(flow["labels"]["team"] == "data");

  // The nodes a page of one at a time, by name, each once.
  std::vector<std::string> names;
  std::string token;
  for (int page = 0; page < 5; ++page) {
    auto answer = body_of(api.call("GET", "/v1/flows/etl?page_size=1" + (token.empty() ? "" : "&page_token=" + token), alice));
    REQUIRE(answer["nodes"].size() == 1);
    const auto& node = answer["nodes"][0];
    names.push_back(node["name"]);
    CHECK(node["job_id"] == "etl/" + node["name"].get<std::string>());
    CHECK(node["state"] == "SUCCEEDED");
    CHECK(node["attempt"] == 0);
    if (node["name"] == "validate") {
      CHECK(node["depends_on"] == json::array({"extract"}));
      CHECK(node["trigger"] == "ALL_DONE");
    }
    if (!answer.contains("next_page_token")) break;
    token = answer["next_page_token"];
  }
  CHECK(names == std::vector<std::string>{"extract", "transform", "validate"});
  // A node's job carries its definition from the flow record.
  auto node_job = body_of(api.call("GET", "/v1/jobs/etl/transform", alice));
  CHECK(node_job["job"]["flow"]["id"] == "etl");
  CHECK(node_job["job"]["flow"]["node"] == "transform");
  CHECK(node_job["labels"]["team"] == "data");
  auto listed = body_of(api.call("GET", "/v1/flows", alice));
  REQUIRE(listed["flows"].size() == 1);
  CHECK(listed["flows"][0]["id"] == "etl");
  CHECK(listed["flows"][0]["state"] == "SUCCEEDED");

  // A flow that starts in an hour is SCHEDULED, with its start, until a node has a state.
  const auto starts = std::chrono::duration_cast<std::chrono::milliseconds>(
                          (std::chrono::system_clock::now() + std::chrono::hours(1)).time_since_epoch())
                          .count();
  auto later = api.call(
      "POST", "/v1/flows", alice,
      R"({"flow":{"id":"later","run_at_ms":)" + std::to_string(starts) + R"(,"nodes":[{"name":"a","job":{"noop":{}}}]}})");
  REQUIRE(later);
  REQUIRE(later->status == 202);
  auto scheduled = body_of(
      api.call("GET", "/v1/flows/later", alice, "", {{"Kcron-Consistency", later->get_header_value("Kcron-Consistency")}}));
  INFO(scheduled.dump());
  CHECK(scheduled["state"] == "SCHEDULED");
  CHECK(scheduled["run_at_ms"] == starts);
  CHECK(scheduled["counts"]["ended"] == 0);
  REQUIRE(api.call("POST", "/v1/flows/later:cancel", alice)->status == 202);

  // Another tenant never sees it, nor acts on it: its member gets 404; its admin may write a command
  // for a flow its view does not hold, which its own tenant's dispatcher decides (no such flow).
  const auto stranger_member = api_token(keys, "beta", "member", "bea");
  CHECK(api.call("GET", "/v1/flows/etl", stranger)->status == 404);
  CHECK(api.call("POST", "/v1/flows/etl:cancel", stranger_member)->status == 404);
  CHECK(api.call("POST", "/v1/flows/etl:retry", stranger_member)->status == 404);
  CHECK(api.call("POST", "/v1/flows/etl:cancel", stranger)->status == 202);
  CHECK(body_of(api.call("GET", "/v1/flows", stranger))["flows"].empty());
  CHECK(api.call("GET", "/v1/flows/nope", alice)->status == 404);

  // Cancel and retry are written for the dispatcher to decide (it refuses both for a flow that ended
  // without a DEAD node, in the dead letters); a member may for its own flow.
  auto cancelled = api.call("POST", "/v1/flows/etl:cancel", alice, R"({"reason":"done anyway"})");
  REQUIRE(cancelled);
  CHECK(cancelled->status == 202);
  CHECK(body_of(cancelled)["id"] == "etl");
  auto retried = api.call("POST", "/v1/flows/etl:retry", alice);
  REQUIRE(retried);
  CHECK(retried->status == 202);
  CHECK(api.call("POST", "/v1/flows/etl:retry", api_token(keys, "acme", "member", "carol"))->status == 403);

  // A cancel of a running flow: its running node is stopped on its worker, the flow ends ENDED.
  REQUIRE(api.call("POST", "/v1/flows", alice,
                   R"({"flow":{"id":"slow","nodes":[{"name":"wait","job":{"sleep":{"duration":"60s"}}},
                         {"name":"after","job":{"noop":{}},"depends_on":["wait"]}]}})")
              ->status == 202);
  const auto state_until = [&](const std::string& id, const std::function<bool(const json&)>& done) {
    json answer;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < until) {
      answer = body_of(api.call("GET", "/v1/flows/" + id, alice));
      if (done(answer)) break;
      std::this_thread::sleep_for(100ms);
    }
    return answer;
  };
  auto slow = state_until("slow", [](const json& answer) {
    return answer.contains("nodes") && answer["nodes"].size() == 2 && answer["nodes"][1].value("state", "") == "QUEUED";
  });
  REQUIRE(slow["nodes"][1]["state"] == "QUEUED");  // nodes by name: after, wait
  std::this_thread::sleep_for(1s);                 // a worker has taken it
  REQUIRE(api.call("POST", "/v1/flows/slow:cancel", alice)->status == 202);
  slow = state_until("slow", [](const json& answer) { return answer.value("state", "") == "ENDED"; });
  INFO(slow.dump());
  CHECK(slow["state"] == "ENDED");
  CHECK(slow["nodes"][0]["state"] == "CANCELLED");
  CHECK(slow["nodes"][1]["state"] == "CANCELLED");

  // A retry of a flow whose node ended DEAD runs it again as attempt 1.
  REQUIRE(api.call("POST", "/v1/flows", alice,
                   R"({"flow":{"id":"flaky","nodes":[{"name":"fail","job":{"sleep":{"duration":"0.1s","fail":true}}}]}})")
              ->status == 202);
  auto flaky = state_until("flaky", [](const json& answer) { return answer.value("state", "") == "FAILED"; });
  REQUIRE(flaky["state"] == "FAILED");
  REQUIRE(api.call("POST", "/v1/flows/flaky:retry", alice)->status == 202);
  flaky = state_until("flaky", [](const json& answer) {
    return answer.value("state", "") == "FAILED" && answer.contains("nodes") && !answer["nodes"].empty() &&
           answer["nodes"][0].value("attempt", 0) == 1;
  });
  INFO(flaky.dump());
  CHECK(flaky["nodes"][0]["attempt"] == 1);
  CHECK(flaky["nodes"][0]["state"] == "DEAD");

  // A schedule that runs a flow, put and triggered through the API: the run is a flow
  // `<schedule>@manual-<ms>`, its nodes listed with the schedule's runs. (No cron-producer runs
  // here: the run is the trigger's alone.)
  const auto olga = api_token(keys, "acme", "operator", "olga");
  auto put = api.call("PUT", "/v1/schedules/nightly", olga,
                      R"({"expression":"0 3 * * *","flow_template":{"nodes":[{"name":"a","job":{"noop":{}}},
                            {"name":"b","job":{"noop":{}},"depends_on":["a"]}]}})");
  REQUIRE(put);
  INFO(put->body);
  REQUIRE(put->status == 202);
  CHECK(
      api.call(
             "PUT", "/v1/schedules/both", olga,
             R"({"expression":"0 3 * * *","job_template":{"noop":{}},"flow_template":{"nodes":[{"name":"a","job":{"noop":{}}}]}})")
          ->status == 400);
  const httplib::Headers put_seen{{"Kcron-Consistency", put->get_header_value("Kcron-Consistency")}};
  REQUIRE(body_of(api.call("GET", "/v1/schedules/nightly", olga, "", put_seen)).contains("flow_template"));
  auto triggered = api.call("POST", "/v1/schedules/nightly:trigger", olga);
  REQUIRE(triggered);
  REQUIRE(triggered->status == 202);
  const auto run = body_of(triggered)["id"].get<std::string>();
  CHECK(run.starts_with("nightly@manual-"));
  auto ran = state_until(run, [](const json& answer) { return answer.value("state", "") == "SUCCEEDED"; });
  INFO(ran.dump());
  CHECK(ran["state"] == "SUCCEEDED");
  CHECK(ran["counts"]["succeeded"] == 2);
  auto runs = body_of(api.call("GET", "/v1/jobs?schedule=nightly", olga));
  CHECK(runs["jobs"].size() == 2);
}

TEST_CASE("templates through the API: versions are immutable, a job body naming one is rendered and carries name@version",
          "[integration]") {
  TestEnv env("api-templates");
  const auto keys = make_api_keys(env);
  Api api(env, keys, "api1", {"KCRON_API_TEMPLATE_WAIT_MS=1000"});
  const auto operator_token = api_token(keys, "acme", "operator", "alice");
  const auto member = api_token(keys, "acme", "member", "bob");
  const auto viewer = api_token(keys, "acme", "viewer", "vera");
  const std::string report =
      R"({"description":"the daily report","params":[{"name":"day","type":"STRING","required":true},{"name":"n","type":"INT","default":"10"}],)"
      R"("job":{"id":"report-{{day}}","noop":{},"labels":{"day":"{{day}}","top":"{{n}}"}}})";

  auto put = api.call("PUT", "/v1/templates/report/versions/3", operator_token, report);
  REQUIRE(put);
  INFO(put->body);
  CHECK(put->status == 201);
  CHECK(put->get_header_value("Location") == "/v1/templates/report/versions/3");
  CHECK(body_of(put)["created"] == true);
  auto again = api.call("PUT", "/v1/templates/report/versions/3", operator_token, report);
  CHECK(again->status == 200);
  CHECK(body_of(again)["created"] == false);
  auto other =
      api.call("PUT", "/v1/templates/report/versions/3", operator_token,
               R"({"params":[{"name":"day","type":"STRING","required":true}],"job":{"noop":{},"labels":{"day":"{{day}}"}}})");
  CHECK(other->status == 409);
  CHECK(body_of(other)["detail"] == "template 'report' version 3 already exists with different content; write version 4");
  CHECK(api.call("PUT", "/v1/templates/report/versions/4", viewer, report)->status == 403);
  auto undeclared =
      api.call("PUT", "/v1/templates/bad/versions/1", operator_token, R"({"job":{"noop":{},"labels":{"x":"{{x}}"}}})");
  CHECK(undeclared->status == 400);
  CHECK(body_of(undeclared)["detail"].get<std::string>().find("'{{x}}' is not a declared parameter") != std::string::npos);

  auto listed = body_of(api.call("GET", "/v1/templates", viewer));
  REQUIRE(listed["templates"].size() == 1);
  CHECK(listed["templates"][0]["name"] == "report");
  CHECK(listed["templates"][0]["versions"] == 1);
  auto versions = body_of(api.call("GET", "/v1/templates/report", viewer));
  REQUIRE(versions["versions"].size() == 1);
  CHECK(versions["versions"][0]["written_by"] == "alice");
  CHECK(versions["versions"][0]["tenant"] == "acme");
  CHECK(api.call("GET", "/v1/templates/report/versions/3", viewer)->status == 200);
  CHECK(api.call("GET", "/v1/templates/report/versions/9", viewer)->status == 404);
  CHECK(api.call("GET", "/v1/templates/report", api_token(keys, "beta", "viewer"))->status == 404);  // acme's only

  // A job body naming the template: rendered by the API.
  auto missing = api.call("POST", "/v1/jobs", member, R"({"template":"report@3","params":{"n":3}})");
  CHECK(missing->status == 400);
  CHECK(body_of(missing)["detail"] == "template 'report@3': required parameter 'day' is missing");
  auto mistyped = api.call("POST", "/v1/jobs", member, R"({"template":"report@3","params":{"day":"mon","n":"many"}})");
  CHECK(mistyped->status == 400);
  CHECK(body_of(mistyped)["detail"] == "template 'report@3': parameter 'n' must be an integer, got 'many'");
  auto unseen = api.call("POST", "/v1/jobs", member, R"({"template":"report@4","params":{"day":"mon"}})");
  CHECK(unseen->status == 404);
  CHECK(body_of(unseen)["detail"] ==
        "template 'report' has no version 4 in tenant acme (waited 1000 ms for it; its versions: 3)");
  auto stray = api.call("POST", "/v1/jobs", member, R"({"template":"report@3","colour":"red"})");
  CHECK(stray->status == 400);
  CHECK(body_of(stray)["field"] == "colour");
  auto rendered = api.call("POST", "/v1/jobs", member, R"({"template":"report@3","params":{"day":"mon","n":5}})");
  INFO(rendered->body);
  REQUIRE(rendered->status == 202);
  CHECK(body_of(rendered)["id"] == "report-mon");
  CHECK(body_of(rendered)["template"] == "report@3");
  auto with_id = api.call("POST", "/v1/jobs", member, R"({"template":"report@3","params":{"day":"tue"},"id":"special"})");
  REQUIRE(with_id->status == 202);

  // The CLI through the API: kcron-api renders it.
  const auto through_cli = run_cli(
      env, fmt::format("--api http://127.0.0.1:{} --token {} submit --template report@3 --param day=thu", api.port, member));
  INFO(through_cli.output);
  CHECK(through_cli.exit_code == 0);
  CHECK(through_cli.output == "submitted report-thu from template report@3 for tenant acme\n");

  // A schedule on the template: checked against the catalog when the version is there, its trigger rendered.
  auto unrendered =
      api.call("PUT", "/v1/schedules/daily", operator_token, R"({"expression":"0 6 * * *","template_ref":{"ref":"report@3"}})");
  CHECK(unrendered->status == 400);
  CHECK(body_of(unrendered)["field"] == "template_ref");
  CHECK(body_of(unrendered)["detail"] == "template 'report@3': required parameter 'day' is missing");
  auto daily = api.call("PUT", "/v1/schedules/daily", operator_token,
                        R"({"expression":"0 6 * * *","template_ref":{"ref":"report@3","params":{"day":"wed"}}})");
  REQUIRE(daily->status == 202);
  CHECK_FALSE(body_of(daily).contains("warning"));
  auto ahead = api.call("PUT", "/v1/schedules/ahead", operator_token,
                        R"({"expression":"0 6 * * *","template_ref":{"ref":"report@7","params":{"day":"wed"}}})");
  REQUIRE(ahead->status == 202);
  CHECK(body_of(ahead)["warning"].get<std::string>().starts_with("template 'report@7' is not on kcron.templates yet"));
  const httplib::Headers after_ahead{{"Kcron-Consistency", ahead->get_header_value("Kcron-Consistency")}};
  const httplib::Headers after_daily{{"Kcron-Consistency", daily->get_header_value("Kcron-Consistency")}};
  auto triggered = api.call("POST", "/v1/schedules/daily:trigger", operator_token, "", after_daily);
  INFO(triggered->body);
  REQUIRE(triggered->status == 202);
  const auto trigger_id = body_of(triggered)["id"].get<std::string>();
  auto not_yet = api.call("POST", "/v1/schedules/ahead:trigger", operator_token, "", after_ahead);
  CHECK(not_yet->status == 409);
  CHECK(body_of(not_yet)["detail"] == "template 'report@7' of the schedule is not on kcron.templates");

  // A flow whose node names the template: rendered by the API; a refusal names the node.
  auto flow_missing = api.call("POST", "/v1/flows", member,
                               R"({"id":"tf-bad","nodes":[{"name":"a","job":{"noop":{}}},)"
                               R"({"name":"b","template_ref":{"ref":"report@3"},"depends_on":["a"]}]})");
  CHECK(flow_missing->status == 400);
  CHECK(body_of(flow_missing)["field"] == "nodes[1].template_ref");
  CHECK(body_of(flow_missing)["detail"] == "node 'b': template 'report@3': required parameter 'day' is missing");
  auto flow_unseen =
      api.call("POST", "/v1/flows", member, R"({"id":"tf-bad","nodes":[{"name":"z","template_ref":{"ref":"report@4"}}]})");
  CHECK(flow_unseen->status == 404);
  CHECK(body_of(flow_unseen)["field"] == "nodes[0].template_ref");
  CHECK(body_of(flow_unseen)["detail"] ==
        "node 'z': template 'report' has no version 4 in tenant acme (waited 1000 ms for it; its versions: 3)");
  auto flow = api.call("POST", "/v1/flows", member,
                       R"({"id":"tf","nodes":[{"name":"a","job":{"noop":{}}},)"
                       R"({"name":"b","template_ref":{"ref":"report@3","params":{"day":"sat"}},"depends_on":["a"]}]})");
  INFO(flow->body);
  REQUIRE(flow->status == 202);
  CHECK(body_of(flow)["rendered_from_templates"] == 1);

  // Rendered jobs over the record limit: a 413 naming the node that takes them over, nothing written.
  const std::string pad(200'000, 'x');
  REQUIRE(
      api.call("PUT", "/v1/templates/big/versions/1", operator_token, R"({"job":{"noop":{},"labels":{"pad":")" + pad + R"("}}})")
          ->status == 201);
  std::string big_nodes;
  for (int at = 0; at < 5; ++at) {
    big_nodes += fmt::format(R"({}{{"name":"n{}","template_ref":{{"ref":"big@1"}}}})", at == 0 ? "" : ",", at);
  }
  auto too_large = api.call("POST", "/v1/flows", member, R"({"id":"tf-big","nodes":[)" + big_nodes + "]}");
  REQUIRE(too_large);
  CHECK(too_large->status == 413);
  CHECK(body_of(too_large)["field"] == "nodes[4].template_ref");
  CHECK_THAT(body_of(too_large)["detail"].get<std::string>(),
             Catch::StartsWith("node 'n4': template 'big@1': the flow's rendered jobs come to more than 900000 bytes"));

  // On kcron.jobs: the concrete jobs, with the provenance, the tenant and the submitter.
  std::map<std::string, kcron::v1::Job> jobs;
  std::map<std::string, kcron::v1::Flow> flows;
  read_topics({env.prefix + "jobs"}, 10s, [&](const std::vector<Record>& read) {
    for (const auto& record : read) {
      auto command = kcron::decode_command(record.value, "", "");
      if (command && command->has_submit()) jobs[command->submit().id()] = command->submit();
      if (command && command->has_flow()) flows[command->flow().id()] = command->flow();
    }
    return jobs.size() >= 4 && flows.contains("tf");
  });
  REQUIRE(jobs.contains("report-mon"));
  CHECK(jobs["report-mon"].template_() == "report@3");
  CHECK(jobs["report-mon"].tenant() == "acme");
  CHECK(jobs["report-mon"].submitted_by() == "bob");
  CHECK(jobs["report-mon"].labels().at("top") == "5");
  REQUIRE(jobs.contains("special"));
  CHECK(jobs["special"].labels().at("day") == "tue");
  CHECK(jobs["special"].labels().at("top") == "10");
  REQUIRE(jobs.contains("report-thu"));
  CHECK(jobs["report-thu"].template_() == "report@3");
  REQUIRE(jobs.contains(trigger_id));
  CHECK(jobs[trigger_id].template_() == "report@3");
  CHECK(jobs[trigger_id].labels().at("day") == "wed");
  CHECK(jobs[trigger_id].schedule_run().schedule_id() == "daily");
  REQUIRE(flows.contains("tf"));
  CHECK_FALSE(flows.contains("tf-bad"));
  CHECK_FALSE(flows.contains("tf-big"));
  REQUIRE(flows["tf"].nodes_size() == 2);
  CHECK_FALSE(flows["tf"].nodes(1).has_template_ref());
  CHECK(flows["tf"].nodes(1).job().template_() == "report@3");
  CHECK(flows["tf"].nodes(1).job().labels().at("day") == "sat");
  CHECK(flows["tf"].tenant() == "acme");
}

TEST_CASE(
    "templates in batches: an API batch renders its template items and refuses one in its own slot, kcron submit --batch "
    "--api maps refusals to file lines",
    "[integration]") {
  TestEnv env("api-batch-templates");
  const auto keys = make_api_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1", {"KCRON_API_TEMPLATE_WAIT_MS=500"});
  const auto operator_token = api_token(keys, "acme", "operator", "alice");
  const auto member = api_token(keys, "acme", "member", "bob");
  const std::string report =
      R"({"params":[{"name":"day","type":"STRING","required":true},{"name":"n","type":"INT","default":"10"}],)"
      R"("job":{"id":"report-{{day}}","noop":{},"labels":{"day":"{{day}}","top":"{{n}}"}}})";
  REQUIRE(api.call("PUT", "/v1/templates/report/versions/3", operator_token, report)->status == 201);

  // 3 jobs and 2 template items, one without its required parameter: 4 accepted, that one refused in its slot.
  const std::string batch =
      R"({"jobs":[{"id":"plain-1","noop":{}},{"template":"report@3","params":{"day":"mon","n":5}},{"id":"plain-2","noop":{}},)"
      R"({"template":"report@3","params":{"n":3}},{"id":"plain-3","noop":{}}]})";
  auto answered = api.call("POST", "/v1/jobs:batch", member, batch);
  auto answer = body_of(answered);
  INFO(answer.dump());
  CHECK(answered->status == 200);
  CHECK(answer["accepted"] == 4);
  CHECK(answer["refused"] == 1);
  CHECK(answer["tenant"] == "acme");
  REQUIRE(answer["results"].size() == 5);
  CHECK(answer["results"][0]["id"] == "plain-1");
  CHECK(answer["results"][1]["status"] == 202);
  CHECK(answer["results"][1]["id"] == "report-mon");
  CHECK(answer["results"][1]["template"] == "report@3");
  CHECK(answer["results"][3]["status"] == 400);
  CHECK(answer["results"][3]["field"] == "params");
  CHECK(answer["results"][3]["detail"] == "template 'report@3': required parameter 'day' is missing");
  CHECK(answer["results"][4]["id"] == "plain-3");

  // Another tenant's version is not acme's: globex's report@5 renders for globex only.
  const auto globex_operator = api_token(keys, "globex", "operator", "carol");
  REQUIRE(api.call("PUT", "/v1/templates/report/versions/5", globex_operator, report)->status == 201);
  auto in_globex =
      body_of(api.call("POST", "/v1/jobs:batch", globex_operator, R"({"jobs":[{"template":"report@5","params":{"day":"g"}}]})"));
  INFO(in_globex.dump());
  CHECK(in_globex["results"][0]["status"] == 202);

  // Versions this instance has not seen in acme (globex's report@5 among them): waited for together (500 ms for the
  // whole request), then each of their items refused naming it, listing acme's versions only.
  auto unseen = body_of(api.call(
      "POST", "/v1/jobs:batch", member,
      R"({"jobs":[{"template":"report@9","params":{"day":"a"}},{"template":"report@9","params":{"day":"b"}},{"id":"plain-4","noop":{}},)"
      R"({"template":"report@5","params":{"day":"g"}}]})"));
  INFO(unseen.dump());
  CHECK(unseen["accepted"] == 1);
  CHECK(unseen["results"][0]["status"] == 404);
  CHECK(unseen["results"][0]["field"] == "template");
  CHECK(unseen["results"][0]["detail"] ==
        "template 'report' has no version 9 in tenant acme (waited 500 ms for it; its versions: 3)");
  CHECK(unseen["results"][1]["status"] == 404);
  CHECK(unseen["results"][3]["status"] == 404);
  CHECK(unseen["results"][3]["detail"] ==
        "template 'report' has no version 5 in tenant acme (waited 500 ms for it; its versions: 3)");

  // A batch sent again with the same Idempotency-Key names the same jobs: its items without an id get the same ids.
  const std::string keyed = R"({"jobs":[{"noop":{}},{"noop":{}}]})";
  auto first_send = body_of(api.call("POST", "/v1/jobs:batch", member, keyed, {{"Idempotency-Key", "run-7#c0"}}));
  auto second_send = body_of(api.call("POST", "/v1/jobs:batch", member, keyed, {{"Idempotency-Key", "run-7#c0"}}));
  INFO(first_send.dump() << second_send.dump());
  CHECK(first_send["results"][0]["status"] == 202);
  CHECK(first_send["results"][0]["id"] == second_send["results"][0]["id"]);
  CHECK(first_send["results"][0]["id"].get<std::string>().starts_with("idem-"));
  CHECK(first_send["results"][1]["id"] == second_send["results"][1]["id"]);
  CHECK(first_send["results"][0]["id"] != first_send["results"][1]["id"]);

  // The rendered job runs, carrying its provenance.
  const auto done = wait_for_state(api, member, "report-mon", "SUCCEEDED");
  CHECK(done["job"]["template"] == "report@3");
  CHECK(done["job"]["labels"]["top"] == "5");
  CHECK(done["submitted_by"] == "bob");
  wait_for_state(api, member, "plain-3", "SUCCEEDED");

  // kcron submit --batch FILE --api: template lines rendered by the API, results by the file's line numbers.
  const auto file = env.state_root + "/batch.jsonl";
  std::ofstream(file) << R"({"id":"cli-b1","noop":{}})"
                      << "\n\n"
                      << R"({"template":"report@3","params":{"day":"fri"}})"
                      << "\n"
                      << R"({"template":"report@3","params":{"day":"sat","n":"x"}})"
                      << "\n"
                      << R"({"id":"cli-b2","noop":{}})"
                      << "\n";
  const auto through_cli =
      run_cli(env, fmt::format("--api http://127.0.0.1:{} --token {} submit --batch {}", api.port, member, file));
  INFO(through_cli.output);
  CHECK(through_cli.exit_code == 1);
  CHECK_THAT(through_cli.output, Catch::Contains("line 1: submitted cli-b1\n"));
  CHECK_THAT(through_cli.output, Catch::Contains("line 3: submitted report-fri from template report@3\n"));
  CHECK(std::regex_search(
      through_cli.output,
      std::regex(
          R"(kcron: line 4: template 'report@3': parameter 'n' must be an integer, got 'x' \(HTTP 400, field params, request [0-9a-f]+\)\n)")));
  CHECK_THAT(through_cli.output, Catch::Contains("line 5: submitted cli-b2\n"));
  CHECK_THAT(through_cli.output, Catch::Contains("submitted 3 jobs in 1 request for tenant acme; 1 line refused\n"));
  CHECK(through_cli.output.find(member) == std::string::npos);

  // The same file sent again with --idempotency-key: a line without an id gets the id it had.
  const auto keyed_file = env.state_root + "/keyed.jsonl";
  std::ofstream(keyed_file) << "\xEF\xBB\xBF"
                            << R"({"noop":{}})"
                            << "\n";  // a byte order mark is left out
  const auto keyed_run = [&] {
    return run_cli(env, fmt::format("--api http://127.0.0.1:{} --token {} submit --batch {} --idempotency-key run-8", api.port,
                                    member, keyed_file));
  };
  const auto once = keyed_run();
  const auto twice = keyed_run();
  INFO(once.output << twice.output);
  CHECK(once.exit_code == 0);
  CHECK(std::regex_search(once.output, std::regex("line 1: submitted idem-[0-9a-f]+\n")));
  CHECK(once.output == twice.output);
  const auto rendered = wait_for_state(api, member, "report-fri", "SUCCEEDED");
  CHECK(rendered["job"]["template"] == "report@3");
  wait_for_state(api, member, "cli-b2", "SUCCEEDED");
}
