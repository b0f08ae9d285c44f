// `kcron audit` on the real broker: a dispatcher decides on submits of two tenants (accepted, and
// refused for a queue that does not exist), and the command shows one tenant's decisions, in time
// order, as a table and as JSON lines, read from the audit topic the dispatcher wrote.
#include <catch2/catch.hpp>
#include <sstream>
#include <thread>

#include "kcron.pb.h"
#include "kcron/codec.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// `kcron <arguments>` until it prints at least `lines` lines (bounded), then once more.
CliRun cli_until_lines(const TestEnv& env, const std::string& arguments, std::size_t lines, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto run = run_cli(env, arguments);
    if (run.exit_code == 0 && lines_of(run.output).size() >= lines) break;
    std::this_thread::sleep_for(500ms);
  }
  return run_cli(env, arguments);
}

std::vector<v1::AuditRecord> parsed_json_lines(const std::string& output) {
  std::vector<v1::AuditRecord> records;
  for (const auto& line : lines_of(output)) {
    v1::AuditRecord record;
    const auto status = decode_message(line, "application/json", record);
    INFO(line);
    REQUIRE(status.ok());
    records.push_back(record);
  }
  return records;
}

}  // namespace

TEST_CASE("kcron audit shows one tenant's accepted and refused submits, in time order, and not another tenant's",
          "[integration]") {
  TestEnv env("audit-cli");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  for (const auto& [tenant, body] :
       std::vector<std::pair<std::string, std::string>>{{"acme", R"({"id":"report","delay":"3600s","noop":{}})"},
                                                        {"acme", R"({"id":"misrouted","queue":"nope","noop":{}})"},
                                                        {"beta", R"({"id":"other","delay":"3600s","noop":{}})"}}) {
    const auto run = run_cli(env, fmt::format("--tenant {} submit '{}'", tenant, body));
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    std::this_thread::sleep_for(20ms);  // distinct decision instants, so the order is the submit order
  }

  const auto json = cli_until_lines(env, "audit --tenant acme --json", 2, 60s);
  INFO(json.output);
  REQUIRE(json.exit_code == 0);
  const auto acme = parsed_json_lines(json.output);
  REQUIRE(acme.size() == 2);
  CHECK(acme[0].tenant() == "acme");
  CHECK(acme[0].job_id() == "report");
  CHECK(acme[0].action() == "submit");
  CHECK(acme[0].outcome() == "ACCEPTED");
  CHECK(acme[0].component() == "dispatcher");
  CHECK_THAT(acme[0].source(), Catch::StartsWith(env.prefix + "jobs/"));
  CHECK(acme[1].tenant() == "acme");
  CHECK(acme[1].job_id() == "misrouted");
  CHECK(acme[1].outcome() == "REJECTED");
  CHECK_THAT(acme[1].reason(), Catch::StartsWith("unknown queue 'nope'"));
  CHECK(acme[0].at_ms() <= acme[1].at_ms());

  // The table: a header and acme's two decisions, none of beta's.
  const auto table = run_cli(env, "audit --tenant acme");
  INFO(table.output);
  REQUIRE(table.exit_code == 0);
  const auto rows = lines_of(table.output);
  REQUIRE(rows.size() == 3);
  CHECK_THAT(rows[0], Catch::StartsWith("AT ") && Catch::Contains("OUTCOME") && Catch::Contains("SOURCE"));
  CHECK_THAT(rows[1], Catch::Contains(" acme ") && Catch::Contains(" report ") && Catch::Contains(" ACCEPTED "));
  CHECK_THAT(rows[2], Catch::Contains(" misrouted ") && Catch::Contains(" REJECTED ") && Catch::Contains("unknown queue 'nope'"));
  CHECK_THAT(table.output, !Catch::Contains("beta") && !Catch::Contains("other"));

  // beta's decision is there, for beta and for a query of every tenant.
  const auto beta = parsed_json_lines(cli_until_lines(env, "audit --tenant beta --json", 1, 30s).output);
  REQUIRE(beta.size() == 1);
  CHECK(beta[0].job_id() == "other");
  CHECK(beta[0].outcome() == "ACCEPTED");
  CHECK(parsed_json_lines(run_cli(env, "audit --json").output).size() == 3);

  // A job of a named tenant reads one partition; the outcome filter; --since; --max and its notice.
  const auto job = parsed_json_lines(run_cli(env, "audit --tenant acme --job misrouted --json").output);
  REQUIRE(job.size() == 1);
  CHECK(job[0].outcome() == "REJECTED");
  const auto refused = parsed_json_lines(run_cli(env, "audit --outcome rejected --since 1h --json").output);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].job_id() == "misrouted");
  const auto capped = run_cli(env, "audit --tenant acme --max 1");
  CHECK(capped.exit_code == 0);
  CHECK_THAT(capped.output, Catch::Contains(" misrouted ") && !Catch::Contains(" report ") &&
                                Catch::Contains("kcron: showing the newest 1 of 2 matching decisions"));
  const auto future = run_cli(env, "audit --since 2099-01-01T00:00:00Z --json");
  CHECK(future.exit_code == 0);
  CHECK(future.output.empty());
  const auto bad = run_cli(env, "audit --since yesterday");
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.output, Catch::Contains("kcron: --since 'yesterday': neither a duration"));
}
