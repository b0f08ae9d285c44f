// The tenant registry on the real broker: the TenantFollower a program keeps (start catches up,
// poll applies what follows, a missing topic is looked for again), and `kcron tenant` end to end:
// create, set, get, list, the refusals, and delete, which tombstones the tenant's schedules and
// settings and writes a PurgeTenant to every jobs partition. No kcron program runs here.
#include "kcron/tenant_registry.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <thread>

#include "kcron.pb.h"
#include "kcron/codec.h"
#include "kcron/tenant_follower.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

kafka::Properties client(const std::string& client_id) {
  return {{"bootstrap.servers", brokers()}, {"client.id", client_id}};
}

std::string settings_value(const std::string& name, std::uint64_t max_pending) {
  v1::TenantSettings settings;
  settings.set_name(name);
  settings.mutable_limits()->set_max_pending_jobs(max_pending);
  return encode(settings);
}

// Writes tenant records (an empty value is a tombstone) and waits for their acknowledgement.
void write_tenants(const std::string& topic, const std::vector<std::pair<std::string, std::string>>& records) {
  auto producer = kafka::make_producer(client("tenant-test-writer"), "");
  REQUIRE(producer.ok());
  for (const auto& [key, value] : records) {
    OutRecord record{topic, -1, key, value, value.empty(), {{"content-type", "application/x-protobuf"}}};
    REQUIRE(kafka::produce(**producer, record).ok());
  }
  REQUIRE((*producer)->flush(30000) == RdKafka::ERR_NO_ERROR);
  REQUIRE((*producer)->outq_len() == 0);
}

// Polls until `done` holds for the registry, for at most `timeout`.
bool poll_until(TenantFollower& follower, const TenantRegistry& registry, std::chrono::milliseconds timeout,
                const std::function<bool(const TenantRegistry&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    follower.poll(100);
    if (done(registry)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done(registry);
}

std::uint64_t max_pending(const TenantRegistry& registry, std::string_view tenant) {
  const auto* settings = registry.find(tenant);
  return settings == nullptr ? 0 : settings->limits().max_pending_jobs();
}

CliRun cli(const TestEnv& env, const std::string& arguments, int expected_exit) {
  auto run = run_cli(env, arguments);
  INFO("kcron " << arguments << "\n" << run.output);
  CHECK(run.exit_code == expected_exit);
  return run;
}

// The latest value per key of a compacted topic's records (empty: a tombstone), and how many
// records each key has.
std::map<std::string, std::pair<std::string, int>> latest_by_key(const std::vector<Record>& records) {
  std::map<std::string, std::pair<std::string, int>> latest;
  for (const auto& record : records) {
    auto& [value, count] = latest[record.key];
    value = record.value;
    ++count;
  }
  return latest;
}

}  // namespace

TEST_CASE("the tenant follower loads the registry at start, skips a refused record, and applies later records on poll",
          "[integration]") {
  TestEnv env("tenant-follower");
  const TopicNames names(env.prefix);
  write_tenants(names.tenants(), {{"acme", settings_value("acme", 10)},
                                  {"beta", settings_value("beta", 5)},
                                  {"Not_A_Name", settings_value("", 1)},
                                  {"beta", ""},
                                  {"acme", settings_value("acme", 20)}});
  TenantRegistry registry;
  TenantFollower follower(client("tenant-follower-test"), names, registry);
  REQUIRE(follower.start(30s).ok());
  CHECK(follower.following());
  CHECK(registry.all().size() == 1);
  CHECK(max_pending(registry, "acme") == 20);
  CHECK(registry.find("beta") == nullptr);
  CHECK(follower.applied() == 4);
  CHECK(follower.refused() == 1);

  write_tenants(names.tenants(), {{"gamma", settings_value("gamma", 7)}, {"acme", ""}});
  CHECK(poll_until(follower, registry, 20s,
                   [](const TenantRegistry& seen) { return seen.find("gamma") != nullptr && seen.find("acme") == nullptr; }));
  CHECK(max_pending(registry, "gamma") == 7);
  CHECK(registry.all().size() == 1);
  follower.close();
}

TEST_CASE("a tenant follower started before the tenants topic exists starts empty and follows the topic once it is made",
          "[integration]") {
  std::random_device random;
  const TopicNames names(fmt::format("it-tenant-late-{:x}.", random() & 0xffffffU));
  TenantRegistry registry;
  TenantFollower follower(client("tenant-follower-late"), names, registry, 1s);
  REQUIRE(follower.start(10s).ok());
  CHECK_FALSE(follower.following());
  follower.poll(100);
  CHECK(registry.all().empty());

  TopicLayout layout;
  std::vector<TopicSpec> specs;
  for (auto& spec : all_topics(names, layout)) {
    if (spec.name == names.tenants()) specs.push_back(spec);
  }
  REQUIRE(specs.size() == 1);
  REQUIRE(kafka::create_topics(client("tenant-test-admin"), specs, 1, 60s).ok());
  write_tenants(names.tenants(), {{"acme", settings_value("acme", 3)}});
  CHECK(poll_until(follower, registry, 30s, [](const TenantRegistry& seen) { return seen.find("acme") != nullptr; }));
  CHECK(follower.following());
  CHECK(max_pending(registry, "acme") == 3);
  follower.close();
}

TEST_CASE("kcron tenant creates, changes, shows and lists tenants, and refuses a duplicate, an absent one and bad settings",
          "[integration]") {
  TestEnv env("tenant-cli");
  CHECK_THAT(
      cli(env, "tenant create acme --max-pending 100 --max-rate 2.5 --queues default,batch --description 'team acme'", 0).output,
      Catch::Equals("created tenant acme\n"));
  CHECK_THAT(cli(env, "tenant create acme", 1).output,
             Catch::Equals("kcron: tenant 'acme' already exists (kcron tenant set acme changes it)\n"));
  CHECK_THAT(cli(env, "tenant set nobody --max-running 2", 1).output,
             Catch::Equals("kcron: no such tenant 'nobody' (kcron tenant create nobody makes it)\n"));
  CHECK_THAT(cli(env, "tenant create Bad_Name", 1).output, Catch::StartsWith("kcron: ") && Catch::Contains("Bad_Name"));
  CHECK_THAT(cli(env, "tenant set acme --max-rate -1", 1).output, Catch::Contains("max_submissions_per_second -1"));
  CHECK_THAT(cli(env, "tenant set acme --max-running 4", 0).output, Catch::Equals("updated tenant acme\n"));
  CHECK_THAT(cli(env, "tenant create beta", 0).output, Catch::Equals("created tenant beta\n"));

  const auto got = cli(env, "tenant get acme", 0).output;
  CHECK_THAT(got, Catch::Contains("tenant: acme\ndescription: team acme\nmax pending jobs: 100\nmax submissions per second: 2.5\n"
                                  "max running jobs per worker: 4\nallowed queues: default,batch\n"));
  const auto json = cli(env, "tenant get acme --json", 0).output;
  v1::TenantSettings decoded;
  REQUIRE(decode_message(json, "application/json", decoded).ok());
  CHECK(decoded.limits().max_pending_jobs() == 100);
  CHECK(decoded.limits().max_running_jobs() == 4);
  CHECK(decoded.created_ms() > 0);
  CHECK(decoded.updated_ms() >= decoded.created_ms());
  CHECK_THAT(cli(env, "tenant get nobody", 1).output, Catch::Equals("kcron: no such tenant 'nobody'\n"));

  const auto listed = cli(env, "tenant list", 0).output;
  CHECK_THAT(listed, Catch::StartsWith("TENANT "));
  CHECK_THAT(
      listed,
      Catch::Contains(
          "\nacme                                              100        2.5           4  default,batch        team acme\n"));
  CHECK_THAT(listed, Catch::Contains("\nbeta                                                -          -           -  all "));
  CHECK(std::count(listed.begin(), listed.end(), '\n') == 3);
  const auto json_lines = cli(env, "tenant list --json", 0).output;
  std::vector<std::string> json_names;
  for (std::size_t start = 0, end = 0; (end = json_lines.find('\n', start)) != std::string::npos; start = end + 1) {
    v1::TenantSettings line;
    REQUIRE(decode_message(json_lines.substr(start, end - start), "application/json", line).ok());
    json_names.push_back(line.name());
  }
  CHECK(json_names == std::vector<std::string>{"acme", "beta"});
}

TEST_CASE("kcron tenant delete purges every jobs partition and tombstones the tenant's schedules and settings, with --yes only",
          "[integration]") {
  TestEnv env("tenant-delete", 4);
  const TopicNames names(env.prefix);
  cli(env, "tenant create acme --max-pending 5", 0);
  cli(env, "tenant create ab", 0);
  const std::string schedule = R"('{"id":"ID","expression":"0 2 * * *","job_template":{"noop":{}}}')";
  const auto put = [&](const std::string& tenant, const std::string& id) {
    auto arguments = std::string(tenant.empty() ? "" : "--tenant " + tenant + " ") + "schedule put " + schedule;
    arguments.replace(arguments.find("ID"), 2, id);
    cli(env, arguments, 0);
  };
  put("acme", "nightly");
  put("acme", "hourly");
  put("ab", "nightly");
  put("", "nightly");
  cli(env, "--tenant acme schedule delete hourly", 0);

  CHECK_THAT(cli(env, "tenant delete default --yes", 1).output, Catch::Equals("kcron: the default tenant cannot be deleted\n"));
  CHECK_THAT(cli(env, "tenant delete nobody --yes", 1).output, Catch::StartsWith("kcron: no such tenant 'nobody'"));
  const auto refused = cli(env, "tenant delete acme", 1).output;
  CHECK_THAT(refused, Catch::Contains("tombstone 1 schedule(s) of the tenant on " + names.schedules()));
  CHECK_THAT(refused, Catch::Contains("send a PurgeTenant to each of the 4 partitions of " + names.jobs()));
  CHECK_THAT(refused, Catch::Contains("kcron: tenant 'acme' was not deleted: pass --yes to delete it"));

  const auto deleted = cli(env, "tenant delete acme --yes --reason 'contract ended'", 0).output;
  CHECK_THAT(deleted, Catch::StartsWith("deleted tenant acme:\n  1 schedule(s) tombstoned on " + names.schedules() +
                                        "\n  PurgeTenant sent to 4 partition(s) of " + names.jobs()));
  CHECK_THAT(deleted, Catch::Contains("left in place:"));

  // One PurgeTenant per jobs partition, keyed by the tenant, typed by its headers.
  const auto jobs = read_topics({names.jobs()}, 30s, [](const auto& records) { return records.size() >= 4; });
  std::map<std::int32_t, int> purges;
  for (const auto& record : jobs) {
    INFO(record.partition << " " << record.key);
    CHECK(record.key == "acme");
    CHECK(record.headers.at("kcron-type") == "purge-tenant");
    CHECK(record.headers.at("content-type") == "application/x-protobuf");
    v1::Command command;
    REQUIRE(command.ParseFromString(record.value));
    REQUIRE(command.has_purge_tenant());
    CHECK(command.purge_tenant().tenant() == "acme");
    CHECK(command.purge_tenant().reason() == "contract ended");
    ++purges[record.partition];
  }
  CHECK(purges == std::map<std::int32_t, int>{{0, 1}, {1, 1}, {2, 1}, {3, 1}});

  // acme's schedule in force is tombstoned, its deleted one is not tombstoned again, the others stay.
  const auto schedules =
      latest_by_key(read_topics({names.schedules()}, 30s, [](const auto& records) { return records.size() >= 6; }));
  REQUIRE(schedules.size() == 4);
  CHECK(schedules.at("acme~nightly") == std::pair<std::string, int>{"", 2});
  CHECK(schedules.at("acme~hourly").second == 2);
  CHECK_FALSE(schedules.at("ab~nightly").first.empty());
  CHECK_FALSE(schedules.at("nightly").first.empty());

  CHECK_THAT(cli(env, "tenant get acme", 1).output, Catch::Equals("kcron: no such tenant 'acme'\n"));
  const auto listed = cli(env, "tenant list", 0).output;
  CHECK_THAT(listed, Catch::Contains("\nab "));
  CHECK_THAT(listed, !Catch::Contains("\nacme "));
  CHECK_THAT(cli(env, "tenant delete acme --yes", 1).output, Catch::StartsWith("kcron: no such tenant 'acme'"));
}
