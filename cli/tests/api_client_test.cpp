#include "api_client.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "api_commands.h"
#include "core/rfc3339.h"
#include "kcron/codec.h"
#include "tenant_edit.h"
#include "text.h"

using namespace kcron;
using namespace kcron::cli;

namespace {

constexpr const char* kToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

// Answers each request with the next queued response (or the queued failure) and keeps the requests.
class FakeTransport final : public HttpTransport {
 public:
  Result<HttpResponse> send(const HttpRequest& request) override {
    requests.push_back(request);
    if (answers.empty()) return Error("no answer queued");
    auto answer = std::move(answers.front());
    answers.pop_front();
    return answer;
  }
  void answer(int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
    answers.emplace_back(HttpResponse{status, std::move(headers), std::move(body)});
  }

  std::vector<HttpRequest> requests;
  std::deque<Result<HttpResponse>> answers;
};

std::string header_of(const HttpRequest& request, const std::string& name) {
  for (const auto& [key, value] : request.headers) {
    if (key == name) return value;
  }
  return "<none>";
}

ApiTarget target(const std::string& tenant = "") {
  auto made = make_api_target("https://kcron.example.com/", kToken, tenant);
  REQUIRE(made.ok());
  return *made;
}

std::int64_t ms(const char* rfc3339) {
  return to_epoch_ms(*cron::parse_rfc3339(rfc3339));
}

v1::JobView sample_view() {
  v1::JobView view;
  view.set_id("report");
  view.set_tenant("acme");
  view.set_state(v1::SUCCEEDED);
  view.set_attempt(1);
  view.set_queue("default");
  (*view.mutable_labels())["team"] = "data";
  (*view.mutable_labels())["env"] = "prod";
  view.set_submitted_by("alice");
  view.set_submitted_ms(ms("2026-01-01T00:00:00Z"));
  view.set_due_ms(ms("2026-01-01T00:00:05Z"));
  view.set_updated_ms(ms("2026-01-01T00:00:06.250Z"));
  auto* queued = view.add_history();
  queued->set_state(v1::QUEUED);
  queued->set_attempt(1);
  queued->set_at_ms(ms("2026-01-01T00:00:05Z"));
  queued->set_component("dispatcher");
  auto* done = view.add_history();
  done->set_state(v1::SUCCEEDED);
  done->set_attempt(1);
  done->set_at_ms(ms("2026-01-01T00:00:06.250Z"));
  done->set_component("worker");
  done->set_reason("exit 0\nall good");
  return view;
}

std::string view_json(const std::string& id, v1::JobState state = v1::PENDING) {
  v1::JobView view;
  view.set_id(id);
  view.set_state(state);
  view.set_queue("default");
  view.set_submitted_ms(ms("2026-01-01T00:00:00Z"));
  return to_json(view);
}

}  // namespace

TEST_CASE("a job submitted through the API is posted as JSON with the bearer token and prints only the submitted line") {
  FakeTransport transport;
  transport.answer(202, R"({"id":"j1","tenant":"acme","consistency":"jobs/3/12","request_id":"r1"})",
                   {{"kcron-consistency", "jobs/3/12"}, {"Location", "/v1/jobs/j1"}});
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_submit(client, R"({"id":"j1","delay":"5s","noop":{}})", out, err) == 0);
  CHECK(out.str() == "submitted j1 for tenant acme\n");
  CHECK(err.str().empty());
  REQUIRE(transport.requests.size() == 1);
  const auto& request = transport.requests[0];
  CHECK(request.method == "POST");
  CHECK(request.url == "https://kcron.example.com/v1/jobs");
  CHECK(header_of(request, "Authorization") == std::string("Bearer ") + kToken);
  CHECK(header_of(request, "Content-Type") == "application/json");
  CHECK(header_of(request, "Kcron-Consistency") == "<none>");
  v1::Job sent;
  REQUIRE(decode_message(request.body, "application/json", sent).ok());
  CHECK(sent.id() == "j1");
  CHECK(sent.delay().seconds() == 5);
  CHECK(sent.has_noop());
}

TEST_CASE("a submit in the default tenant prints the id alone, as over Kafka") {
  FakeTransport transport;
  transport.answer(202, R"({"id":"generated-1","tenant":"default","consistency":"jobs/0/1","request_id":"r1"})");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_submit(client, R"({"noop":{}})", out, err) == 0);
  CHECK(out.str() == "submitted generated-1\n");
}

TEST_CASE("a Command JSON with cancel posts to the job's cancel route with its reason") {
  FakeTransport transport;
  transport.answer(202, R"({"id":"a b","state":"PENDING","consistency":"jobs/1/7","request_id":"r2"})");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_submit(client, R"({"cancel":{"job_id":"a b","reason":"not needed"}})", out, err) == 0);
  CHECK(out.str() == "cancel sent for a b\n");
  REQUIRE(transport.requests.size() == 1);
  CHECK(transport.requests[0].method == "POST");
  CHECK(transport.requests[0].url == "https://kcron.example.com/v1/jobs/a%20b:cancel");
  CHECK(transport.requests[0].body == R"({"reason":"not needed"})");
}

TEST_CASE("a cancel naming its tenant acts in that tenant, and one naming another than --tenant is refused before sending") {
  FakeTransport transport;
  transport.answer(202, R"({"id":"x","state":"PENDING","consistency":"jobs/1/7","request_id":"r2"})");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_submit(client, R"({"cancel":{"job_id":"x","tenant":"beta"}})", out, err) == 0);
  CHECK(transport.requests.at(0).url == "https://kcron.example.com/v1/jobs/x:cancel?tenant=beta");
  CHECK(transport.requests.at(0).body.empty());
  CHECK(out.str() == "cancel sent for x of tenant beta\n");

  ApiClient other(target("acme"), transport);
  REQUIRE(api_submit(other, R"({"cancel":{"job_id":"x","tenant":"beta"}})", out, err) == 1);
  CHECK(err.str() == "kcron: the JSON names tenant 'beta' but --tenant is 'acme'\n");
  CHECK(transport.requests.size() == 1);
}

TEST_CASE("a Command JSON with update puts the job at its id") {
  FakeTransport transport;
  transport.answer(202, R"({"id":"j1","consistency":"jobs/0/9","request_id":"r3"})");
  ApiClient client(target("acme"), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_submit(client, R"({"update":{"job":{"id":"j1","delay":"60s","noop":{}}}})", out, err) == 0);
  CHECK(out.str() == "submitted j1 for tenant acme\n");
  REQUIRE(transport.requests.size() == 1);
  CHECK(transport.requests[0].method == "PUT");
  CHECK(transport.requests[0].url == "https://kcron.example.com/v1/jobs/j1?tenant=acme");
  v1::Job sent;
  REQUIRE(decode_message(transport.requests[0].body, "application/json", sent).ok());
  CHECK(sent.delay().seconds() == 60);
}

TEST_CASE("commands the API does not serve are refused without a request") {
  FakeTransport transport;
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_submit(client, R"({"replay":{"job_id":"j1"}})", out, err) == 1);
  CHECK(err.str() == "kcron: a replay command is not available through the API yet; use Kafka access (without --api)\n");
  CHECK(transport.requests.empty());
  CHECK(api_refusal("tail") == "tail is not available through the API yet; use Kafka access (without --api)");
}

TEST_CASE("the consistency token of a write goes with the next request only") {
  FakeTransport transport;
  transport.answer(202, R"({"id":"j1","tenant":"acme","consistency":"jobs/3/12","request_id":"r1"})",
                   {{"Kcron-Consistency", "jobs/3/12"}});
  transport.answer(200, view_json("j1"));
  transport.answer(200, view_json("j1"));
  ApiClient client(target(), transport);
  v1::Job job;
  job.set_id("j1");
  job.mutable_noop();
  REQUIRE(client.submit(job).ok());
  REQUIRE(client.job("j1").ok());
  REQUIRE(client.job("j1").ok());
  REQUIRE(transport.requests.size() == 3);
  CHECK(header_of(transport.requests[1], "Kcron-Consistency") == "jobs/3/12");
  CHECK(header_of(transport.requests[2], "Kcron-Consistency") == "<none>");
}

TEST_CASE("a problem answer prints its detail, status, field and request id and exits 1") {
  FakeTransport transport;
  transport.answer(
      400,
      R"({"type":"about:blank","title":"Bad Request","status":400,"detail":"unknown field","field":"colour","request_id":"5f0c9a1e"})",
      {{"Content-Type", "application/problem+json"}, {"X-Request-Id", "5f0c9a1e"}});
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_submit(client, R"({"id":"j1","noop":{}})", out, err) == 1);
  CHECK(out.str().empty());
  CHECK(err.str() == "kcron: unknown field (HTTP 400, field colour, request 5f0c9a1e)\n");
}

TEST_CASE("a problem without a field leaves the field out, and an answer that is no problem shows its status and body") {
  FakeTransport transport;
  transport.answer(404, R"({"title":"Not Found","status":404,"detail":"no job \"nope\" in tenant acme","request_id":"ab12"})");
  transport.answer(502, "<html>Bad Gateway</html>");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_status(client, "nope", false, out, err) == 1);
  CHECK(api_status(client, "nope", false, out, err) == 1);
  CHECK(err.str() ==
        "kcron: no job \"nope\" in tenant acme (HTTP 404, request ab12)\n"
        "kcron: kcron-api answered HTTP 502: <html>Bad Gateway</html>\n");
}

TEST_CASE("a connection failure says where it tried and why, and never prints the token") {
  FakeTransport transport;
  transport.answers.emplace_back(Error("Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server"));
  auto made = make_api_target("http://user:secret@127.0.0.1:1", kToken, "");
  REQUIRE(made.ok());
  ApiClient client(*made, transport);
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_cancel(client, "j1", "", out, err) == 1);
  CHECK(
      err.str() ==
      "kcron: cannot reach kcron-api at http://127.0.0.1:1/v1/jobs/j1:cancel: Failed to connect to 127.0.0.1 port 1 after 0 ms: "
      "Couldn't connect to server\n");
  CHECK(err.str().find(kToken) == std::string::npos);
  CHECK(err.str().find("secret") == std::string::npos);
}

TEST_CASE("status prints the state, attempt, instants, labels and history as a table") {
  FakeTransport transport;
  transport.answer(200, to_json(sample_view()));
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_status(client, "report", false, out, err) == 0);
  CHECK(transport.requests.at(0).method == "GET");
  CHECK(transport.requests.at(0).url == "https://kcron.example.com/v1/jobs/report");
  CHECK(out.str() ==
        "job report: SUCCEEDED (attempt 1) at 2026-01-01T00:00:06.250Z\n"
        "  queue      default\n"
        "  due        2026-01-01T00:00:05.000Z\n"
        "  updated    2026-01-01T00:00:06.250Z\n"
        "  submitted  2026-01-01T00:00:00.000Z by alice\n"
        "  labels     env=prod,team=data\n"
        "AT                        STATE      ATTEMPT  BY         REASON\n"
        "2026-01-01T00:00:05.000Z  QUEUED           1  dispatcher \n"
        "2026-01-01T00:00:06.250Z  SUCCEEDED        1  worker     exit 0 all good\n");
}

TEST_CASE("status of a job no dispatcher decided on yet shows SUBMITTED and dashes for unset instants") {
  v1::JobView view;
  view.set_id("fresh");
  view.set_submitted_ms(ms("2026-01-01T00:00:00Z"));
  CHECK(job_view_text(view) ==
        "job fresh: SUBMITTED (attempt 0) at -\n"
        "  queue      -\n"
        "  due        -\n"
        "  updated    -\n"
        "  submitted  2026-01-01T00:00:00.000Z\n");
}

TEST_CASE("status --json prints the JobView as the API sent it, fields this kcron does not know included") {
  FakeTransport transport;
  const std::string body = R"({"id":"report","state":"RUNNING","attempt":2,"a_newer_field":{"x":1}})";
  transport.answer(200, body + "\n");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_status(client, "report", true, out, err) == 0);
  CHECK(out.str() == body + "\n");
}

TEST_CASE("jobs sends its filters as query parameters and follows next_page_token up to the limit") {
  FakeTransport transport;
  transport.answer(200, fmt::format(R"({{"jobs":[{},{}],"next_page_token":"p1"}})", view_json("j5"), view_json("j4")));
  transport.answer(200, R"({"jobs":[],"next_page_token":"p2"})");
  transport.answer(200, fmt::format(R"({{"jobs":[{},{}],"next_page_token":"p3"}})", view_json("j3"), view_json("j2")));
  ApiClient client(target("acme"), transport);
  JobsOptions options;
  options.filter.state = "PENDING";
  options.filter.label = "team=data&x";
  options.filter.since = "1767225600000";
  options.limit = 3;
  options.json = true;
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_jobs(client, options, out, err) == 0);
  CHECK(err.str().empty());
  REQUIRE(transport.requests.size() == 3);
  CHECK(transport.requests[0].url ==
        "https://kcron.example.com/v1/jobs?state=PENDING&label=team%3Ddata%26x&since=1767225600000&page_size=3&tenant=acme");
  CHECK(transport.requests[1].url ==
        "https://kcron.example.com/v1/"
        "jobs?state=PENDING&label=team%3Ddata%26x&since=1767225600000&page_size=1&page_token=p1&tenant=acme");
  CHECK(transport.requests[2].url ==
        "https://kcron.example.com/v1/"
        "jobs?state=PENDING&label=team%3Ddata%26x&since=1767225600000&page_size=1&page_token=p2&tenant=acme");
  CHECK(out.str() == view_json("j5") + "\n" + view_json("j4") + "\n" + view_json("j3") + "\n");
}

TEST_CASE("jobs prints a table and stops when no next_page_token comes back") {
  FakeTransport transport;
  transport.answer(200, fmt::format(R"({{"jobs":[{}]}})", view_json("only", v1::QUEUED)));
  ApiClient client(target(), transport);
  JobsOptions options;
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_jobs(client, options, out, err) == 0);
  CHECK(transport.requests.size() == 1);
  CHECK(transport.requests[0].url == "https://kcron.example.com/v1/jobs?page_size=100");
  CHECK(out.str() == jobs_table_header() + jobs_table_row([] {
                       v1::JobView view;
                       view.set_id("only");
                       view.set_state(v1::QUEUED);
                       view.set_queue("default");
                       view.set_submitted_ms(ms("2026-01-01T00:00:00Z"));
                       return view;
                     }()));
  CHECK(jobs_table_row(sample_view())
            .starts_with("report                           SUCCEEDED        1  default      2026-01-01T00:00:00.000Z"));
}

TEST_CASE("a token given as @FILE is read from the file without its newline") {
  const std::string path = "api_client_test.token";
  std::ofstream(path) << kToken << "\n";
  auto read = resolve_token("@" + path);
  std::remove(path.c_str());
  REQUIRE(read.ok());
  CHECK(*read == kToken);
  auto missing = resolve_token("@/nonexistent/kcron-token");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message() == "--token @/nonexistent/kcron-token: cannot read the file");
}

TEST_CASE("a missing token, a token with a space and a URL that is not http or https are refused without quoting the token") {
  auto none = make_api_target("https://kcron.example.com", "", "");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message() == "--api needs a token: --token T, --token @FILE or KCRON_API_TOKEN");
  auto spaced = make_api_target("https://kcron.example.com", "abc def", "");
  REQUIRE_FALSE(spaced.ok());
  CHECK(spaced.error().message() == "the token holds a space or a control character; a JWT has none");
  auto ftp = make_api_target("ftp://kcron.example.com", kToken, "");
  REQUIRE_FALSE(ftp.ok());
  CHECK(ftp.error().message() ==
        "--api takes an http:// or https:// URL, e.g. https://kcron.example.com (got 'ftp://kcron.example.com')");
  auto bare = make_api_target("kcron.example.com:8080", kToken, "");
  REQUIRE_FALSE(bare.ok());
  auto with_path = make_api_target("https://gateway.example.com/kcron/", kToken, "");
  REQUIRE(with_path.ok());
  CHECK(with_path->base_url == "https://gateway.example.com/kcron");
}

TEST_CASE("tenant settings are read with GET and changed with a merge patch naming only the given fields") {
  FakeTransport transport;
  ApiClient client(target(), transport);
  client.set_tenant("acme");
  transport.answer(200,
                   R"({"name":"acme","limits":{"max_pending_jobs":"20"},"admin_ceilings":{"max_pending_jobs":"50"},"future":1})");
  auto settings = client.tenant_settings();
  REQUIRE(settings.ok());
  CHECK(settings->limits().max_pending_jobs() == 20);
  CHECK(settings->admin_ceilings().max_pending_jobs() == 50);
  CHECK(transport.requests.back().url == "https://kcron.example.com/v1/tenant?tenant=acme");

  TenantEdit edit;
  edit.max_pending_jobs = 30;
  edit.description = "payments";
  const auto body = tenant_patch_body(edit);
  CHECK(body == R"({"description":"payments","limits":{"max_pending_jobs":30}})");
  transport.answer(
      202,
      R"({"id":"acme","settings":{"name":"acme","limits":{"max_pending_jobs":"30"}},"consistency":"tenants/0/4","request_id":"r1"})",
      {{"Kcron-Consistency", "tenants/0/4"}});
  auto patched = client.patch_tenant(body);
  REQUIRE(patched.ok());
  CHECK(patched->limits().max_pending_jobs() == 30);
  const auto& sent = transport.requests.back();
  CHECK(sent.method == "PATCH");
  CHECK(header_of(sent, "Content-Type") == "application/merge-patch+json");
  CHECK(sent.body == body);
  // The write's token goes with the next read.
  transport.answer(200, R"({"name":"acme"})");
  REQUIRE(client.tenant_settings().ok());
  CHECK(header_of(transport.requests.back(), "Kcron-Consistency") == "tenants/0/4");

  transport.answer(
      403, R"({"status":403,"title":"Forbidden","detail":"an admin may set it from 1 to 50","field":"limits.max_pending_jobs"})");
  auto refused = client.patch_tenant(R"({"limits":{"max_pending_jobs":60}})");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message() == "an admin may set it from 1 to 50 (HTTP 403, field limits.max_pending_jobs)");
}

TEST_CASE("workers through the API print the Kafka table, live from the API's judgement, dispatchers left out") {
  FakeTransport transport;
  ApiClient client(target(), transport);
  transport.answer(
      200,
      R"({"workers":[)"
      R"({"worker_id":"w2","host":"h2","queues":["default"],"slots":4,"at_ms":"1767225590000","interval_ms":"5000","alive":true},)"
      R"({"worker_id":"d1","role":"dispatcher","at_ms":"1767225590000","alive":true},)"
      R"({"worker_id":"w1","host":"h1","slots":2,"at_ms":"1767225500000","stopped":true,"alive":false}]})");
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_workers(client, false, instant_from_ms(1767225600000), out, err) == 0);
  CHECK(out.str() ==
        workers_table_header() +
            "w1                   stopped  h1                                        2       0       0.0      0.0      100.0\n"
            "w2                   live     h2               default                  4       0       0.0      0.0       10.0\n");
  CHECK(transport.requests.back().url == "https://kcron.example.com/v1/workers");
}

TEST_CASE(
    "dlq list through the API pages newest first and prints the newest N oldest first, and replay --all replays each DEAD job") {
  FakeTransport transport;
  ApiClient client(target(), transport);
  const auto letter = [](const char* id, const char* state, const char* at) {
    return fmt::format(R"({{"id":"{}","source":"s","letter":{{"state":"{}","at_ms":"{}","tenant":"acme","reason":"r",)"
                       R"("job":{{"id":"{}","tenant":"acme","noop":{{}}}}}}}})",
                       id, state, at, id);
  };
  transport.answer(200, fmt::format(R"({{"dead_letters":[{},{}],"next_page_token":"ab"}})", letter("j3", "DEAD", "3000"),
                                    letter("j2", "REJECTED", "2000")));
  transport.answer(200, fmt::format(R"({{"dead_letters":[{}]}})", letter("j1", "DEAD", "1000")));
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_dead_letters(client, 0, true, out, err) == 0);
  CHECK(transport.requests.size() == 2);
  CHECK_THAT(transport.requests[1].url, Catch::Contains("page_token=ab"));
  std::istringstream lines(out.str());
  std::string line;
  std::vector<std::string> order;
  while (std::getline(lines, line)) order.push_back(nlohmann::json::parse(line)["job"]["id"]);
  CHECK(order == std::vector<std::string>{"j1", "j2", "j3"});

  // -n 1: the newest only, one page of one.
  transport.answer(200, fmt::format(R"({{"dead_letters":[{}],"next_page_token":"cd"}})", letter("j3", "DEAD", "3000")));
  std::ostringstream newest;
  REQUIRE(api_dead_letters(client, 1, false, newest, err) == 0);
  CHECK_THAT(transport.requests.back().url, Catch::Contains("page_size=1"));
  CHECK(newest.str() ==
        dead_letters_table_header() +
            "1970-01-01T00:00:03.000Z  DEAD      acme             j3                                      0  r\n");

  transport.answer(200, fmt::format(R"({{"dead_letters":[{},{},{}]}})", letter("j3", "DEAD", "3000"),
                                    letter("j2", "REJECTED", "2000"), letter("j1", "DEAD", "1000")));
  transport.answer(202, R"({"id":"j1","consistency":"jobs/0/1","request_id":"r1"})");
  transport.answer(409, R"({"status":409,"title":"Conflict","detail":"j3 is not DEAD"})");
  std::ostringstream replayed;
  std::ostringstream replay_err;
  CHECK(api_replay(client, {}, true, replayed, replay_err) == 1);
  CHECK(replayed.str() == "replay sent for j1\n");
  CHECK(replay_err.str() == "kcron: j3: j3 is not DEAD (HTTP 409)\n");
  CHECK(transport.requests[transport.requests.size() - 2].url == "https://kcron.example.com/v1/dead-letters/j1:replay");
}

TEST_CASE("audit through the API stops paging once records are older than --since and filters by outcome") {
  FakeTransport transport;
  ApiClient client(target(), transport);
  transport.answer(200, R"({"records":[{"action":"submit","job_id":"a","outcome":"REJECTED","at_ms":"5000"},)"
                        R"({"action":"submit","job_id":"b","outcome":"ACCEPTED","at_ms":"4000"}],"next_page_token":"ee"})");
  transport.answer(200, R"({"records":[{"action":"submit","job_id":"c","outcome":"REJECTED","at_ms":"3000"},)"
                        R"({"action":"submit","job_id":"d","outcome":"REJECTED","at_ms":"1000"}],"next_page_token":"ff"})");
  auto filter = make_audit_filter("", "", "rejected", instant_from_ms(2000));
  REQUIRE(filter.ok());
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_audit(client, *filter, 0, true, out, err) == 0);
  CHECK(transport.requests.size() == 2);  // the second page reached before --since: no third request
  std::istringstream lines(out.str());
  std::string line;
  std::vector<std::string> ids;
  while (std::getline(lines, line)) ids.push_back(nlohmann::json::parse(line)["job_id"]);
  CHECK(ids == std::vector<std::string>{"c", "a"});
}

TEST_CASE("schedule put and delete through the API go to the schedule's route with its JSON") {
  FakeTransport transport;
  ApiClient client(target(), transport);
  transport.answer(202, R"({"id":"nightly","created":true,"consistency":"schedules/0/3","request_id":"r1"})");
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_schedule_put(client, R"({"id":"nightly","expression":"0 2 * * *","job_template":{"noop":{}}})", out, err) == 0);
  CHECK(out.str() == "put schedule nightly\n");
  CHECK(transport.requests.back().method == "PUT");
  CHECK(transport.requests.back().url == "https://kcron.example.com/v1/schedules/nightly");
  CHECK(nlohmann::json::parse(transport.requests.back().body)["expression"] == "0 2 * * *");
  CHECK(api_schedule_put(client, R"({"expression":"0 2 * * *"})", out, err) == 1);
  CHECK(err.str() == "kcron: the schedule needs an id\n");
  transport.answer(404, R"({"status":404,"title":"Not Found","detail":"no schedule \"gone\" in tenant acme"})");
  std::ostringstream missing;
  CHECK(api_schedule_delete(client, "gone", out, missing) == 1);
  CHECK(transport.requests.back().method == "DELETE");
  CHECK(missing.str() == "kcron: no schedule \"gone\" in tenant acme (HTTP 404)\n");
}

TEST_CASE("a submit by template through the API posts the template body and prints the rendered job's id") {
  FakeTransport transport;
  transport.answer(202,
                   R"({"id":"report-mon","tenant":"acme","template":"report@3","consistency":"jobs/3/12","request_id":"r1"})");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  REQUIRE(api_submit_template(client, "report@3", {"day=mon", "n=5"}, "special", out, err) == 0);
  CHECK(out.str() == "submitted report-mon from template report@3 for tenant acme\n");
  REQUIRE(transport.requests.size() == 1);
  CHECK(transport.requests[0].url == "https://kcron.example.com/v1/jobs");
  CHECK(nlohmann::json::parse(transport.requests[0].body) ==
        nlohmann::json{{"template", "report@3"}, {"params", {{"day", "mon"}, {"n", "5"}}}, {"id", "special"}});
  std::ostringstream refused;
  CHECK(api_submit_template(client, "report", {}, "", out, refused) == 1);  // a version is required, nothing sent
  CHECK(refused.str().find("version") != std::string::npos);
  CHECK(transport.requests.size() == 1);
}

namespace {

// Run key "run-1"; each wait recorded in `waits` (when given) instead of slept.
ApiBatchOptions batch_options(std::vector<std::chrono::milliseconds>* waits = nullptr) {
  ApiBatchOptions options;
  options.run_key = "run-1";
  options.sleep = [waits](std::chrono::milliseconds wait) {
    if (waits != nullptr) waits->push_back(wait);
  };
  return options;
}

}  // namespace

TEST_CASE(
    "a batch file through the API goes in requests of 1,000 lines, prints each line's result by its file line, exits 1 on a "
    "refusal") {
  std::string text = "{\"template\":\"report@3\",\"params\":{}}\n\n";  // line 1, then a blank line 2
  for (int index = 0; index < 1000; ++index) text += fmt::format("{{\"id\":\"j{}\",\"noop\":{{}}}}\n", index);  // lines 3-1002
  FakeTransport transport;
  nlohmann::json first{{"results", nlohmann::json::array()}, {"tenant", "acme"}, {"request_id", "r1"}};
  first["results"].push_back(
      {{"status", 400}, {"detail", "template 'report@3': required parameter 'day' is missing"}, {"field", "params"}});
  for (int index = 0; index < 999; ++index) first["results"].push_back({{"status", 202}, {"id", fmt::format("j{}", index)}});
  transport.answer(200, first.dump(), {{"Kcron-Consistency", "jobs/0/9"}});
  transport.answer(200, R"({"results":[{"status":202,"id":"j999","consistency":"jobs/1/3"}],"tenant":"acme","request_id":"r2"})");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_submit_batch(client, text, batch_options(), out, err) == 1);
  REQUIRE(transport.requests.size() == 2);
  CHECK(header_of(transport.requests[0], "Idempotency-Key") == "run-1#c0");
  CHECK(header_of(transport.requests[1], "Idempotency-Key") == "run-1#c1");
  CHECK(transport.requests[0].url == "https://kcron.example.com/v1/jobs:batch");
  CHECK(nlohmann::json::parse(transport.requests[0].body)["jobs"].size() == 1000);
  CHECK(nlohmann::json::parse(transport.requests[1].body)["jobs"] ==
        nlohmann::json::array({{{"id", "j999"}, {"noop", nlohmann::json::object()}}}));
  CHECK(header_of(transport.requests[1], "Kcron-Consistency") == "jobs/0/9");
  CHECK(err.str() ==
        "kcron: line 1: template 'report@3': required parameter 'day' is missing (HTTP 400, field params, request r1)\n");
  CHECK(out.str().starts_with("line 3: submitted j0\nline 4: submitted j1\n"));
  CHECK(out.str().ends_with("line 1002: submitted j999\nsubmitted 1000 jobs in 2 requests for tenant acme; 1 line refused\n"));
  CHECK(out.str().find(kToken) == std::string::npos);
  CHECK(err.str().find(kToken) == std::string::npos);
}

TEST_CASE("a batch file through the API stops at a request that fails and names the lines not confirmed") {
  std::string text;
  for (int index = 0; index < 1001; ++index) text += fmt::format("{{\"id\":\"j{}\",\"noop\":{{}}}}\n", index);
  FakeTransport transport;
  nlohmann::json first{{"results", nlohmann::json::array()}, {"tenant", "default"}, {"request_id", "r1"}};
  for (int index = 0; index < 1000; ++index) first["results"].push_back({{"status", 202}, {"id", fmt::format("j{}", index)}});
  transport.answer(200, first.dump());
  transport.answer(
      503,
      R"({"status":503,"detail":"Kafka did not acknowledge the write; retry with the same Idempotency-Key","request_id":"r2"})");
  ApiClient client(target(), transport);
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_submit_batch(client, text, batch_options(), out, err) == 1);
  CHECK(transport.requests.size() == 2);  // a 503 without Retry-After is not sent again
  CHECK(err.str() ==
        "kcron: line 1001: Kafka did not acknowledge the write; retry with the same Idempotency-Key (HTTP 503, request r2)\n");
  CHECK(
      out.str().ends_with("submitted 1000 jobs in 1 request; line 1001 not confirmed: send the file again with "
                          "--idempotency-key run-1 (its lines keep their ids, so none is submitted twice)\n"));

  FakeTransport none;
  ApiClient nothing(target(), none);
  std::ostringstream no_out;
  std::ostringstream no_err;
  CHECK(api_submit_batch(nothing, "{\"id\":\"a\",\"noop\":{}}\n[]\n", batch_options(), no_out, no_err) ==
        1);  // refused before sending
  CHECK(no_err.str().starts_with("kcron: line 2: not a JSON object"));
  CHECK(none.requests.empty());
}

TEST_CASE("a batch chunk refused with 429 is sent again as it was after Retry-After, with a note, and the run goes on") {
  const std::string text = "{\"id\":\"a\",\"noop\":{}}\n{\"template\":\"report@3\"}\n";
  FakeTransport transport;
  transport.answer(429,
                   R"({"status":429,"detail":"tenant acme is over 2000 submissions per second; retry in 2 s","request_id":"r1"})",
                   {{"Retry-After", "2"}});
  transport.answer(503, R"({"status":503,"detail":"Kafka did not acknowledge the write; retry with the same Idempotency-Key"})",
                   {{"Retry-After", "1"}});
  transport.answer(
      200, R"({"results":[{"status":202,"id":"a"},{"status":202,"id":"report-x","template":"report@3"}],"tenant":"acme"})");
  ApiClient client(target(), transport);
  std::vector<std::chrono::milliseconds> waits;
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_submit_batch(client, text, batch_options(&waits), out, err) == 0);
  REQUIRE(transport.requests.size() == 3);
  for (const auto& request : transport.requests) {
    CHECK(request.body == transport.requests[0].body);
    CHECK(header_of(request, "Idempotency-Key") == "run-1#c0");
  }
  CHECK(waits == std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(2000), std::chrono::milliseconds(1000)});
  CHECK(err.str() ==
        "kcron: lines 1-2: tenant acme is over 2000 submissions per second; retry in 2 s (HTTP 429, request r1); sending them "
        "again in 2000 ms\n"
        "kcron: lines 1-2: Kafka did not acknowledge the write; retry with the same Idempotency-Key (HTTP 503); sending them "
        "again in 1000 ms\n");
  CHECK(out.str() ==
        "line 1: submitted a\nline 2: submitted report-x from template report@3\nsubmitted 2 jobs in 1 request for "
        "tenant acme\n");
}

TEST_CASE("a batch chunk refused with 429 every time is sent a bounded number of times and the run stops with exit 1") {
  const std::string text = "{\"id\":\"a\",\"noop\":{}}\n";
  const auto busy = R"({"status":429,"detail":"tenant acme is over 2000 submissions per second; retry in 1 s"})";
  FakeTransport transport;
  for (int index = 0; index < 10; ++index) transport.answer(429, busy, {{"Retry-After", "1"}});
  ApiClient client(target(), transport);
  std::vector<std::chrono::milliseconds> waits;
  auto options = batch_options(&waits);
  options.max_resends = 3;
  std::ostringstream out;
  std::ostringstream err;
  CHECK(api_submit_batch(client, text, options, out, err) == 1);
  CHECK(transport.requests.size() == 4);  // sent, then 3 times again
  CHECK(waits.size() == 3);
  CHECK(
      err.str().ends_with("kcron: line 1: tenant acme is over 2000 submissions per second; retry in 1 s (HTTP 429); sent 4 "
                          "times, waited 3 s in all: stopped\n"));
  CHECK(out.str() ==
        "submitted 0 jobs in 0 requests; line 1 not confirmed: send the file again with --idempotency-key run-1 "
        "(its lines keep their ids, so none is submitted twice)\n");

  // A long Retry-After is waited at most max_wait each, and all waits at most max_total_wait.
  FakeTransport slow;
  for (int index = 0; index < 10; ++index) slow.answer(429, busy, {{"Retry-After", "600"}});
  slow.answer(503, "no", {});
  ApiClient slow_client(target(), slow);
  std::vector<std::chrono::milliseconds> slow_waits;
  auto bounded = batch_options(&slow_waits);
  bounded.max_total_wait = std::chrono::milliseconds(70000);
  std::ostringstream slow_out;
  std::ostringstream slow_err;
  CHECK(api_submit_batch(slow_client, text, bounded, slow_out, slow_err) == 1);
  CHECK(slow_waits == std::vector<std::chrono::milliseconds>(2, std::chrono::milliseconds(30000)));
  CHECK(slow.requests.size() == 3);
  CHECK(slow_err.str().ends_with("sent 3 times, waited 60 s in all: stopped\n"));
}
