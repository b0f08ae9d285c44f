#include "core/dispatcher_core.h"

#include <catch2/catch.hpp>
#include <limits>

#include "kcron/codec.h"
#include "kcron/routing.h"
#include "store/memory_store.h"

using namespace kcron;
using namespace kcron::dispatcher;

namespace {

constexpr std::int64_t kStart = 1'790'000'000'000;  // 2026-09-21, a round instant

struct Harness {
  ManualClock clock{instant_from_ms(kStart)};
  Settings settings = [] {
    Settings value;
    value.jobs_partitions = 12;
    value.cancel_marker_ttl = Millis(60'000);
    value.dedupe_retention = Millis(3'600'000);
    return value;
  }();
  DispatcherCore core{settings, clock};
  MemoryDelayStore store{settings.bucket_width};
  std::vector<OutRecord> out;
  std::int64_t offset = 0;

  std::int32_t partition_of(const std::string& job_id) const {
    return partition_for_key(routing_key_for_job(job_id), settings.jobs_partitions).value();
  }
  PartitionState& state(std::int32_t partition) { return **store.open(partition); }

  // Applies a JSON command as if consumed from the job's own partition (or `partition`).
  void apply(const std::string& json, const std::string& key, std::optional<std::int32_t> partition = std::nullopt,
             std::optional<std::int64_t> timestamp = std::nullopt) {
    const std::int32_t target = partition.value_or(key.empty() ? 0 : partition_for_key(key, settings.jobs_partitions).value());
    InputRecord record{target, offset++, key, json, "", "", timestamp.value_or(to_epoch_ms(clock.now()))};
    core.apply(state(target), record, out);
  }
  void submit(const std::string& json, const std::string& job_id) { apply(json, std::string(routing_key_for_job(job_id))); }

  std::size_t fire(const std::string& job_id, std::size_t limit = 1000) {
    const auto partition = partition_of(job_id);
    return core.fire_due(state(partition), partition, limit, out);
  }

  std::vector<OutRecord> take(std::string_view topic_part) {
    std::vector<OutRecord> matched;
    std::vector<OutRecord> rest;
    for (auto& record : out) (record.topic.find(topic_part) != std::string::npos ? matched : rest).push_back(std::move(record));
    out = std::move(rest);
    return matched;
  }
  std::vector<std::string> exec_ids() {
    std::vector<std::string> ids;
    for (const auto& record : take(".exec.")) ids.push_back(record.key);
    return ids;
  }
};

v1::DeadLetter dead_letter(const OutRecord& record) {
  v1::DeadLetter letter;
  REQUIRE(letter.ParseFromString(record.value));
  return letter;
}

}  // namespace

TEST_CASE("a job due now fires at once to its queue's band and never enters the buckets") {
  Harness harness;
  harness.submit(R"({"id":"now-1","priority":8,"noop":{}})", "now-1");
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 1);
  CHECK(exec[0].topic == "kcron.exec.default.high");
  CHECK(exec[0].key == "now-1");
  v1::Execution execution;
  REQUIRE(execution.ParseFromString(exec[0].value));
  CHECK(execution.job().id() == "now-1");
  CHECK(execution.due_ms() == kStart);
  const auto changelog = harness.take("dispatcher-changelog");
  REQUIRE(changelog.size() == 1);
  CHECK(changelog[0].partition == harness.partition_of("now-1"));
  const auto status = harness.take("kcron.status");
  REQUIRE(status.size() == 1);
  v1::StatusRecord record;
  REQUIRE(record.ParseFromString(status[0].value));
  CHECK(record.state() == v1::QUEUED);
  CHECK(harness.fire("now-1") == 0);  // nothing pending (retention slot is an hour away)
}

TEST_CASE("a delayed job does not fire before its instant and fires at it") {
  Harness harness;
  harness.submit(R"({"id":"later","delay":"3s","sleep":{"duration":"1s"}})", "later");
  CHECK(harness.exec_ids().empty());
  harness.clock.advance(Millis(2'999));
  harness.fire("later");
  CHECK(harness.exec_ids().empty());
  harness.clock.advance(Millis(1));
  harness.fire("later");
  CHECK(harness.exec_ids() == std::vector<std::string>{"later"});
  harness.clock.advance(Millis(10'000));
  harness.fire("later");
  CHECK(harness.exec_ids().empty());  // fired exactly once
}

TEST_CASE("delay resolves from the record timestamp on first acceptance, not from processing time") {
  Harness harness;
  harness.apply(R"({"id":"d","delay":"5s","noop":{}})", "d", std::nullopt, kStart - 4'000);
  harness.clock.advance(Millis(999));
  harness.fire("d");
  CHECK(harness.exec_ids().empty());
  harness.clock.advance(Millis(1));
  harness.fire("d");
  CHECK(harness.exec_ids() == std::vector<std::string>{"d"});
}

TEST_CASE("jobs due in one bucket fire higher priority first") {
  Harness harness;
  // All three share a routing key so they land on one partition.
  harness.submit(R"({"id":"grp@1","run_at_ms":"1790000000500","priority":1,"noop":{}})", "grp@1");
  harness.submit(R"({"id":"grp@2","run_at_ms":"1790000000200","priority":9,"noop":{}})", "grp@2");
  harness.submit(R"({"id":"grp@3","run_at_ms":"1790000000900","priority":5,"noop":{}})", "grp@3");
  harness.clock.advance(Millis(950));
  harness.fire("grp@1");
  CHECK(harness.exec_ids() == std::vector<std::string>{"grp@2", "grp@3", "grp@1"});
}

TEST_CASE("a re-submit of a known id is an idempotent no-op, before and after firing") {
  Harness harness;
  harness.submit(R"({"id":"dup","delay":"1s","noop":{}})", "dup");
  harness.submit(R"({"id":"dup","delay":"1s","noop":{}})", "dup");
  harness.clock.advance(Millis(1'000));
  harness.fire("dup");
  harness.submit(R"({"id":"dup","noop":{}})", "dup");
  CHECK(harness.exec_ids() == std::vector<std::string>{"dup"});
  CHECK(harness.core.counts().duplicates == 2);
}

TEST_CASE("cancel before the due instant stops the job") {
  Harness harness;
  harness.submit(R"({"id":"c1","delay":"10s","noop":{}})", "c1");
  harness.apply(R"({"cancel":{"job_id":"c1"}})", "c1");
  harness.clock.advance(Millis(20'000));
  harness.fire("c1");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.core.counts().cancelled == 1);
}

TEST_CASE("a cancel that arrives before its submit leaves a marker that cancels the late submit") {
  Harness harness;
  harness.apply(R"({"cancel":{"job_id":"early"}})", "early");
  harness.submit(R"({"id":"early","noop":{}})", "early");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.core.counts().cancelled == 1);

  SECTION("and the marker expires after its TTL") {
    harness.apply(R"({"cancel":{"job_id":"other"}})", "other");
    harness.clock.advance(Millis(60'001));
    harness.fire("other");
    harness.submit(R"({"id":"other","noop":{}})", "other");
    CHECK(harness.exec_ids() == std::vector<std::string>{"other"});
  }
}

TEST_CASE("a cancel for a job already fired goes to the control topic for its worker") {
  Harness harness;
  harness.submit(R"({"id":"running","noop":{}})", "running");
  (void)harness.exec_ids();
  harness.apply(R"({"cancel":{"job_id":"running"}})", "running");
  const auto control = harness.take("kcron.control");
  REQUIRE(control.size() == 1);
  CHECK(control[0].key == "running");
}

TEST_CASE("a retry sent by an attempt that was cancelled while it ran is CANCELLED, not re-armed") {
  Harness harness;
  harness.submit(R"({"id":"long","noop":{}})", "long");
  (void)harness.exec_ids();
  harness.apply(R"({"cancel":{"job_id":"long"}})", "long");
  REQUIRE(harness.take("kcron.control").size() == 1);
  // The changelog remembers the cancel, so a restored owner drops the retry too.
  const auto entries = harness.take("changelog");
  REQUIRE(entries.size() == 2);  // FIRED at the fire, then FIRED + cancel_requested
  v1::DispatcherEntry entry;
  REQUIRE(entry.ParseFromString(entries.back().value));
  CHECK(entry.state() == v1::DispatcherEntry::FIRED);
  CHECK(entry.cancel_requested());
  harness.out.clear();
  // The attempt failed before the cancel reached its worker: its retry arrives after the cancel.
  harness.apply(R"({"retry":{"job":{"id":"long","attempt":1,"noop":{}},"due_ms":"1790000000000"}})", "long");
  harness.fire("long");
  CHECK(harness.exec_ids().empty());
  const auto statuses = harness.take("kcron.status");
  REQUIRE(statuses.size() == 1);
  v1::StatusRecord record;
  REQUIRE(record.ParseFromString(statuses[0].value));
  CHECK(record.state() == v1::CANCELLED);
  CHECK_THAT(record.reason(), Catch::Contains("retry is dropped"));
  CHECK(harness.core.counts().cancelled == 1);
}

TEST_CASE("a record on a partition other than murmur2(key) is forwarded untouched") {
  Harness harness;
  const std::string key = "fwd";
  const auto owner = harness.partition_of(key);
  const auto wrong = (owner + 1) % 12;
  harness.apply(R"({"id":"fwd","noop":{}})", key, wrong, kStart - 500);
  const auto forwarded = harness.take("kcron.jobs");
  REQUIRE(forwarded.size() == 1);
  CHECK(forwarded[0].partition == owner);
  CHECK(forwarded[0].value == R"({"id":"fwd","noop":{}})");
  CHECK(forwarded[0].timestamp_ms == kStart - 500);
  CHECK(harness.exec_ids().empty());
  CHECK_FALSE(harness.state(wrong).get("fwd").has_value());
}

TEST_CASE("an unkeyed record routes by its job id") {
  Harness harness;
  harness.apply(R"({"id":"sched@1","noop":{}})", "", harness.partition_of("sched@1"));
  CHECK(harness.exec_ids() == std::vector<std::string>{"sched@1"});
}

TEST_CASE("bad input is REJECTED to dead-letters with its reason and the next record proceeds") {
  Harness harness;
  const std::string garbage("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
  harness.apply(garbage, "g");
  harness.apply(R"({"id":"x", )", "x");
  harness.apply(R"({"id":"q","queue":"nope","noop":{}})", "q");
  harness.apply(R"({"id":"p","priority":12,"noop":{}})", "p");
  harness.apply(R"({"id":"t"})", "t");
  harness.apply(R"({"id":"far","run_at":"2099-01-01T00:00:00Z","noop":{}})", "far");
  harness.apply(R"({"id":"mismatch","noop":{}})", "other-key", harness.partition_of("other-key"));
  harness.apply(std::string(1'000'000, 'x'), "big");
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 8);
  CHECK(dead_letter(letters[0]).original() == garbage);
  CHECK_THAT(dead_letter(letters[1]).reason(), Catch::Contains("invalid JSON"));
  CHECK_THAT(dead_letter(letters[2]).reason(), Catch::Contains("unknown queue 'nope'"));
  CHECK_THAT(dead_letter(letters[3]).reason(), Catch::Contains("priority 12 is outside 0-9"));
  CHECK_THAT(dead_letter(letters[4]).reason(), Catch::Contains("no task"));
  CHECK_THAT(dead_letter(letters[5]).reason(), Catch::Contains("horizon"));
  CHECK_THAT(dead_letter(letters[6]).reason(), Catch::Contains("must be 'mismatch'"));
  CHECK_THAT(dead_letter(letters[7]).reason(), Catch::Contains("exceeds the limit"));
  CHECK(dead_letter(letters[7]).truncated());
  for (const auto& letter : letters) CHECK(dead_letter(letter).state() == v1::REJECTED);

  harness.submit(R"({"id":"fine","noop":{}})", "fine");
  CHECK(harness.exec_ids() == std::vector<std::string>{"fine"});
}

TEST_CASE("absurd due instants in binary (int64 max seconds) are REJECTED beyond the horizon, never wrapped to now") {
  Harness harness;
  v1::Command command;
  command.mutable_submit()->set_id("absurd");
  command.mutable_submit()->mutable_noop();
  command.mutable_submit()->mutable_run_at()->set_seconds(std::numeric_limits<std::int64_t>::max());
  harness.apply(encode(command), "absurd");
  command.mutable_submit()->mutable_delay()->set_seconds(std::numeric_limits<std::int64_t>::max() / 100);
  harness.apply(encode(command), "absurd");
  command.mutable_submit()->clear_when();
  harness.apply(encode(command), "absurd", std::nullopt, std::numeric_limits<std::int64_t>::max());
  CHECK(harness.exec_ids().empty());
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 3);
  for (const auto& letter : letters) CHECK_THAT(dead_letter(letter).reason(), Catch::Contains("beyond the horizon"));
}

TEST_CASE("unknown enum numbers in a binary job's schedule_run are REJECTED, not read as the default") {
  Harness harness;
  v1::Command command;
  command.mutable_submit()->set_id("enum");
  command.mutable_submit()->mutable_noop();
  command.mutable_submit()->mutable_schedule_run()->set_schedule_id("s");
  command.mutable_submit()->mutable_schedule_run()->set_misfire(static_cast<v1::MisfirePolicy>(99));
  harness.apply(encode(command), "enum");
  command.mutable_submit()->mutable_schedule_run()->set_misfire(v1::SKIP);
  command.mutable_submit()->mutable_schedule_run()->set_overlap(static_cast<v1::OverlapPolicy>(-7));
  harness.apply(encode(command), "enum");
  CHECK(harness.exec_ids().empty());
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 2);
  CHECK_THAT(dead_letter(letters[0]).reason(), Catch::Contains("misfire policy 99"));
  CHECK_THAT(dead_letter(letters[1]).reason(), Catch::Contains("overlap policy -7"));
}

TEST_CASE("a record whose key and value together exceed the limit is REJECTED, not forwarded past a producer's limit") {
  Harness harness;
  const std::string key(150'000, 'k');
  const auto wrong = (harness.partition_of(key) + 1) % 12;
  harness.apply(std::string(870'000, 'v'), key, wrong);
  CHECK(harness.take("kcron.jobs").empty());
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK_THAT(dead_letter(letters[0]).reason(), Catch::Contains("record of 1020000 bytes exceeds the limit"));
  CHECK(letters[0].key.size() == 256);  // a dead letter is keyed by at most a job id's length
}

TEST_CASE("replaying the changelog into an empty store rebuilds the same pending jobs") {
  Harness harness;
  harness.submit(R"({"id":"r@1","delay":"5s","noop":{}})", "r@1");
  harness.submit(R"({"id":"r@2","delay":"7s","noop":{}})", "r@2");
  harness.submit(R"({"id":"r@3","delay":"9s","noop":{}})", "r@3");
  harness.apply(R"({"cancel":{"job_id":"r@3"}})", "r");
  harness.clock.advance(Millis(5'000));
  harness.fire("r@1");
  (void)harness.exec_ids();

  MemoryPartitionState restored(harness.settings.bucket_width);
  for (const auto& record : harness.take("dispatcher-changelog")) {
    DispatcherCore::restore(restored, record.key, record.value, record.tombstone);
  }
  harness.clock.advance(Millis(10'000));
  std::vector<OutRecord> out;
  harness.core.fire_due(restored, harness.partition_of("r"), 100, out);
  std::vector<std::string> fired;
  for (const auto& record : out) {
    if (record.topic.find(".exec.") != std::string::npos) fired.push_back(record.key);
  }
  CHECK(fired == std::vector<std::string>{"r@2"});  // r@1 already fired, r@3 cancelled
}

TEST_CASE("an update before firing moves the job, after firing it is rejected") {
  Harness harness;
  harness.submit(R"({"id":"u","delay":"10s","noop":{}})", "u");
  harness.apply(R"({"update":{"job":{"id":"u","delay":"2s","noop":{}}}})", "u");
  harness.clock.advance(Millis(2'000));
  harness.fire("u");
  CHECK(harness.exec_ids() == std::vector<std::string>{"u"});
  harness.apply(R"({"update":{"job":{"id":"u","delay":"2s","noop":{}}}})", "u");
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK_THAT(dead_letter(letters[0]).reason(), Catch::Contains("it is FIRED"));
}

TEST_CASE("a retry from a worker waits in the buckets as the next attempt, a repeated retry is ignored") {
  Harness harness;
  harness.submit(R"({"id":"flaky","noop":{}})", "flaky");
  (void)harness.exec_ids();
  const std::string retry = R"({"retry":{"job":{"id":"flaky","attempt":1,"noop":{}},"due_ms":"1790000002000"}})";
  harness.apply(retry, "flaky");
  harness.apply(retry, "flaky");
  harness.clock.advance(Millis(1'999));
  harness.fire("flaky");
  CHECK(harness.exec_ids().empty());
  harness.clock.advance(Millis(1));
  harness.fire("flaky");
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 1);
  v1::Execution execution;
  REQUIRE(execution.ParseFromString(exec[0].value));
  CHECK(execution.job().attempt() == 1);
}

TEST_CASE("a fired id is remembered for the dedupe retention, then forgotten with a tombstone") {
  Harness harness;
  harness.submit(R"({"id":"old","noop":{}})", "old");
  (void)harness.exec_ids();
  (void)harness.take("dispatcher-changelog");
  harness.clock.advance(Millis(3'600'000));
  CHECK(harness.fire("old") == 1);
  const auto changelog = harness.take("dispatcher-changelog");
  REQUIRE(changelog.size() == 1);
  CHECK(changelog[0].tombstone);
  CHECK_FALSE(harness.state(harness.partition_of("old")).get("old").has_value());
}

namespace {

// A schedule run as the cron-producer emits it: id "<schedule>@<n>", due at `due_ms`.
std::string run_json(const std::string& schedule, int number, std::int64_t due_ms, const std::string& misfire,
                     const std::string& overlap, const std::string& extra = "") {
  return fmt::format(
      R"({{"id":"{}@{}","run_at_ms":"{}","noop":{{}},"schedule_run":{{"schedule_id":"{}","misfire":"{}","overlap":"{}"{}}}}})",
      schedule, number, due_ms, schedule, misfire, overlap, extra);
}

std::vector<std::string> skipped_reasons(Harness& harness) {
  std::vector<std::string> reasons;
  for (const auto& record : harness.take("kcron.status")) {
    v1::StatusRecord status;
    REQUIRE(status.ParseFromString(record.value));
    if (status.state() == v1::SKIPPED) reasons.push_back(status.job_id() + ": " + status.reason());
  }
  return reasons;
}

}  // namespace

TEST_CASE("runs of a fire_once schedule that come due late together (dispatcher outage) collapse into the latest") {
  Harness harness;
  for (int run = 1; run <= 3; ++run)
    harness.submit(run_json("nightly", run, kStart + std::int64_t{run} * 10'000, "FIRE_ONCE", "ALLOW"), "nightly@1");
  harness.clock.advance(Millis(100'000));  // the dispatcher was down while all three came due
  harness.fire("nightly@1");
  CHECK(harness.exec_ids() == std::vector<std::string>{"nightly@3"});
  const auto reasons = skipped_reasons(harness);
  REQUIRE(reasons.size() == 2);
  CHECK_THAT(reasons[0], Catch::StartsWith("nightly@1") && Catch::Contains("policy fire_once"));
}

TEST_CASE("late runs of a skip schedule are all skipped, runs on time fire") {
  Harness harness;
  harness.submit(run_json("s", 1, kStart - 30'000, "SKIP", "ALLOW"), "s@1");
  harness.submit(run_json("s", 2, kStart + 1'000, "SKIP", "ALLOW"), "s@2");
  CHECK(harness.exec_ids().empty());
  CHECK_THAT(skipped_reasons(harness).at(0), Catch::Contains("policy skip"));
  harness.clock.advance(Millis(1'000));
  harness.fire("s@2");
  CHECK(harness.exec_ids() == std::vector<std::string>{"s@2"});
}

TEST_CASE("fire_all fires every late run within the catch-up window and skips older ones") {
  Harness harness;
  const std::string window = R"(,"catchup_window":"45s")";
  harness.submit(run_json("c", 1, kStart - 60'000, "FIRE_ALL", "ALLOW", window), "c@1");
  harness.submit(run_json("c", 2, kStart - 40'000, "FIRE_ALL", "ALLOW", window), "c@2");
  harness.submit(run_json("c", 3, kStart - 20'000, "FIRE_ALL", "ALLOW", window), "c@3");
  CHECK(harness.exec_ids() == std::vector<std::string>{"c@2", "c@3"});
  CHECK_THAT(skipped_reasons(harness).at(0), Catch::StartsWith("c@1") && Catch::Contains("catch-up window"));
}

TEST_CASE("a fire_once run late after an outage fires once even when it is the only one") {
  Harness harness;
  harness.submit(run_json("o", 1, kStart + 1'000, "FIRE_ONCE", "ALLOW"), "o@1");
  harness.clock.advance(Millis(120'000));  // the dispatcher was down
  harness.fire("o@1");
  CHECK(harness.exec_ids() == std::vector<std::string>{"o@1"});
}

TEST_CASE("overlap forbid skips a run while the previous one runs, completion frees the schedule") {
  Harness harness;
  harness.submit(run_json("f", 1, kStart, "FIRE_ONCE", "FORBID"), "f@1");
  CHECK(harness.exec_ids() == std::vector<std::string>{"f@1"});
  harness.submit(run_json("f", 2, kStart, "FIRE_ONCE", "FORBID"), "f@2");
  CHECK(harness.exec_ids().empty());
  CHECK_THAT(skipped_reasons(harness).at(0), Catch::Contains("previous run 'f@1' is still running (overlap forbid)"));
  harness.apply(R"({"completion":{"job_id":"f@1","state":"SUCCEEDED"}})", "f");
  harness.submit(run_json("f", 3, kStart, "FIRE_ONCE", "FORBID"), "f@3");
  CHECK(harness.exec_ids() == std::vector<std::string>{"f@3"});
}

TEST_CASE("overlap replace fires the new run and cancels the running one through kcron.control") {
  Harness harness;
  harness.submit(run_json("r", 1, kStart, "FIRE_ONCE", "REPLACE"), "r@1");
  (void)harness.exec_ids();
  harness.submit(run_json("r", 2, kStart, "FIRE_ONCE", "REPLACE"), "r@2");
  CHECK(harness.exec_ids() == std::vector<std::string>{"r@2"});
  const auto control = harness.take("kcron.control");
  REQUIRE(control.size() == 1);
  CHECK(control[0].key == "r@1");
}

TEST_CASE("a forbid schedule's run cancelled while it ran, whose retry is dropped, frees the schedule for the next run") {
  Harness harness;
  harness.submit(run_json("c", 1, kStart, "FIRE_ONCE", "FORBID"), "c@1");
  CHECK(harness.exec_ids() == std::vector<std::string>{"c@1"});
  harness.apply(R"({"cancel":{"job_id":"c@1"}})", "c");
  // The attempt failed before the cancel reached it: a retry, no completion.
  harness.apply(R"({"retry":{"job":{"id":"c@1","attempt":1,"noop":{},"schedule_run":{"schedule_id":"c","overlap":"FORBID"}},)"
                R"("due_ms":"1790000000000"}})",
                "c");
  CHECK(harness.exec_ids().empty());
  harness.submit(run_json("c", 2, kStart, "FIRE_ONCE", "FORBID"), "c@2");
  CHECK(harness.exec_ids() == std::vector<std::string>{"c@2"});
}

TEST_CASE("a run replaced while its attempt failed does not come back through its retry") {
  Harness harness;
  harness.submit(run_json("rr", 1, kStart, "FIRE_ONCE", "REPLACE"), "rr@1");
  (void)harness.exec_ids();
  harness.submit(run_json("rr", 2, kStart, "FIRE_ONCE", "REPLACE"), "rr@2");
  CHECK(harness.exec_ids() == std::vector<std::string>{"rr@2"});
  harness.out.clear();
  harness.apply(R"({"retry":{"job":{"id":"rr@1","attempt":1,"noop":{},"schedule_run":{"schedule_id":"rr","overlap":"REPLACE"}},)"
                R"("due_ms":"1790000000000"}})",
                "rr");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.take("kcron.control").empty());  // rr@2 is not cancelled by the stale retry
}

TEST_CASE("overlap allow fires runs side by side") {
  Harness harness;
  harness.submit(run_json("a", 1, kStart, "FIRE_ONCE", "ALLOW"), "a@1");
  harness.submit(run_json("a", 2, kStart, "FIRE_ONCE", "ALLOW"), "a@2");
  CHECK(harness.exec_ids() == std::vector<std::string>{"a@1", "a@2"});
}

TEST_CASE("a Replay re-arms a DEAD job as a new attempt, a plain re-submit stays a no-op, a live job cannot be replayed") {
  Harness harness;
  harness.submit(R"({"id":"doomed","noop":{}})", "doomed");
  (void)harness.exec_ids();
  harness.apply(R"({"replay":{"job_id":"doomed","job":{"id":"doomed","noop":{}}}})", "doomed");
  const auto refused = harness.take("dead-letters");
  REQUIRE(refused.size() == 1);
  CHECK_THAT(dead_letter(refused[0]).reason(), Catch::Contains("only a DEAD job can be replayed"));

  harness.apply(R"({"completion":{"job_id":"doomed","attempt":0,"state":"DEAD"}})", "doomed");
  harness.submit(R"({"id":"doomed","noop":{}})", "doomed");
  CHECK(harness.exec_ids().empty());
  harness.apply(R"({"replay":{"job_id":"doomed","job":{"id":"doomed","noop":{}}}})", "doomed");
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 1);
  v1::Execution execution;
  REQUIRE(execution.ParseFromString(exec[0].value));
  CHECK(execution.job().attempt() == 1);
}

TEST_CASE("a due job whose execution record the broker refuses is DEAD instead, once, and stays a duplicate after") {
  Harness harness;
  harness.submit(R"({"id":"big","delay":"1s","noop":{}})", "big");
  harness.out.clear();
  const auto partition = harness.partition_of("big");
  CHECK_FALSE(harness.core.fail_due(harness.state(partition), partition, "big", "Broker: Message size too large", harness.out));
  harness.clock.advance(Millis(1'000));
  CHECK_FALSE(harness.core.fail_due(harness.state(partition), partition, "other", "Broker: Message size too large", harness.out));
  REQUIRE(harness.core.fail_due(harness.state(partition), partition, "big", "Broker: Message size too large", harness.out));
  CHECK(harness.take(".exec.").empty());
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  const auto letter = dead_letter(letters[0]);
  CHECK(letter.state() == v1::DEAD);
  CHECK_THAT(letter.reason(), Catch::Contains("could not be published") && Catch::Contains("Message size too large"));
  CHECK(letter.job().id() == "big");
  const auto statuses = harness.take("kcron.status");
  REQUIRE(statuses.size() == 1);
  v1::StatusRecord status;
  REQUIRE(status.ParseFromString(statuses[0].value));
  CHECK(status.state() == v1::DEAD);
  CHECK(harness.core.counts().unpublishable == 1);
  CHECK(harness.core.counts().fired == 0);
  // Nothing left to fire, and a re-submit of the id is a duplicate, not a second run.
  harness.out.clear();
  CHECK(harness.fire("big") == 0);
  harness.submit(R"({"id":"big","noop":{}})", "big");
  CHECK(harness.take(".exec.").empty());
  CHECK(harness.core.counts().duplicates == 1);
}

TEST_CASE("a consumed record whose outputs the broker refuses is REJECTED with the broker's reason and changes nothing") {
  Harness harness;
  const std::string key(routing_key_for_job("refused"));
  const auto partition = harness.partition_of("refused");
  const std::string value = R"({"id":"refused","noop":{}})";
  InputRecord record{partition, 42, key, value, "", "", kStart};
  harness.core.reject_unpublishable(record, "Broker: Message size too large", harness.out);
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK(harness.out.empty());  // no exec record, no changelog, no status
  const auto letter = dead_letter(letters[0]);
  CHECK(letter.state() == v1::REJECTED);
  CHECK(letter.source_partition() == partition);
  CHECK(letter.source_offset() == 42);
  CHECK_THAT(letter.reason(), Catch::Contains("outputs could not be published: Broker: Message size too large"));
  CHECK(harness.core.counts().rejected == 1);
  CHECK(harness.core.counts().unpublishable == 1);
}
