// kcron-relay on the real broker: a Kafka-native tenant writes only to its own input topics, and
// the relay forwards each record into kcron.jobs / kcron.schedules as that tenant's, whatever the
// body says. kcron-relay, kcron-dispatcher and kcron-worker run as child processes on a fresh
// topic prefix.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "kcron.pb.h"
#include "kcron/codec.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

const Record* find_key(const std::vector<Record>& records, const std::string& key) {
  for (const auto& record : records)
    if (record.key == key) return &record;
  return nullptr;
}

}  // namespace

TEST_CASE("relay: a job on in.acme naming tenant b runs as acme, and garbage before it is acme's dead letter", "[integration]") {
  TestEnv env("relay-run");
  // acme as `kcron tenant create acme --kafka --kafka-output` makes it: its input topics and its
  // output topic, where it reads its results, status changes and dead letters (the relay's too).
  const auto created = run_cli(env, "tenant create acme --kafka --kafka-output --input-partitions 2");
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "dispatcher");
  auto worker = start_program(env, "kcron-worker", "w1", "worker");
  auto relay = start_program(env, "kcron-relay", "r1", "relay");
  TestProducer producer;
  const auto topic = env.prefix + "in.acme";
  producer.send(topic, "g1", "{not json", 0);
  producer.send(topic, "", R"({"id":"job-1","tenant":"b","noop":{}})", 0);  // same partition: after the garbage
  producer.send(topic, "", R"({"retry":{"job":{"id":"job-1","noop":{}},"due_ms":"1"}})", 1);
  producer.flush();

  // (1) The job runs as acme's, keyed acme~job-1, although its body said tenant b.
  const auto results = read_topics({env.prefix + "results"}, 60s,
                                   [](const std::vector<Record>& records) { return find_key(records, "acme~job-1") != nullptr; });
  const auto* result_record = find_key(results, "acme~job-1");
  INFO(tail_file(relay->log_path()));
  REQUIRE(result_record != nullptr);
  v1::Result result;
  REQUIRE(result.ParseFromString(result_record->value));
  CHECK(result.state() == v1::SUCCEEDED);
  CHECK(result.tenant() == "acme");
  CHECK(result.job_id() == "job-1");
  CHECK(result_record->headers.at("kcron-tenant") == "acme");
  CHECK(find_key(results, "b~job-1") == nullptr);
  const auto status = read_topics({env.prefix + "status"}, 20s, [](const std::vector<Record>& records) {
    for (const auto& record : records) {
      if (record.key == "acme~job-1" && record.headers.count("kcron-status") == 1 &&
          record.headers.at("kcron-status") == "SUCCEEDED") {
        return true;
      }
    }
    return false;
  });
  bool succeeded = false;
  for (const auto& record : status) {
    if (record.key == "b~job-1" || record.key == "job-1") FAIL("a status record keyed " << record.key);
    v1::StatusRecord state;
    if (record.key == "acme~job-1" && state.ParseFromString(record.value)) {
      CHECK(state.tenant() == "acme");
      succeeded = succeeded || state.state() == v1::SUCCEEDED;
    }
  }
  CHECK(succeeded);
  CHECK(count_in_log(relay->log_path(), "event=tenant_overridden") == 1);
  CHECK(count_in_log(relay->log_path(), R"("tenant":"b")") == 0);  // no payload in the log

  // (3) The garbage and the retry (only kcron's workers write one) are acme's dead letters, with
  // the reason; neither held back the job behind it.
  const auto letters =
      read_topics({env.prefix + "dead-letters"}, 20s, [](const std::vector<Record>& records) { return records.size() >= 2; });
  std::map<std::string, v1::DeadLetter> by_key;
  for (const auto& record : letters) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    by_key[record.key] = letter;
  }
  REQUIRE(by_key.contains("acme~g1"));
  CHECK(by_key.at("acme~g1").state() == v1::REJECTED);
  CHECK(by_key.at("acme~g1").tenant() == "acme");
  CHECK_THAT(by_key.at("acme~g1").reason(), Catch::Contains("invalid JSON"));
  CHECK(by_key.at("acme~g1").source_topic() == topic);
  REQUIRE(by_key.contains("acme~rejected-1-0"));
  CHECK_THAT(by_key.at("acme~rejected-1-0").reason(), Catch::Contains("a retry is written only by kcron's workers"));
  // Nothing it refused reached jobs: one record there, the submit.
  const auto jobs = read_topics({env.prefix + "jobs"}, 3s);
  int relayed = 0;
  for (const auto& record : jobs) relayed += record.headers.contains("kcron-relayed-from") ? 1 : 0;
  CHECK(relayed == 1);
  // acme's output topic has copies of the relay's dead letters for it, beside its job's result.
  const auto output = read_topics({env.prefix + "out.acme"}, 20s, [](const std::vector<Record>& records) {
    return find_key(records, "acme~g1") != nullptr && find_key(records, "acme~job-1") != nullptr;
  });
  CHECK(find_key(output, "acme~g1") != nullptr);
  CHECK(find_key(output, "acme~rejected-1-0") != nullptr);
  httplib::Client http("127.0.0.1", http_port_of(*relay));
  const auto metrics = http.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metric_value(metrics->body, "kcron_relay_tenant_overridden_total") == 1);
  CHECK(metric_value(metrics->body, R"(kcron_jobs_rejected_total{component="relay"})") == 2);
  CHECK(metric_value(metrics->body, "kcron_relay_forwarded_total") == 1);
  CHECK(relay->terminate() == 0);
}

TEST_CASE("relay: a schedule on in.acme.schedules becomes acme~id on schedules, and its tombstone deletes it", "[integration]") {
  TestEnv env("relay-schedules");
  create_tenant_input_topics(env, "acme");
  auto relay = start_program(env, "kcron-relay", "r1", "relay");
  TestProducer producer;
  const auto topic = env.prefix + "in.acme.schedules";
  producer.send(topic, "nightly", R"({"expression":"0 3 * * *","tenant":"b","job_template":{"noop":{}}})");
  producer.flush();
  const auto put =
      read_topics({env.prefix + "schedules"}, 30s, [](const std::vector<Record>& records) { return !records.empty(); });
  INFO(tail_file(relay->log_path()));
  REQUIRE(put.size() == 1);
  CHECK(put[0].key == "acme~nightly");
  v1::Schedule schedule;
  REQUIRE(schedule.ParseFromString(put[0].value));
  CHECK(schedule.id() == "nightly");
  CHECK(schedule.tenant() == "acme");
  CHECK(schedule.job_template().tenant() == "acme");

  producer.send_tombstone(topic, "nightly", producer.partition_of("nightly"));
  producer.flush();
  const auto both =
      read_topics({env.prefix + "schedules"}, 30s, [](const std::vector<Record>& records) { return records.size() >= 2; });
  REQUIRE(both.size() == 2);
  CHECK(both[1].key == "acme~nightly");
  CHECK(both[1].value.empty());
  CHECK(both[1].headers.count("kcron-relayed-from") == 1);
}

TEST_CASE("relay: a tenant topic created after the relay started is consumed within seconds, and its deletion stops nothing",
          "[integration]") {
  TestEnv env("relay-newco");
  create_tenant_input_topics(env, "acme");
  auto relay = start_program(env, "kcron-relay", "r1", "relay");
  const auto created = std::chrono::steady_clock::now();
  create_tenant_input_topics(env, "newco");
  const double create_s = seconds_since(created);
  TestProducer producer;
  producer.send(env.prefix + "in.newco", "", R"({"id":"first","noop":{}})");
  producer.flush();
  const auto jobs = read_topics({env.prefix + "jobs"}, 30s,
                                [](const std::vector<Record>& records) { return find_key(records, "newco~first") != nullptr; });
  const double seconds = seconds_since(created);
  INFO(tail_file(relay->log_path()));
  REQUIRE(find_key(jobs, "newco~first") != nullptr);
  WARN(
      fmt::format("a new tenant topic was consumed {:.1f} s after it was created (its creation took {:.1f} s of that, "
                  "metadata_refresh_ms 2000)",
                  seconds, create_s));
  CHECK(seconds < 10);

  // Its topics deleted while the relay runs (the tenant removed): acme's records still go through,
  // and a SIGTERM still ends the relay with everything read committed (librdkafka 2.0.2's close
  // can hang after such a deletion: the relay bounds it).
  delete_topics({env.prefix + "in.newco", env.prefix + "in.newco.schedules"});
  REQUIRE(wait_for_log(*relay, "event=revoked", 20s));
  std::this_thread::sleep_for(3s);  // the rebalance without newco's topics
  producer.send(env.prefix + "in.acme", "", R"({"id":"after-delete","noop":{}})");
  producer.flush();
  const auto after = read_topics({env.prefix + "jobs"}, 30s, [](const std::vector<Record>& records) {
    return find_key(records, "acme~after-delete") != nullptr;
  });
  CHECK(find_key(after, "acme~after-delete") != nullptr);
  producer.send(env.prefix + "in.acme", "", R"({"id":"at-stop","noop":{}})");
  producer.flush();
  CHECK(relay->terminate(30s) == 0);
  const auto last = read_topics({env.prefix + "jobs"}, 10s,
                                [](const std::vector<Record>& records) { return find_key(records, "acme~at-stop") != nullptr; });
  CHECK(find_key(last, "acme~at-stop") != nullptr);
}

TEST_CASE("relay: a tenant's input waits while a dispatcher does not understand tenant keys, and goes on once it does",
          "[integration]") {
  TestEnv env("relay-gate");
  create_tenant_input_topics(env, "acme");
  // A dispatcher that sends no heartbeat holds the upgrade gate closed, as one of an earlier release.
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "dispatcher-1", {"KCRON_HEARTBEAT_INTERVAL_MS=0"});
  auto relay = start_program(env, "kcron-relay", "r1", "relay", {"KCRON_UPGRADE_CHECK_INTERVAL_MS=1000"});
  TestProducer producer;
  producer.send(env.prefix + "in.acme", "", R"({"id":"gated","noop":{}})");
  producer.flush();
  INFO(tail_file(relay->log_path()));
  REQUIRE(wait_for_log(*relay, "event=feature_gate feature=tenant-keys open=false", 20s));
  const auto relayed = [](const std::vector<Record>& records) { return find_key(records, "acme~gated") != nullptr; };
  CHECK_FALSE(relayed(read_topics({env.prefix + "jobs"}, 3s, relayed)));
  httplib::Client http("127.0.0.1", http_port_of(*relay));
  const auto metrics = http.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metric_value(metrics->body, "kcron_relay_held") == 1);

  // The same dispatcher again, now with heartbeats: the gate opens and the record is forwarded.
  CHECK(dispatcher->terminate() == 0);
  dispatcher = start_program(env, "kcron-dispatcher", "d1", "dispatcher-2");
  CHECK(relayed(read_topics({env.prefix + "jobs"}, 30s, relayed)));
  CHECK(count_in_log(relay->log_path(), "event=released") >= 1);
}
