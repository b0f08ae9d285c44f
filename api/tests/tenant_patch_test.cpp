#include "core/tenant_patch.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>

using kcron::api::apply_tenant_patch;
using kcron::api::Role;

namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

kcron::v1::TenantSettings with_ceilings() {
  kcron::v1::TenantSettings settings;
  settings.set_name("acme");
  settings.set_created_ms(1000);
  settings.set_updated_ms(1000);
  settings.mutable_limits()->set_max_pending_jobs(500);
  settings.mutable_admin_ceilings()->set_max_pending_jobs(1000);
  settings.mutable_admin_ceilings()->set_max_submissions_per_second(50);
  settings.add_allowed_queues("default");
  return settings;
}

}  // namespace

TEST_CASE("an admin changes the description and the limits within the ceilings the operators set") {
  const auto outcome = apply_tenant_patch(with_ceilings(), "acme",
                                          R"({"description":"payments team","limits":{"max_pending_jobs":"800",)"
                                          R"("max_submissions_per_second":20}})",
                                          Role::kAdmin, kNow);
  REQUIRE(outcome.settings);
  CHECK(outcome.changed);
  CHECK(outcome.settings->description() == "payments team");
  CHECK(outcome.settings->limits().max_pending_jobs() == 800);
  CHECK(outcome.settings->limits().max_submissions_per_second() == 20);
  CHECK(outcome.settings->created_ms() == 1000);
  CHECK(outcome.settings->updated_ms() == kNow);
  CHECK(outcome.settings->allowed_queues_size() == 1);
}

TEST_CASE("an admin may not raise a limit past its ceiling, lift it, or touch one without a ceiling") {
  const auto settings = with_ceilings();
  auto over = apply_tenant_patch(settings, "acme", R"({"limits":{"max_pending_jobs":1001}})", Role::kAdmin, kNow);
  CHECK_FALSE(over.settings);
  CHECK(over.status == 403);
  CHECK(over.field == "limits.max_pending_jobs");
  CHECK(over.message.find("1 to 1000") != std::string::npos);
  auto lifted = apply_tenant_patch(settings, "acme", R"({"limits":{"max_pending_jobs":0}})", Role::kAdmin, kNow);
  CHECK(lifted.status == 403);
  auto cleared = apply_tenant_patch(settings, "acme", R"({"limits":null})", Role::kAdmin, kNow);
  CHECK(cleared.status == 403);
  auto uncapped = apply_tenant_patch(settings, "acme", R"({"limits":{"max_running_jobs":4}})", Role::kAdmin, kNow);
  CHECK(uncapped.status == 403);
  CHECK(uncapped.field == "limits.max_running_jobs");
  CHECK(uncapped.message.find("ceiling is 0") != std::string::npos);
  // Restating the current value is no change, whatever the ceiling.
  auto same =
      apply_tenant_patch(settings, "acme", R"({"limits":{"max_pending_jobs":500,"max_running_jobs":0}})", Role::kAdmin, kNow);
  REQUIRE(same.settings);
  CHECK_FALSE(same.changed);
}

TEST_CASE("queues and ceilings are the operators': an admin is refused, system may set them and any limit") {
  const auto settings = with_ceilings();
  auto queues = apply_tenant_patch(settings, "acme", R"({"allowed_queues":["default","gpu"]})", Role::kAdmin, kNow);
  CHECK(queues.status == 403);
  CHECK(queues.field == "allowed_queues");
  auto ceilings = apply_tenant_patch(settings, "acme", R"({"admin_ceilings":{"max_pending_jobs":5000}})", Role::kAdmin, kNow);
  CHECK(ceilings.status == 403);
  CHECK(ceilings.field == "admin_ceilings");
  auto system = apply_tenant_patch(
      settings, "acme", R"({"allowed_queues":null,"admin_ceilings":{"max_running_jobs":8},"limits":{"max_pending_jobs":0}})",
      Role::kSystem, kNow);
  REQUIRE(system.settings);
  CHECK(system.settings->allowed_queues_size() == 0);
  CHECK(system.settings->admin_ceilings().max_running_jobs() == 8);
  CHECK(system.settings->admin_ceilings().max_pending_jobs() == 1000);  // a merge patch keeps what it does not name
  CHECK(system.settings->limits().max_pending_jobs() == 0);
}

TEST_CASE("roles below admin change nothing, even a description") {
  for (const auto role : {Role::kViewer, Role::kMember, Role::kOperator}) {
    auto outcome = apply_tenant_patch(with_ceilings(), "acme", R"({"description":"x"})", role, kNow);
    CHECK(outcome.status == 403);
    CHECK_FALSE(outcome.settings);
  }
}

TEST_CASE("only system creates a tenant's record: name and created_ms set, and an admin may not") {
  auto outcome = apply_tenant_patch({}, "beta", R"({"description":"new"})", Role::kSystem, kNow);
  REQUIRE(outcome.settings);
  CHECK(outcome.changed);
  CHECK(outcome.settings->name() == "beta");
  CHECK(outcome.settings->created_ms() == kNow);
  auto admin = apply_tenant_patch({}, "beta", R"({"description":"new"})", Role::kAdmin, kNow);
  CHECK(admin.status == 403);
  CHECK_THAT(admin.message, Catch::Contains("no settings record"));
  // Nothing to change is no refusal: the (absent) settings as they are.
  auto nothing = apply_tenant_patch({}, "beta", "{}", Role::kAdmin, kNow);
  REQUIRE(nothing.settings);
  CHECK_FALSE(nothing.changed);
}

TEST_CASE("empty or cleared limit objects are no change and are not written as empty messages") {
  kcron::v1::TenantSettings bare;
  bare.set_name("acme");
  bare.set_updated_ms(5);
  for (const auto* body : {R"({"limits":{}})", R"({"limits":null})", R"({"limits":{"max_running_jobs":0}})",
                           R"({"admin_ceilings":{"max_pending_jobs":"0"}})", "{}"}) {
    INFO(body);
    auto outcome = apply_tenant_patch(bare, "acme", body, Role::kSystem, kNow);
    REQUIRE(outcome.settings);
    CHECK_FALSE(outcome.changed);
    CHECK_FALSE(outcome.settings->has_limits());
    CHECK_FALSE(outcome.settings->has_admin_ceilings());
    CHECK(outcome.settings->updated_ms() == 5);
  }
  auto huge = apply_tenant_patch(bare, "acme", R"({"limits":{"max_pending_jobs":"9007199254740993"}})", Role::kSystem, kNow);
  CHECK(huge.status == 400);
  CHECK(huge.field == "limits.max_pending_jobs");
}

TEST_CASE("a patch that is not the right shape is a 400 naming the field") {
  const auto settings = with_ceilings();
  struct Case {
    const char* body;
    const char* field;
  };
  const Case cases[] = {
      {"not json", ""},
      {"[]", ""},
      {R"({"name":"other"})", "name"},
      {R"({"updated_ms":5})", "updated_ms"},
      {R"({"quota":5})", "quota"},
      {R"({"description":7})", "description"},
      {R"({"description":"a\u0007b"})", "description"},
      {R"({"limits":5})", "limits"},
      {R"({"limits":{"max_pending_jobs":-1}})", "limits.max_pending_jobs"},
      {R"({"limits":{"max_pending_jobs":1.5}})", "limits.max_pending_jobs"},
      {R"({"limits":{"max_pending_jobs":"12x"}})", "limits.max_pending_jobs"},
      {R"({"limits":{"max_running_jobs":4294967296}})", "limits.max_running_jobs"},
      {R"({"limits":{"max_submissions_per_second":-2}})", "limits.max_submissions_per_second"},
      {R"({"limits":{"max_submissions_per_second":"5"}})", "limits.max_submissions_per_second"},
      {R"({"limits":{"maxPendingJobs":5}})", "limits.maxPendingJobs"},
      {R"({"admin_ceilings":{"max_submissions_per_second":1e12}})", "admin_ceilings.max_submissions_per_second"},
      {R"({"allowed_queues":"default"})", "allowed_queues"},
      {R"({"allowed_queues":[""]})", "allowed_queues"},
      {R"({"allowed_queues":[3]})", "allowed_queues"},
  };
  for (const auto& entry : cases) {
    INFO(entry.body);
    auto outcome = apply_tenant_patch(settings, "acme", entry.body, Role::kSystem, kNow);
    CHECK_FALSE(outcome.settings);
    CHECK(outcome.status == 400);
    CHECK(outcome.field == entry.field);
    CHECK_FALSE(outcome.message.empty());
  }
  const std::string long_description = R"({"description":")" + std::string(1001, 'x') + R"("})";
  CHECK(apply_tenant_patch(settings, "acme", long_description, Role::kSystem, kNow).status == 400);
}

TEST_CASE("what a tenant may run is never patched, and a patch keeps the lists the operators set") {
  auto settings = with_ceilings();
  settings.add_allowed_programs("/usr/bin/report");
  settings.add_allowed_kafka_topics("orders");
  for (const char* field : {"allowed_kafka_topics", "allowed_programs", "allowed_env_names", "allowed_http_targets"}) {
    for (const auto role : {Role::kAdmin, Role::kSystem}) {
      const auto outcome = apply_tenant_patch(settings, "acme", fmt::format(R"({{"{}":["x"]}})", field), role, kNow);
      CHECK(outcome.status == 403);
      CHECK(outcome.field == field);
    }
  }
  const auto described = apply_tenant_patch(settings, "acme", R"({"description":"team"})", Role::kAdmin, kNow);
  REQUIRE(described.settings);
  CHECK(described.settings->allowed_programs_size() == 1);
  CHECK(described.settings->allowed_kafka_topics(0) == "orders");
}
