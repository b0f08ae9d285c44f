#include "core/schedule_planner.h"

#include <catch2/catch.hpp>
#include <limits>

#include "kcron/codec.h"
#include "kcron/routing.h"

using namespace kcron;
using namespace kcron::cron;

namespace {

constexpr std::int64_t kStart = 1'790'000'000'000;  // 2026-09-21T14:13:20Z

struct Harness {
  ManualClock clock{instant_from_ms(kStart)};
  PlannerSettings settings = [] {
    PlannerSettings value;
    value.schedules_partitions = 6;
    value.lookahead = Millis(5000);
    value.misfire_threshold = Millis(5000);
    return value;
  }();
  SchedulePlanner planner{settings, clock};
  std::vector<OutRecord> out;
  std::int64_t offset = 0;

  std::int32_t partition_of(const std::string& id) const { return partition_for_key(id, 6).value(); }
  ScheduleRecord record(const std::string& id, const std::string& json, bool tombstone = false) {
    return {partition_of(id), offset++, id, json, tombstone, "application/json"};
  }
  void apply(const std::string& id, const std::string& json) {
    auto input = record(id, json);
    stored_json = json;
    planner.apply(input, out);
  }
  void remove(const std::string& id) { planner.apply(record(id, "", true), out); }
  std::vector<std::string> tick_ids() {
    planner.tick(out);
    std::vector<std::string> ids;
    for (const auto& item : take(".jobs")) {
      v1::Command command;
      REQUIRE(command.ParseFromString(item.value));
      if (command.has_submit()) ids.push_back(command.submit().id());
    }
    return ids;
  }
  std::vector<OutRecord> take(std::string_view topic_part) {
    std::vector<OutRecord> matched;
    std::vector<OutRecord> rest;
    for (auto& item : out) (item.topic.find(topic_part) != std::string::npos ? matched : rest).push_back(std::move(item));
    out = std::move(rest);
    return matched;
  }
  std::string stored_json;
};

std::string schedule(const std::string& id, const std::string& expression, const std::string& extra = "") {
  return fmt::format(R"({{"id":"{}","expression":"{}","job_template":{{"noop":{{}}}}{}}})", id, expression, extra);
}

}  // namespace

TEST_CASE("a schedule emits each run once, up to the look-ahead before its instant") {
  Harness harness;
  harness.apply("tick", schedule("tick", "*/10 * * * * *"));  // every 10 s; kStart is hh:mm:20
  CHECK(harness.tick_ids().empty());                          // next run at :30 is 10 s away
  harness.clock.advance(Millis(5'000));
  CHECK(harness.tick_ids() == std::vector<std::string>{"tick@2026-09-21T14:13:30Z"});
  CHECK(harness.tick_ids().empty());  // never twice
  harness.clock.advance(Millis(10'000));
  CHECK(harness.tick_ids() == std::vector<std::string>{"tick@2026-09-21T14:13:40Z"});
}

TEST_CASE(
    "a trigger is a job routed by the schedule's scoped key that carries the tenant, the nominal instant and the policies") {
  Harness harness;
  harness.apply("acme~report",
                R"({"id":"report","expression":"*/10 * * * * *","tenant":"acme","misfire":"FIRE_ALL",)"
                R"("overlap":"FORBID","job_template":{"queue":"critical","priority":8,"sleep":{"duration":"1s"}}})");
  harness.clock.advance(Millis(5'000));
  harness.planner.tick(harness.out);
  const auto jobs = harness.take(".jobs");
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].key == "acme~report");
  v1::Command command;
  REQUIRE(command.ParseFromString(jobs[0].value));
  const auto& job = command.submit();
  CHECK(job.id() == "report@2026-09-21T14:13:30Z");
  CHECK(routing_key_for_job(job.id()) == "report");
  CHECK(job.run_at_ms() == kStart + 10'000);
  CHECK(job.tenant() == "acme");
  CHECK(job.queue() == "critical");
  CHECK(job.priority() == 8);
  CHECK(job.has_sleep());
  CHECK(job.schedule_run().schedule_id() == "report");
  CHECK(job.schedule_run().nominal_instant().seconds() == (kStart + 10'000) / 1000);
  CHECK(job.schedule_run().misfire() == v1::FIRE_ALL);
  CHECK(job.schedule_run().overlap() == v1::FORBID);
  const auto changelog = harness.take("cron-changelog");
  REQUIRE(changelog.size() >= 1);
  CHECK(changelog[0].key == "acme~report");
}

TEST_CASE("a tenant's schedule keyed by its bare id is REJECTED with the key it needs, and the key alone names the tenant") {
  Harness harness;
  harness.apply("report", R"({"id":"report","expression":"0 9 * * *","tenant":"acme","job_template":{"noop":{}}})");
  auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  v1::DeadLetter letter;
  REQUIRE(letter.ParseFromString(letters[0].value));
  CHECK(letter.reason() ==
        "schedule id 'report' of tenant 'acme' does not match the record key 'report': its key must be "
        "'acme~report'");
  // A record without id and tenant takes both from its key.
  harness.apply("ab~tick", R"({"expression":"*/10 * * * * *","job_template":{"noop":{}}})");
  harness.clock.advance(Millis(5'000));
  harness.planner.tick(harness.out);
  const auto jobs = harness.take(".jobs");
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].key == "ab~tick");
  v1::Command command;
  REQUIRE(command.ParseFromString(jobs[0].value));
  CHECK(command.submit().tenant() == "ab");
  CHECK(command.submit().id() == "tick@2026-09-21T14:13:30Z");
}

TEST_CASE(
    "while tenant runs are held, a tenant's schedule emits nothing and catches up when released, the default tenant's runs on") {
  Harness harness;
  harness.apply("acme~tick", R"({"id":"tick","tenant":"acme","expression":"*/10 * * * * *","misfire":"FIRE_ALL",)"
                             R"("job_template":{"noop":{}}})");
  harness.apply("tick", schedule("tick", "*/10 * * * * *"));
  const auto emitted_keys = [&] {
    harness.planner.tick(harness.out);
    std::vector<std::string> keys;
    for (const auto& record : harness.take(".jobs")) keys.push_back(record.key);
    return keys;
  };
  harness.planner.hold_tenant_runs(true);
  harness.clock.advance(Millis(15'000));
  // At :35 with 5 s of look-ahead: the :30 and :40 runs.
  CHECK(emitted_keys() == std::vector<std::string>{"tick", "tick"});
  CHECK(emitted_keys().empty());
  harness.planner.hold_tenant_runs(false);
  CHECK(emitted_keys() == std::vector<std::string>{"acme~tick", "acme~tick"});  // held until now
}

TEST_CASE("an invalid schedule is REJECTED with its reason and the previous definition stays in force") {
  Harness harness;
  harness.apply("s", schedule("s", "*/10 * * * * *"));
  harness.apply("s", schedule("s", "61 * * * *"));
  harness.apply("bad-zone", schedule("bad-zone", "0 9 * * *", R"(,"time_zone":"Mars/Olympus")"));
  harness.apply("bad-queue", R"({"id":"bad-queue","expression":"0 9 * * *","job_template":{"queue":"nowhere","noop":{}}})");
  harness.apply("bad@id", schedule("bad@id", "0 9 * * *"));
  harness.planner.apply(harness.record("garbage", "{not json"), harness.out);
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 5);
  std::vector<std::string> reasons;
  for (const auto& letter : letters) {
    v1::DeadLetter decoded;
    REQUIRE(decoded.ParseFromString(letter.value));
    CHECK(decoded.state() == v1::REJECTED);
    reasons.push_back(decoded.reason());
  }
  CHECK_THAT(reasons[0], Catch::Contains("minute") && Catch::Contains("61") && Catch::Contains("previous definition stays"));
  CHECK_THAT(reasons[1], Catch::Contains("Mars/Olympus"));
  CHECK_THAT(reasons[2], Catch::Contains("unknown queue 'nowhere'"));
  CHECK_THAT(reasons[3], Catch::Contains("must not contain '@'"));
  harness.clock.advance(Millis(5'000));
  CHECK(harness.tick_ids() == std::vector<std::string>{"s@2026-09-21T14:13:30Z"});
}

TEST_CASE("changing or deleting a schedule cancels the runs it emitted ahead") {
  Harness harness;
  harness.apply("c", schedule("c", "*/10 * * * * *"));
  harness.clock.advance(Millis(5'000));
  CHECK(harness.tick_ids().size() == 1);  // :30 emitted, due in 5 s
  harness.apply("c", schedule("c", "*/20 * * * * *"));
  auto cancels = harness.take(".jobs");
  REQUIRE(cancels.size() == 1);
  v1::Command command;
  REQUIRE(command.ParseFromString(cancels[0].value));
  CHECK(command.cancel().job_id() == "c@2026-09-21T14:13:30Z");
  harness.remove("c");
  const auto changelog = harness.take("cron-changelog");
  REQUIRE_FALSE(changelog.empty());
  CHECK(changelog.back().tombstone);
  harness.clock.advance(Millis(60'000));
  CHECK(harness.tick_ids().empty());
}

TEST_CASE("a paused schedule emits nothing, resumed, it continues from now") {
  Harness harness;
  harness.apply("p", schedule("p", "*/10 * * * * *", R"(,"paused":true)"));
  harness.clock.advance(Millis(60'000));
  CHECK(harness.tick_ids().empty());
  harness.apply("p", schedule("p", "*/10 * * * * *"));
  harness.clock.advance(Millis(5'000));
  CHECK(harness.tick_ids() == std::vector<std::string>{"p@2026-09-21T14:14:30Z"});
}

TEST_CASE("after an outage, missed runs follow the misfire policy") {
  auto outage = [](const std::string& policy_json) {
    Harness harness;
    harness.apply("m", schedule("m", "*/10 * * * * *", policy_json));
    harness.clock.advance(Millis(60'000));  // the producer was down for a minute: now 14:14:20, horizon 14:14:25
    return harness.tick_ids();
  };
  SECTION("fire_once (default) fires the latest missed run only, then the runs on time") {
    CHECK(outage("") == std::vector<std::string>{"m@2026-09-21T14:14:10Z", "m@2026-09-21T14:14:20Z"});
  }
  SECTION("skip fires none of the missed runs") {
    CHECK(outage(R"(,"misfire":"SKIP")") == std::vector<std::string>{"m@2026-09-21T14:14:20Z"});
  }
  SECTION("fire_all fires the missed runs within the catch-up window") {
    CHECK(outage(R"(,"misfire":"FIRE_ALL","catchup_window":"35s")") ==
          std::vector<std::string>{"m@2026-09-21T14:13:50Z", "m@2026-09-21T14:14:00Z", "m@2026-09-21T14:14:10Z",
                                   "m@2026-09-21T14:14:20Z"});
  }
}

TEST_CASE("max_runs, start and end bound a schedule") {
  Harness harness;
  harness.apply("limited", schedule("limited", "*/10 * * * * *", R"(,"max_runs":"2")"));
  harness.apply("window",
                schedule("window", "*/10 * * * * *", R"(,"start":"2026-09-21T14:14:00Z","end":"2026-09-21T14:14:15Z")"));
  std::vector<std::string> emitted;
  for (int step = 0; step < 20; ++step) {
    harness.clock.advance(Millis(5'000));
    for (auto& id : harness.tick_ids()) emitted.push_back(id);
  }
  CHECK(std::count_if(emitted.begin(), emitted.end(), [](const std::string& id) { return id.starts_with("limited@"); }) == 2);
  std::vector<std::string> window;
  std::copy_if(emitted.begin(), emitted.end(), std::back_inserter(window),
               [](const std::string& id) { return id.starts_with("window@"); });
  CHECK(window == std::vector<std::string>{"window@2026-09-21T14:14:00Z", "window@2026-09-21T14:14:10Z"});
}

TEST_CASE("a new owner restored from the changelog neither repeats nor misses a run") {
  Harness first;
  first.apply("f", schedule("f", "*/10 * * * * *"));
  first.clock.advance(Millis(5'000));
  CHECK(first.tick_ids() == std::vector<std::string>{"f@2026-09-21T14:13:30Z"});
  const auto changelog = first.take("cron-changelog");

  Harness second;
  second.clock.set(first.clock.now());
  for (const auto& record : changelog) second.planner.restore_state(record.partition, record.key, record.value, record.tombstone);
  second.planner.load(second.record("f", first.stored_json));
  CHECK(second.tick_ids().empty());
  second.clock.advance(Millis(10'000));
  CHECK(second.tick_ids() == std::vector<std::string>{"f@2026-09-21T14:13:40Z"});
}

TEST_CASE("a schedule record on another partition than murmur2(key) is forwarded") {
  Harness harness;
  const auto owner = harness.partition_of("fwd");
  const std::string definition = schedule("fwd", "0 9 * * *");  // the record views it: keep it alive
  ScheduleRecord misrouted{(owner + 1) % 6, 0, "fwd", definition, false, ""};
  harness.planner.apply(misrouted, harness.out);
  const auto forwarded = harness.take(".schedules");
  REQUIRE(forwarded.size() == 1);
  CHECK(forwarded[0].partition == owner);
  CHECK(harness.planner.schedule_count() == 0);
}

TEST_CASE("jitter delays a run deterministically within its bound") {
  Harness harness;
  harness.apply("j", schedule("j", "*/10 * * * * *", R"(,"jitter":"3s")"));
  harness.clock.advance(Millis(5'000));
  harness.planner.tick(harness.out);
  const auto jobs = harness.take(".jobs");
  REQUIRE(jobs.size() == 1);
  v1::Command command;
  REQUIRE(command.ParseFromString(jobs[0].value));
  const auto delay = command.submit().run_at_ms() - (kStart + 10'000);
  CHECK(delay >= 0);
  CHECK(delay < 3'000);
}

TEST_CASE("a schedule whose runs' job ids could not be accepted, or with unknown enum numbers, is REJECTED") {
  Harness harness;
  const std::string long_id(300, 's');
  harness.apply(long_id, schedule(long_id, "* * * * * *"));
  v1::Schedule binary;
  binary.set_id("enum");
  binary.set_expression("* * * * * *");
  binary.mutable_job_template()->mutable_noop();
  binary.set_overlap(static_cast<v1::OverlapPolicy>(42));
  harness.planner.apply({harness.partition_of("enum"), harness.offset++, "enum", encode(binary), false, ""}, harness.out);
  binary.set_overlap(v1::FORBID);
  binary.set_misfire(static_cast<v1::MisfirePolicy>(-1));
  harness.planner.apply({harness.partition_of("enum"), harness.offset++, "enum", encode(binary), false, ""}, harness.out);
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 3);
  std::vector<std::string> reasons;
  for (const auto& record : letters) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    reasons.push_back(letter.reason());
  }
  CHECK_THAT(reasons[0], Catch::Contains("schedule id of 300 bytes is longer than 231 bytes"));
  CHECK_THAT(reasons[1], Catch::Contains("overlap policy 42"));
  CHECK_THAT(reasons[2], Catch::Contains("misfire policy -1"));
  harness.clock.advance(Millis(5'000));
  CHECK(harness.tick_ids().empty());
}

TEST_CASE("a REJECTED schedule record is a dead letter and a status keyed by its key cut to a job id's length, not an event") {
  Harness harness;
  const std::string long_id(300, 's');
  harness.apply(long_id, schedule(long_id, "* * * * * *"));
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].key == std::string(kMaxJobIdBytes, 's'));
  v1::DeadLetter letter;
  REQUIRE(letter.ParseFromString(letters[0].value));
  CHECK(letter.source_topic() == "kcron.schedules");
  CHECK(letter.source_partition() == harness.partition_of(long_id));
  CHECK(letter.original() == harness.stored_json);
  CHECK_FALSE(letter.truncated());
  CHECK(letter.component() == "cron-producer");
  const auto statuses = harness.take("kcron.status");
  REQUIRE(statuses.size() == 1);
  CHECK(statuses[0].key == letters[0].key);
  v1::StatusRecord status;
  REQUIRE(status.ParseFromString(statuses[0].value));
  CHECK(status.state() == v1::REJECTED);
  CHECK(status.at_ms() == kStart);
  CHECK_THAT(status.reason(), Catch::Contains("longer than 231 bytes"));
  CHECK(harness.take("kcron.events").empty());
}

TEST_CASE("absurd binary start, end and jitter neither overflow nor emit runs") {
  Harness harness;
  v1::Schedule binary;
  binary.set_id("absurd");
  binary.set_expression("* * * * * *");
  binary.mutable_job_template()->mutable_noop();
  binary.mutable_start()->set_seconds(std::numeric_limits<std::int64_t>::min());
  binary.mutable_end()->set_seconds(std::numeric_limits<std::int64_t>::max());
  binary.mutable_jitter()->set_seconds(std::numeric_limits<std::int64_t>::max());
  harness.planner.apply({harness.partition_of("absurd"), harness.offset++, "absurd", encode(binary), false, ""}, harness.out);
  CHECK(harness.take("dead-letters").empty());
  harness.clock.advance(Millis(1'000));
  // Runs are emitted (their jitter puts them far beyond the dispatcher's horizon, where it rejects them).
  CHECK_FALSE(harness.tick_ids().empty());
}

namespace {

std::string flow_schedule(const std::string& id, const std::string& nodes, const std::string& extra = "") {
  return fmt::format(R"({{"id":"{}","expression":"*/10 * * * * *","flow_template":{{"nodes":[{}]}}{}}})", id, nodes, extra);
}

const std::string kTwoNodes =
    R"({"name":"extract","job":{"noop":{}}},{"name":"load","job":{"delay":"1s","noop":{}},"depends_on":["extract"]})";

}  // namespace

TEST_CASE("a flow_template schedule emits each run as a flow `<schedule>@<instant>` that starts at its instant") {
  Harness harness;
  harness.apply("acme~etl", flow_schedule("etl", kTwoNodes, R"(,"tenant":"acme","overlap":"FORBID","jitter":"2s")"));
  CHECK(harness.take("dead-letters").empty());
  harness.clock.advance(Millis(5'000));
  harness.planner.tick(harness.out);
  const auto runs = harness.take(".jobs");
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].key == "acme~etl");
  v1::Command command;
  REQUIRE(command.ParseFromString(runs[0].value));
  REQUIRE(command.has_flow());
  const auto& flow = command.flow();
  CHECK(flow.id() == "etl@2026-09-21T14:13:30Z");
  CHECK(flow.tenant() == "acme");
  CHECK(flow.run_at_ms() >= kStart + 10'000);
  CHECK(flow.run_at_ms() < kStart + 12'000);
  CHECK(flow.schedule_run().schedule_id() == "etl");
  CHECK(flow.schedule_run().overlap() == v1::FORBID);
  CHECK(flow.schedule_run().nominal_instant().seconds() == (kStart + 10'000) / 1000);
  REQUIRE(flow.nodes_size() == 2);
  CHECK(flow.nodes(1).depends_on(0) == "extract");
  CHECK(flow.nodes(1).job().delay().seconds() == 1);
  // Changed: the run emitted ahead is cancelled as a flow.
  harness.apply("acme~etl", flow_schedule("etl", kTwoNodes, R"(,"tenant":"acme")"));
  const auto cancels = harness.take(".jobs");
  REQUIRE(cancels.size() == 1);
  REQUIRE(command.ParseFromString(cancels[0].value));
  CHECK(command.cancel().job_id() == "etl@2026-09-21T14:13:30Z");
  CHECK(command.cancel().flow());
}

TEST_CASE("a flow_template is checked as each run will be: cycles, run_at, both templates, node ids over the limit") {
  Harness harness;
  harness.apply("cyc", flow_schedule("cyc", R"({"name":"a","job":{"noop":{}},"depends_on":["b"]},)"
                                            R"({"name":"b","job":{"noop":{}},"depends_on":["a"]})"));
  harness.apply("at", flow_schedule("at", R"({"name":"a","job":{"run_at_ms":"1","noop":{}}})"));
  harness.apply("both", R"({"id":"both","expression":"0 9 * * *","job_template":{"noop":{}},)"
                        R"("flow_template":{"nodes":[{"name":"a","job":{"noop":{}}}]}})");
  harness.apply("notask", flow_schedule("notask", R"({"name":"a","job":{}})"));
  const std::string long_id(200, 's');
  harness.apply(long_id, flow_schedule(long_id, R"({"name":"a-rather-long-node-name-of-forty-bytes-xx","job":{"noop":{}}})"));
  harness.apply(
      "named",
      R"({"id":"named","expression":"*/10 * * * * *","flow_template":{"id":"x","nodes":[{"name":"a","job":{"noop":{}}}]}})");
  std::vector<std::string> reasons;
  for (const auto& letter : harness.take("dead-letters")) {
    v1::DeadLetter decoded;
    REQUIRE(decoded.ParseFromString(letter.value));
    reasons.push_back(decoded.reason());
  }
  REQUIRE(reasons.size() == 6);
  CHECK_THAT(reasons[0], Catch::Contains("schedule cyc: flow_template") && Catch::Contains("cycle"));
  CHECK_THAT(reasons[1], Catch::Contains("node 'a': job: run_at would be the same instant for every run"));
  CHECK_THAT(reasons[2], Catch::Contains("set job_template or flow_template, not both"));
  CHECK_THAT(reasons[3], Catch::Contains("node 'a': job has no task"));
  CHECK_THAT(reasons[4], Catch::Contains("would be 267 bytes, over the limit of 256"));
  CHECK_THAT(reasons[5], Catch::Contains("kcron sets a run's id"));
  harness.clock.advance(Millis(60'000));
  CHECK(harness.take(".jobs").empty());
}

TEST_CASE("while flows are held (an earlier release runs), flow_template schedules emit nothing and jobs' schedules go on") {
  Harness harness;
  harness.apply("etl", flow_schedule("etl", kTwoNodes));
  harness.apply("tick", schedule("tick", "*/10 * * * * *"));
  harness.planner.hold_flow_runs(true);
  harness.clock.advance(Millis(5'000));
  CHECK(harness.tick_ids() == std::vector<std::string>{"tick@2026-09-21T14:13:30Z"});
  harness.planner.hold_flow_runs(false);
  harness.planner.tick(harness.out);
  const auto runs = harness.take(".jobs");
  REQUIRE(runs.size() == 1);
  v1::Command command;
  REQUIRE(command.ParseFromString(runs[0].value));
  CHECK(command.flow().id() == "etl@2026-09-21T14:13:30Z");
}

namespace {

v1::Template report_template(const std::string& tenant = "") {
  v1::Template definition;
  auto decoded = decode_message(R"({
    "name": "report", "version": 3,
    "params": [{"name": "day", "type": "STRING", "required": true}, {"name": "n", "type": "INT", "default": "10"}],
    "job": {"queue": "batch", "labels": {"day": "{{day}}"}, "exec": {"argv": ["/usr/bin/report", "--day={{day}}", "--top={{n}}"]}}
  })",
                                "application/json", definition);
  REQUIRE(decoded);
  definition.set_tenant(tenant);
  return definition;
}

std::string on_template(const std::string& id, const std::string& ref, const std::string& params) {
  return fmt::format(R"({{"id":"{}","expression":"*/10 * * * * *","template_ref":{{"ref":"{}","params":{{{}}}}}}})", id, ref,
                     params);
}

std::vector<v1::Job> submitted(Harness& harness) {
  harness.planner.tick(harness.out);
  std::vector<v1::Job> jobs;
  for (const auto& item : harness.take(".jobs")) {
    v1::Command command;
    REQUIRE(command.ParseFromString(item.value));
    if (command.has_submit()) jobs.push_back(command.submit());
  }
  return jobs;
}

std::vector<std::string> rejections(Harness& harness) {
  std::vector<std::string> reasons;
  for (const auto& letter : harness.take("dead-letters")) {
    v1::DeadLetter decoded;
    REQUIRE(decoded.ParseFromString(letter.value));
    CHECK(decoded.state() == v1::REJECTED);
    reasons.push_back(decoded.reason());
  }
  return reasons;
}

}  // namespace

TEST_CASE("a template_ref schedule renders each run from its template version, which the job names as its template") {
  Harness harness;
  templates::Catalog catalog;
  catalog.put(report_template());
  harness.planner.set_catalog(&catalog);
  harness.apply("daily", on_template("daily", "report@3", R"("day":"mon")"));
  CHECK(rejections(harness).empty());
  harness.clock.advance(Millis(5'000));
  const auto jobs = submitted(harness);
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].id() == "daily@2026-09-21T14:13:30Z");
  CHECK(jobs[0].template_() == "report@3");
  CHECK(jobs[0].queue() == "batch");
  CHECK(jobs[0].exec().argv(1) == "--day=mon");
  CHECK(jobs[0].exec().argv(2) == "--top=10");
  CHECK(jobs[0].labels().at("day") == "mon");
  CHECK(jobs[0].schedule_run().schedule_id() == "daily");
  CHECK(jobs[0].run_at_ms() == kStart + 10'000);
}

TEST_CASE("a template_ref schedule whose version renders with an error is REJECTED at once naming the parameter") {
  Harness harness;
  templates::Catalog catalog;
  catalog.put(report_template());
  harness.planner.set_catalog(&catalog);
  harness.apply("missing", on_template("missing", "report@3", ""));
  harness.apply("typed", on_template("typed", "report@3", R"("day":"mon","n":"ten")"));
  harness.apply("unknown", on_template("unknown", "report@3", R"("day":"mon","colour":"red")"));
  harness.apply("no-version", on_template("no-version", "report", R"("day":"mon")"));
  harness.apply("both", R"({"id":"both","expression":"* * * * *","job_template":{"noop":{}},"template_ref":{"ref":"report@3"}})");
  const auto reasons = rejections(harness);
  REQUIRE(reasons.size() == 5);
  CHECK_THAT(reasons[0], Catch::Contains("schedule missing") && Catch::Contains("report@3") && Catch::Contains("'day'"));
  CHECK_THAT(reasons[1], Catch::Contains("'n'") && Catch::Contains("ten"));
  CHECK_THAT(reasons[2], Catch::Contains("'colour'"));
  CHECK_THAT(reasons[3], Catch::Contains("template_ref") && Catch::Contains("version"));
  CHECK_THAT(reasons[4], Catch::Contains("one of job_template, flow_template, template_ref"));
  harness.clock.advance(Millis(5'000));
  CHECK(submitted(harness).empty());
}

TEST_CASE("a template_ref schedule waits for a version not seen yet, then is REJECTED naming it") {
  Harness harness;
  templates::Catalog catalog;
  harness.planner.set_catalog(&catalog);
  harness.apply("late", on_template("late", "report@3", R"("day":"mon")"));
  harness.apply("never", on_template("never", "report@4", R"("day":"mon")"));
  CHECK(rejections(harness).empty());
  harness.clock.advance(Millis(20'000));
  CHECK(submitted(harness).empty());  // waiting: nothing emitted, nothing rejected
  CHECK(rejections(harness).empty());
  catalog.put(report_template());  // version 3 arrives within the wait
  harness.clock.advance(Millis(11'000));
  const auto jobs = submitted(harness);
  REQUIRE_FALSE(jobs.empty());
  for (const auto& job : jobs) CHECK_THAT(job.id(), Catch::StartsWith("late@"));
  const auto reasons = rejections(harness);
  REQUIRE(reasons.size() == 1);
  CHECK_THAT(reasons[0], Catch::Contains("schedule never") && Catch::Contains("'report@4'") && Catch::Contains("not found"));
  CHECK(submitted(harness).empty());  // REJECTED once, then silent until its next record
  CHECK(rejections(harness).empty());
  // The same definition put again waits again (and renders now that version 4 exists).
  auto version4 = report_template();
  version4.set_version(4);
  catalog.put(version4);
  harness.apply("never", on_template("never", "report@4", R"("day":"tue")"));
  harness.clock.advance(Millis(10'000));
  bool rendered = false;
  for (const auto& job : submitted(harness)) rendered = rendered || job.template_() == "report@4";
  CHECK(rendered);
}

TEST_CASE("a template_ref schedule of a tenant renders that tenant's version only") {
  Harness harness;
  templates::Catalog catalog;
  catalog.put(report_template());  // the default tenant's
  harness.planner.set_catalog(&catalog);
  harness.apply(
      "acme~daily",
      R"({"id":"daily","tenant":"acme","expression":"*/10 * * * * *","template_ref":{"ref":"report@3","params":{"day":"mon"}}})");
  harness.clock.advance(Millis(31'000));
  CHECK(submitted(harness).empty());
  const auto reasons = rejections(harness);
  REQUIRE(reasons.size() == 1);
  CHECK_THAT(reasons[0], Catch::Contains("'report@3' of tenant 'acme'"));
}

namespace {

// A flow_template whose node "report" names report@3 (after a plain node "extract").
std::string flow_on_template(const std::string& id, const std::string& params, const std::string& ref = "report@3") {
  return flow_schedule(id, fmt::format(R"({{"name":"extract","job":{{"noop":{{}}}}}},)"
                                       R"({{"name":"report","template_ref":{{"ref":"{}","params":{{{}}}}},)"
                                       R"("depends_on":["extract"]}})",
                                       ref, params));
}

std::vector<v1::Flow> flows_submitted(Harness& harness) {
  harness.planner.tick(harness.out);
  std::vector<v1::Flow> flows;
  for (const auto& item : harness.take(".jobs")) {
    v1::Command command;
    REQUIRE(command.ParseFromString(item.value));
    if (command.has_flow()) flows.push_back(command.flow());
  }
  return flows;
}

}  // namespace

TEST_CASE("a flow_template node naming a template renders at each run into a job carrying name@version") {
  Harness harness;
  templates::Catalog catalog;
  catalog.put(report_template());
  harness.planner.set_catalog(&catalog);
  harness.apply("etl", flow_on_template("etl", R"("day":"mon")"));
  CHECK(rejections(harness).empty());
  harness.clock.advance(Millis(5'000));
  const auto flows = flows_submitted(harness);
  REQUIRE(flows.size() == 1);
  CHECK(flows[0].id() == "etl@2026-09-21T14:13:30Z");
  REQUIRE(flows[0].nodes_size() == 2);
  CHECK(flows[0].nodes(0).job().has_noop());
  const auto& node = flows[0].nodes(1);
  CHECK_FALSE(node.has_template_ref());
  CHECK(node.job().template_() == "report@3");
  CHECK(node.job().exec().argv(1) == "--day=mon");
  CHECK(node.job().queue() == "batch");
  CHECK(node.depends_on(0) == "extract");
}

TEST_CASE("a flow_template node whose version does not render is REJECTED at arrival naming the node and the parameter") {
  Harness harness;
  templates::Catalog catalog;
  catalog.put(report_template());
  harness.planner.set_catalog(&catalog);
  harness.apply("missing", flow_on_template("missing", ""));
  harness.apply("both", flow_schedule("both", R"({"name":"a","job":{"noop":{}},"template_ref":{"ref":"report@3"}})"));
  harness.apply("unversioned", flow_on_template("unversioned", R"("day":"mon")", "report"));
  const auto reasons = rejections(harness);
  REQUIRE(reasons.size() == 3);
  CHECK(reasons[0] == "schedule missing: flow_template: node 'report': template 'report@3': required parameter 'day' is missing");
  CHECK(reasons[1] == "schedule both: flow_template: node 'a': set job or template_ref, not both");
  CHECK_THAT(reasons[2], Catch::Contains("node 'report': template_ref") && Catch::Contains("version"));
  harness.clock.advance(Millis(5'000));
  CHECK(flows_submitted(harness).empty());
}

TEST_CASE("a flow_template node's version not seen yet is waited for, then the schedule is REJECTED naming node and version") {
  Harness harness;
  templates::Catalog catalog;
  harness.planner.set_catalog(&catalog);
  harness.apply("late", flow_on_template("late", R"("day":"mon")"));
  harness.apply("never", flow_on_template("never", R"("day":"mon")", "report@4"));
  CHECK(rejections(harness).empty());
  harness.clock.advance(Millis(20'000));
  CHECK(flows_submitted(harness).empty());  // waiting
  CHECK(rejections(harness).empty());
  catalog.put(report_template());
  harness.clock.advance(Millis(11'000));
  const auto flows = flows_submitted(harness);
  REQUIRE_FALSE(flows.empty());
  for (const auto& flow : flows) {
    CHECK_THAT(flow.id(), Catch::StartsWith("late@"));
    CHECK(flow.nodes(1).job().template_() == "report@3");
  }
  const auto reasons = rejections(harness);
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] ==
        "schedule never: flow_template: node 'report': template 'report@4' was not found on kcron.templates "
        "within 30000 ms");
  CHECK(flows_submitted(harness).empty());
}

TEST_CASE("a flow_template node whose rendered job fails the schedule checks is REJECTED") {
  Harness harness;
  templates::Catalog catalog;
  auto elsewhere = report_template();
  elsewhere.mutable_job()->set_queue("nowhere");
  catalog.put(elsewhere);
  harness.planner.set_catalog(&catalog);
  harness.apply("etl", flow_on_template("etl", R"("day":"mon")"));
  const auto reasons = rejections(harness);
  REQUIRE(reasons.size() == 1);
  CHECK(reasons[0] ==
        "schedule etl: flow_template: node 'report': template 'report@3' renders a job that is refused: unknown queue 'nowhere'");
}

TEST_CASE("a flow_template renders none of its nodes while a version it names is missing") {
  Harness harness;
  templates::Catalog catalog;
  catalog.put(report_template());
  harness.planner.set_catalog(&catalog);
  // Node a's version is here but a render would refuse it (no day); b's version is not here yet.
  // Every version is looked up before any node renders: the schedule waits, not REJECTED for a.
  harness.apply("wait", flow_schedule("wait", R"({"name":"a","template_ref":{"ref":"report@3"}},)"
                                              R"({"name":"b","template_ref":{"ref":"report@4","params":{"day":"mon"}}})"));
  harness.clock.advance(Millis(5'000));
  CHECK(flows_submitted(harness).empty());
  CHECK(rejections(harness).empty());  // waiting for report@4, a not rendered yet
  auto later = report_template();
  later.set_version(4);
  catalog.put(later);
  harness.clock.advance(Millis(1'000));
  CHECK(flows_submitted(harness).empty());
  const auto reasons = rejections(harness);
  REQUIRE(reasons.size() == 1);  // now rendered: a is refused
  CHECK(reasons[0] == "schedule wait: flow_template: node 'a': template 'report@3': required parameter 'day' is missing");
}
