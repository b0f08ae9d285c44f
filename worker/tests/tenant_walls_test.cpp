#include "core/tenant_walls.h"

#include <catch2/catch.hpp>
#include <thread>

#include "kcron/tenant_registry.h"

using namespace kcron;
using namespace kcron::worker;

namespace {

std::string refusal(const Status& status) {
  return status ? std::string() : status.error().message();
}

v1::ExecTask exec_task(const std::string& program, std::initializer_list<std::string> env_names = {}) {
  v1::ExecTask task;
  task.add_argv(program);
  for (const auto& name : env_names) (*task.mutable_env())[name] = "v";
  return task;
}

}  // namespace

TEST_CASE("a kafka job never writes kcron's own topics nor Kafka's") {
  const WallSettings settings;
  TenantAllowlists lists;
  lists.kafka_topics = {"orders"};
  for (const std::string topic : {"kcron.jobs", "kcron.x", "kcron.results", "kcron.in.acme", "kcron.in.other",
                                  "__consumer_offsets", "__transaction_state", "__x"}) {
    for (const std::string tenant : {"", "default", "acme"}) {
      const auto status = check_kafka_target(settings, tenant, &lists, topic);
      REQUIRE_FALSE(status);
      CHECK_THAT(status.error().message(), Catch::Contains("may not write '" + topic + "'"));
    }
  }
  // Under another prefix, both that prefix and kcron.* stay refused.
  WallSettings other;
  other.topic_prefix = "prod.";
  CHECK_FALSE(check_kafka_target(other, "", nullptr, "prod.jobs"));
  CHECK_FALSE(check_kafka_target(other, "", nullptr, "kcron.jobs"));
  CHECK(check_kafka_target(other, "", nullptr, "orders"));
  CHECK_FALSE(check_kafka_target(settings, "", nullptr, ""));
}

TEST_CASE("a tenant's kafka job writes only its allowlisted topics") {
  const WallSettings settings;
  TenantAllowlists lists;
  lists.kafka_topics = {"orders", "billing"};
  CHECK(check_kafka_target(settings, "acme", &lists, "orders"));
  CHECK(check_kafka_target(settings, "acme", &lists, "billing"));
  const auto unlisted = check_kafka_target(settings, "acme", &lists, "payroll");
  CHECK(refusal(unlisted) ==
        "tenant 'acme' may not write topic 'payroll': it is not in the tenant's allowed_kafka_topics (kcron tenant set acme "
        "--kafka-topics ...)");
  // No list, or no record at all: nothing.
  const TenantAllowlists none;
  CHECK_THAT(refusal(check_kafka_target(settings, "acme", &none, "orders")),
             Catch::Contains("tenant 'acme' may not write topic 'orders': the tenant has no allowed_kafka_topics"));
  CHECK_FALSE(check_kafka_target(settings, "acme", nullptr, "orders"));
  // The message names only the tenant's own setting, never its list or another tenant.
  CHECK_THAT(refusal(unlisted), !Catch::Contains("billing"));
}

TEST_CASE("the default tenant writes any other topic unless a list narrows it") {
  WallSettings settings;
  CHECK(check_kafka_target(settings, "", nullptr, "orders"));
  CHECK(check_kafka_target(settings, "default", nullptr, "anything-else"));
  TenantAllowlists lists;
  lists.kafka_topics = {"orders"};
  CHECK(check_kafka_target(settings, "default", &lists, "orders"));
  CHECK_FALSE(check_kafka_target(settings, "default", &lists, "payroll"));
  // The worker's jobs.kafka_topics narrows every tenant, the default one too.
  settings.kafka_topics = {"orders"};
  CHECK(check_kafka_target(settings, "", nullptr, "orders"));
  CHECK_THAT(refusal(check_kafka_target(settings, "", nullptr, "payroll")), Catch::Contains("jobs.kafka_topics"));
  TenantAllowlists acme;
  acme.kafka_topics = {"orders", "payroll"};
  CHECK(check_kafka_target(settings, "acme", &acme, "orders"));
  CHECK_FALSE(check_kafka_target(settings, "acme", &acme, "payroll"));
}

TEST_CASE("a tenant's programs and env names narrow the worker's") {
  WallSettings settings;
  TenantAllowlists lists;
  lists.programs = {"/bin/echo"};
  lists.env_names = {"GREETING"};
  CHECK(check_exec_for_tenant(settings, "acme", &lists, exec_task("/bin/echo", {"GREETING"})));
  CHECK(
      refusal(check_exec_for_tenant(settings, "acme", &lists, exec_task("/bin/sh"))) ==
      "tenant 'acme' may not run program '/bin/sh': it is not in the tenant's allowed_programs (kcron tenant set acme --programs "
      "...)");
  CHECK_THAT(refusal(check_exec_for_tenant(settings, "acme", &lists, exec_task("/bin/echo", {"TOKEN"}))),
             Catch::Contains("may not set environment variable 'TOKEN': it is not in the tenant's allowed_env_names"));
  // Without lists: the worker's lists alone (check_exec), unless the worker requires lists.
  const TenantAllowlists none;
  CHECK(check_exec_for_tenant(settings, "acme", &none, exec_task("/bin/sh", {"X"})));
  CHECK(check_exec_for_tenant(settings, "acme", nullptr, exec_task("/bin/sh", {"X"})));
  settings.require_allowlists = true;
  CHECK_THAT(refusal(check_exec_for_tenant(settings, "acme", nullptr, exec_task("/bin/sh"))),
             Catch::Contains("has no allowed_programs and this worker requires one (tenants.require_allowlists"));
  TenantAllowlists programs_only;
  programs_only.programs = {"/bin/echo"};
  CHECK(check_exec_for_tenant(settings, "acme", &programs_only, exec_task("/bin/echo")));
  CHECK_THAT(refusal(check_exec_for_tenant(settings, "acme", &programs_only, exec_task("/bin/echo", {"X"}))),
             Catch::Contains("has no allowed_env_names"));
  // The default tenant is never required to have lists.
  CHECK(check_exec_for_tenant(settings, "", nullptr, exec_task("/bin/sh", {"X"})));
}

TEST_CASE("a tenant's http targets narrow the worker's rules") {
  WallSettings settings;
  TenantAllowlists lists;
  lists.http_targets = {"api.example.com", "*.hooks.example.net", "10.1.2.3:8080", "[2001:db8::1]"};
  CHECK(check_http_for_tenant(settings, "acme", &lists, "api.example.com", 443));
  CHECK(check_http_for_tenant(settings, "acme", &lists, "a.hooks.example.net", 443));
  CHECK(check_http_for_tenant(settings, "acme", &lists, "a.b.hooks.example.net", 80));
  CHECK_FALSE(check_http_for_tenant(settings, "acme", &lists, "hooks.example.net", 443));
  CHECK_FALSE(check_http_for_tenant(settings, "acme", &lists, "evilhooks.example.net", 443));
  CHECK_FALSE(check_http_for_tenant(settings, "acme", &lists, "api.example.com.evil.org", 443));
  CHECK(check_http_for_tenant(settings, "acme", &lists, "10.1.2.3", 8080));
  CHECK_FALSE(check_http_for_tenant(settings, "acme", &lists, "10.1.2.3", 80));
  CHECK(check_http_for_tenant(settings, "acme", &lists, "2001:db8::1", 443));
  CHECK(refusal(check_http_for_tenant(settings, "acme", &lists, "other.org", 443)) ==
        "tenant 'acme' may not reach other.org:443: it matches none of the tenant's allowed_http_targets (kcron tenant set acme "
        "--http-targets ...)");
  CHECK(check_http_for_tenant(settings, "acme", nullptr, "other.org", 443));
  settings.require_allowlists = true;
  CHECK_THAT(refusal(check_http_for_tenant(settings, "acme", nullptr, "other.org", 443)),
             Catch::Contains("has no allowed_http_targets and this worker requires one"));
  CHECK(check_http_for_tenant(settings, "default", nullptr, "other.org", 443));
}

TEST_CASE("http target rules are validated") {
  for (const std::string good : {"api.example.com", "*.example.com", "example.com:8443", "*.example.com:443", "10.0.0.1", "[::1]",
                                 "[2001:db8::1]:8080", "localhost"}) {
    INFO(good);
    CHECK(validate_http_target_rule(good));
  }
  for (const std::string bad :
       {"", "https://api.example.com", "api.example.com/path", "API.example.com", "user@host", "*", "*.", "host:0", "host:65536",
        "host:", "host:80x", "[::1", "[::1]x", "*.[::1]", ".example.com", "a..b", "*example.com"}) {
    INFO(bad);
    CHECK_FALSE(validate_http_target_rule(bad));
  }
}

TEST_CASE("validate_tenant_settings bounds the allowlists") {
  v1::TenantSettings settings;
  settings.add_allowed_kafka_topics("orders");
  settings.add_allowed_programs("/usr/bin/report");
  settings.add_allowed_env_names("REGION");
  settings.add_allowed_http_targets("*.example.com");
  CHECK(validate_tenant_settings("acme", settings));
  const auto refused = [](auto edit) {
    v1::TenantSettings bad;
    edit(bad);
    const auto status = validate_tenant_settings("acme", bad);
    return status ? std::string() : status.error().message();
  };
  CHECK_THAT(refused([](auto& s) { s.add_allowed_kafka_topics("kcron.jobs"); }), Catch::Contains("internal topic"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_kafka_topics("__consumer_offsets"); }), Catch::Contains("internal topic"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_kafka_topics("a b"); }), Catch::Contains("not a Kafka topic name"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_kafka_topics(std::string(250, 'a')); }),
             Catch::Contains("not a Kafka topic name"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_programs("bin/report"); }), Catch::Contains("not an absolute path"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_programs(std::string("/bin/\n", 6)); }),
             Catch::Contains("not an absolute path"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_env_names("1X"); }), Catch::Contains("not an environment variable name"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_env_names("A=B"); }), Catch::Contains("not an environment variable name"));
  CHECK_THAT(refused([](auto& s) { s.add_allowed_http_targets("http://x"); }), Catch::Contains("allowed_http_targets"));
  CHECK_THAT(refused([](auto& s) {
               for (int index = 0; index < 257; ++index) s.add_allowed_env_names("E" + std::to_string(index));
             }),
             Catch::Contains("allowed_env_names has 257 entries, at most 256"));
}

TEST_CASE("TenantWalls follows the registry and is read from other threads") {
  TenantWalls walls;
  CHECK(walls.find("acme") == nullptr);
  std::map<std::string, v1::TenantSettings, std::less<>> tenants;
  tenants["acme"].add_allowed_kafka_topics("orders");
  walls.update(tenants, 1);
  auto acme = walls.find("acme");
  REQUIRE(acme != nullptr);
  CHECK(acme->kafka_topics == std::vector<std::string>{"orders"});
  // The same generation is not taken again; a new one replaces the lists, and a reader keeps the
  // lists it took.
  tenants["acme"].add_allowed_kafka_topics("billing");
  walls.update(tenants, 1);
  CHECK(walls.find("acme")->kafka_topics.size() == 1);
  std::thread reader([&] {
    for (int round = 0; round < 1000; ++round) static_cast<void>(walls.find("acme"));
  });
  walls.update(tenants, 2);
  reader.join();
  CHECK(walls.find("acme")->kafka_topics.size() == 2);
  CHECK(acme->kafka_topics.size() == 1);
  tenants["default"].add_allowed_programs("/bin/true");
  walls.update(tenants, 3);
  CHECK(walls.find("") != nullptr);
  CHECK(walls.find("")->programs == std::vector<std::string>{"/bin/true"});
}
