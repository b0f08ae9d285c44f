// Job templates (docs/templates.md) against the real broker, through the `kcron` CLI: a version
// put on kcron.templates; a submit missing a required parameter is refused naming it; a good one
// runs, and its record on kcron.jobs is the concrete job carrying `template: name@version`; the
// same version with other content is refused; a version written while a submit waits for it is
// found within --template-wait; a template line of a batch file is rendered too (about 10 s). A
// schedule on a template version fires jobs carrying it; one on a missing version is REJECTED
// naming it (about 8 s). A flow node, or a schedule's flow_template node, naming a version is
// rendered by its writer (`kcron flow submit`, the cron-producer) and written concrete.
#include <fmt/format.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "kcron.pb.h"
#include "kcron/codec.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string report_template(int version, const std::string& default_n) {
  return fmt::format(R"({{"name":"report","version":{},"description":"the daily report",
    "params":[{{"name":"day","type":"STRING","required":true}},{{"name":"n","type":"INT","default":"{}"}}],
    "job":{{"id":"tpl-{{{{day}}}}","noop":{{}},"labels":{{"day":"{{{{day}}}}","top":"{{{{n}}}}"}}}}}})",
                     version, default_n);
}

// `kcron ARGUMENTS` as run_cli runs it, for a thread (no Catch assertions): the exit code.
int run_cli_quietly(const TestEnv& env, const std::string& arguments) {
  std::string identity;
  if (const auto tls = secure_tls_dir(); !tls.empty()) {
    for (const auto& entry : tls_env(tls + "/admin.pem", tls + "/admin.key")) identity += fmt::format("'{}' ", entry);
  }
  const auto command = fmt::format("env {}KCRON_BROKERS='{}' KCRON_TOPIC_PREFIX='{}' '{}' {} >/dev/null 2>&1", identity,
                                   brokers(), env.prefix, program_path("kcron"), arguments);
  const int status = std::system(command.c_str());  // NOLINT(cert-env33-c,concurrency-mt-unsafe): the test's own command
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("templates: a missing required parameter is refused naming it, a rendered job runs carrying name@version",
          "[integration]") {
  TestEnv env("templates");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "dispatcher");
  auto worker = start_program(env, "kcron-worker", "w1", "worker");

  const std::string v1_file = env.state_root + "/report-1.json";
  write_file(v1_file, report_template(1, "10"));
  const auto put = run_cli(env, "template put " + v1_file);
  INFO(put.output);
  REQUIRE(put.exit_code == 0);
  CHECK(put.output == "put template report@1\n");

  const auto missing = run_cli(env, "submit --template report@1 --param n=3");
  INFO(missing.output);
  CHECK(missing.exit_code == 1);
  CHECK(missing.output == "kcron: template 'report@1': required parameter 'day' is missing\n");

  const auto mistyped = run_cli(env, "submit --template report@1 --param day=mon --param n=many");
  CHECK(mistyped.exit_code == 1);
  CHECK(mistyped.output == "kcron: template 'report@1': parameter 'n' must be an integer, got 'many'\n");

  const auto submitted = run_cli(env, "submit --template report@1 --param day=mon");
  INFO(submitted.output);
  REQUIRE(submitted.exit_code == 0);
  CHECK(submitted.output == "submitted tpl-mon from template report@1\n");

  // The same version with other content is refused; with the same content it is a no-op.
  const std::string changed_file = env.state_root + "/report-1-changed.json";
  write_file(changed_file, report_template(1, "20"));
  const auto changed = run_cli(env, "template put " + changed_file);
  CHECK(changed.exit_code == 1);
  CHECK(changed.output == "kcron: template 'report' version 1 already exists with different content; write version 2\n");
  const auto again = run_cli(env, "template put " + v1_file);
  CHECK(again.exit_code == 0);
  CHECK(again.output.starts_with("template report@1 is already there with this content (written by "));

  // A version not there yet: refused after the wait, naming it; found when it comes within the wait.
  const auto absent = run_cli(env, "submit --template report@2 --param day=tue --template-wait 0.5");
  CHECK(absent.exit_code == 1);
  CHECK(absent.output == "kcron: template 'report' has no version 2 (waited 500 ms for it; its versions: 1)\n");
  const std::string v2_file = env.state_root + "/report-2.json";
  write_file(v2_file, report_template(2, "20"));
  int late_put = -1;
  std::thread writer([&] {
    std::this_thread::sleep_for(700ms);
    late_put = run_cli_quietly(env, "template put " + v2_file);
  });
  const auto waited = run_cli(env, "submit --template report@2 --param day=tue --template-wait 10");
  writer.join();
  CHECK(late_put == 0);
  INFO(waited.output);
  CHECK(waited.exit_code == 0);
  CHECK(waited.output == "submitted tpl-tue from template report@2\n");

  // A template line in a batch file: rendered by the CLI, written concrete in a batch record.
  const std::string lines_file = env.state_root + "/jobs.jsonl";
  write_file(lines_file, R"({"template":"report@1","params":{"day":"wed","n":7}})"
                         "\n"
                         R"({"id":"tpl-plain","noop":{}})"
                         "\n");
  const auto batch = run_cli(env, "submit --batch " + lines_file);
  INFO(batch.output);
  CHECK(batch.exit_code == 0);

  // A flow node naming a version: rendered by `kcron flow submit`, written concrete; a node missing
  // a required parameter, or naming a version there is not, is refused naming the node.
  const auto flow_missing = run_cli(
      env,
      R"(flow submit '{"id":"tpl-bad","nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","template_ref":{"ref":"report@1"}}]}')");
  CHECK(flow_missing.exit_code == 1);
  CHECK(flow_missing.output == "kcron: node 'b': template 'report@1': required parameter 'day' is missing\n");
  const auto flow_absent = run_cli(
      env, R"(flow submit --template-wait 0 '{"id":"tpl-bad","nodes":[{"name":"z","template_ref":{"ref":"report@7"}}]}')");
  CHECK(flow_absent.exit_code == 1);
  CHECK(flow_absent.output == "kcron: node 'z': template 'report' has no version 7 (its versions: 1, 2)\n");
  const auto flow =
      run_cli(env, R"(flow submit '{"id":"tpl-flow","nodes":[{"name":"a","job":{"noop":{}}},)"
                   R"({"name":"b","template_ref":{"ref":"report@1","params":{"day":"fri"}},"depends_on":["a"]}]}')");
  INFO(flow.output);
  CHECK(flow.exit_code == 0);
  CHECK(flow.output == "submitted flow tpl-flow (2 nodes, 1 rendered from templates)\n");

  // Each of the four ran (read until they all succeeded: the test is about what ran, not once-ness).
  std::set<std::string> succeeded;
  read_topics({env.prefix + "results"}, 30s, [&](const std::vector<Record>& read) {
    succeeded.clear();
    for (const auto& record : read) {
      v1::Result result;
      if (result.ParseFromString(record.value) && result.state() == v1::SUCCEEDED && result.job_id().starts_with("tpl-")) {
        succeeded.insert(result.job_id());
      }
    }
    return succeeded.size() >= 6;
  });
  CHECK(succeeded == std::set<std::string>{"tpl-mon", "tpl-tue", "tpl-wed", "tpl-plain", "tpl-flow/a", "tpl-flow/b"});

  // On kcron.jobs: the concrete jobs, each with its provenance.
  const auto records = read_topics({env.prefix + "jobs"}, 10s, [](const auto& read) {
    return std::any_of(read.begin(), read.end(), [](const Record& record) {
      auto command = decode_command(record.value, "", "");
      return command && command->has_flow();  // the last written
    });
  });
  std::map<std::string, v1::Job> jobs;
  std::optional<v1::Flow> written_flow;
  for (const auto& record : records) {
    auto command = decode_command(record.value, "", "");
    if (command && command->has_flow()) written_flow = command->flow();
    if (command && command->has_submit()) jobs[command->submit().id()] = command->submit();
    if (command && command->has_batch()) {
      for (const auto& job : command->batch().jobs()) jobs[job.id()] = job;
    }
  }
  REQUIRE(jobs.contains("tpl-mon"));
  REQUIRE(jobs.contains("tpl-tue"));
  CHECK(jobs["tpl-mon"].template_() == "report@1");
  CHECK(jobs["tpl-mon"].labels().at("day") == "mon");
  CHECK(jobs["tpl-mon"].labels().at("top") == "10");
  CHECK(jobs["tpl-tue"].template_() == "report@2");
  CHECK(jobs["tpl-tue"].labels().at("top") == "20");
  REQUIRE(jobs.contains("tpl-wed"));
  CHECK(jobs["tpl-wed"].template_() == "report@1");
  CHECK(jobs["tpl-wed"].labels().at("top") == "7");
  CHECK(jobs["tpl-plain"].template_().empty());
  REQUIRE(written_flow.has_value());  // only the good flow was written
  CHECK(written_flow->id() == "tpl-flow");
  REQUIRE(written_flow->nodes_size() == 2);
  CHECK_FALSE(written_flow->nodes(1).has_template_ref());
  CHECK(written_flow->nodes(1).job().template_() == "report@1");
  CHECK(written_flow->nodes(1).job().labels().at("day") == "fri");

  // The topic records who wrote each version.
  const auto versions = run_cli(env, "template versions report");
  INFO(versions.output);
  CHECK(versions.exit_code == 0);
  CHECK(versions.output.find("      1  ") != std::string::npos);
  CHECK(versions.output.find("      2  ") != std::string::npos);
  CHECK(versions.output.find("cli:") != std::string::npos);
}

TEST_CASE("templates: a schedule on report@3 fires jobs carrying that provenance, one on a missing version is REJECTED naming it",
          "[integration]") {
  TestEnv env("tplcron");
  const std::string v3_file = env.state_root + "/report-3.json";
  write_file(v3_file, report_template(3, "30"));
  REQUIRE(run_cli(env, "template put " + v3_file).exit_code == 0);
  TestProducer producer;
  const auto put_schedule = [&](const std::string& id, const std::string& ref) {
    producer.send(
        env.prefix + "schedules", id,
        fmt::format(R"({{"id":"{}","expression":"*/1 * * * * *","template_ref":{{"ref":"{}","params":{{"day":"{}"}}}}}})", id,
                    ref, id),
        -1, {{"content-type", "application/json"}});
  };
  put_schedule("daily", "report@3");
  // `kcron schedule put` checks a template_ref against kcron.templates: a version there must render; one
  // not there yet is accepted with a warning. "later" names version 4, written after the cron-producer started.
  const auto missing =
      run_cli(env, R"(schedule put '{"id":"missing","expression":"* * * * *","template_ref":{"ref":"report@3"}}')");
  CHECK(missing.exit_code == 1);
  CHECK(missing.output == "kcron: template 'report@3': required parameter 'day' is missing\n");
  const auto later = run_cli(
      env,
      R"(schedule put '{"id":"later","expression":"*/1 * * * * *","template_ref":{"ref":"report@4","params":{"day":"later"}}}')");
  INFO(later.output);
  CHECK(later.exit_code == 0);
  CHECK(later.output.find("kcron: warning: template 'report' has no version 4 (its versions: 3); the cron-producer waits") !=
        std::string::npos);
  put_schedule("gone", "report@9");  // never written: REJECTED after the wait
  // A flow_template node naming a version: rendered by the cron-producer at each run; checked by
  // `kcron schedule put` as a template_ref is.
  const auto flow_unrendered = run_cli(env, R"(schedule put '{"id":"flowed","expression":"*/1 * * * * *","flow_template":)"
                                            R"({"nodes":[{"name":"b","template_ref":{"ref":"report@3"}}]}}')");
  CHECK(flow_unrendered.exit_code == 1);
  CHECK(flow_unrendered.output == "kcron: flow_template: node 'b': template 'report@3': required parameter 'day' is missing\n");
  const auto flowed =
      run_cli(env, R"(schedule put '{"id":"flowed","expression":"*/1 * * * * *","flow_template":{"nodes":[)"
                   R"({"name":"a","job":{"noop":{}}},)"
                   R"({"name":"b","template_ref":{"ref":"report@3","params":{"day":"flowed"}},"depends_on":["a"]}]}}')");
  INFO(flowed.output);
  CHECK(flowed.exit_code == 0);
  producer.flush();
  auto cron_producer = start_program(env, "kcron-cron-producer", "c1", "cron-producer",
                                     {"KCRON_SCHEDULES_PARTITIONS=2", "KCRON_TEMPLATE_WAIT_MS=4000"});
  const std::string v4_file = env.state_root + "/report-4.json";
  write_file(v4_file, report_template(4, "40"));
  REQUIRE(run_cli(env, "template put " + v4_file).exit_code == 0);

  std::map<std::string, v1::Job> runs;  // schedule -> one of its runs
  std::map<std::string, v1::Flow> flow_runs;
  read_topics({env.prefix + "jobs"}, 15s, [&](const std::vector<Record>& read) {
    for (const auto& record : read) {
      auto command = decode_command(record.value, "", "");
      if (command && command->has_submit()) runs[command->submit().schedule_run().schedule_id()] = command->submit();
      if (command && command->has_flow()) flow_runs[command->flow().schedule_run().schedule_id()] = command->flow();
    }
    return runs.contains("daily") && runs.contains("later") && flow_runs.contains("flowed");
  });
  INFO(tail_file(cron_producer->log_path()));
  REQUIRE(runs.contains("daily"));
  CHECK(runs["daily"].template_() == "report@3");
  CHECK(runs["daily"].labels().at("day") == "daily");
  CHECK(runs["daily"].labels().at("top") == "30");
  CHECK(runs["daily"].id().starts_with("daily@"));
  REQUIRE(runs.contains("later"));
  CHECK(runs["later"].template_() == "report@4");
  CHECK(runs["later"].labels().at("top") == "40");
  CHECK_FALSE(runs.contains("gone"));
  REQUIRE(flow_runs.contains("flowed"));
  CHECK(flow_runs["flowed"].id().starts_with("flowed@"));
  REQUIRE(flow_runs["flowed"].nodes_size() == 2);
  CHECK_FALSE(flow_runs["flowed"].nodes(1).has_template_ref());
  CHECK(flow_runs["flowed"].nodes(1).job().template_() == "report@3");
  CHECK(flow_runs["flowed"].nodes(1).job().labels().at("day") == "flowed");

  std::string reason;
  read_topics({env.prefix + "dead-letters"}, 10s, [&](const std::vector<Record>& read) {
    for (const auto& record : read) {
      v1::DeadLetter letter;
      if (letter.ParseFromString(record.value) && letter.reason().find("schedule gone") != std::string::npos)
        reason = letter.reason();
    }
    return !reason.empty();
  });
  CHECK(reason == fmt::format("schedule gone: template 'report@9' was not found on {}templates within 4000 ms", env.prefix));
}
