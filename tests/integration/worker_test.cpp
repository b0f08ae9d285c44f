// The worker end to end on the real broker: retries with backoff into the dead letters and a
// replay out of them, timeouts, cancel of a running job over the control topic, kafka jobs,
// drain on SIGTERM, long jobs past max.poll.interval.ms, heartbeats, and /metrics against the
// topics. kcron-dispatcher and kcron-worker run as child processes on a fresh topic prefix.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "kcron.pb.h"
#include "kcron/kafka.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Process> start(TestEnv& env, const std::string& program, const std::string& instance,
                               const std::vector<std::string>& extra = {}) {
  auto vars = env.program_env(instance);
  vars.insert(vars.end(), extra.begin(), extra.end());
  static int launches = 0;
  auto process =
      std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}-{}.log", env.state_root, instance, ++launches));
  INFO(tail_file(process->log_path()));
  REQUIRE(wait_for_log(*process, "event=assigned", 60s));
  return process;
}

void submit(TestProducer& producer, const TestEnv& env, const std::string& id, const std::string& json) {
  producer.send(env.prefix + "jobs", id, json, -1, {{"content-type", "application/json"}});
  producer.flush();
}

std::vector<v1::Result> results_of(const std::vector<Record>& records, const std::string& job_id) {
  std::vector<v1::Result> results;
  for (const auto& record : records) {
    v1::Result result;
    if (record.key == job_id && result.ParseFromString(record.value)) results.push_back(result);
  }
  std::sort(results.begin(), results.end(), [](const auto& a, const auto& b) { return a.attempt() < b.attempt(); });
  return results;
}

// Reads the results topic until `job_id` has `count` results (bounded).
std::vector<v1::Result> wait_for_results(const TestEnv& env, const std::string& job_id, std::size_t count,
                                         std::chrono::seconds timeout) {
  const auto records = read_topics({env.prefix + "results"}, timeout,
                                   [&](const std::vector<Record>& all) { return results_of(all, job_id).size() >= count; });
  return results_of(records, job_id);
}

std::vector<v1::DeadLetter> dead_letters_of(const TestEnv& env, const std::string& job_id, std::size_t count,
                                            std::chrono::seconds timeout) {
  const auto parse = [&](const std::vector<Record>& records) {
    std::vector<v1::DeadLetter> letters;
    for (const auto& record : records) {
      v1::DeadLetter letter;
      if (record.key == job_id && letter.ParseFromString(record.value)) letters.push_back(letter);
    }
    return letters;
  };
  return parse(read_topics({env.prefix + "dead-letters"}, timeout,
                           [&](const std::vector<Record>& records) { return parse(records).size() >= count; }));
}

// Waits until the job's execution record is committed (the dispatcher fired it).
void wait_fired(const TestEnv& env, const std::string& job_id) {
  const auto records = read_topics(exec_topics(env.prefix), 30s, [&](const std::vector<Record>& all) {
    return std::any_of(all.begin(), all.end(), [&](const Record& record) { return record.key == job_id; });
  });
  REQUIRE(std::any_of(records.begin(), records.end(), [&](const Record& record) { return record.key == job_id; }));
}

std::string scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  auto response = client.Get("/metrics");
  REQUIRE(response);
  return response->body;
}

}  // namespace

TEST_CASE("a failing job retries with growing delays, ends in the dead letters, and a replay runs it again", "[integration]") {
  TestEnv env("retries");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  TestProducer producer;
  submit(
      producer, env, "flaky",
      R"({"id":"flaky","sleep":{"duration":"0s","fail":true},"retry":{"max_retries":2,"initial_backoff":"1s","multiplier":2}})");

  const auto letters = dead_letters_of(env, "flaky", 1, 60s);
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].state() == v1::DEAD);
  CHECK(letters[0].history_size() == 3);
  CHECK_THAT(letters[0].reason(), Catch::Contains("2 retries used"));
  const auto results = wait_for_results(env, "flaky", 3, 10s);
  REQUIRE(results.size() == 3);
  for (std::uint32_t attempt = 0; attempt < 3; ++attempt) {
    CHECK(results[attempt].attempt() == attempt);
    CHECK(results[attempt].state() == v1::FAILED);
  }
  // Backoff 1 s then 2 s: each retry starts at least that long after the failure before it.
  const auto first_gap = results[1].started_ms() - results[0].finished_ms();
  const auto second_gap = results[2].started_ms() - results[1].finished_ms();
  WARN(fmt::format("retries: gaps between attempts {} ms and {} ms (backoff 1 s, x2)", first_gap, second_gap));
  CHECK(first_gap >= 1000);
  CHECK(second_gap >= 2000);

  const auto status = run_cli(env, "status flaky");
  INFO(status.output);
  CHECK(status.exit_code == 0);
  CHECK_THAT(status.output, Catch::Contains("job flaky: DEAD (attempt 2)"));
  CHECK_THAT(status.output, Catch::Contains("RETRYING"));
  const auto listed = run_cli(env, "dlq list");
  INFO(listed.output);
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.output, Catch::Contains("flaky"));
  CHECK_THAT(run_cli(env, "dlq replay nonexistent").output, Catch::Contains("no DEAD job 'nonexistent'"));

  const auto replayed = run_cli(env, "dlq replay flaky");
  INFO(replayed.output);
  CHECK(replayed.exit_code == 0);
  const auto after_replay = wait_for_results(env, "flaky", 4, 30s);
  REQUIRE(after_replay.size() == 4);
  CHECK(after_replay[3].attempt() == 3);
}

TEST_CASE("a job past its timeout is stopped and dead, and a cancel stops a running job", "[integration]") {
  TestEnv env("stops");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  TestProducer producer;
  submit(producer, env, "slow", R"({"id":"slow","sleep":{"duration":"60s"},"timeout":"1s"})");
  submit(producer, env, "long", R"({"id":"long","sleep":{"duration":"60s"},"retry":{"max_retries":3}})");

  const auto slow = wait_for_results(env, "slow", 1, 30s);
  REQUIRE(slow.size() == 1);
  CHECK(slow[0].state() == v1::FAILED);
  CHECK_THAT(slow[0].error(), Catch::Contains("timed out after 1000 ms"));
  CHECK(slow[0].finished_ms() - slow[0].started_ms() < 5000);
  CHECK(dead_letters_of(env, "slow", 1, 10s).size() == 1);

  wait_fired(env, "long");
  std::this_thread::sleep_for(1s);
  const auto cancel = run_cli(env, "cancel long --reason 'not needed'");
  INFO(cancel.output);
  REQUIRE(cancel.exit_code == 0);
  const auto long_results = wait_for_results(env, "long", 1, 30s);
  REQUIRE(long_results.size() == 1);
  CHECK(long_results[0].state() == v1::CANCELLED);
  CHECK_THAT(long_results[0].error(), Catch::Contains("not needed"));
  CHECK(long_results[0].finished_ms() - long_results[0].started_ms() < 30000);
  std::this_thread::sleep_for(2s);
  CHECK(wait_for_results(env, "long", 2, 2s).size() == 1);  // a cancelled job is not retried
}

TEST_CASE("a kafka job writes its record exactly once, with its result, and a missing topic is refused", "[integration]") {
  TestEnv env("kafkajob");
  const std::string sink = "sink-" + env.prefix.substr(0, env.prefix.size() - 1);
  auto created = kafka::create_topics(test_client_properties(), {{sink, 1, {}}}, 1, 30s);
  REQUIRE(created.ok());
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  TestProducer producer;
  // bytes fields are base64 in JSON: "aGVsbG8=" is "hello".
  submit(producer, env, "emit", fmt::format(R"({{"id":"emit","kafka":{{"topic":"{}","key":"k1","value":"aGVsbG8="}}}})", sink));
  submit(producer, env, "nowhere", R"({"id":"nowhere","kafka":{"topic":"no-such-topic-anywhere","value":"eA=="}})");
  submit(producer, env, "internal",
         fmt::format(R"({{"id":"internal","kafka":{{"topic":"{}results","value":"eA=="}}}})", env.prefix));

  const auto emitted = wait_for_results(env, "emit", 1, 30s);
  REQUIRE(emitted.size() == 1);
  CHECK(emitted[0].state() == v1::SUCCEEDED);
  const auto records = read_topics({sink}, 5s);
  REQUIRE(records.size() == 1);
  CHECK(records[0].key == "k1");
  CHECK(records[0].value == "hello");
  CHECK(records[0].headers.at("kcron-job-id") == "emit");

  const auto nowhere = dead_letters_of(env, "nowhere", 1, 30s);
  REQUIRE(nowhere.size() == 1);
  CHECK_THAT(nowhere[0].reason(), Catch::Contains("does not exist"));
  const auto internal = dead_letters_of(env, "internal", 1, 30s);
  REQUIRE(internal.size() == 1);
  CHECK_THAT(internal[0].reason(),
             Catch::Contains(fmt::format("may not write '{}results'", env.prefix)) && Catch::Contains("kcron's own topics"));
}

TEST_CASE(
    "a kafka job aimed at kcron's jobs topic, or at a topic outside its tenant's allowed_kafka_topics, is DEAD with the reason "
    "and writes nothing there",
    "[integration]") {
  TestEnv env("kafkawalls");
  const std::string suffix = env.prefix.substr(0, env.prefix.size() - 1);
  const std::string sink = "sink-" + suffix;
  const std::string other = "other-" + suffix;
  REQUIRE(kafka::create_topics({{"bootstrap.servers", brokers()}}, {{sink, 1, {}}, {other, 1, {}}}, 1, 30s).ok());
  const auto created = run_cli(env, fmt::format("tenant create acme --kafka-topics {}", sink));
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  TestProducer producer;
  // "eyJpZCI6ImZvcmdlZCJ9" is {"id":"forged"}: a submit, had it been written.
  submit(producer, env, "forge",
         fmt::format(R"({{"id":"forge","kafka":{{"topic":"{}jobs","key":"forged","value":"eyJpZCI6ImZvcmdlZCJ9"}},)"
                     R"("retry":{{"max_retries":3}}}})",
                     env.prefix));
  submit(
      producer, env, "acme~forge",
      fmt::format(R"({{"id":"forge","tenant":"acme","kafka":{{"topic":"{}jobs","key":"forged","value":"eA=="}}}})", env.prefix));
  submit(producer, env, "acme~unlisted",
         fmt::format(R"({{"id":"unlisted","tenant":"acme","kafka":{{"topic":"{}","value":"eA=="}}}})", other));
  submit(producer, env, "acme~listed",
         fmt::format(R"({{"id":"listed","tenant":"acme","kafka":{{"topic":"{}","key":"acme-key","value":"eA=="}}}})", sink));
  submit(producer, env, "beta~any",
         fmt::format(R"({{"id":"any","tenant":"beta","kafka":{{"topic":"{}","value":"eA=="}}}})", sink));
  submit(producer, env, "offsets", R"({"id":"offsets","kafka":{"topic":"__consumer_offsets","value":"eA=="}})");

  const auto forged = dead_letters_of(env, "forge", 1, 30s);
  REQUIRE(forged.size() == 1);
  CHECK_THAT(forged[0].reason(), Catch::Contains(fmt::format("may not write '{}jobs'", env.prefix)));
  CHECK(forged[0].history_size() == 1);  // final: its retries unused
  const auto acme_forged = dead_letters_of(env, "acme~forge", 1, 30s);
  REQUIRE(acme_forged.size() == 1);
  CHECK_THAT(acme_forged[0].reason(), Catch::Contains(fmt::format("may not write '{}jobs'", env.prefix)));
  const auto unlisted = dead_letters_of(env, "acme~unlisted", 1, 30s);
  REQUIRE(unlisted.size() == 1);
  CHECK_THAT(unlisted[0].reason(), Catch::Contains(fmt::format("tenant 'acme' may not write topic '{}': it is not in the "
                                                               "tenant's allowed_kafka_topics (kcron tenant set acme "
                                                               "--kafka-topics ...)",
                                                               other)));
  const auto beta = dead_letters_of(env, "beta~any", 1, 30s);
  REQUIRE(beta.size() == 1);
  CHECK_THAT(beta[0].reason(), Catch::Contains("tenant 'beta' may not write topic") &&
                                   Catch::Contains("the tenant has no allowed_kafka_topics") && !Catch::Contains("acme"));
  const auto offsets = dead_letters_of(env, "offsets", 1, 30s);
  REQUIRE(offsets.size() == 1);
  CHECK_THAT(offsets[0].reason(), Catch::Contains("may not write '__consumer_offsets'"));
  const auto listed = wait_for_results(env, "acme~listed", 1, 30s);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].state() == v1::SUCCEEDED);

  // Only the allowlisted record was written; nothing reached the jobs topic or the other topic.
  const auto sunk = read_topics({sink}, 5s);
  REQUIRE(sunk.size() == 1);
  CHECK(sunk[0].key == "acme-key");
  CHECK(read_topics({other}, 2s).empty());
  for (const auto& record : read_topics({env.prefix + "jobs"}, 5s)) CHECK(record.key != "forged");
}

TEST_CASE(
    "an exec job's secret:NAME env value is read from the secrets directory at run time, and the secret's text is in no "
    "result, status or dead letter",
    "[integration]") {
  TestEnv env("execsecret");
  const std::string secrets = env.state_root + "/secrets";
  std::filesystem::create_directories(secrets + "/default");
  std::random_device random;
  const std::string secret = fmt::format("kcron-secret-{:08x}{:08x}", random(), random());
  std::ofstream(secrets + "/default/token") << secret << "\n";
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker =
      start(env, "kcron-worker", "w1", {"KCRON_EXEC_PROGRAMS=/bin/sh", "KCRON_EXEC_ENV=X", "KCRON_SECRETS_DIR=" + secrets});
  TestProducer producer;
  submit(producer, env, "length", R"({"id":"length","exec":{"argv":["/bin/sh","-c","echo ${#X}"],"env":{"X":"secret:token"}}})");
  submit(
      producer, env, "echoes",
      R"({"id":"echoes","exec":{"argv":["/bin/sh","-c","echo \"$X\"; echo \"err $X\" >&2; exit 3"],"env":{"X":"secret:token"}}})");
  submit(producer, env, "missing",
         R"({"id":"missing","exec":{"argv":["/bin/sh","-c","true"],"env":{"X":"secret:nope"}},)"
         R"("retry":{"max_retries":3}})");

  const auto length = wait_for_results(env, "length", 1, 30s);
  REQUIRE(length.size() == 1);
  CHECK(length[0].state() == v1::SUCCEEDED);
  CHECK(length[0].output() == fmt::format("{}\n", secret.size()));
  const auto echoes = dead_letters_of(env, "echoes", 1, 30s);
  REQUIRE(echoes.size() == 1);
  CHECK_THAT(echoes[0].reason(), Catch::Contains("err [secret:token]"));
  REQUIRE(echoes[0].history_size() == 1);
  CHECK(echoes[0].history(0).output() == "[secret:token]\n");
  CHECK(echoes[0].job().exec().env().at("X") == "secret:token");  // the job keeps the reference
  const auto missing = dead_letters_of(env, "missing", 1, 30s);
  REQUIRE(missing.size() == 1);
  CHECK_THAT(missing[0].reason(), Catch::Contains("secret 'nope' of tenant 'default' not found;"));
  CHECK(missing[0].history_size() == 1);  // final: its retries unused

  // Rotation needs no restart: the next run reads the file again.
  std::ofstream(secrets + "/default/token") << "short\n";
  submit(producer, env, "rotated",
         R"({"id":"rotated","exec":{"argv":["/bin/sh","-c","echo ${#X}"],"env":{"X":"secret:token"}}})");
  const auto rotated = wait_for_results(env, "rotated", 1, 30s);
  REQUIRE(rotated.size() == 1);
  CHECK(rotated[0].output() == "5\n");

  std::vector<std::string> topics = {env.prefix + "results", env.prefix + "status", env.prefix + "dead-letters",
                                     env.prefix + "jobs", env.prefix + "worker-done"};
  const auto records = read_topics(topics, 5s);
  CHECK(records.size() > 8);
  for (const auto& record : records) {
    INFO(record.topic);
    CHECK(record.value.find(secret) == std::string::npos);
    CHECK(record.key.find(secret) == std::string::npos);
  }
  std::ifstream log(worker->log_path());
  const std::string logged((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK(logged.find(secret) == std::string::npos);
}

TEST_CASE("SIGTERM lets a running job finish and publishes it, and past the drain timeout the job is handed back and runs again",
          "[integration]") {
  TestEnv env("drain");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", {"KCRON_DRAIN_TIMEOUT_MS=10000"});
  TestProducer producer;
  submit(producer, env, "finishes", R"({"id":"finishes","sleep":{"duration":"3s"}})");
  wait_fired(env, "finishes");
  std::this_thread::sleep_for(1s);
  CHECK(worker->terminate(30s) == 0);
  auto finished = wait_for_results(env, "finishes", 1, 5s);
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].state() == v1::SUCCEEDED);

  worker = start(env, "kcron-worker", "w1", {"KCRON_DRAIN_TIMEOUT_MS=1000"});
  submit(producer, env, "handed-back", R"({"id":"handed-back","sleep":{"duration":"6s"}})");
  wait_fired(env, "handed-back");
  std::this_thread::sleep_for(1s);
  CHECK(worker->terminate(30s) == 0);
  CHECK(results_of(read_topics({env.prefix + "results"}, 3s), "handed-back").empty());
  worker = start(env, "kcron-worker", "w1");
  const auto rerun = wait_for_results(env, "handed-back", 1, 60s);
  REQUIRE(rerun.size() == 1);
  CHECK(rerun[0].state() == v1::SUCCEEDED);
  CHECK(rerun[0].attempt() == 0);  // handed back, not a retry: no attempt used
}

TEST_CASE("a 30 s job on a worker with max.poll.interval.ms at 10 s completes without a rebalance", "[integration]") {
  TestEnv env("longjob");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", {"KCRON_MAX_POLL_INTERVAL_MS=10000", "KCRON_SLOTS=1"});
  TestProducer producer;
  submit(producer, env, "thirty", R"({"id":"thirty","sleep":{"duration":"30s"}})");
  submit(producer, env, "after", R"({"id":"after","noop":{}})");  // waits for the only slot
  const auto results = wait_for_results(env, "thirty", 1, 90s);
  REQUIRE(results.size() == 1);
  CHECK(results[0].state() == v1::SUCCEEDED);
  CHECK(results[0].finished_ms() - results[0].started_ms() >= 30000);
  CHECK(wait_for_results(env, "after", 1, 30s).size() == 1);
  CHECK(count_in_log(worker->log_path(), "event=revoked") == 0);
  CHECK(count_in_log(worker->log_path(), "event=assigned") == 1);
}

TEST_CASE("workers publish heartbeats that kcron workers lists, and /metrics counts match the topics", "[integration]") {
  TestEnv env("metrics");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", {"KCRON_HEARTBEAT_INTERVAL_MS=1000"});
  auto second = start(env, "kcron-worker", "w2", {"KCRON_HEARTBEAT_INTERVAL_MS=1000"});
  TestProducer producer;
  for (int index = 0; index < 20; ++index) {
    const auto id = fmt::format("ok-{}", index);
    submit(producer, env, id, fmt::format(R"({{"id":"{}","noop":{{}}}})", id));
  }
  for (int index = 0; index < 5; ++index) {
    const auto id = fmt::format("bad-{}", index);
    submit(producer, env, id, fmt::format(R"({{"id":"{}","sleep":{{"fail":true}}}})", id));
  }
  const auto records = read_topics({env.prefix + "results"}, 60s, [](const auto& all) { return all.size() >= 25; });
  REQUIRE(records.size() == 25);
  int succeeded = 0;
  for (const auto& record : records) succeeded += record.headers.at("kcron-status") == "SUCCEEDED" ? 1 : 0;
  CHECK(succeeded == 20);

  const auto metrics_first = scrape(http_port_of(*worker));
  const auto metrics_second = scrape(http_port_of(*second));
  const auto sum = [&](const std::string& series) {
    return metric_value(metrics_first, series) + metric_value(metrics_second, series);
  };
  CHECK(sum("kcron_jobs_succeeded_total") == 20);
  CHECK(sum("kcron_jobs_dead_total") == 5);
  CHECK(sum("kcron_jobs_failed_total") == 5);
  CHECK(sum("kcron_jobs_started_total") == 25);

  std::this_thread::sleep_for(1500ms);
  const auto listed = run_cli(env, "workers");
  INFO(listed.output);
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.output, Catch::Matches("(.|\n)*w1 +live(.|\n)*"));
  CHECK_THAT(listed.output, Catch::Matches("(.|\n)*w2 +live(.|\n)*"));
  CHECK(second->terminate(30s) == 0);
  worker->kill_hard();
  std::this_thread::sleep_for(3500ms);  // three missed 1 s heartbeats
  const auto after = run_cli(env, "workers");
  INFO(after.output);
  CHECK_THAT(after.output, Catch::Matches("(.|\n)*w1 +lost(.|\n)*"));
  CHECK_THAT(after.output, Catch::Matches("(.|\n)*w2 +stopped(.|\n)*"));
}

TEST_CASE("exec jobs run allowlisted programs only, and a timeout kills their whole process group", "[integration]") {
  TestEnv env("execjob");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", {"KCRON_EXEC_PROGRAMS=/bin/echo,/bin/sh", "KCRON_EXEC_ENV=GREETING"});
  TestProducer producer;
  submit(producer, env, "echo", R"({"id":"echo","exec":{"argv":["/bin/echo","hello from exec"]}})");
  submit(producer, env, "env", R"({"id":"env","exec":{"argv":["/bin/sh","-c","echo $GREETING"],"env":{"GREETING":"hi"}}})");
  submit(producer, env, "rm", R"({"id":"rm","exec":{"argv":["/bin/rm","-rf","/tmp/nothing"]},"retry":{"max_retries":3}})");
  submit(producer, env, "preload",
         R"({"id":"preload","exec":{"argv":["/bin/echo","x"],"env":{"LD_PRELOAD":"/tmp/evil.so"}},"retry":{"max_retries":3}})");
  submit(producer, env, "hang", R"({"id":"hang","exec":{"argv":["/bin/sh","-c","sleep 60 & echo $!; wait"]},"timeout":"1s"})");

  const auto echo = wait_for_results(env, "echo", 1, 30s);
  REQUIRE(echo.size() == 1);
  CHECK(echo[0].state() == v1::SUCCEEDED);
  CHECK(echo[0].output() == "hello from exec\n");
  const auto with_env = wait_for_results(env, "env", 1, 30s);
  REQUIRE(with_env.size() == 1);
  CHECK(with_env[0].output() == "hi\n");

  // Refusals are final: dead at once, retries unused.
  const auto rm = dead_letters_of(env, "rm", 1, 30s);
  REQUIRE(rm.size() == 1);
  CHECK_THAT(rm[0].reason(), Catch::Contains("/bin/rm") && Catch::Contains("exec.programs"));
  CHECK(rm[0].history_size() == 1);
  const auto preload = dead_letters_of(env, "preload", 1, 30s);
  REQUIRE(preload.size() == 1);
  CHECK_THAT(preload[0].reason(), Catch::Contains("LD_PRELOAD") && Catch::Contains("exec.env"));

  const auto hang = wait_for_results(env, "hang", 1, 30s);
  REQUIRE(hang.size() == 1);
  CHECK(hang[0].state() == v1::FAILED);
  CHECK_THAT(hang[0].error(), Catch::Contains("timed out"));
  const auto grandchild = static_cast<pid_t>(std::stol(hang[0].output()));
  // The background sleep was in the job's process group: it is gone (or a zombie awaiting reaping).
  bool gone = false;
  for (int tries = 0; tries < 40 && !gone; ++tries) {
    std::ifstream stat(fmt::format("/proc/{}/stat", grandchild));
    std::string pid_field, name, state;
    gone = !(stat >> pid_field >> name >> state) || state == "Z";
    if (!gone) std::this_thread::sleep_for(50ms);
  }
  CHECK(gone);
}

TEST_CASE("http jobs: success, a retry after 503, no retry after 404, and link-local targets refused", "[integration]") {
  httplib::Server server;
  std::atomic<int> flaky_calls{0};
  std::atomic<int> hits{0};
  server.Post("/ok", [&](const httplib::Request& request, httplib::Response& response) {
    ++hits;
    response.set_content("got " + request.body + " for " + request.get_header_value("kcron-job-id"), "text/plain");
  });
  server.Get("/flaky", [&](const httplib::Request&, httplib::Response& response) {
    ++hits;
    response.status = ++flaky_calls == 1 ? 503 : 200;
  });
  server.Get("/missing", [&](const httplib::Request&, httplib::Response& response) {
    ++hits;
    response.status = 404;
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  struct Stop {
    httplib::Server& server;
    std::thread& thread;
    ~Stop() {
      server.stop();
      thread.join();
    }
  } stop{server, serving};

  TestEnv env("httpjob");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", {"KCRON_HTTP_ALLOW=127.0.0.1/32"});
  TestProducer producer;
  const auto url = [&](const std::string& path) { return fmt::format("http://127.0.0.1:{}{}", port, path); };
  submit(producer, env, "post",
         fmt::format(R"({{"id":"post","http":{{"method":"POST","url":"{}","body":"cGluZw=="}}}})", url("/ok")));  // "ping"
  submit(producer, env, "flaky",
         fmt::format(R"({{"id":"flaky","http":{{"url":"{}"}},"retry":{{"max_retries":2,"initial_backoff":"0.2s"}}}})",
                     url("/flaky")));
  submit(producer, env, "missing",
         fmt::format(R"({{"id":"missing","http":{{"url":"{}"}},"retry":{{"max_retries":2}}}})", url("/missing")));
  submit(producer, env, "metadata",
         R"({"id":"metadata","http":{"url":"http://169.254.169.254/latest/meta-data/"},"retry":{"max_retries":2}})");

  const auto post = wait_for_results(env, "post", 1, 30s);
  REQUIRE(post.size() == 1);
  CHECK(post[0].state() == v1::SUCCEEDED);
  CHECK(post[0].http_status() == 200);
  CHECK(post[0].output() == "got ping for post");
  const auto flaky = wait_for_results(env, "flaky", 2, 30s);
  REQUIRE(flaky.size() == 2);
  CHECK(flaky[0].state() == v1::FAILED);
  CHECK(flaky[0].http_status() == 503);
  CHECK(flaky[1].state() == v1::SUCCEEDED);
  const auto missing = dead_letters_of(env, "missing", 1, 30s);
  REQUIRE(missing.size() == 1);
  CHECK(missing[0].history_size() == 1);  // 404 is final
  CHECK(missing[0].history(0).http_status() == 404);
  const auto metadata = dead_letters_of(env, "metadata", 1, 30s);
  REQUIRE(metadata.size() == 1);
  CHECK_THAT(metadata[0].reason(), Catch::Contains("169.254.169.254") && Catch::Contains("link-local"));
  CHECK(hits == 4);  // post, flaky twice, missing: nothing else reached a server
}

namespace {

// Submits `count` sleep jobs `<prefix>-<n>` of the given priority and duration.
void submit_sleeps(TestProducer& producer, const TestEnv& env, const std::string& prefix, int count, int priority,
                   const std::string& duration) {
  for (int index = 0; index < count; ++index) {
    const auto id = fmt::format("{}-{}", prefix, index);
    submit(producer, env, id, fmt::format(R"({{"id":"{}","priority":{},"sleep":{{"duration":"{}"}}}})", id, priority, duration));
  }
}

// Waits until every one of `count` jobs has its exec record (the dispatcher fired them all).
void wait_all_fired(const TestEnv& env, std::size_t count) {
  const auto fired = [](const std::vector<Record>& records) {
    std::set<std::string> ids;
    for (const auto& record : records) ids.insert(record.key);
    return ids.size();
  };
  const auto records = read_topics(exec_topics(env.prefix), 60s, [&](const auto& all) { return fired(all) >= count; });
  REQUIRE(fired(records) == count);
}

// The job ids of `count` results, in the order their jobs finished (one slot: one at a time).
// `skip` names a job left out of the count and the order (its result, if any, need not succeed).
std::vector<std::string> finish_order(const TestEnv& env, std::size_t count, const std::string& skip = "") {
  const auto parse_results = [&](const std::vector<Record>& records) {
    std::vector<v1::Result> results;
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value) && result.job_id() != skip) results.push_back(result);
    }
    return results;
  };
  auto results = parse_results(
      read_topics({env.prefix + "results"}, 120s, [&](const auto& all) { return parse_results(all).size() >= count; }));
  REQUIRE(results.size() == count);
  std::sort(results.begin(), results.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.started_ms(), a.finished_ms()) < std::make_pair(b.started_ms(), b.finished_ms());
  });
  std::vector<std::string> order;
  for (const auto& result : results) {
    CHECK(result.state() == v1::SUCCEEDED);
    order.push_back(result.job_id());
  }
  return order;
}

// Position (1-based) in `order` of the n-th job whose id starts with `prefix`; 0 if none.
std::size_t nth_position(const std::vector<std::string>& order, const std::string& prefix, int nth) {
  int seen = 0;
  for (std::size_t index = 0; index < order.size(); ++index) {
    if (order[index].starts_with(prefix) && ++seen == nth) return index + 1;
  }
  return 0;
}

}  // namespace

TEST_CASE("a one-slot worker facing a low-priority backlog serves the high band first by weight, and runs every low job",
          "[integration]") {
  TestEnv env("bands");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  TestProducer producer;
  submit_sleeps(producer, env, "low", 30, 1, "0.15s");
  submit_sleeps(producer, env, "high", 10, 9, "0.15s");
  wait_all_fired(env, 40);

  // Started with the backlog already on the exec topics: one slot, one job waiting per band.
  auto worker = start(env, "kcron-worker", "w1", {"KCRON_SLOTS=1"});
  const auto order = finish_order(env, 40);
  const auto last_high = nth_position(order, "high-", 10);
  const auto twentieth_low = nth_position(order, "low-", 20);
  WARN(fmt::format("bands: the 10th high job finished {}th of 40, the 20th low one {}th; order {}", last_high, twentieth_low,
                   fmt::join(order, " ")));
  // Weights 8:1 give low one pick in nine while both bands wait: the ten high jobs are done after
  // about 12 picks (the first job starts before the bands compete). The 20th low job leaves a
  // wide margin for a high job that is fetched a little late.
  CHECK(last_high > 0);
  CHECK(last_high < twentieth_low);
  CHECK(nth_position(order, "low-", 30) > 0);  // no band starves
}

TEST_CASE("aging serves a low job that waited past bands.aging_ms before a flood of high jobs", "[integration]") {
  TestEnv env("aging");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  // By weight alone (1000:1) low would get its first pick after some 500 high ones: with
  // bands.aging_ms=0 this run shows 0 or 1 of the 6 low jobs before the last high one (a pick
  // while the high band refills), with 300 ms all 6.
  auto worker = start(env, "kcron-worker", "w1",
                      {"KCRON_SLOTS=1", "KCRON_BANDS_PREFETCH=10", "KCRON_BANDS_HIGH_WEIGHT=1000", "KCRON_BANDS_LOW_WEIGHT=1",
                       "KCRON_BANDS_AGING_MS=300"});
  TestProducer producer;
  // A blocker holds the only slot until both bands have jobs waiting, so the order does not depend
  // on which topic the consumer happens to fetch first.
  submit(producer, env, "blocker", R"({"id":"blocker","sleep":{"duration":"120s"}})");
  const auto port = http_port_of(*worker);
  const auto wait_metrics = [&](const std::string& what, const std::function<bool(const std::string&)>& done) {
    bool reached = false;
    for (int tries = 0; tries < 600 && !reached; ++tries) {
      reached = done(scrape(port));
      if (!reached) std::this_thread::sleep_for(50ms);
    }
    INFO(what);
    REQUIRE(reached);
  };
  wait_metrics("the blocker runs",
               [](const std::string& metrics) { return metric_value(metrics, "kcron_worker_running_jobs") == 1; });
  submit_sleeps(producer, env, "low", 6, 1, "0.1s");
  wait_metrics("low jobs wait",
               [](const std::string& metrics) { return metric_value(metrics, R"(kcron_worker_waiting_jobs{band="low"})") == 6; });
  submit_sleeps(producer, env, "high", 24, 9, "0.1s");
  wait_metrics("high jobs wait", [](const std::string& metrics) {
    return metric_value(metrics, R"(kcron_worker_waiting_jobs{band="high"})") == 10;
  });
  const auto cancel = run_cli(env, "cancel blocker --reason 'let the bands compete'");
  INFO(cancel.output);
  REQUIRE(cancel.exit_code == 0);

  const auto order = finish_order(env, 30, "blocker");
  const auto last_high = nth_position(order, "high-", 24);
  std::size_t lows_before = 0;
  for (std::size_t index = 0; index + 1 < last_high; ++index) {
    if (order[index].starts_with("low-")) ++lows_before;
  }
  WARN(fmt::format("aging: {} of 6 low jobs finished before the last high one; order {}", lows_before, fmt::join(order, " ")));
  // The low jobs waited past 300 ms behind the blocker: aging serves them ahead of the high band.
  CHECK(lows_before >= 4);
  CHECK(nth_position(order, "low-", 6) > 0);
}

TEST_CASE("a cancel takes a waiting job off its queue, and SIGTERM hands waiting jobs back unstarted", "[integration]") {
  TestEnv env("waiting");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", {"KCRON_SLOTS=1"});
  TestProducer producer;
  submit(producer, env, "blocker", R"({"id":"blocker","sleep":{"duration":"10s"}})");
  wait_fired(env, "blocker");
  submit(producer, env, "cancel-me", R"({"id":"cancel-me","priority":9,"noop":{}})");
  submit(producer, env, "handed", R"({"id":"handed","priority":1,"noop":{}})");
  // Both wait behind the blocker, one per band.
  const auto port = http_port_of(*worker);
  bool both_waiting = false;
  for (int tries = 0; tries < 200 && !both_waiting; ++tries) {
    const auto metrics = scrape(port);
    both_waiting = metric_value(metrics, R"(kcron_worker_waiting_jobs{band="high"})") == 1 &&
                   metric_value(metrics, R"(kcron_worker_waiting_jobs{band="low"})") == 1 &&
                   metric_value(metrics, "kcron_worker_running_jobs") == 1;
    if (!both_waiting) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(both_waiting);

  const auto cancel = run_cli(env, "cancel cancel-me --reason 'not needed'");
  INFO(cancel.output);
  REQUIRE(cancel.exit_code == 0);
  const auto cancelled = wait_for_results(env, "cancel-me", 1, 30s);
  REQUIRE(cancelled.size() == 1);
  CHECK(cancelled[0].state() == v1::CANCELLED);
  CHECK(cancelled[0].error() == "cancelled before it started: not needed");
  CHECK(results_of(read_topics({env.prefix + "results"}, 1s), "blocker").empty());  // still running

  CHECK(worker->terminate(30s) == 0);
  CHECK(count_in_log(worker->log_path(), "event=waiting_handed_back count=1") == 1);
  const auto blocker = wait_for_results(env, "blocker", 1, 20s);
  REQUIRE(blocker.size() == 1);
  CHECK(blocker[0].state() == v1::SUCCEEDED);
  CHECK(results_of(read_topics({env.prefix + "results"}, 2s), "handed").empty());

  worker = start(env, "kcron-worker", "w1", {"KCRON_SLOTS=1"});
  const auto handed = wait_for_results(env, "handed", 1, 60s);
  REQUIRE(handed.size() == 1);
  CHECK(handed[0].state() == v1::SUCCEEDED);
  CHECK(handed[0].attempt() == 0);
}

TEST_CASE("an outcome the broker refuses is isolated and recorded DEAD, reduced, and the jobs around it still succeed",
          "[integration]") {
  TestEnv env("poisonout");
  // A sink that refuses records over 1500 bytes: the kafka job's record aborts every transaction
  // it is in, until the worker isolates it (one outcome per transaction) and records it reduced.
  const std::string sink = "small-" + env.prefix.substr(0, env.prefix.size() - 1);
  auto created = kafka::create_topics(test_client_properties(), {{sink, 1, {{"max.message.bytes", "1500"}}}}, 1, 30s);
  REQUIRE(created.ok());
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  TestProducer producer;
  // base64 of 3000 random bytes (incompressible: the limit applies to the compressed batch)
  std::string big;
  std::mt19937 random(7);
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int index = 0; index < 4000; ++index) big += kAlphabet[random() % kAlphabet.size()];
  submit(producer, env, "huge", fmt::format(R"({{"id":"huge","kafka":{{"topic":"{}","value":"{}"}}}})", sink, big));
  for (int index = 0; index < 5; ++index) {
    submit(producer, env, fmt::format("ok-{}", index), fmt::format(R"({{"id":"ok-{}","noop":{{}}}})", index));
  }
  const auto letters = dead_letters_of(env, "huge", 1, 60s);
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].state() == v1::DEAD);
  CHECK_THAT(letters[0].reason(), Catch::Contains("could not be published in full"));
  for (int index = 0; index < 5; ++index) {
    const auto id = fmt::format("ok-{}", index);
    INFO(id);
    const auto results = wait_for_results(env, id, 1, 30s);
    REQUIRE(results.size() == 1);
    CHECK(results[0].state() == v1::SUCCEEDED);
  }
  CHECK(read_topics({sink}, 3s).empty());  // nothing half-written
  CHECK(worker->running());
  CHECK(count_in_log(worker->log_path(), "event=outcome_reduced") == 1);
}
