// `kcron --api URL --token T` end to end: the CLI's submit, status, jobs and cancel through a
// kcron-api in front of a dispatcher and a worker on the real broker, with no Kafka access
// given to the CLI (its brokers point nowhere). Catch's -# tags these [#cli_api_test], so CTest
// names them "integration:cli_api: ...".
#include <fmt/format.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "auth/jwt.h"
#include "support/api_keys.h"
#include "support/harness.h"

using namespace kcron::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A kcron-api of the test, its port read from its log.
std::pair<std::unique_ptr<Process>, int> start_api(const TestEnv& env, const ApiKeys& keys) {
  const auto log_path = env.state_root + "/api1.log";
  auto process =
      start_program(env, "kcron-api", "api1", "api1", {"KCRON_API_PORT=0", "KCRON_AUTH_JWKS_FILE=" + keys.jwks_path}, false);
  // It listens only after its view started and its upgrade gate answered: wait for both lines.
  REQUIRE(wait_for_log(*process, "event=api_listening", 60s));
  REQUIRE(wait_for_log(*process, "event=view_caught_up", 60s));
  const int port = api_port_from_log(log_path);
  REQUIRE(port > 0);
  return {std::move(process), port};
}

// Runs `kcron <arguments>` with `environment` (NAME=value words) and brokers that do not exist:
// whatever works here worked through the API. stdout and stderr together.
CliRun run_kcron(const std::string& environment, const std::string& arguments) {
  const auto command = fmt::format("env -u KCRON_API_URL -u KCRON_API_TOKEN KCRON_BROKERS=127.0.0.1:1 {} '{}' {} 2>&1",
                                   environment, program_path("kcron"), arguments);
  CliRun run;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (const auto read = fread(buffer, 1, sizeof buffer, pipe)) run.output.append(buffer, read);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// `kcron status ID` until its first line shows `state` (bounded); the last output.
std::string wait_for_status(const std::string& api_args, const std::string& id, const std::string& state,
                            std::chrono::seconds timeout = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto run = run_kcron("", fmt::format("{} status {}", api_args, id));
    last = run.output;
    if (run.exit_code == 0 && last.starts_with(fmt::format("job {}: {} ", id, state))) return last;
    std::this_thread::sleep_for(200ms);
  }
  FAIL("job " << id << " did not reach " << state << "; last: " << last);
  return last;
}

// `kcron <arguments>` again until `done` holds for its run (bounded: each kcron is a new process,
// so what an earlier one wrote reaches the API's view a moment later); the last run.
CliRun run_until(const std::string& arguments, const std::function<bool(const CliRun&)>& done,
                 std::chrono::seconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  CliRun run = run_kcron("", arguments);
  while (!done(run) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(200ms);
    run = run_kcron("", arguments);
  }
  return run;
}

bool contains(const CliRun& run, const std::string& text) {
  return run.exit_code == 0 && run.output.find(text) != std::string::npos;
}

std::vector<std::string> table_ids(const std::string& table) {
  std::vector<std::string> ids;
  std::istringstream lines(table);
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) ids.push_back(line.substr(0, line.find(' ')));
  return ids;
}

}  // namespace

TEST_CASE("kcron --api submits, shows, lists, updates and cancels jobs through kcron-api without Kafka access", "[integration]") {
  TestEnv env("cli-api");
  const auto keys = make_api_keys(env, "cli-key");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  auto [api, port] = start_api(env, keys);
  const auto url = fmt::format("http://127.0.0.1:{}", port);
  const auto member = api_token(keys, "acme", "member");
  const auto api_args = fmt::format("--api {} --token {}", url, member);

  // submit: one line; the job runs.
  auto submitted = run_kcron("", api_args + R"( submit '{"id":"cli-1","noop":{},"labels":{"team":"data"}}')");
  INFO(submitted.output);
  REQUIRE(submitted.exit_code == 0);
  CHECK(submitted.output == "submitted cli-1 for tenant acme\n");
  const auto done = wait_for_status(api_args, "cli-1", "SUCCEEDED");
  INFO(done);
  CHECK_THAT(done,
             Catch::Contains("  submitted  ") && Catch::Contains(" by alice\n") && Catch::Contains("  labels     team=data\n"));
  CHECK_THAT(done, Catch::Contains("AT                        STATE      ATTEMPT  BY         REASON\n"));
  CHECK(std::regex_search(done, std::regex(R"(\n\S+Z +QUEUED +0  dispatcher )")));
  CHECK(std::regex_search(done, std::regex(R"(\n\S+Z +SUCCEEDED +0  worker )")));

  // status --json: the JobView.
  const auto as_json = run_kcron("", api_args + " status cli-1 --json");
  REQUIRE(as_json.exit_code == 0);
  const auto view = json::parse(as_json.output);
  CHECK(view["id"] == "cli-1");
  CHECK(view["tenant"] == "acme");
  CHECK(view["state"] == "SUCCEEDED");
  CHECK(view["labels"]["team"] == "data");

  // The token from a file and the URL from the environment; a job that waits an hour.
  const auto token_file = env.state_root + "/member.jwt";
  std::ofstream(token_file) << member << "\n";
  const auto waiting_submit =
      run_kcron(fmt::format("KCRON_API_URL={}", url),
                fmt::format(R"(--token @{} submit '{{"id":"cli-2","delay":"3600s","noop":{{}}}}')", token_file));
  INFO(waiting_submit.output);
  REQUIRE(waiting_submit.exit_code == 0);
  CHECK(waiting_submit.output == "submitted cli-2 for tenant acme\n");
  wait_for_status(api_args, "cli-2", "PENDING");

  // jobs: newest first, filtered, limited; JSON lines with --json.
  const auto all = run_kcron("", api_args + " jobs");
  INFO(all.output);
  REQUIRE(all.exit_code == 0);
  CHECK(all.output.starts_with("JOB "));
  CHECK(table_ids(all.output) == std::vector<std::string>{"cli-2", "cli-1"});
  CHECK(table_ids(run_kcron("", api_args + " jobs --state pending").output) == std::vector<std::string>{"cli-2"});
  CHECK(table_ids(run_kcron("", api_args + " jobs --label team=data").output) == std::vector<std::string>{"cli-1"});
  CHECK(table_ids(run_kcron("", api_args + " jobs --limit 1").output) == std::vector<std::string>{"cli-2"});
  CHECK(table_ids(run_kcron("", api_args + " jobs --since 1h").output) == std::vector<std::string>{"cli-2", "cli-1"});
  CHECK(table_ids(run_kcron("", api_args + " jobs --since 2999-01-01T00:00:00Z").output).empty());
  const auto lines = run_kcron("", api_args + " jobs --json --state SUCCEEDED");
  REQUIRE(lines.exit_code == 0);
  CHECK(json::parse(lines.output)["id"] == "cli-1");

  // A Command JSON with update replaces the waiting job's definition.
  const auto updated =
      run_kcron("", api_args + R"( submit '{"update":{"job":{"id":"cli-2","delay":"3600s","noop":{},"labels":{"v":"2"}}}}')");
  INFO(updated.output);
  REQUIRE(updated.exit_code == 0);
  CHECK(updated.output == "submitted cli-2\n");
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  json latest;
  while (std::chrono::steady_clock::now() < deadline) {
    latest = json::parse(run_kcron("", api_args + " status cli-2 --json").output, nullptr, false);
    if (!latest.is_discarded() && latest["job"]["labels"].contains("v")) break;
    std::this_thread::sleep_for(200ms);
  }
  CHECK(latest["job"]["labels"]["v"] == "2");

  // cancel with a reason; the dispatcher's CANCELLED reaches the view.
  const auto cancelled = run_kcron("", api_args + " cancel cli-2 --reason 'not needed'");
  INFO(cancelled.output);
  REQUIRE(cancelled.exit_code == 0);
  CHECK(cancelled.output == "cancel sent for cli-2\n");
  const auto shown = wait_for_status(api_args, "cli-2", "CANCELLED");
  CHECK_THAT(shown, Catch::Contains(" - not needed\n"));
}

TEST_CASE("kcron --api prints the API's refusals with status and request id, never the token, and exits 1", "[integration]") {
  TestEnv env("cli-api-errors");
  const auto keys = make_api_keys(env, "cli-key");
  auto [api, port] = start_api(env, keys);
  const auto url = fmt::format("http://127.0.0.1:{}", port);
  const auto viewer = api_token(keys, "acme", "viewer");

  const auto missing = run_kcron("", fmt::format("--api {} --token {} status nope", url, viewer));
  CHECK(missing.exit_code == 1);
  CHECK(std::regex_match(missing.output, std::regex(R"(kcron: no job "nope" in tenant acme \(HTTP 404, request [0-9a-f]+\)\n)")));

  const auto refused = run_kcron("", fmt::format(R"(--api {} --token {} submit '{{"id":"x","noop":{{}}}}')", url, viewer));
  CHECK(refused.exit_code == 1);
  CHECK(std::regex_match(refused.output, std::regex(R"(kcron: .+ \(HTTP 403, request [0-9a-f]+\)\n)")));
  CHECK(refused.output.find(viewer) == std::string::npos);

  const auto bad_field = run_kcron("", fmt::format(R"(--api {} --token {} jobs --state sideways)", url, viewer));
  CHECK(bad_field.exit_code == 1);
  CHECK(std::regex_match(bad_field.output,
                         std::regex(R"(kcron: unknown state 'SIDEWAYS' .+ \(HTTP 400, field state, request [0-9a-f]+\)\n)")));

  const auto forged = viewer.substr(0, viewer.size() - 4) + "AAAA";
  const auto unauthorized = run_kcron("", fmt::format("--api {} --token {} jobs", url, forged));
  CHECK(unauthorized.exit_code == 1);
  CHECK_THAT(unauthorized.output, Catch::Contains("(HTTP 401, request "));
  CHECK(unauthorized.output.find(forged) == std::string::npos);

  const auto other_tenant = run_kcron("", fmt::format("--api {} --token {} --tenant beta jobs", url, viewer));
  CHECK(other_tenant.exit_code == 1);
  CHECK(std::regex_match(
      other_tenant.output,
      std::regex(
          R"(kcron: only the system role may act in another tenant \(\?tenant=\) \(HTTP 403, field tenant, request [0-9a-f]+\)\n)")));

  const auto served_not = run_kcron("", fmt::format("--api {} --token {} tail results", url, viewer));
  CHECK(served_not.exit_code == 1);
  CHECK(served_not.output == "kcron: tail is not available through the API yet; use Kafka access (without --api)\n");
}

TEST_CASE("kcron --api tenant set and get change and show a tenant's settings, an admin within the operators' ceilings",
          "[integration]") {
  TestEnv env("cli-api-tenant");
  const auto keys = make_api_keys(env, "cli-key");
  auto [api, port] = start_api(env, keys);
  const auto url = fmt::format("http://127.0.0.1:{}", port);
  const auto operators = fmt::format("--api {} --token {}", url, api_token(keys, "ops", "system", "root"));
  const auto admin = fmt::format("--api {} --token {}", url, api_token(keys, "acme", "admin", "ann"));
  // `tenant get` until its output contains `text` (each kcron is a new process: no read-your-writes token).
  const auto wait_for_get = [&](const std::string& args, const std::string& text, const std::string& flags = "") {
    auto run =
        run_until(fmt::format("{} tenant get acme{}", args, flags), [&](const CliRun& each) { return contains(each, text); });
    INFO("tenant get never showed '" << text << "'; last: " << run.output);
    CHECK(contains(run, text));
    return run;
  };

  const auto unregistered = run_kcron("", admin + " tenant set acme --description mine");
  CHECK(unregistered.exit_code == 1);
  CHECK_THAT(unregistered.output, Catch::Contains("no settings record"));

  const auto ceiling = run_kcron("", operators + " tenant set acme --admin-max-pending 50 --description payments");
  INFO(ceiling.output);
  CHECK(ceiling.exit_code == 0);
  CHECK(ceiling.output == "updated tenant acme\n");
  wait_for_get(admin, "admin may set up to: max pending 50, max rate -/s, max running -\n");

  const auto uncapped = run_kcron("", admin + " tenant set acme --max-running 3");
  CHECK(uncapped.exit_code == 1);
  CHECK_THAT(uncapped.output, Catch::Contains("(HTTP 403, field limits.max_running_jobs, request "));
  const auto over = run_kcron("", admin + " tenant set acme --max-pending 60");
  CHECK(over.exit_code == 1);
  CHECK_THAT(over.output, Catch::Contains("from 1 to 50"));
  const auto queues = run_kcron("", admin + " tenant set acme --queues gpu");
  CHECK(queues.exit_code == 1);
  CHECK_THAT(queues.output, Catch::Contains("field allowed_queues"));

  const auto within = run_kcron("", admin + " tenant set acme --max-pending 30");
  INFO(within.output);
  CHECK(within.exit_code == 0);
  const auto shown = wait_for_get(admin, "max pending jobs: 30\n");
  CHECK_THAT(shown.output, Catch::Contains("description: payments\n"));
  const auto as_json = wait_for_get(admin, R"("max_pending_jobs":"30")", " --json");
  CHECK(as_json.output.starts_with(R"({"name":"acme")"));

  // Another tenant's admin cannot name acme; create, list and delete stay operator tools over Kafka.
  const auto other = run_kcron("", fmt::format("--api {} --token {} tenant get acme", url, api_token(keys, "beta", "admin")));
  CHECK(other.exit_code == 1);
  CHECK_THAT(other.output, Catch::Contains("HTTP 403, field tenant"));
  const auto create = run_kcron("", operators + " tenant create gamma");
  CHECK(create.exit_code == 1);
  CHECK(create.output == "kcron: tenant create is not available through the API yet; use Kafka access (without --api)\n");
}

TEST_CASE("kcron --api lists and replays dead letters, lists workers, reads the audit log and puts and deletes schedules",
          "[integration]") {
  TestEnv env("cli-api-dlq");
  const auto keys = make_api_keys(env, "cli-key");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  auto [api, port] = start_api(env, keys);
  const auto url = fmt::format("http://127.0.0.1:{}", port);
  const auto member = fmt::format("--api {} --token {}", url, api_token(keys, "acme", "member"));
  const auto operators = fmt::format("--api {} --token {}", url, api_token(keys, "acme", "operator", "olga"));
  const auto admin = fmt::format("--api {} --token {}", url, api_token(keys, "acme", "admin", "ann"));

  // A job that fails once with no retries dies; its letter is listed, then replayed by an operator.
  REQUIRE(run_kcron("", member + R"( submit '{"id":"flaky","sleep":{"duration":"0s","fail":true},"retry":{"max_retries":0}}')")
              .exit_code == 0);
  wait_for_status(member, "flaky", "DEAD");
  const auto listed = run_until(member + " dlq list", [](const CliRun& run) { return contains(run, "flaky"); });
  INFO(listed.output);
  REQUIRE(listed.exit_code == 0);
  CHECK(listed.output.starts_with("AT                        STATE     TENANT"));
  CHECK_THAT(listed.output, Catch::Contains(" DEAD      acme             flaky "));
  const auto as_json = run_kcron("", member + " dlq list --json -n 1");
  CHECK(json::parse(as_json.output)["job"]["id"] == "flaky");

  const auto refused = run_kcron("", member + " dlq replay flaky");
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("HTTP 403"));
  const auto replayed = run_kcron("", operators + " dlq replay --all");
  INFO(replayed.output);
  CHECK(replayed.exit_code == 0);
  CHECK(replayed.output == "replay sent for flaky\n");
  const auto missing = run_kcron("", operators + " dlq replay nope");
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Catch::Contains("kcron: nope: "));

  // The worker's heartbeat, as over Kafka.
  const auto workers = run_until(member + " workers", [](const CliRun& run) { return contains(run, " live "); });
  INFO(workers.output);
  CHECK(workers.exit_code == 0);
  CHECK(workers.output.starts_with("WORKER               STATE    HOST"));
  CHECK_THAT(workers.output, Catch::Contains(" live "));

  // The audit log: the API's REQUESTED records and the dispatcher's decisions, admin only.
  CHECK(run_kcron("", member + " audit").exit_code == 1);
  const auto audit = run_kcron("", admin + " audit --job flaky --json");
  INFO(audit.output);
  CHECK(audit.exit_code == 0);
  std::set<std::string> outcomes;
  std::istringstream lines(audit.output);
  std::string line;
  while (std::getline(lines, line)) {
    const auto record = json::parse(line);
    CHECK(record["job_id"] == "flaky");
    outcomes.insert(record["outcome"].get<std::string>());
  }
  CHECK(outcomes.count("REQUESTED") == 1);
  CHECK(outcomes.count("ACCEPTED") == 1);
  const auto rejected_only = run_kcron("", admin + " audit --outcome rejected");
  CHECK(rejected_only.exit_code == 0);
  CHECK(rejected_only.output.find("flaky") == std::string::npos);

  // Schedules: put, then delete once the view has it; a bad expression and an unknown id are refused.
  const auto put =
      run_kcron("", operators + R"( schedule put '{"id":"nightly","expression":"0 2 * * *","job_template":{"noop":{}}}')");
  INFO(put.output);
  CHECK(put.exit_code == 0);
  CHECK(put.output == "put schedule nightly\n");
  const auto bad =
      run_kcron("", operators + R"( schedule put '{"id":"broken","expression":"0 25 * * *","job_template":{"noop":{}}}')");
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains("field expression"));
  const auto deleted = run_until(operators + " schedule delete nightly", [](const CliRun& run) { return run.exit_code == 0; });
  CHECK(deleted.output == "deleted schedule nightly\n");
  const auto unknown = run_kcron("", operators + " schedule delete nope");
  CHECK(unknown.exit_code == 1);
  CHECK_THAT(unknown.output, Catch::Contains("HTTP 404"));
}
