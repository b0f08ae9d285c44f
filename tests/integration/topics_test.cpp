// Topic config alignment on the real broker: a deployment made by the previous release (status
// `cleanup.policy=compact`, an override of the operator's, a tuned retention elsewhere) brought in
// line by the library calls and by `kcron topics create`, and `kcron topics check` before and after.
#include "kcron/topics.h"

#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <thread>

#include "kcron/kafka.h"
#include "kcron/topic_drift.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

constexpr auto kTimeout = 30s;

std::unique_ptr<RdKafka::Producer> admin_client() {
  auto producer = kafka::make_producer(test_client_properties({{"client.id", "topics-test-admin"}}), "");
  REQUIRE(producer.ok());
  return std::move(*producer);
}

// TestEnv's layout, for the partition flags of `kcron topics check`.
const std::string kLayoutFlags = "--jobs-partitions 4 --exec-partitions 2 --output-partitions 2 --schedules-partitions 2";

std::vector<TopicSpec> specs_of(const TestEnv& env) {
  TopicLayout layout;
  layout.jobs_partitions = env.jobs_partitions;
  layout.exec_partitions = env.exec_partitions;
  layout.output_partitions = 2;
  layout.schedules_partitions = 2;
  return all_topics(TopicNames(env.prefix), layout);
}

// Turns the env's topics into a previous release's deployment with some operator tuning: status as
// that release created it plus max.message.bytes of the operator's, results with one day of retention.
void make_previous_release(RdKafka::Handle& admin, const TestEnv& env) {
  const TopicNames names(env.prefix);
  REQUIRE(kafka::set_topic_overrides(admin, names.status(),
                                     {{"cleanup.policy", "compact"},
                                      {"delete.retention.ms", "86400000"},
                                      {"min.compaction.lag.ms", "604800000"},
                                      {"max.message.bytes", "2000000"}},
                                     kTimeout)
              .ok());
  REQUIRE(kafka::align_topic_configs(admin, names.results(), {{"retention.ms", "86400000"}}, kTimeout).ok());
}

// The topic's effective config once `ready` holds for it (the broker applies an alter as it
// replays its metadata), or as it is after 10 s.
std::map<std::string, std::string> described(RdKafka::Handle& admin, const std::string& topic,
                                             const std::function<bool(const std::map<std::string, std::string>&)>& ready) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (true) {
    auto configs = kafka::describe_topic_configs(admin, {topic}, kTimeout);
    REQUIRE(configs.ok());
    REQUIRE(configs->size() == 1);
    if (ready(configs->front().effective) || std::chrono::steady_clock::now() > deadline) return configs->front().effective;
    std::this_thread::sleep_for(200ms);
  }
}

bool contains(const std::vector<ConfigDrift>& drift, const std::string& topic, const std::string& key,
              const std::string& current) {
  return std::find_if(drift.begin(), drift.end(), [&](const ConfigDrift& entry) {
           return entry.topic == topic && entry.key == key && entry.current == current;
         }) != drift.end();
}

CliRun cli(const TestEnv& env, const std::string& arguments, int expected_exit) {
  auto run = run_cli(env, arguments);
  INFO("kcron " << arguments << "\n" << run.output);
  CHECK(run.exit_code == expected_exit);
  return run;
}

}  // namespace

TEST_CASE("the drift of a previous release's topics is found and aligned, keeping the operator's overrides") {
  const TestEnv env("topics-lib");
  const TopicNames names(env.prefix);
  const auto specs = specs_of(env);
  auto admin = admin_client();
  auto before = kafka::topic_config_drift(*admin, specs, kTimeout);
  REQUIRE(before.ok());
  CHECK(before->empty());

  make_previous_release(*admin, env);
  described(*admin, names.status(), [](const auto& config) { return config.at("cleanup.policy") == "compact"; });
  auto drift = kafka::topic_config_drift(*admin, specs, kTimeout);
  REQUIRE(drift.ok());
  CHECK(contains(*drift, names.status(), "cleanup.policy", "compact"));
  CHECK(contains(*drift, names.status(), "min.compaction.lag.ms", "604800000"));
  CHECK(contains(*drift, names.results(), "retention.ms", "86400000"));
  for (const auto& entry : *drift) CHECK((entry.topic == names.status() || entry.topic == names.results()));

  const auto plan = plan_alignment(*drift, false);
  REQUIRE(plan.topics == std::vector<std::string>{names.status()});
  REQUIRE(plan.notes == std::vector<ConfigDrift>{{names.results(), "retention.ms", "86400000", "604800000"}});
  const auto status_spec =
      std::find_if(specs.begin(), specs.end(), [&](const TopicSpec& spec) { return spec.name == names.status(); });
  REQUIRE(kafka::align_topic_configs(*admin, names.status(), status_spec->config, kTimeout).ok());

  const auto status =
      described(*admin, names.status(), [](const auto& config) { return config.at("cleanup.policy") != "compact"; });
  CHECK(status.at("cleanup.policy") == "compact,delete");
  CHECK(status.at("retention.ms") == "604800000");
  CHECK(status.at("min.compaction.lag.ms") == "86400000");
  CHECK(status.at("delete.retention.ms") == "86400000");
  CHECK(status.at("max.message.bytes") == "2000000");
  auto after = kafka::topic_config_drift(*admin, specs, kTimeout);
  REQUIRE(after.ok());
  CHECK(*after == plan.notes);
}

TEST_CASE("kcron topics create aligns cleanup.policy, notes the tuning, and topics check fails until it ran") {
  const TestEnv env("topics-cli");
  const TopicNames names(env.prefix);
  const auto specs = specs_of(env);
  auto admin = admin_client();
  const auto clean = cli(env, "topics check " + kLayoutFlags, 0);
  CHECK(clean.output == fmt::format("all {} topics present with the expected partition counts\n", specs.size()));

  make_previous_release(*admin, env);
  described(*admin, names.status(), [](const auto& config) { return config.at("cleanup.policy") == "compact"; });
  const std::string results_note = fmt::format("  note: {} retention.ms is 86400000 (kcron ships 604800000)\n", names.results());
  const std::string policy_change = fmt::format("  {}: cleanup.policy compact -> compact,delete\n", names.status());
  const auto refused = cli(env, "topics check " + kLayoutFlags, 1);
  CHECK_THAT(refused.output, Catch::Contains(policy_change));
  CHECK_THAT(refused.output, Catch::Contains(results_note));
  CHECK_THAT(refused.output,
             Catch::Contains("kcron: the cleanup.policy of 1 topic(s) differs from this release's: run `kcron topics create`"));

  const auto created = cli(env, "topics create " + kLayoutFlags, 0);
  CHECK_THAT(created.output, Catch::StartsWith(fmt::format("created 0 topic(s), {} already existed\n", specs.size())));
  CHECK_THAT(created.output, Catch::Contains("aligned the configs of 1 topic(s) with this release:\n" + policy_change));
  CHECK_THAT(created.output, Catch::Contains(fmt::format("  {}: min.compaction.lag.ms 604800000 -> 86400000\n", names.status())));
  CHECK_THAT(created.output, Catch::Contains(results_note));
  const auto status =
      described(*admin, names.status(), [](const auto& config) { return config.at("cleanup.policy") != "compact"; });
  CHECK(status.at("cleanup.policy") == "compact,delete");
  CHECK(status.at("retention.ms") == "604800000");
  CHECK(status.at("min.compaction.lag.ms") == "86400000");
  CHECK(status.at("max.message.bytes") == "2000000");
  CHECK(described(*admin, names.results(), [](const auto&) { return true; }).at("retention.ms") == "86400000");

  const auto passed = cli(env, "topics check " + kLayoutFlags, 0);
  CHECK_THAT(passed.output, Catch::StartsWith(fmt::format("all {} topics present", specs.size())));
  CHECK_THAT(passed.output, Catch::Contains(results_note));

  const auto aligned = cli(env, "topics create --align-configs " + kLayoutFlags, 0);
  CHECK_THAT(aligned.output, Catch::Contains(fmt::format("aligned the configs of 1 topic(s) with this release:\n  {}: "
                                                         "retention.ms 86400000 -> 604800000\n",
                                                         names.results())));
  const auto results =
      described(*admin, names.results(), [](const auto& config) { return config.at("retention.ms") != "86400000"; });
  CHECK(results.at("retention.ms") == "604800000");
  CHECK(results.at("cleanup.policy") == "delete");
  const auto settled = cli(env, "topics create " + kLayoutFlags, 0);
  CHECK(settled.output == fmt::format("created 0 topic(s), {} already existed\n", specs.size()));
}
