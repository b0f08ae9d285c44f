#include "core/relay_core.h"

#include <catch2/catch.hpp>
#include <map>

#include "kcron/codec.h"

using namespace kcron;
using namespace kcron::relay;

namespace {

constexpr std::int64_t kNow = 1'790'000'000'000;
const TopicNames kNames("kcron.");

struct Harness {
  ManualClock clock{instant_from_ms(kNow)};
  Relay relay{RelaySettings(kNames), clock};
  std::vector<OutRecord> out;
  std::int64_t offset = 0;

  Decision apply(const std::string& topic, const std::string& key, const std::string& value, bool tombstone = false,
                 const std::string& content_type = "") {
    const InputRecord record{.topic = topic,
                             .partition = 1,
                             .offset = offset++,
                             .key = key,
                             .value = value,
                             .tombstone = tombstone,
                             .content_type = content_type,
                             .timestamp_ms = kNow - 500};
    return relay.apply(record, out);
  }
  std::vector<OutRecord> on(const std::string& topic) const {
    std::vector<OutRecord> found;
    for (const auto& record : out)
      if (record.topic == topic) found.push_back(record);
    return found;
  }
};

std::map<std::string, std::string> headers_of(const OutRecord& record) {
  return {record.headers.begin(), record.headers.end()};
}

v1::Command command_of(const OutRecord& record) {
  v1::Command command;
  REQUIRE(command.ParseFromString(record.value));
  return command;
}

v1::DeadLetter letter_of(const OutRecord& record) {
  v1::DeadLetter letter;
  REQUIRE(letter.ParseFromString(record.value));
  return letter;
}

}  // namespace

TEST_CASE("input topic names give the tenant and the kind", "[relay]") {
  auto commands = parse_input_topic("kcron.", "kcron.in.acme");
  REQUIRE(commands.ok());
  CHECK(commands->tenant == "acme");
  CHECK(commands->kind == InputKind::kCommands);
  auto schedules = parse_input_topic("kcron.", "kcron.in.acme-2.schedules");
  REQUIRE(schedules.ok());
  CHECK(schedules->tenant == "acme-2");
  CHECK(schedules->kind == InputKind::kSchedules);
  // A tenant may be called "schedules": its schedules topic is in.schedules.schedules.
  CHECK(parse_input_topic("kcron.", "kcron.in.schedules")->kind == InputKind::kCommands);
  CHECK(parse_input_topic("kcron.", "kcron.in.schedules.schedules")->tenant == "schedules");
  CHECK(input_topic("kcron.", "acme") == "kcron.in.acme");
  CHECK(schedules_input_topic("kcron.", "acme") == "kcron.in.acme.schedules");
}

TEST_CASE("bad input topic names are refused with the reason", "[relay]") {
  for (const std::string topic :
       {"kcron.in.A", "kcron.in.a.b", "kcron.in.a.schedules.x", "kcron.in.", "kcron.in..schedules", "kcron.in.-a", "kcron.jobs",
        "other.in.a", "kcron.in.a~b", "kcron.in.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}) {
    INFO(topic);
    auto parsed = parse_input_topic("kcron.", topic);
    REQUIRE_FALSE(parsed.ok());
    CHECK_THAT(parsed.error().message(), Catch::Contains("is not a tenant's input topic"));
  }
  CHECK(parse_input_topic("kcron.", "kcron.in.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").ok());  // 40 characters
}

TEST_CASE("the subscription pattern escapes the prefix", "[relay]") {
  CHECK(subscription_pattern("kcron.") == R"(^kcron\.in\.[a-z0-9][-a-z0-9]*(\.schedules)?$)");
  CHECK(subscription_pattern("it-x+y.") == R"(^it-x\+y\.in\.[a-z0-9][-a-z0-9]*(\.schedules)?$)");
}

TEST_CASE("a submit on in.acme naming tenant b is forwarded as acme's, keyed acme~id", "[relay]") {
  Harness h;
  const auto decision = h.apply("kcron.in.acme", "x", R"({"id":"job-1","tenant":"b","noop":{}})");
  CHECK(decision.outcome == Outcome::kForwarded);
  CHECK(decision.tenant_overridden);
  CHECK(decision.tenant == "acme");
  CHECK(decision.action == "submit");
  CHECK(h.relay.counts().tenant_overridden == 1);
  REQUIRE(h.out.size() == 1);
  const auto& record = h.out[0];
  CHECK(record.topic == "kcron.jobs");
  CHECK(record.key == "acme~job-1");
  CHECK(record.partition == -1);
  CHECK(record.timestamp_ms == kNow - 500);
  const auto headers = headers_of(record);
  CHECK(headers.at("kcron-type") == "submit");
  CHECK(headers.at("kcron-job-id") == "job-1");
  CHECK(headers.at("kcron-tenant") == "acme");
  CHECK(headers.at("content-type") == "application/x-protobuf");
  CHECK(headers.at("kcron-relayed-from") == "kcron.in.acme/1@0");
  const auto command = command_of(record);
  REQUIRE(command.has_submit());
  CHECK(command.submit().tenant() == "acme");
  CHECK(command.submit().id() == "job-1");
  CHECK(command.submit().submitted_by() == "kafka:kcron.in.acme");
}

TEST_CASE("the tenant's own name in the body, or none, is no override", "[relay]") {
  Harness h;
  CHECK_FALSE(h.apply("kcron.in.acme", "", R"({"id":"a","tenant":"acme","noop":{}})").tenant_overridden);
  CHECK_FALSE(h.apply("kcron.in.acme", "", R"({"id":"b","noop":{}})").tenant_overridden);
  CHECK(h.relay.counts().forwarded == 2);
  // The default tenant's topic: bare keys, no tenant header, a body naming acme overridden.
  const auto decision = h.apply("kcron.in.default", "", R"({"id":"c","tenant":"acme","noop":{}})");
  CHECK(decision.tenant_overridden);
  REQUIRE(h.out.size() == 3);
  CHECK(h.out[2].key == "c");
  CHECK_FALSE(headers_of(h.out[2]).contains("kcron-tenant"));
  CHECK(command_of(h.out[2]).submit().tenant().empty());
}

TEST_CASE("cancel, update and replay are stamped with the topic's tenant", "[relay]") {
  Harness h;
  CHECK(h.apply("kcron.in.acme", "", R"({"cancel":{"job_id":"r@2026-01-01T00:00:00Z","tenant":"b"}})").tenant_overridden);
  CHECK(h.apply("kcron.in.acme", "", R"({"update":{"job":{"id":"u","noop":{}}}})").outcome == Outcome::kForwarded);
  CHECK(h.apply("kcron.in.acme", "",
                R"({"replay":{"job_id":"d","job":{"id":"d","attempt":3,"submitted_by":"x","tenant":"b","noop":{}}}})")
            .outcome == Outcome::kForwarded);
  REQUIRE(h.out.size() == 3);
  CHECK(h.out[0].key == "acme~r");  // the routing key of a schedule's run: its schedule, scoped
  CHECK(headers_of(h.out[0]).at("kcron-type") == "cancel");
  CHECK(command_of(h.out[0]).cancel().tenant() == "acme");
  CHECK(h.out[1].key == "acme~u");
  CHECK(command_of(h.out[1]).update().job().tenant() == "acme");
  const auto replay = command_of(h.out[2]).replay();
  CHECK(replay.job().tenant() == "acme");
  CHECK(replay.job().submitted_by() == "kafka:kcron.in.acme");
  CHECK(replay.job().attempt() == 3);  // as its dead letter holds it; the dispatcher sets the next
}

TEST_CASE("a binary Command and a binary bare Job are forwarded", "[relay]") {
  Harness h;
  v1::Command command;
  command.mutable_submit()->set_id("bin");
  command.mutable_submit()->mutable_noop();
  CHECK(h.apply("kcron.in.acme", "bin", encode(command), false, "application/x-protobuf").outcome == Outcome::kForwarded);
  v1::Job job;
  job.set_id("bare");
  job.mutable_noop();
  const std::string bytes = encode(job);
  const InputRecord bare{.topic = "kcron.in.acme", .partition = 0, .offset = 9, .value = bytes, .kcron_type = "job"};
  CHECK(h.relay.apply(bare, h.out).outcome == Outcome::kForwarded);
  REQUIRE(h.out.size() == 2);
  CHECK(h.out[1].key == "acme~bare");
  CHECK(h.out[1].timestamp_ms == 0);
}

TEST_CASE("record kinds only kcron's programs write are refused", "[relay]") {
  const std::map<std::string, std::string> refused = {
      {R"({"retry":{"job":{"id":"j","noop":{}},"due_ms":"1"}})", "a retry is written only by kcron's workers"},
      {R"({"completion":{"job_id":"j"}})", "a completion is written only by kcron's workers"},
      {R"({"purge_tenant":{"tenant":"acme"}})", "a purge-tenant is written only by `kcron tenant delete`"},
      {R"({"id":"j","noop":{},"schedule_run":{"schedule_id":"j"}})", "schedule_run: set by the cron-producer"},
      {R"({"id":"j","noop":{},"attempt":2})", "attempt: kcron sets it"},
      {R"({"id":"j","noop":{},"submitted_by":"root"})", "submitted_by: kcron sets it"},
      {R"({"id":"j","noop":{},"template":"report@3"})", "template: set by the writer that renders a template"},
      {R"({"replay":{"job_id":"j","job":{"id":"j","noop":{},"schedule_run":{"schedule_id":"other"}}}})",
       "not the schedule of job 'j'"},
      {R"({"replay":{"job_id":"j"}})", "replay: attach the job as its dead letter holds it"},
  };
  for (const auto& [body, reason] : refused) {
    INFO(body);
    Harness h;
    const auto decision = h.apply("kcron.in.acme", "j", body);
    CHECK(decision.outcome == Outcome::kRejected);
    CHECK_THAT(decision.reason, Catch::Contains(reason));
    CHECK(h.on("kcron.jobs").empty());
    const auto letters = h.on("kcron.dead-letters");
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].key == "acme~j");
    const auto letter = letter_of(letters[0]);
    CHECK(letter.state() == v1::REJECTED);
    CHECK(letter.tenant() == "acme");
    CHECK_THAT(letter.reason(), Catch::Contains(reason));
    CHECK(letter.source_topic() == "kcron.in.acme");
    CHECK(letter.component() == "relay");
    CHECK(h.on("kcron.audit").size() == 1);
    CHECK(h.relay.counts().rejected == 1);
  }
}

TEST_CASE("garbage is a dead letter of the topic's tenant, and the next record goes on", "[relay]") {
  Harness h;
  auto decision = h.apply("kcron.in.acme", "", "{not json");
  CHECK(decision.outcome == Outcome::kRejected);
  CHECK_THAT(decision.reason, Catch::Contains("invalid JSON"));
  auto letters = h.on("kcron.dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].key == "acme~rejected-1-0");  // no id, no usable key: named by its place
  CHECK(letter_of(letters[0]).original() == "{not json");
  CHECK(h.on("kcron.status").empty());  // no job to give a state to
  // A usable record key names it; an empty value is refused too.
  CHECK(h.apply("kcron.in.acme", "k1", "").outcome == Outcome::kRejected);
  CHECK(h.on("kcron.dead-letters").back().key == "acme~k1");
  // A bad id in the body: keyed as unread (not by an id that is none).
  CHECK(h.apply("kcron.in.acme", "", R"({"id":"bad\u0001id","noop":{}})").outcome == Outcome::kRejected);
  CHECK(h.on("kcron.dead-letters").back().key == "acme~rejected-1-2");
  // The default tenant's topic refuses ids that read as another tenant's key.
  CHECK(h.apply("kcron.in.default", "", R"({"id":"acme~x","noop":{}})").outcome == Outcome::kRejected);
  CHECK(h.on("kcron.dead-letters").back().key == "rejected-1-3");
  CHECK(h.apply("kcron.in.acme", "", R"({"id":"ok","noop":{}})").outcome == Outcome::kForwarded);
  CHECK(h.on("kcron.jobs").size() == 1);
}

TEST_CASE("a refused submit also says REJECTED on status under the tenant's key", "[relay]") {
  Harness h;
  CHECK(h.apply("kcron.in.acme", "", R"({"id":"s1","noop":{},"attempt":1})").outcome == Outcome::kRejected);
  const auto status = h.on("kcron.status");
  REQUIRE(status.size() == 1);
  CHECK(status[0].key == "acme~s1");
  v1::StatusRecord record;
  REQUIRE(record.ParseFromString(status[0].value));
  CHECK(record.state() == v1::REJECTED);
  CHECK(record.tenant() == "acme");
  CHECK(record.component() == "relay");
}

TEST_CASE("an oversized record is refused before it is decoded", "[relay]") {
  ManualClock clock{instant_from_ms(kNow)};
  RelaySettings settings(kNames);
  settings.max_record_bytes = 100;
  settings.max_dead_letter_copy = 10;
  Relay relay(settings, clock);
  std::vector<OutRecord> out;
  const std::string value(200, 'x');
  const auto decision = relay.apply({.topic = "kcron.in.acme", .key = "big", .value = value}, out);
  CHECK(decision.outcome == Outcome::kRejected);
  CHECK_THAT(decision.reason, Catch::Contains("exceeds the limit of 100 bytes"));
  REQUIRE_FALSE(out.empty());
  const auto letter = letter_of(out[0]);
  CHECK(letter.truncated());
  CHECK(letter.original().size() == 10);
}

TEST_CASE("a schedule on a template is passed on inside the topic's tenant, without a job_template", "[relay]") {
  Harness h;
  // A schedule on a template: passed on as it is, inside the topic's tenant (no job_template made up).
  const auto on_template = h.apply("kcron.in.acme.schedules", "report",
                                   R"({"expression":"0 3 * * *","template_ref":{"ref":"report@3","params":{"day":"mon"}}})");
  CHECK(on_template.outcome == Outcome::kForwarded);
  REQUIRE(h.out.size() == 1);
  v1::Schedule templated;
  REQUIRE(templated.ParseFromString(h.out[0].value));
  CHECK(templated.tenant() == "acme");
  CHECK_FALSE(templated.has_job_template());
  CHECK(templated.template_ref().ref() == "report@3");
}

TEST_CASE("a schedule becomes the tenant's scoped key on schedules, a tombstone its delete", "[relay]") {
  Harness h;
  const auto put = h.apply("kcron.in.acme.schedules", "nightly",
                           R"({"expression":"0 3 * * *","tenant":"b","job_template":{"noop":{},"tenant":"b"}})");
  CHECK(put.outcome == Outcome::kForwarded);
  CHECK(put.action == "put_schedule");
  CHECK(put.tenant_overridden);
  REQUIRE(h.out.size() == 1);
  CHECK(h.out[0].topic == "kcron.schedules");
  CHECK(h.out[0].key == "acme~nightly");
  CHECK(headers_of(h.out[0]).at("content-type") == "application/x-protobuf");
  v1::Schedule schedule;
  REQUIRE(schedule.ParseFromString(h.out[0].value));
  CHECK(schedule.id() == "nightly");
  CHECK(schedule.tenant() == "acme");
  CHECK(schedule.job_template().tenant() == "acme");
  CHECK(schedule.job_template().submitted_by() == "kafka:kcron.in.acme.schedules");

  CHECK(h.apply("kcron.in.acme.schedules", "nightly", "", true).action == "delete_schedule");
  CHECK(h.apply("kcron.in.acme.schedules", "other", "").outcome == Outcome::kForwarded);  // an empty value deletes too
  REQUIRE(h.out.size() == 3);
  CHECK(h.out[1].key == "acme~nightly");
  CHECK(h.out[1].tombstone);
  CHECK(h.out[1].value.empty());
  CHECK(h.out[2].key == "acme~other");
  CHECK(h.out[2].tombstone);
  CHECK(h.relay.counts().schedules == 3);
}

TEST_CASE("a tombstone keyed like another tenant's schedule deletes only the topic tenant's", "[relay]") {
  Harness h;
  CHECK(h.apply("kcron.in.acme.schedules", "b~nightly", "", true).outcome == Outcome::kForwarded);
  REQUIRE(h.out.size() == 1);
  CHECK(h.out[0].key == "acme~b~nightly");
  // On the default tenant's topic such a key is refused: it would read as tenant b's.
  CHECK(h.apply("kcron.in.default.schedules", "b~nightly", "", true).outcome == Outcome::kRejected);
  CHECK(h.on("kcron.schedules").size() == 1);
}

TEST_CASE("bad schedule records are refused with the reason", "[relay]") {
  const std::map<std::pair<std::string, std::string>, std::string> refused = {
      {{"", R"({"expression":"* * * * *","job_template":{"noop":{}}})"}, "needs the schedule id as its key"},
      {{"a@b", R"({"expression":"* * * * *","job_template":{"noop":{}}})"}, "must not contain '@' or '/'"},
      {{"s", R"({"id":"t","expression":"* * * * *","job_template":{"noop":{}}})"}, "differs from the record key 's'"},
      {{"s", R"({"expression":"* * * * *","job_template":{"noop":{},"attempt":1}})"}, "job_template.attempt"},
      {{"s", R"({"expression":"* * * * *","job_template":{"noop":{},"schedule_run":{}}})"}, "job_template.schedule_run"},
      {{"s", "{broken"}, "invalid JSON Schedule"},
      {{std::string(240, 's'), R"({"expression":"* * * * *","job_template":{"noop":{}}})"}, "longer than 231 bytes"},
      {{"\xae", R"({"expression":"* * * * *","job_template":{"noop":{}}})"}, "schedule id: id is not valid UTF-8"},
  };
  for (const auto& [input, reason] : refused) {
    INFO(input.first << " " << input.second);
    Harness h;
    const auto decision = h.apply("kcron.in.acme.schedules", input.first, input.second);
    CHECK(decision.outcome == Outcome::kRejected);
    CHECK_THAT(decision.reason, Catch::Contains(reason));
    CHECK(h.on("kcron.schedules").empty());
    const auto letters = h.on("kcron.dead-letters");
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].key.starts_with("acme~"));
    CHECK(letters[0].key != "acme~\xae");  // a key that is no valid id names it by its place
    CHECK(letter_of(letters[0]).tenant() == "acme");
  }
}

TEST_CASE("records of a topic that is no tenant's input are skipped, nothing written", "[relay]") {
  Harness h;
  const auto decision = h.apply("kcron.in.a.b", "", R"({"id":"x","noop":{}})");
  CHECK(decision.outcome == Outcome::kSkipped);
  CHECK(h.out.empty());
  CHECK(h.relay.counts().skipped == 1);
}

TEST_CASE("a flow_template schedule keeps no job_template, its nodes the topic's tenant, and refuses kcron's fields", "[relay]") {
  Harness h;
  const auto put = h.apply("kcron.in.acme.schedules", "etl",
                           R"({"expression":"0 3 * * *","flow_template":{"tenant":"b","nodes":[)"
                           R"({"name":"a","job":{"noop":{},"tenant":"b"}},{"name":"z","job":{"noop":{}},"depends_on":["a"]}]}})");
  CHECK(put.outcome == Outcome::kForwarded);
  CHECK(put.tenant_overridden);
  REQUIRE(h.out.size() == 1);
  v1::Schedule schedule;
  REQUIRE(schedule.ParseFromString(h.out[0].value));
  CHECK_FALSE(schedule.has_job_template());
  CHECK(schedule.tenant() == "acme");
  CHECK(schedule.flow_template().tenant().empty());
  CHECK(schedule.flow_template().nodes(0).job().tenant().empty());
  CHECK(schedule.flow_template().submitted_by() == "kafka:kcron.in.acme.schedules");
  const auto refused =
      h.apply("kcron.in.acme.schedules", "etl2",
              R"({"expression":"0 3 * * *","flow_template":{"nodes":[{"name":"a","job":{"noop":{},"attempt":3}}]}})");
  CHECK(refused.outcome == Outcome::kRejected);
  CHECK(refused.reason == "flow_template.nodes[0].job.attempt: kcron sets it; leave the field out");
  const auto run =
      h.apply("kcron.in.acme", "etl@x",
              R"({"flow":{"id":"etl@x","schedule_run":{"schedule_id":"etl"},"nodes":[{"name":"a","job":{"noop":{}}}]}})");
  CHECK(run.outcome == Outcome::kRejected);
  CHECK(run.reason.starts_with("schedule_run: set by the cron-producer"));
}

TEST_CASE("a flow node naming a template is refused, a flow_template node naming one is passed on", "[relay]") {
  Harness h;
  // A flow goes to kcron.jobs, which holds only concrete flows: the relay has no catalog to render it.
  const auto flow = h.apply("kcron.in.acme", "etl",
                            R"({"flow":{"id":"etl","nodes":[{"name":"a","job":{"noop":{}}},)"
                            R"({"name":"b","template_ref":{"ref":"report@3","params":{"day":"mon"}}}]}})");
  CHECK(flow.outcome == Outcome::kRejected);
  CHECK(flow.reason.starts_with("node 'b': template_ref: kcron-relay does not render templates;"));
  CHECK(h.on("kcron.jobs").empty());
  // A schedule goes to the cron-producer, which renders it at each run inside the topic's tenant.
  h.out.clear();
  const auto scheduled =
      h.apply("kcron.in.acme.schedules", "etl",
              R"({"expression":"0 3 * * *","flow_template":{"nodes":[{"name":"a","job":{"noop":{}}},)"
              R"({"name":"b","template_ref":{"ref":"report@3","params":{"day":"mon"}},"depends_on":["a"]}]}})");
  CHECK(scheduled.outcome == Outcome::kForwarded);
  REQUIRE(h.on("kcron.schedules").size() == 1);
  v1::Schedule schedule;
  REQUIRE(schedule.ParseFromString(h.on("kcron.schedules")[0].value));
  CHECK(schedule.tenant() == "acme");
  CHECK_FALSE(schedule.flow_template().nodes(1).has_job());
  CHECK(schedule.flow_template().nodes(1).template_ref().ref() == "report@3");
  const auto both = h.apply("kcron.in.acme.schedules", "etl2",
                            R"({"expression":"0 3 * * *","flow_template":{"nodes":[)"
                            R"({"name":"a","job":{"noop":{}},"template_ref":{"ref":"report@3"}}]}})");
  CHECK(both.outcome == Outcome::kRejected);
  CHECK(both.reason == "flow_template.nodes[0]: set job or template_ref, not both");
}

TEST_CASE("a batch on in.acme is forwarded keyless with every job acme's, and a job with kcron's fields refuses it", "[relay]") {
  Harness h;
  const auto put = h.apply("kcron.in.acme", "",
                           R"({"batch":{"tenant":"b","jobs":[{"id":"j1","noop":{}},{"id":"j2","tenant":"b","noop":{}}]}})");
  CHECK(put.outcome == Outcome::kForwarded);
  CHECK(put.action == "batch");
  CHECK(put.tenant_overridden);
  REQUIRE(h.out.size() == 1);
  CHECK(h.out[0].topic == "kcron.jobs");
  CHECK(h.out[0].key.empty());
  CHECK(h.out[0].timestamp_ms == kNow - 500);
  v1::Command command;
  REQUIRE(command.ParseFromString(h.out[0].value));
  REQUIRE(command.batch().jobs_size() == 2);
  CHECK(command.batch().tenant() == "acme");
  for (const auto& job : command.batch().jobs()) {
    CHECK(job.tenant() == "acme");
    CHECK(job.submitted_by() == "kafka:kcron.in.acme");
  }
  const auto refused =
      h.apply("kcron.in.acme", "", R"({"batch":{"jobs":[{"id":"j1","noop":{}},{"id":"j2","attempt":2,"noop":{}}]}})");
  CHECK(refused.outcome == Outcome::kRejected);
  CHECK(refused.reason == "batch job 1: attempt: kcron sets it; leave the field out");
}

TEST_CASE(
    "a tenant's batch is refused whole when empty, too large once stamped, naming another tenant's id, or before the gate opens",
    "[relay]") {
  Harness h;
  CHECK(h.apply("kcron.in.acme", "", R"({"batch":{"jobs":[]}})").reason == "a batch holds no jobs");
  const auto named = h.apply("kcron.in.acme", "", R"({"batch":{"jobs":[{"id":"ok","noop":{}},{"noop":{}}]}})");
  CHECK(named.outcome == Outcome::kRejected);
  CHECK(named.reason.starts_with("batch job 1: "));
  // ~880 KB as written, over 900 KB once each of its 10,000 jobs carries tenant and submitter.
  v1::Command command;
  for (int at = 0; at < 10'000; ++at) {
    auto* job = command.mutable_batch()->add_jobs();
    job->set_id(fmt::format("job-{:05}", at));
    job->set_payload(std::string(70, 'p'));
    job->mutable_noop();
  }
  const auto value = command.SerializeAsString();
  REQUIRE(value.size() < 900'000);
  const auto big = h.apply("kcron.in.acme", "", value, false, "application/x-protobuf");
  CHECK(big.outcome == Outcome::kRejected);
  CHECK_THAT(big.reason, Catch::Contains("once each of its 10000 jobs carries its tenant and submitter"));
  h.relay.allow_batches(false);
  const auto held = h.apply("kcron.in.acme", "", R"({"batch":{"jobs":[{"id":"ok","noop":{}}]}})");
  CHECK(held.outcome == Outcome::kRejected);
  CHECK(held.reason.starts_with("batch records wait until every dispatcher and worker understands them"));
  h.relay.allow_batches(true);
  CHECK(h.apply("kcron.in.acme", "", R"({"batch":{"jobs":[{"id":"ok","noop":{}}]}})").outcome == Outcome::kForwarded);
}
