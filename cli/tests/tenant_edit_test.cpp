#include "tenant_edit.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "kcron/codec.h"

using namespace kcron;
using namespace kcron::cli;

namespace {

Read record(std::int32_t partition, std::string key, std::string value) {
  Read read;
  read.partition = partition;
  read.key = std::move(key);
  read.tombstone = value.empty();
  read.value = std::move(value);
  read.content_type = "application/x-protobuf";
  return read;
}

std::string schedule_body(const std::string& id, const std::string& tenant) {
  v1::Schedule schedule;
  schedule.set_id(id);
  schedule.set_tenant(tenant);
  schedule.set_expression("0 0 * * *");
  return encode(schedule);
}

}  // namespace

TEST_CASE("the --queues list splits on commas, trims names, and '' means every queue") {
  CHECK(*parse_queue_list("default,batch") == std::vector<std::string>{"default", "batch"});
  CHECK(*parse_queue_list(" default , critical ") == std::vector<std::string>{"default", "critical"});
  CHECK(parse_queue_list("")->empty());
  CHECK(parse_queue_list("  ")->empty());
  const auto empty_name = parse_queue_list("a,,b");
  REQUIRE_FALSE(empty_name.ok());
  CHECK(empty_name.error().message() == "--queues: an empty queue name in 'a,,b' (give names like a,b, or '' for every queue)");
  CHECK_FALSE(parse_queue_list("a,").ok());
}

TEST_CASE("an edit changes only the fields it names and stamps updated_ms, created_ms only once") {
  TenantEdit create;
  create.max_pending_jobs = 100;
  create.allowed_queues = std::vector<std::string>{"default"};
  create.description = "team acme";
  const auto created = apply_edit(v1::TenantSettings(), "acme", create, 1000);
  CHECK(created.name() == "acme");
  CHECK(created.limits().max_pending_jobs() == 100);
  CHECK(created.limits().max_submissions_per_second() == 0);
  CHECK(created.limits().max_running_jobs() == 0);
  CHECK(created.allowed_queues_size() == 1);
  CHECK(created.created_ms() == 1000);
  CHECK(created.updated_ms() == 1000);

  TenantEdit set;
  set.max_submissions_per_second = 2.5;
  set.allowed_queues = std::vector<std::string>{};
  const auto updated = apply_edit(created, "acme", set, 2000);
  CHECK(updated.limits().max_pending_jobs() == 100);
  CHECK(updated.limits().max_submissions_per_second() == 2.5);
  CHECK(updated.allowed_queues_size() == 0);
  CHECK(updated.description() == "team acme");
  CHECK(updated.created_ms() == 1000);
  CHECK(updated.updated_ms() == 2000);
}

TEST_CASE("the tenant table lists tenants by name and shows no limit as -") {
  std::map<std::string, v1::TenantSettings, std::less<>> tenants;
  TenantEdit acme;
  acme.max_pending_jobs = 100;
  acme.max_submissions_per_second = 2.5;
  acme.max_running_jobs = 4;
  acme.allowed_queues = std::vector<std::string>{"default", "batch"};
  acme.description = "two\nlines";
  tenants["beta"] = apply_edit(v1::TenantSettings(), "beta", TenantEdit(), 1);
  tenants["acme"] = apply_edit(v1::TenantSettings(), "acme", acme, 1);
  CHECK(tenant_table(tenants) ==
        "TENANT                                    MAX PENDING MAX RATE/S MAX RUNNING  QUEUES               DESCRIPTION\n"
        "acme                                              100        2.5           4  default,batch        two lines\n"
        "beta                                                -          -           -  all                  \n");
}

TEST_CASE("a tenant's description says none for no limit and gives times in UTC") {
  TenantEdit edit;
  edit.max_running_jobs = 3;
  const auto settings = apply_edit(v1::TenantSettings(), "acme", edit, 1767225600123);
  CHECK(describe_tenant(settings) ==
        "tenant: acme\n"
        "description: \n"
        "max pending jobs: none\n"
        "max submissions per second: none\n"
        "max running jobs per worker: 3\n"
        "allowed queues: all (every queue of the deployment)\n"
        "kafka topics: none\n"
        "programs: the workers' exec.programs\n"
        "env names: the workers' exec.env\n"
        "http targets: any the workers' http rules allow\n"
        "kafka output topic: off\n"
        "sealing keys: none\n"
        "created: 2026-01-01T00:00:00.123Z\n"
        "updated: 2026-01-01T00:00:00.123Z\n");
}

TEST_CASE("admin ceilings are set like limits and described only when one is set") {
  TenantEdit edit;
  edit.admin_max_pending_jobs = 500;
  edit.admin_max_submissions_per_second = 2.5;
  const auto settings = apply_edit(v1::TenantSettings(), "acme", edit, 1767225600123);
  CHECK(settings.admin_ceilings().max_pending_jobs() == 500);
  CHECK(settings.limits().max_pending_jobs() == 0);
  CHECK_THAT(describe_tenant(settings), Catch::Contains("admin may set up to: max pending 500, max rate 2.5/s, max running -\n"));
  CHECK(tenant_patch_body(edit) == R"({"admin_ceilings":{"max_pending_jobs":500,"max_submissions_per_second":2.5}})");
  CHECK(tenant_patch_body(TenantEdit()) == "{}");
}

TEST_CASE("the allowlist options replace the tenant's lists, are described, and never go to kcron-api") {
  CHECK(parse_name_list("--programs", "/bin/a, /bin/b").value() == std::vector<std::string>{"/bin/a", "/bin/b"});
  CHECK(parse_name_list("--programs", " ").value().empty());
  const auto empty_entry = parse_name_list("--kafka-topics", "a,,b");
  REQUIRE_FALSE(empty_entry);
  CHECK_THAT(empty_entry.error().message(), Catch::StartsWith("--kafka-topics: an empty entry"));
  TenantEdit edit;
  edit.allowed_kafka_topics = std::vector<std::string>{"orders", "billing"};
  edit.allowed_programs = std::vector<std::string>{"/usr/bin/report"};
  edit.allowed_env_names = std::vector<std::string>{"REGION"};
  edit.allowed_http_targets = std::vector<std::string>{"*.example.com"};
  CHECK(edit.sets_allowlists());
  CHECK_FALSE(TenantEdit().sets_allowlists());
  auto settings = apply_edit(v1::TenantSettings(), "acme", edit, 1);
  CHECK(settings.allowed_kafka_topics_size() == 2);
  CHECK(settings.allowed_programs(0) == "/usr/bin/report");
  const auto described = describe_tenant(settings);
  CHECK_THAT(described, Catch::Contains("kafka topics: orders,billing\nprograms: /usr/bin/report\nenv names: REGION\n"
                                        "http targets: *.example.com\n"));
  CHECK(tenant_patch_body(edit) == "{}");
  // Another edit leaves them; an empty list clears one.
  TenantEdit clear;
  clear.allowed_kafka_topics = std::vector<std::string>{};
  settings = apply_edit(settings, "acme", clear, 2);
  CHECK(settings.allowed_kafka_topics_size() == 0);
  CHECK(settings.allowed_programs_size() == 1);
  // The default tenant without a kafka list writes what the workers allow.
  CHECK_THAT(describe_tenant(apply_edit(v1::TenantSettings(), "default", TenantEdit(), 1)),
             Catch::Contains("kafka topics: any the workers allow (jobs.kafka_topics)"));
}

TEST_CASE("delete tombstones the tenant's schedules in force, by their latest record, on their partition") {
  const std::vector<Read> records = {
      record(0, "acme~nightly", schedule_body("nightly", "acme")),
      record(1, "acme~hourly", schedule_body("hourly", "acme")),
      record(1, "acme~hourly", ""),  // deleted already
      record(0, "acme~gone", ""),    // a tombstone only
      record(1, "acme~back", ""),
      record(1, "acme~back", schedule_body("back", "acme")),  // put again after a delete
      record(0, "acme-2~nightly", schedule_body("nightly", "acme-2")),
      record(1, "ac~me", schedule_body("me", "ac")),
      record(0, "nightly", schedule_body("nightly", "")),
  };
  CHECK(live_schedules_of(records, "acme") == std::vector<KeyOnPartition>{{1, "acme~back"}, {0, "acme~nightly"}});
  CHECK(live_schedules_of(records, "ac") == std::vector<KeyOnPartition>{{1, "ac~me"}});
  CHECK(live_schedules_of(records, "nobody").empty());
}

TEST_CASE("schedules under a bare key that name the tenant in their body are found, not tombstoned") {
  const std::vector<Read> records = {
      record(0, "legacy", schedule_body("legacy", "acme")),
      record(1, "legacy-gone", schedule_body("legacy-gone", "acme")),
      record(1, "legacy-gone", ""),
      record(0, "plain", schedule_body("plain", "")),
      record(0, "acme~nightly", schedule_body("nightly", "acme")),
  };
  CHECK(bare_schedules_naming(records, "acme") == std::vector<std::string>{"legacy"});
  CHECK(live_schedules_of(records, "acme") == std::vector<KeyOnPartition>{{0, "acme~nightly"}});
}
