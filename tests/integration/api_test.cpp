// kcron-api against the real broker: two instances in front of a dispatcher and a worker, tokens
// minted with a key the instances trust, two tenants. Every answer is read over HTTP.
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "auth/jwt.h"
#include "openapi/contract.h"
#include "openapi/document.h"
#include "support/harness.h"

using namespace kcron::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A signing key and the JWKS file the API instances verify with.
struct Keys {
  kcron::auth::SigningKey key;
  std::string jwks_path;
};

Keys make_keys(const TestEnv& env) {
  auto generated = kcron::auth::generate_key("ES256", "test-key");
  REQUIRE(generated.ok());
  auto key = kcron::auth::load_signing_key(generated->private_pem, "ES256", "test-key");
  REQUIRE(key.ok());
  std::filesystem::create_directories(env.state_root);
  const auto path = env.state_root + "/jwks.json";
  std::ofstream(path) << generated->jwks;
  return {*key, path};
}

std::string token(const Keys& keys, const std::string& tenant, const std::string& role, const std::string& subject = "alice",
                  std::chrono::seconds ttl = 1h, std::chrono::system_clock::time_point issued = std::chrono::system_clock::now()) {
  kcron::auth::TokenRequest request{subject, tenant, {role}, issued, ttl, "", ""};
  auto signed_token = kcron::auth::sign_token(request, keys.key);
  REQUIRE(signed_token.ok());
  return *signed_token;
}

// One kcron-api instance and a client to it.
struct Api {
  std::unique_ptr<Process> process;
  int port = 0;

  std::vector<std::string> extra;

  Api(const TestEnv& env, const Keys& keys, const std::string& instance, std::vector<std::string> extra_env = {})
      : extra(std::move(extra_env)) {
    start(env, keys, instance);
  }

  void start(const TestEnv& env, const Keys& keys, const std::string& instance) {
    const auto log_path = fmt::format("{}/{}.log", env.state_root, instance);
    const int before = count_in_log(log_path, "event=api_listening");
    auto vars = extra;
    vars.push_back("KCRON_API_PORT=0");
    vars.push_back("KCRON_AUTH_JWKS_FILE=" + keys.jwks_path);
    process = start_program(env, "kcron-api", instance, instance, vars, false);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (count_in_log(log_path, "event=api_listening") <= before && std::chrono::steady_clock::now() < deadline) {
      INFO(tail_file(log_path));
      REQUIRE(process->running());
      std::this_thread::sleep_for(50ms);
    }
    std::ifstream file(log_path);
    std::string line;
    while (std::getline(file, line)) {
      const auto at = line.find("event=api_listening");
      if (at != std::string::npos) port = std::stoi(line.substr(line.find("port=", at) + 5));
    }
    REQUIRE(port > 0);
    INFO(tail_file(log_path));
    REQUIRE(wait_for_log(*process, "event=view_caught_up", 60s));
  }

  httplib::Result call(const std::string& method, const std::string& path, const std::string& bearer, const std::string& body = "",
                       const httplib::Headers& more_headers = {}) const {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30, 0);
    httplib::Headers headers = more_headers;
    if (!bearer.empty()) headers.emplace("Authorization", "Bearer " + bearer);
    auto result = method == "GET"   ? client.Get(path, headers)
                  : method == "PUT" ? client.Put(path, headers, body, "application/json")
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

TEST_CASE("two tenants through two API instances: each sees and changes only its own jobs, read-your-writes holds across instances",
          "[integration]") {
  TestEnv env("api-tenants");
  const auto keys = make_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api first(env, keys, "api1");
  Api second(env, keys, "api2");
  const auto acme = token(keys, "acme", "member");
  const auto beta = token(keys, "beta", "operator", "bob");

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

TEST_CASE("the API refuses missing, expired, unsigned, tampered and foreign tokens with 401, and roles beyond their rights with 403",
          "[integration]") {
  TestEnv env("api-auth");
  const auto keys = make_keys(env);
  Api api(env, keys, "api1");
  const std::string job = R"({"delay":"3600s","noop":{}})";

  CHECK(api.call("GET", "/v1/jobs", "")->status == 401);
  // The OpenAPI document needs no token.
  auto document = api.call("GET", "/v1/openapi.json", "");
  REQUIRE(document);
  CHECK(document->status == 200);
  CHECK(json::parse(document->body) == json::parse(kcron::api::openapi_document()));
  CHECK(api.call("GET", "/v1/jobs", "", "", {{"Authorization", "Basic YWxpY2U6cGFzcw=="}})->status == 401);
  auto expired = api.call("GET", "/v1/jobs", token(keys, "acme", "viewer", "alice", 60s, std::chrono::system_clock::now() - 2h));
  REQUIRE(expired);
  CHECK(expired->status == 401);
  CHECK(expired->get_header_value("WWW-Authenticate").find("invalid_token") != std::string::npos);
  CHECK(body_of(expired)["detail"].get<std::string>().find("expired") != std::string::npos);

  auto valid = token(keys, "acme", "viewer");
  const auto first_dot = valid.find('.');
  const auto second_dot = valid.find('.', first_dot + 1);
  // alg none: the same claims, no signature.
  const std::string none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0" + valid.substr(first_dot, second_dot - first_dot + 1);
  CHECK(api.call("GET", "/v1/jobs", none)->status == 401);
  // Tampered: the payload of an admin token under a viewer token's signature.
  const auto admin = token(keys, "acme", "admin");
  const auto tampered = valid.substr(0, first_dot) + admin.substr(first_dot, admin.find('.', first_dot + 1) - first_dot) +
                        valid.substr(second_dot);
  CHECK(api.call("GET", "/v1/jobs", tampered)->status == 401);
  // Signed by a key the API does not trust.
  auto stranger = kcron::auth::generate_key("ES256", "test-key");
  REQUIRE(stranger.ok());
  Keys foreign{*kcron::auth::load_signing_key(stranger->private_pem, "ES256", "test-key"), keys.jwks_path};
  CHECK(api.call("GET", "/v1/jobs", token(foreign, "acme", "admin"))->status == 401);

  // Roles: a viewer reads but cannot submit; a member cancels only its own jobs; an operator any.
  CHECK(api.call("GET", "/v1/jobs", valid)->status == 200);
  auto viewer_submit = api.call("POST", "/v1/jobs", valid, job);
  REQUIRE(viewer_submit);
  CHECK(viewer_submit->status == 403);
  CHECK(body_of(viewer_submit)["detail"] == "role viewer may not submit jobs (it needs member or above)");
  const auto alice = token(keys, "acme", "member", "alice");
  const auto carol = token(keys, "acme", "member", "carol");
  auto mine = api.call("POST", "/v1/jobs", alice, R"({"id":"alices","delay":"3600s","noop":{}})");
  REQUIRE(mine);
  REQUIRE(mine->status == 202);
  const httplib::Headers after_write{{"Kcron-Consistency", mine->get_header_value("Kcron-Consistency")}};
  CHECK(api.call("POST", "/v1/jobs/alices:cancel", carol, "", after_write)->status == 403);
  CHECK(api.call("PUT", "/v1/jobs/alices", carol, job, after_write)->status == 403);
  CHECK(api.call("POST", "/v1/jobs/alices:cancel", token(keys, "acme", "operator", "olga"), "", after_write)->status == 202);
  // Another tenant through ?tenant=: only the system role.
  CHECK(api.call("GET", "/v1/jobs?tenant=beta", admin)->status == 403);
  CHECK(api.call("GET", "/v1/jobs?tenant=beta", token(keys, "kcron", "system", "ops"))->status == 200);
}

TEST_CASE("every route checks its role: each role over each route through HTTP", "[integration]") {
  TestEnv env("api-roles");
  const auto keys = make_keys(env);
  Api api(env, keys, "api1");
  // The owner submits one job per route that needs one; each role then tries every route.
  const auto owner = token(keys, "acme", "admin", "owner");
  std::string consistency;
  for (const auto& role : {"viewer", "member", "operator", "admin", "system"}) {
    auto created = api.call("POST", "/v1/jobs", owner, fmt::format(R"({{"id":"target-{}","delay":"3600s","noop":{{}}}})", role));
    REQUIRE(created);
    REQUIRE(created->status == 202);
    consistency = created->get_header_value("Kcron-Consistency");
  }
  const httplib::Headers after{{"Kcron-Consistency", consistency}};
  struct Route {
    std::string method;
    std::string path;
    std::string body;
    std::string least;  // the least role that passes (member: on others' jobs, operator)
  };
  for (const auto& role : {"viewer", "member", "operator", "admin", "system"}) {
    const auto rank = std::string("viewer member operator admin system").find(role);
    const auto bearer = token(keys, "acme", role, std::string("user-") + role);
    const std::vector<Route> routes{
        {"GET", "/v1/jobs", "", "viewer"},
        {"GET", fmt::format("/v1/jobs/target-{}", role), "", "viewer"},
        {"GET", "/v1/whoami", "", "viewer"},
        {"POST", "/v1/jobs", R"({"delay":"3600s","noop":{}})", "member"},
        {"POST", "/v1/jobs:batch", R"({"jobs":[{"delay":"3600s","noop":{}}]})", "member"},
        {"PUT", fmt::format("/v1/jobs/target-{}", role), R"({"delay":"7200s","noop":{}})", "operator"},
        {"POST", fmt::format("/v1/jobs/target-{}:cancel", role), "", "operator"},
    };
    for (const auto& route : routes) {
      const auto least = std::string("viewer member operator admin system").find(route.least);
      auto result = api.call(route.method, route.path, bearer, route.body, after);
      REQUIRE(result);
      INFO(role << " " << route.method << " " << route.path << ": " << result->body);
      if (rank >= least) {
        CHECK(result->status / 100 == 2);
      } else {
        CHECK(result->status == 403);
      }
    }
  }
}

TEST_CASE("bad requests get a 400 naming the field, and the next request is served", "[integration]") {
  TestEnv env("api-bad-input");
  const auto keys = make_keys(env);
  Api api(env, keys, "api1");
  const auto member = token(keys, "acme", "member");
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
  auto batch = body_of(api.call("POST", "/v1/jobs:batch", member, R"({"jobs":[{"noop":{}},{"colour":1},{"id":"b2","noop":{}}]})"));
  CHECK(batch["accepted"] == 2);
  CHECK(batch["results"][1]["status"] == 400);
  CHECK(batch["results"][1]["field"] == "colour");
  CHECK(batch["results"][2]["id"] == "b2");
  CHECK(api.call("POST", "/v1/jobs", member, R"({"noop":{}})")->status == 202);
}

TEST_CASE("a caller over its request rate and a tenant over its submission rate get 429 with Retry-After", "[integration]") {
  TestEnv env("api-limits");
  const auto keys = make_keys(env);
  Api api(env, keys, "api1",
          {"KCRON_API_REQUESTS_PER_TOKEN=2", "KCRON_API_REQUEST_BURST=5", "KCRON_API_JOBS_PER_TENANT=10", "KCRON_API_JOBS_BURST=20"});
  const auto alice = token(keys, "acme", "member", "alice");
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
  const auto bob = token(keys, "acme", "member", "bob");
  json batch{{"jobs", json::array()}};
  for (int index = 0; index < 20; ++index) batch["jobs"].push_back({{"delay", "3600s"}, {"noop", json::object()}});
  CHECK(body_of(api.call("POST", "/v1/jobs:batch", bob, batch.dump()))["accepted"] == 20);
  // The burst is spent: single submits by fresh callers (their own request buckets are full) meet
  // the tenant's limit within a few tries, whatever the timing (it refills 10 per second).
  std::optional<httplib::Response> over;
  for (int index = 0; index < 30 && !over; ++index) {
    auto result = api.call("POST", "/v1/jobs", token(keys, "acme", "member", fmt::format("u{}", index)), R"({"delay":"3600s","noop":{}})");
    REQUIRE(result);
    if (result->status == 429) over = *result;
  }
  REQUIRE(over);
  CHECK(json::parse(over->body)["detail"].get<std::string>().find("tenant acme is over 10 submissions per second") == 0);
}

TEST_CASE("a batch of 1000 jobs all run once and pages over 10000 jobs return each once while they change state",
          "[integration]") {
  TestEnv env("api-batch");
  const auto keys = make_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1", {"KCRON_API_JOBS_PER_TENANT=0"});
  const auto member = token(keys, "acme", "member");
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
  CHECK(seen.size() == kBatches * kPerBatch);
  const auto tally = read_succeeded_until_all(env.prefix, "acme~b0-", kPerBatch, 120s);
  CHECK(tally.once == kPerBatch);
  CHECK(tally.lost == 0);
  CHECK(tally.duplicated == 0);
}

TEST_CASE("the view survives a SIGKILL of kcron-api and answers the same afterwards", "[integration]") {
  TestEnv env("api-restart");
  const auto keys = make_keys(env);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  Api api(env, keys, "api1");
  const auto member = token(keys, "acme", "member");
  json body{{"jobs", json::array()}};
  for (int index = 0; index < 200; ++index) body["jobs"].push_back({{"id", fmt::format("r-{}", index)}, {"noop", json::object()}});
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
