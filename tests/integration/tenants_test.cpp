// Tenants on the real broker: a job's identity is (tenant, id). Two tenants whose names share a
// prefix (a, ab) use the same job id from the CLI; each runs once, a cancel and a cancel before
// the submit act inside their own tenant, and every output record is keyed by the tenant-scoped key.
// kcron-dispatcher and kcron-worker run as child processes on a fresh topic prefix.
#include <httplib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <thread>

#include "kcron.pb.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Process> start(TestEnv& env, const std::string& program, const std::string& instance) {
  static int launches = 0;
  auto process = std::make_unique<Process>(program_path(program), env.program_env(instance),
                                           fmt::format("{}/{}-{}.log", env.state_root, instance, ++launches));
  INFO(tail_file(process->log_path()));
  REQUIRE(wait_for_log(*process, "event=assigned", 60s));
  return process;
}

// The results by record key, once `done` holds for them (bounded).
std::map<std::string, std::vector<v1::Result>> results_by_key(const TestEnv& env, std::chrono::seconds timeout,
                                                              const std::function<bool(std::size_t)>& done) {
  std::map<std::string, std::vector<v1::Result>> by_key;
  const auto collect = [&](const std::vector<Record>& records) {
    by_key.clear();
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value)) by_key[record.key].push_back(result);
    }
    return by_key.size();
  };
  collect(read_topics({env.prefix + "results"}, timeout, [&](const auto& records) { return done(collect(records)); }));
  return by_key;
}

void require_cli(const TestEnv& env, const std::string& arguments, const std::string& expected_output) {
  const auto run = run_cli(env, arguments);
  INFO(arguments << "\n" << run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains(expected_output));
}

}  // namespace

TEST_CASE("tenants a and ab both run same-id from the CLI, once each, keyed apart", "[integration]") {
  TestEnv env("tenants-same-id");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  require_cli(env, R"(--tenant a submit '{"id":"same-id","noop":{}}')", "submitted same-id for tenant a");
  require_cli(env, R"(--tenant ab submit '{"id":"same-id","noop":{}}')", "submitted same-id for tenant ab");
  require_cli(env, R"(submit '{"id":"same-id","noop":{}}')", "submitted same-id");
  const auto results = results_by_key(env, 60s, [](std::size_t keys) { return keys >= 3; });
  REQUIRE(results.size() == 3);
  for (const auto& [key, tenant] :
       std::map<std::string, std::string>{{"a~same-id", "a"}, {"ab~same-id", "ab"}, {"same-id", ""}}) {
    INFO(key);
    REQUIRE(results.contains(key));
    REQUIRE(results.at(key).size() == 1);
    CHECK(results.at(key)[0].state() == v1::SUCCEEDED);
    CHECK(results.at(key)[0].job_id() == "same-id");
    CHECK(results.at(key)[0].tenant() == tenant);
  }
  // `kcron status` answers inside the tenant it is given.
  require_cli(env, "--tenant ab status same-id", "job same-id: SUCCEEDED");
  const auto unknown = run_cli(env, "--tenant nobody status same-id");
  CHECK(unknown.exit_code == 1);
  CHECK_THAT(unknown.output, Catch::Contains("no status for job 'same-id' of tenant 'nobody'"));
}

TEST_CASE("a's cancel of same-id leaves ab's job alone, and a's cancel of an unseen id does not cancel ab's later submit",
          "[integration]") {
  TestEnv env("tenants-cancel");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  // 10 s: the cancel (two CLI runs later, each ~1 s on a loaded machine) must reach a's job
  // before its instant, through control once it has fired ahead (docs/fire-ahead.md); with 4 s
  // it sometimes arrived after the instant and the job ran.
  require_cli(env, R"(--tenant a submit '{"id":"same-id","delay":"10s","noop":{}}')", "submitted");
  require_cli(env, R"(--tenant ab submit '{"id":"same-id","delay":"10s","noop":{}}')", "submitted");
  require_cli(env, "--tenant a cancel same-id", "cancel sent for same-id of tenant a");
  // The pre-cancel: a's marker for `later` must not touch ab's `later`.
  require_cli(env, "--tenant a cancel later", "cancel sent for later of tenant a");
  require_cli(env, R"(--tenant ab submit '{"id":"later","noop":{}}')", "submitted");
  require_cli(env, R"(--tenant a submit '{"id":"later","noop":{}}')", "submitted");

  const auto results = results_by_key(env, 60s, [](std::size_t keys) { return keys >= 2; });
  REQUIRE(results.size() >= 2);
  // Give a wrongly fired job of a time to show up before concluding it never ran.
  std::this_thread::sleep_for(2s);
  const auto settled = results_by_key(env, 5s, [](std::size_t) { return false; });
  CHECK(settled.size() == 2);
  CHECK(settled.contains("ab~same-id"));
  CHECK(settled.contains("ab~later"));
  CHECK_FALSE(settled.contains("a~same-id"));
  CHECK_FALSE(settled.contains("a~later"));
  require_cli(env, "--tenant a status same-id", "job same-id: CANCELLED");
  require_cli(env, "--tenant a status later", "job later: CANCELLED");
  require_cli(env, "--tenant ab status same-id", "job same-id: SUCCEEDED");
}

TEST_CASE("a's cancel of a running same-id stops a's job on the worker, and ab's running same-id succeeds", "[integration]") {
  TestEnv env("tenants-running");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  require_cli(env, R"(--tenant a submit '{"id":"same-id","sleep":{"duration":"5s"}}')", "submitted");
  require_cli(env, R"(--tenant ab submit '{"id":"same-id","sleep":{"duration":"5s"}}')", "submitted");
  // Both run on the worker before the cancel: the cancel goes through kcron.control to a running job.
  const auto port = http_port_of(*worker);
  bool both_running = false;
  for (int tries = 0; tries < 200 && !both_running; ++tries) {
    httplib::Client client("127.0.0.1", port);
    const auto response = client.Get("/metrics");
    both_running = response && metric_value(response->body, "kcron_worker_running_jobs") == 2;
    if (!both_running) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(both_running);
  require_cli(env, "--tenant a cancel same-id --reason 'not needed'", "cancel sent for same-id of tenant a");

  const auto results = results_by_key(env, 60s, [](std::size_t keys) { return keys >= 2; });
  REQUIRE(results.size() == 2);
  REQUIRE(results.at("a~same-id").size() == 1);
  CHECK(results.at("a~same-id")[0].state() == v1::CANCELLED);
  REQUIRE(results.at("ab~same-id").size() == 1);
  CHECK(results.at("ab~same-id")[0].state() == v1::SUCCEEDED);
  // a's job stopped when the cancel reached it, well before its 5 s.
  CHECK(results.at("a~same-id")[0].finished_ms() < results.at("ab~same-id")[0].finished_ms());
}

namespace {

// The last status of every key (the compacted status topic as its consumers see it), read until
// `done` holds (bounded).
std::map<std::string, v1::StatusRecord> latest_statuses(
    const TestEnv& env, std::chrono::seconds timeout,
    const std::function<bool(const std::map<std::string, v1::StatusRecord>&)>& done) {
  std::map<std::string, v1::StatusRecord> latest;
  const auto fold = [&](const std::vector<Record>& records) {
    latest.clear();
    for (const auto& record : records) {
      v1::StatusRecord status;
      if (status.ParseFromString(record.value)) latest[record.key] = status;
    }
  };
  fold(read_topics({env.prefix + "status"}, timeout, [&](const auto& records) {
    fold(records);
    return done(latest);
  }));
  return latest;
}

std::size_t count_state(const std::map<std::string, v1::StatusRecord>& statuses, const std::string& key_prefix,
                        v1::JobState state) {
  return static_cast<std::size_t>(std::count_if(statuses.begin(), statuses.end(), [&](const auto& entry) {
    return entry.first.starts_with(key_prefix) && entry.second.state() == state;
  }));
}

}  // namespace

TEST_CASE(
    "a tenant over its pending limit is REJECTED with the limit named while another tenant is not, a raised limit "
    "applies without a restart, and tenant delete cancels what was pending",
    "[integration]") {
  TestEnv env("tenants-limits");  // 4 jobs partitions: each holds ceil(4 * 1.25 / 4) = 2 of acme's pending jobs
  const auto created = run_cli(env, "tenant create acme --max-pending 4");
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  auto dispatcher = start(env, "kcron-dispatcher", "d1");

  constexpr std::size_t kJobs = 20;
  std::map<std::int32_t, int> acme_per_partition;
  TestProducer producer;
  for (std::size_t index = 0; index < kJobs; ++index) {
    const std::string id = fmt::format("limited-{}", index);
    ++acme_per_partition[partition_for_key(scoped_routing_key("acme", id), 4).value()];
    producer.send(env.prefix + "jobs", scoped_key("acme", id),
                  fmt::format(R"({{"id":"{}","tenant":"acme","delay":"3600s","noop":{{}}}})", id));
    producer.send(env.prefix + "jobs", scoped_key("beta", id),
                  fmt::format(R"({{"id":"{}","tenant":"beta","delay":"3600s","noop":{{}}}})", id));
  }
  producer.flush();
  std::size_t expected_pending = 0;
  for (const auto& [partition, ids] : acme_per_partition) expected_pending += static_cast<std::size_t>(std::min(ids, 2));

  constexpr std::size_t kBothTenants = 2 * kJobs;
  auto statuses = latest_statuses(env, 60s, [](const auto& latest) { return latest.size() >= kBothTenants; });
  INFO(tail_file(dispatcher->log_path(), 30));
  REQUIRE(statuses.size() == kBothTenants);
  CHECK(count_state(statuses, "beta~", v1::PENDING) == kJobs);
  CHECK(count_state(statuses, "acme~", v1::PENDING) == expected_pending);
  const std::size_t refused = count_state(statuses, "acme~", v1::REJECTED);
  CHECK(refused == kJobs - expected_pending);
  std::string refused_id;
  for (const auto& [key, status] : statuses) {
    if (status.state() != v1::REJECTED) continue;
    CHECK_THAT(status.reason(), Catch::Contains("tenant 'acme' is at its limit of 4 pending jobs"));
    refused_id = status.job_id();
  }
  REQUIRE(!refused_id.empty());
  {
    httplib::Client client("127.0.0.1", http_port_of(*dispatcher));
    const auto response = client.Get("/metrics");
    REQUIRE(response);
    CHECK(metric_value(response->body, R"(kcron_tenant_refusals_total{tenant="acme",limit="pending_jobs"})") ==
          static_cast<double>(refused));
  }

  // A raised limit applies without a restart: the refused id, submitted again, waits like the others.
  const auto raised = run_cli(env, "tenant set acme --max-pending 1000");
  INFO(raised.output);
  REQUIRE(raised.exit_code == 0);
  bool accepted = false;
  for (int tries = 0; tries < 40 && !accepted; ++tries) {
    producer.send(env.prefix + "jobs", scoped_key("acme", refused_id),
                  fmt::format(R"({{"id":"{}","tenant":"acme","delay":"3600s","noop":{{}}}})", refused_id));
    producer.flush();
    const auto now = latest_statuses(env, 2s, [&](const auto& latest) {
      const auto found = latest.find(scoped_key("acme", refused_id));
      return found != latest.end() && found->second.state() == v1::PENDING;
    });
    const auto found = now.find(scoped_key("acme", refused_id));
    accepted = found != now.end() && found->second.state() == v1::PENDING;
  }
  CHECK(accepted);

  // tenant delete: every pending job of acme is cancelled, beta's stay.
  const auto deleted = run_cli(env, "tenant delete acme --yes");
  INFO(deleted.output);
  REQUIRE(deleted.exit_code == 0);
  const std::size_t acme_pending = expected_pending + (accepted ? 1 : 0);
  statuses =
      latest_statuses(env, 60s, [&](const auto& latest) { return count_state(latest, "acme~", v1::CANCELLED) >= acme_pending; });
  CHECK(count_state(statuses, "acme~", v1::CANCELLED) == acme_pending);
  CHECK(count_state(statuses, "acme~", v1::PENDING) == 0);
  CHECK(count_state(statuses, "beta~", v1::PENDING) == kJobs);
  for (const auto& [key, status] : statuses) {
    if (key.starts_with("acme~") && status.state() == v1::CANCELLED) CHECK(status.reason() == "tenant 'acme' was deleted");
  }
  CHECK(run_cli(env, "tenant get acme").exit_code != 0);
}

TEST_CASE("tenant delete stops the tenant's running job on the worker, and another tenant's running job succeeds",
          "[integration]") {
  TestEnv env("tenants-delete-running");
  REQUIRE(run_cli(env, "tenant create acme").exit_code == 0);
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1");
  require_cli(env, R"(--tenant acme submit '{"id":"long","sleep":{"duration":"30s"}}')", "submitted");
  require_cli(env, R"(--tenant beta submit '{"id":"long","sleep":{"duration":"4s"}}')", "submitted");
  const auto port = http_port_of(*worker);
  bool both_running = false;
  for (int tries = 0; tries < 200 && !both_running; ++tries) {
    httplib::Client client("127.0.0.1", port);
    const auto response = client.Get("/metrics");
    both_running = response && metric_value(response->body, "kcron_worker_running_jobs") == 2;
    if (!both_running) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(both_running);
  const auto deleted = run_cli(env, "tenant delete acme --yes");
  INFO(deleted.output);
  REQUIRE(deleted.exit_code == 0);
  const auto results = results_by_key(env, 60s, [](std::size_t keys) { return keys >= 2; });
  REQUIRE(results.size() == 2);
  REQUIRE(results.at("acme~long").size() == 1);
  CHECK(results.at("acme~long")[0].state() == v1::CANCELLED);
  REQUIRE(results.at("beta~long").size() == 1);
  CHECK(results.at("beta~long")[0].state() == v1::SUCCEEDED);
  // acme's job stopped when the tenant-wide cancel reached it, long before its 30 s.
  CHECK(results.at("acme~long")[0].finished_ms() - results.at("acme~long")[0].started_ms() < 20'000);
}

TEST_CASE(
    "a tenant's submit is refused while a dispatcher of an earlier release is in the group, the default tenant's is not, "
    "and the tenant's is accepted once that dispatcher has gone",
    "[integration]") {
  TestEnv env("tenants-upgrade-gate");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  // A dispatcher of the release before: a static member of the group that sends no heartbeat.
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [name, value] : std::map<std::string, std::string>{{"bootstrap.servers", brokers()},
                                                                      {"group.id", env.prefix + "dispatcher"},
                                                                      {"group.instance.id", env.prefix + "dispatcher-old"},
                                                                      {"session.timeout.ms", "6000"},
                                                                      {"enable.auto.commit", "false"}}) {
    REQUIRE(conf->set(name, value, error) == RdKafka::Conf::CONF_OK);
  }
  std::unique_ptr<RdKafka::KafkaConsumer> old(RdKafka::KafkaConsumer::create(conf.get(), error));
  REQUIRE(old);
  REQUIRE(old->subscribe({env.prefix + "jobs"}) == RdKafka::ERR_NO_ERROR);
  std::vector<RdKafka::TopicPartition*> assigned;
  for (int polls = 0; polls < 300 && assigned.empty(); ++polls) {
    delete old->consume(100);
    old->assignment(assigned);
  }
  REQUIRE(!assigned.empty());
  RdKafka::TopicPartition::destroy(assigned);

  const auto refused = run_cli(env, R"(--tenant acme submit '{"id":"gated","noop":{}}')");
  INFO(refused.output);
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.output, Catch::Contains("dispatcher 'old' sends no heartbeat: it runs a release that does not understand "
                                             "'tenant-keys'"));
  CHECK_THAT(refused.output, Catch::Contains("nothing was written for tenant 'acme'"));
  require_cli(env, R"(submit '{"id":"default-ok","noop":{}}')", "submitted default-ok");

  // Once it has left (a static member leaves when its session times out), the gate opens.
  old->close();
  old.reset();
  bool accepted = false;
  for (int tries = 0; tries < 30 && !accepted; ++tries) {
    accepted = run_cli(env, R"(--tenant acme submit '{"id":"gated","noop":{}}')").exit_code == 0;
    if (!accepted) std::this_thread::sleep_for(1s);
  }
  CHECK(accepted);
}
