#include "core/dispatcher_core.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <limits>
#include <set>

#include "kcron/codec.h"
#include "kcron/routing.h"
#include "store/memory_store.h"
#include "tests/core_harness.h"

using namespace kcron;
using namespace kcron::dispatcher;
using namespace kcron::dispatcher::testing;

namespace {

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
  CHECK(changelog[0].partition == harness.partition_of("now-1").value());
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
  const Partition wrong((owner.value() + 1) % 12);
  harness.apply(R"({"id":"fwd","noop":{}})", key, wrong, kStart - 500);
  const auto forwarded = harness.take("kcron.jobs");
  REQUIRE(forwarded.size() == 1);
  CHECK(forwarded[0].partition == owner.value());
  CHECK(forwarded[0].value == R"({"id":"fwd","noop":{}})");
  CHECK(forwarded[0].timestamp_ms == kStart - 500);
  CHECK(harness.exec_ids().empty());
  CHECK_FALSE(harness.state(wrong).get("fwd")->has_value());
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
  const Partition wrong((harness.partition_of(key).value() + 1) % 12);
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
    REQUIRE(DispatcherCore::restore(restored, record.key, record.value, record.tombstone).ok());
  }
  harness.clock.advance(Millis(10'000));
  std::vector<OutRecord> out;
  REQUIRE(harness.core.fire_due(restored, harness.partition_of("r"), 100, out).ok());
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
  CHECK_FALSE(harness.stored("old"));
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
  CHECK_FALSE(harness.fail_due("big", "Broker: Message size too large"));
  harness.clock.advance(Millis(1'000));
  CHECK_FALSE(harness.fail_due("other", "Broker: Message size too large"));
  REQUIRE(harness.fail_due("big", "Broker: Message size too large"));
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
  InputRecord record{partition, 42, key, value, "", "", instant_from_ms(kStart), {}};
  harness.core.reject_unpublishable(record, "Broker: Message size too large", harness.out);
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK(harness.take("kcron.audit").size() == 1);  // the refusal's decision
  CHECK(harness.out.empty());                      // no exec record, no changelog, no status
  const auto letter = dead_letter(letters[0]);
  CHECK(letter.state() == v1::REJECTED);
  CHECK(letter.source_partition() == partition.value());
  CHECK(letter.source_offset() == 42);
  CHECK_THAT(letter.reason(), Catch::Contains("outputs could not be published: Broker: Message size too large"));
  CHECK(harness.core.counts().rejected == 1);
  CHECK(harness.core.counts().unpublishable == 1);
}

namespace {

// A partition state whose reads of chosen keys, or whose bucket scans, fail as a failing disk's
// would; otherwise the in-memory store.
class FailingState final : public PartitionState {
 public:
  explicit FailingState(Millis bucket_width) : inner_(bucket_width) {}

  std::set<std::string, std::less<>> unreadable;
  bool scan_fails = false;

  Result<std::optional<std::string>> get(std::string_view key) override {
    if (unreadable.contains(key)) return failure(key);
    return inner_.get(key);
  }
  Status put(std::string_view key, std::string_view value, std::optional<Slot> slot) override {
    if (unreadable.contains(key)) return failure(key);  // the old slot cannot be read
    return inner_.put(key, value, slot);
  }
  Status erase(std::string_view key) override {
    if (unreadable.contains(key)) return failure(key);
    return inner_.erase(key);
  }
  Result<std::vector<std::string>> keys_after(std::string_view prefix, std::string_view after, std::size_t limit) override {
    if (scan_fails) return Error("injected: key scan failed");
    return inner_.keys_after(prefix, after, limit);
  }
  Result<std::vector<DueEntry>> due(Instant now, std::size_t limit) override {
    if (scan_fails) return Error("injected: bucket scan failed");
    return inner_.due(now, limit);
  }
  Result<std::vector<BucketCount>> bucket_counts(Instant from, Instant until) override {
    if (scan_fails) return Error("injected: bucket count failed");
    return inner_.bucket_counts(from, until);
  }
  Instant next_due_hint() const override { return inner_.next_due_hint(); }
  std::int64_t slotted_count() const override { return inner_.slotted_count(); }
  Status commit(const Checkpoint& checkpoint) override { return inner_.commit(checkpoint); }
  void discard() override { inner_.discard(); }
  std::optional<Checkpoint> checkpoint() const override { return inner_.checkpoint(); }
  Status wipe() override { return inner_.wipe(); }

 private:
  static Error failure(std::string_view key) { return make_error("injected: read of '{}' failed", key); }
  MemoryPartitionState inner_;
};

// A consumed record of `json` for `job_id`, on the job's own partition, kept alive with its bytes.
struct Consumed {
  Consumed(const Harness& harness, std::string json_in, const std::string& job_id)
      : json(std::move(json_in)), key(routing_key_for_job(job_id)), record{harness.partition_of(job_id), 7, key, json, "", "",
                                                                           harness.clock.now(),          {}} {}
  std::string json;
  std::string key;
  InputRecord record;
};

// `job_id` accepted into `state` with a delay of 1 s, and the clock moved to its due instant.
void submit_due_job(Harness& harness, FailingState& state, const std::string& job_id) {
  const Consumed submit(harness, fmt::format(R"({{"id":"{}","delay":"1s","noop":{{}}}})", job_id), job_id);
  REQUIRE(harness.core.apply(state, submit.record, harness.out).ok());
  harness.out.clear();
  harness.clock.advance(Millis(1'000));
}

std::size_t count_on(const std::vector<OutRecord>& out, std::string_view topic_part) {
  return static_cast<std::size_t>(std::count_if(
      out.begin(), out.end(), [&](const OutRecord& record) { return record.topic.find(topic_part) != std::string::npos; }));
}

}  // namespace

TEST_CASE("a submit whose dedupe read fails decides nothing and returns the error, so a known job cannot fire twice") {
  Harness harness;
  FailingState state(harness.settings.bucket_width);
  const Consumed submit(harness, R"({"id":"once","noop":{}})", "once");
  REQUIRE(harness.core.apply(state, submit.record, harness.out).ok());
  REQUIRE(count_on(harness.out, ".exec.") == 1);
  harness.out.clear();

  state.unreadable.insert("once");
  const auto applied = harness.core.apply(state, submit.record, harness.out);
  REQUIRE_FALSE(applied.ok());
  CHECK_THAT(applied.error().message(), Catch::Contains("injected: read of 'once' failed") && Catch::Contains("@7"));
  CHECK(harness.out.empty());  // no exec record, no status, no changelog
  CHECK(harness.core.counts().accepted == 1);
  CHECK(harness.core.counts().duplicates == 0);
}

TEST_CASE("a stored entry that does not parse is an error naming it, not an absent entry") {
  Harness harness;
  const auto partition = harness.partition_of("garbled");
  REQUIRE(harness.state(partition)
              .put("garbled",
                   std::string("\x0a\x05"
                               "ab",
                               4),
                   std::nullopt)
              .ok());
  const Consumed submit(harness, R"({"id":"garbled","noop":{}})", "garbled");
  const auto applied = harness.core.apply(harness.state(partition), submit.record, harness.out);
  REQUIRE_FALSE(applied.ok());
  CHECK_THAT(applied.error().message(), Catch::Contains("\"garbled\"") && Catch::Contains("does not parse"));
  CHECK(harness.out.empty());
}

TEST_CASE("a cancel whose read fails leaves no marker and returns the error") {
  Harness harness;
  FailingState state(harness.settings.bucket_width);
  state.unreadable.insert("c");
  const Consumed cancel(harness, R"({"cancel":{"job_id":"c"}})", "c");
  REQUIRE_FALSE(harness.core.apply(state, cancel.record, harness.out).ok());
  CHECK(harness.out.empty());
  state.unreadable.clear();
  CHECK_FALSE(state.get("c")->has_value());
}

TEST_CASE("a due job whose entry cannot be read is not fired, and fire_due returns the error") {
  Harness harness;
  FailingState state(harness.settings.bucket_width);
  submit_due_job(harness, state, "later");
  state.unreadable.insert("later");
  const auto fired = harness.core.fire_due(state, harness.partition_of("later"), 100, harness.out);
  REQUIRE_FALSE(fired.ok());
  CHECK_THAT(fired.error().message(), Catch::Contains("injected: read of 'later' failed"));
  CHECK(count_on(harness.out, ".exec.") == 0);
  CHECK(harness.core.counts().fired == 0);

  state.unreadable.clear();
  state.scan_fails = true;
  const auto scanned = harness.core.fire_due(state, harness.partition_of("later"), 100, harness.out);
  REQUIRE_FALSE(scanned.ok());
  CHECK_THAT(scanned.error().message(), Catch::Contains("bucket scan failed"));
  CHECK(harness.out.empty());
}

TEST_CASE("giving up on a due job whose entry cannot be read returns the error and writes no dead letter") {
  Harness harness;
  FailingState state(harness.settings.bucket_width);
  submit_due_job(harness, state, "big");
  state.unreadable.insert("big");
  const auto failed = harness.core.fail_due(state, harness.partition_of("big"), JobId("big"), "too large", harness.out);
  REQUIRE_FALSE(failed.ok());
  CHECK(harness.out.empty());
}

TEST_CASE("a changelog value that does not parse fails the restore and deletes nothing") {
  Harness harness;
  MemoryPartitionState state(harness.settings.bucket_width);
  REQUIRE(DispatcherCore::restore(state, "kept", encode(v1::DispatcherEntry()), false).ok());
  const auto restored = DispatcherCore::restore(state, "kept",
                                                std::string("\x0a\x05"
                                                            "ab",
                                                            4),
                                                false);
  REQUIRE_FALSE(restored.ok());
  CHECK_THAT(restored.error().message(), Catch::Contains("\"kept\"") && Catch::Contains("does not parse"));
  CHECK(state.get("kept")->has_value());
  REQUIRE(DispatcherCore::restore(state, "kept", "", true).ok());  // a tombstone deletes
  CHECK_FALSE(state.get("kept")->has_value());
}

// Tenants: a job's identity is (tenant, id); every key is the scoped key of kcron/tenant.h.
namespace {

std::vector<v1::StatusRecord> statuses(Harness& harness, std::vector<std::string>* keys = nullptr) {
  std::vector<v1::StatusRecord> found;
  for (const auto& record : harness.take("kcron.status")) {
    v1::StatusRecord status;
    REQUIRE(status.ParseFromString(record.value));
    found.push_back(status);
    if (keys != nullptr) keys->push_back(record.key);
  }
  return found;
}

}  // namespace

TEST_CASE("tenants a and ab both run same-id once each, keyed apart on every topic") {
  Harness harness;
  harness.submit(R"({"id":"same-id","tenant":"a","delay":"1s","noop":{}})", "a~same-id");
  harness.submit(R"({"id":"same-id","tenant":"ab","delay":"1s","noop":{}})", "ab~same-id");
  CHECK(harness.core.counts().accepted == 2);
  CHECK(harness.core.counts().duplicates == 0);
  harness.clock.advance(Millis(1'000));
  harness.fire("a~same-id");
  harness.fire("ab~same-id");
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 2);
  std::set<std::string> keys;
  for (const auto& record : exec) {
    keys.insert(record.key);
    v1::Execution execution;
    REQUIRE(execution.ParseFromString(record.value));
    CHECK(execution.job().id() == "same-id");
    CHECK(record.key == execution.job().tenant() + "~same-id");
  }
  CHECK(keys == std::set<std::string>{"a~same-id", "ab~same-id"});
  std::vector<std::string> status_keys;
  const auto written = statuses(harness, &status_keys);
  CHECK(std::count(status_keys.begin(), status_keys.end(), "a~same-id") == 2);  // PENDING, QUEUED
  CHECK(std::count(status_keys.begin(), status_keys.end(), "ab~same-id") == 2);
  for (const auto& status : written) CHECK(status.job_id() == "same-id");
  for (const auto& record : harness.take("changelog")) {
    if (record.key.starts_with("\x01tenant/")) continue;  // the tenants' usage entries
    CHECK((record.key == "a~same-id" || record.key == "ab~same-id"));
  }
}

TEST_CASE("a tenant's cancel of same-id leaves the other tenant's job alone") {
  Harness harness;
  harness.submit(R"({"id":"same-id","tenant":"a","delay":"5s","noop":{}})", "a~same-id");
  harness.submit(R"({"id":"same-id","tenant":"ab","delay":"5s","noop":{}})", "ab~same-id");
  harness.apply(R"({"cancel":{"job_id":"same-id","tenant":"a"}})", "a~same-id");
  harness.clock.advance(Millis(5'000));
  harness.fire("a~same-id");
  harness.fire("ab~same-id");
  CHECK(harness.exec_ids() == std::vector<std::string>{"ab~same-id"});
  CHECK(harness.core.counts().cancelled == 1);
}

TEST_CASE("a tenant's cancel of an unseen id leaves a marker in that tenant only") {
  Harness harness;
  harness.apply(R"({"cancel":{"job_id":"unseen","tenant":"a"}})", "a~unseen");
  harness.submit(R"({"id":"unseen","tenant":"ab","noop":{}})", "ab~unseen");
  harness.submit(R"({"id":"unseen","noop":{}})", "unseen");
  CHECK(harness.exec_ids() == std::vector<std::string>{"ab~unseen", "unseen"});
  harness.submit(R"({"id":"unseen","tenant":"a","noop":{}})", "a~unseen");
  CHECK(harness.exec_ids().empty());
  CHECK(harness.core.counts().cancelled == 1);
}

TEST_CASE("an update or replay of an id its tenant does not have is REJECTED as no such job, revealing nothing else") {
  Harness harness;
  harness.submit(R"({"id":"x","tenant":"ab","delay":"5s","noop":{}})", "ab~x");
  harness.apply(R"({"update":{"job":{"id":"x","tenant":"a","delay":"1s","noop":{}}}})", "a~x");
  harness.apply(R"({"replay":{"job_id":"x","job":{"id":"x","tenant":"a","noop":{}}}})", "a~x");
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].key == "a~x");
  CHECK(dead_letter(letters[0]).reason() == "cannot update job 'x': no such pending job");
  CHECK(dead_letter(letters[0]).tenant() == "a");
  CHECK(dead_letter(letters[1]).reason() == "cannot replay job 'x': only a DEAD job can be replayed, with its job attached");
  harness.clock.advance(Millis(5'000));
  harness.fire("ab~x");
  CHECK(harness.exec_ids() == std::vector<std::string>{"ab~x"});  // ab's job as it was
}

TEST_CASE("a tenant's job routes by its scoped key: a record under another key is REJECTED with the key it needs") {
  Harness harness;
  harness.apply(R"({"id":"r1","tenant":"acme","noop":{}})", "r2");
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK(dead_letter(letters[0]).reason() ==
        "record key 'r2' does not match job id 'r1' of tenant 'acme': its key must be 'acme~r1'");
  CHECK(harness.exec_ids().empty());

  SECTION("an unkeyed one is forwarded keyed by the scoped routing key") {
    const Partition owner = partition_for_key("acme~nightly", harness.settings.jobs_partitions);
    const Partition other((owner.value() + 1) % harness.settings.jobs_partitions);
    harness.apply(R"({"id":"nightly@2026-01-01T00:00:00Z","tenant":"acme","noop":{}})", "", other);
    const auto forwarded = harness.take("kcron.jobs");
    REQUIRE(forwarded.size() == 1);
    CHECK(forwarded[0].key == "acme~nightly");
    CHECK(forwarded[0].partition == owner.value());
  }

  SECTION("one keyed by the bare routing key, as a release before tenants keyed it, is forwarded under its scoped key") {
    // An old cron-producer's run of tenant acme's schedule: keyed by the schedule id.
    harness.apply(R"({"id":"nightly@2026-01-01T00:00:00Z","tenant":"acme","noop":{}})", "nightly");
    CHECK(harness.take("dead-letters").empty());
    auto forwarded = harness.take("kcron.jobs");
    REQUIRE(forwarded.size() == 1);
    CHECK(forwarded[0].key == "acme~nightly");
    CHECK(forwarded[0].partition == partition_for_key("acme~nightly", harness.settings.jobs_partitions).value());
    // Where it lands, it is acme's job.
    harness.apply(forwarded[0].value, forwarded[0].key, Partition(forwarded[0].partition));
    harness.fire("acme~nightly");
    CHECK(harness.exec_ids() == std::vector<std::string>{"acme~nightly@2026-01-01T00:00:00Z"});
  }
}

TEST_CASE("an invalid tenant name, or a default-tenant id that reads as a tenant's key, is REJECTED with the reason") {
  Harness harness;
  harness.apply(R"({"id":"j","tenant":"Acme","noop":{}})", "Acme~j");
  harness.apply(R"({"id":"acme~j","noop":{}})", "acme~j");
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 2);
  CHECK(dead_letter(letters[0]).reason() == "tenant name \"Acme\" has \"A\": only a-z, 0-9 and '-' are allowed");
  CHECK(dead_letter(letters[1]).reason() ==
        "id \"acme~j\" of the default tenant reads as tenant 'acme''s id \"j\" ('<tenant>~' starts another tenant's keys)");
  CHECK(harness.exec_ids().empty());
}

TEST_CASE("two tenants' schedules of one name keep separate overlap tracks") {
  Harness harness;
  const auto run = [](const std::string& tenant, int number) {
    auto json = run_json("s", number, kStart, "FIRE_ONCE", "FORBID");
    json.insert(1, fmt::format(R"("tenant":"{}",)", tenant));
    return json;
  };
  harness.submit(run("a", 1), "a~s@1");
  harness.submit(run("b", 1), "b~s@1");
  CHECK(harness.exec_ids() == std::vector<std::string>{"a~s@1", "b~s@1"});
  // a's run 1 still runs: a's run 2 is skipped; b's completion frees only b's schedule.
  harness.apply(R"({"completion":{"job_id":"s@1","tenant":"b","state":"SUCCEEDED"}})", "b~s");
  harness.submit(run("a", 2), "a~s@2");
  harness.submit(run("b", 2), "b~s@2");
  CHECK(harness.exec_ids() == std::vector<std::string>{"b~s@2"});
  CHECK_THAT(skipped_reasons(harness).at(0), Catch::Contains("previous run 's@1' is still running (overlap forbid)"));
}

TEST_CASE("an entry a release before tenants stored under a bare id for a tenant is not another tenant's to cancel") {
  Harness harness;
  // As the previous release stored it: the bare key, the tenant only in the body.
  v1::DispatcherEntry legacy;
  legacy.set_state(v1::DispatcherEntry::PENDING);
  legacy.set_due_ms(kStart + 5'000);
  legacy.set_sequence(1);
  legacy.mutable_job()->set_id("old");
  legacy.mutable_job()->set_tenant("acme");
  legacy.mutable_job()->mutable_noop();
  auto& state = harness.state(harness.partition_of("old"));
  REQUIRE(DispatcherCore::restore(state, "old", encode(legacy), false).ok());
  harness.apply(R"({"cancel":{"job_id":"old"}})", "old");
  CHECK(dead_letter(harness.take("dead-letters").at(0)).reason() == "cannot cancel job 'old': no such job");
  harness.clock.advance(Millis(5'000));
  harness.fire("old");
  CHECK(harness.exec_ids() == std::vector<std::string>{"acme~old"});  // its exec record is keyed as acme's
  // It stays under the key it was stored under, now FIRED: it never fires again.
  CHECK(harness.stored("old"));
  CHECK_FALSE(harness.stored("acme~old"));
  harness.clock.advance(Millis(60'000));
  harness.fire("old");
  CHECK(harness.exec_ids().empty());
}

// ---- Tenant limits (docs/tenancy.md#limits) ----

namespace {

v1::TenantSettings tenant_settings(const std::string& name, std::uint64_t max_pending, double max_rate = 0,
                                   std::vector<std::string> queues = {}) {
  v1::TenantSettings settings;
  settings.set_name(name);
  settings.mutable_limits()->set_max_pending_jobs(max_pending);
  settings.mutable_limits()->set_max_submissions_per_second(max_rate);
  for (auto& queue : queues) settings.add_allowed_queues(std::move(queue));
  return settings;
}

// Ids of `tenant` that all route to one partition (the first id's), so one partition's share is
// what the test exercises.
std::vector<std::string> ids_on_one_partition(const Harness& harness, const std::string& tenant, std::size_t count) {
  std::vector<std::string> ids;
  std::optional<Partition> wanted;
  for (int number = 0; ids.size() < count && number < 100'000; ++number) {
    const std::string id = fmt::format("job-{}", number);
    const auto partition = partition_for_key(scoped_routing_key(tenant, id), harness.settings.jobs_partitions);
    if (!wanted) wanted = partition;
    if (partition == *wanted) ids.push_back(id);
  }
  REQUIRE(ids.size() == count);
  return ids;
}

std::vector<v1::StatusRecord> rejected_statuses(Harness& harness) {
  std::vector<v1::StatusRecord> rejected;
  for (const auto& record : harness.take("kcron.status")) {
    v1::StatusRecord status;
    REQUIRE(status.ParseFromString(record.value));
    if (status.state() == v1::REJECTED) rejected.push_back(status);
  }
  return rejected;
}

}  // namespace

TEST_CASE("a partition counts a tenant's pending jobs through submit, cancel and fire") {
  Harness harness;
  const auto ids = ids_on_one_partition(harness, "acme", 3);
  const auto partition = partition_for_key(scoped_routing_key("acme", ids[0]), harness.settings.jobs_partitions);
  for (const auto& id : ids) {
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"{}s","noop":{{}}}})", id, id == ids[0] ? 1 : 5),
                   scoped_key("acme", id));
  }
  harness.submit(R"({"id":"now","tenant":"acme","noop":{}})", "acme~now");  // fires at once: never pending
  CHECK(*harness.core.pending_of(harness.state(partition), "acme") == 3);
  harness.apply(fmt::format(R"({{"cancel":{{"job_id":"{}","tenant":"acme"}}}})", ids[1]), scoped_key("acme", ids[1]));
  CHECK(*harness.core.pending_of(harness.state(partition), "acme") == 2);
  harness.clock.advance(Millis(1'000));
  REQUIRE(*harness.core.fire_due(harness.state(partition), partition, 100, harness.out) == 1);
  CHECK(*harness.core.pending_of(harness.state(partition), "acme") == 1);
  CHECK(*harness.core.pending_of(harness.state(partition), "default") == 0);
}

TEST_CASE("a tenant's pending count survives a restore from the changelog") {
  Harness harness;
  const auto ids = ids_on_one_partition(harness, "acme", 4);
  const auto partition = partition_for_key(scoped_routing_key("acme", ids[0]), harness.settings.jobs_partitions);
  for (const auto& id : ids) {
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"9s","noop":{{}}}})", id), scoped_key("acme", id));
  }
  // One usage record per tenant and partition for the whole batch, holding the last count.
  std::size_t usage_records = 0;
  MemoryPartitionState restored(harness.settings.bucket_width);
  for (const auto& record : harness.take("dispatcher-changelog")) {
    if (record.key == DispatcherCore::usage_key("acme")) ++usage_records;
    REQUIRE(DispatcherCore::restore(restored, record.key, record.value, record.tombstone).ok());
  }
  CHECK(usage_records == 1);
  CHECK(*harness.core.pending_of(restored, "acme") == 4);
  CHECK(*harness.core.pending_of(harness.state(partition), "acme") == 4);
}

TEST_CASE("a tenant at its pending limit is REJECTED with the limit named, and the other tenant is not") {
  Harness harness;
  // 12 partitions: each holds ceil(8 * 1.25 / 12) = 1 of acme's pending jobs.
  harness.tenants.put(tenant_settings("acme", 8));
  const auto ids = ids_on_one_partition(harness, "acme", 3);
  for (const auto& id : ids) {
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"5s","noop":{{}}}})", id), scoped_key("acme", id));
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"other","delay":"5s","noop":{{}}}})", id), scoped_key("other", id));
  }
  CHECK(harness.core.counts().accepted == 4);  // acme's first, and the three of "other"
  const auto rejected = rejected_statuses(harness);
  REQUIRE(rejected.size() == 2);
  for (const auto& status : rejected) {
    CHECK(status.tenant() == "acme");
    CHECK_THAT(status.reason(), Catch::Contains("tenant 'acme' is at its limit of 8 pending jobs"));
  }
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].key == scoped_key("acme", ids[1]));
  CHECK(harness.core.limit_refusals().at({"acme", TenantLimit::kPendingJobs}) == 2);
  // A job due now is never pending, so the limit does not hold it back.
  harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","noop":{{}}}})", ids[1]), scoped_key("acme", ids[1]));
  CHECK(harness.exec_ids() == std::vector<std::string>{scoped_key("acme", ids[1])});
  // Once the pending one fired, there is room again; raising the limit applies at once.
  harness.clock.advance(Millis(5'000));
  for (const auto& id : ids) harness.fire(scoped_key("acme", id));
  harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"5s","noop":{{}}}})", ids[2]), scoped_key("acme", ids[2]));
  harness.tenants.put(tenant_settings("acme", 100));
  harness.submit(R"({"id":"job-late","tenant":"acme","delay":"5s","noop":{}})", "acme~job-late");
  CHECK(rejected_statuses(harness).empty());
}

TEST_CASE("a tenant's submission rate is measured on append time, so a backlog is not refused as a burst") {
  Harness harness;
  // 12 partitions: each partition's share is 48 * 1.25 / 12 = 5 submissions per second.
  harness.tenants.put(tenant_settings("acme", 0, 48));
  const auto ids = ids_on_one_partition(harness, "acme", 50);
  // Twenty appended within one millisecond: the share and its one-second bucket admit 5.
  for (std::size_t index = 0; index < 20; ++index) {
    harness.apply(fmt::format(R"({{"id":"{}","tenant":"acme","noop":{{}}}})", ids[index]), scoped_key("acme", ids[index]),
                  std::nullopt, kStart);
  }
  CHECK(harness.core.counts().accepted == 5);
  const auto rejected = rejected_statuses(harness);
  REQUIRE(rejected.size() == 15);
  CHECK_THAT(rejected[0].reason(), Catch::Contains("tenant 'acme' is over its limit of 48 submissions per second"));
  // Twenty appended 200 ms apart (four seconds of a producer at 5/s), applied later, at once.
  harness.clock.advance(Millis(6'000));
  for (std::size_t index = 20; index < 40; ++index) {
    harness.apply(fmt::format(R"({{"id":"{}","tenant":"acme","noop":{{}}}})", ids[index]), scoped_key("acme", ids[index]),
                  std::nullopt, kStart + 1000 + static_cast<std::int64_t>(index - 20) * 200);
  }
  CHECK(harness.core.counts().accepted == 25);
  // Schedule runs are admitted with their schedule and never count against the rate.
  harness.apply(R"({"id":"nightly@1","tenant":"acme","noop":{},"schedule_run":{"schedule_id":"nightly"}})", "acme~nightly",
                std::nullopt, kStart + 5000);
  harness.apply(R"({"id":"nightly@2","tenant":"acme","noop":{},"schedule_run":{"schedule_id":"nightly"}})", "acme~nightly",
                std::nullopt, kStart + 5000);
  CHECK(harness.core.counts().accepted == 27);
  // An empty schedule_run is not a schedule's run: it counts like any submit.
  for (std::size_t index = 40; index < 50; ++index) {
    harness.apply(fmt::format(R"({{"id":"{}","tenant":"acme","noop":{{}},"schedule_run":{{}}}})", ids[index]),
                  scoped_key("acme", ids[index]), std::nullopt, kStart + 5000);
  }
  CHECK(harness.core.counts().accepted == 27 + 5);
}

TEST_CASE("a producer's clock ahead of the dispatcher's neither freezes a tenant's rate nor buys it tokens") {
  Harness harness;
  harness.tenants.put(tenant_settings("acme", 0, 48));  // 5 per second on each partition
  const auto ids = ids_on_one_partition(harness, "acme", 41);
  harness.apply(fmt::format(R"({{"id":"{}","tenant":"acme","noop":{{}}}})", ids[0]), scoped_key("acme", ids[0]), std::nullopt,
                kStart + 3'600'000);  // stamped an hour ahead
  // Then 40 records, 200 ms apart, each applied as it arrives: all within the rate.
  for (std::size_t index = 1; index <= 40; ++index) {
    harness.clock.advance(Millis(200));
    harness.apply(fmt::format(R"({{"id":"{}","tenant":"acme","noop":{{}}}})", ids[index]), scoped_key("acme", ids[index]),
                  std::nullopt, to_epoch_ms(harness.clock.now()));
  }
  CHECK(harness.core.counts().accepted == 41);
}

TEST_CASE("a rate below one submission per second on a partition still refills, record after record") {
  Harness harness;
  harness.tenants.put(tenant_settings("acme", 0, 4));  // 4 * 1.25 / 12 = 0.4167 per second on each partition
  const auto ids = ids_on_one_partition(harness, "acme", 8001);
  // One record every millisecond for 8 s: the bucket (1 token) refills about 3.3 times.
  for (std::size_t index = 0; index <= 8000; ++index) {
    harness.apply(fmt::format(R"({{"id":"{}","tenant":"acme","noop":{{}}}})", ids[index]), scoped_key("acme", ids[index]),
                  std::nullopt, kStart + static_cast<std::int64_t>(index));
    harness.out.clear();
    harness.clock.advance(Millis(1));
  }
  CHECK(harness.core.counts().accepted >= 4);
  CHECK(harness.core.counts().accepted <= 5);
}

TEST_CASE("an update or a replay cannot move a tenant's job onto a queue it may not use") {
  Harness harness;
  harness.tenants.put(tenant_settings("acme", 0, 0, {"batch"}));
  harness.submit(R"({"id":"x","tenant":"acme","queue":"batch","delay":"5s","noop":{}})", "acme~x");
  harness.apply(R"({"update":{"job":{"id":"x","tenant":"acme","queue":"critical","delay":"5s","noop":{}}}})", "acme~x");
  const auto rejected = harness.take("dead-letters");
  REQUIRE(rejected.size() == 1);
  CHECK(dead_letter(rejected[0]).reason() == "tenant 'acme' may not use queue 'critical' (its queues: batch)");
  harness.clock.advance(Millis(5'000));
  harness.fire("acme~x");
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 1);
  CHECK(exec[0].topic == "kcron.exec.batch.normal");
}

TEST_CASE("a recount sets every tenant's pending count from the partition's entries, and marks the partition counted") {
  Harness harness;
  const auto ids = ids_on_one_partition(harness, "acme", 3);
  const auto partition = partition_for_key(scoped_routing_key("acme", ids[0]), harness.settings.jobs_partitions);
  for (const auto& id : ids) {
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"9s","noop":{{}}}})", id), scoped_key("acme", id));
  }
  // Entries a release before tenant limits wrote (no usage entry moved with them): one more
  // pending job of acme, and a stale usage entry of a tenant that has none pending.
  auto& state = harness.state(partition);
  v1::DispatcherEntry old_entry;
  old_entry.set_state(v1::DispatcherEntry::PENDING);
  old_entry.set_due_ms(kStart + 9000);
  old_entry.mutable_job()->set_id("old");
  old_entry.mutable_job()->set_tenant("acme");
  REQUIRE(DispatcherCore::restore(state, "acme~old", encode(old_entry), false).ok());
  v1::DispatcherEntry stale;
  stale.set_state(v1::DispatcherEntry::TENANT_USAGE);
  stale.mutable_usage()->set_pending(7);
  REQUIRE(DispatcherCore::restore(state, DispatcherCore::usage_key("gone"), encode(stale), false).ok());
  CHECK_FALSE(*DispatcherCore::counted(state));
  harness.out.clear();
  REQUIRE(harness.core.recount(state, partition, harness.out).ok());
  CHECK(*DispatcherCore::counted(state));
  CHECK(*harness.core.pending_of(state, "acme") == 4);
  CHECK(*harness.core.pending_of(state, "gone") == 0);
  CHECK_FALSE(harness.stored(DispatcherCore::usage_key("gone")));  // nothing left to remember
  // The counts travel in the changelog: a restore elsewhere sees them.
  MemoryPartitionState restored(harness.settings.bucket_width);
  for (const auto& record : harness.take("dispatcher-changelog")) {
    REQUIRE(DispatcherCore::restore(restored, record.key, record.value, record.tombstone).ok());
  }
  CHECK(*harness.core.pending_of(restored, "acme") == 4);
  CHECK(*DispatcherCore::counted(restored));
}

TEST_CASE("a job entry's changelog record says its writer counts, a usage entry's does not need to") {
  Harness harness;
  harness.submit(R"({"id":"x","tenant":"acme","delay":"5s","noop":{}})", "acme~x");
  for (const auto& record : harness.take("dispatcher-changelog")) {
    const bool marked = std::find(record.headers.begin(), record.headers.end(),
                                  std::pair<std::string, std::string>{std::string(kCountedHeader), "1"}) != record.headers.end();
    CHECK(marked == !record.key.starts_with("\x01"));
  }
}

TEST_CASE("a tenant's job on a queue it may not use is REJECTED, naming its queues") {
  Harness harness;
  harness.tenants.put(tenant_settings("acme", 0, 0, {"batch"}));
  harness.submit(R"({"id":"x","tenant":"acme","queue":"critical","noop":{}})", "acme~x");
  harness.submit(R"({"id":"y","tenant":"acme","queue":"batch","noop":{}})", "acme~y");
  const auto rejected = rejected_statuses(harness);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason() == "tenant 'acme' may not use queue 'critical' (its queues: batch)");
  CHECK(harness.exec_ids() == std::vector<std::string>{"acme~y"});
}

TEST_CASE("a purge cancels a tenant's pending jobs on its partition and forgets its markers and tracks, nobody else's") {
  Harness harness;
  const auto ids = ids_on_one_partition(harness, "acme", 3);
  const auto partition = partition_for_key(scoped_routing_key("acme", ids[0]), harness.settings.jobs_partitions);
  for (const auto& id : ids) {
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"5s","noop":{{}}}})", id), scoped_key("acme", id));
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme-2","delay":"5s","noop":{{}}}})", id), scoped_key("acme-2", id));
  }
  harness.out.clear();
  v1::Command purge;
  purge.mutable_purge_tenant()->set_tenant("acme");
  const std::string bytes = encode(purge);
  InputRecord record{partition, 99, "acme", bytes, "application/x-protobuf", "purge-tenant", harness.clock.now(), {}};
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());
  CHECK(harness.core.counts().purged == 3);
  CHECK(harness.take("kcron.jobs").empty());  // neither forwarded nor continued
  CHECK(*harness.core.pending_of(harness.state(partition), "acme") == 0);
  std::size_t cancelled = 0;
  for (const auto& record_out : harness.take("kcron.status")) {
    v1::StatusRecord status;
    REQUIRE(status.ParseFromString(record_out.value));
    CHECK(status.tenant() == "acme");
    CHECK(status.reason() == "tenant 'acme' was deleted");
    if (status.state() == v1::CANCELLED) ++cancelled;
  }
  CHECK(cancelled == 3);
  const auto control = harness.take("kcron.control");
  REQUIRE(control.size() == 1);  // one tenant-wide cancel for what runs
  auto cancel = decode_command(control[0].value, header::kProtobuf, "cancel-tenant");
  REQUIRE(cancel.ok());
  CHECK(cancel->cancel().tenant() == "acme");
  CHECK(cancel->cancel().job_id().empty());
  harness.clock.advance(Millis(5'000));
  for (const auto& id : ids) harness.fire(scoped_key("acme-2", id));
  CHECK(harness.exec_ids().size() == 3);  // acme-2's, all of them
}

TEST_CASE("a purge of more keys than one record handles writes the rest back to its own partition") {
  Harness harness;
  const std::size_t count = DispatcherCore::kPurgeKeysPerRecord + 5;
  auto ids = ids_on_one_partition(harness, "acme", count + 1);
  const std::string unseen = ids.back();
  ids.pop_back();
  const auto partition = partition_for_key(scoped_routing_key("acme", ids[0]), harness.settings.jobs_partitions);
  for (const auto& id : ids) {
    harness.submit(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"5s","noop":{{}}}})", id), scoped_key("acme", id));
  }
  harness.out.clear();
  v1::Command purge;
  purge.mutable_purge_tenant()->set_tenant("acme");
  std::string bytes = encode(purge);
  InputRecord record{partition, 99, "acme", bytes, "application/x-protobuf", "purge-tenant", harness.clock.now(), {}};
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());
  CHECK(harness.core.counts().purged == DispatcherCore::kPurgeKeysPerRecord);
  CHECK(harness.state(partition).get(DispatcherCore::purging_key("acme"))->has_value());
  // While the purge is under way, the partition refuses the tenant's submits.
  harness.out.clear();
  harness.apply(fmt::format(R"({{"id":"{}","tenant":"acme","delay":"5s","noop":{{}}}})", unseen), scoped_key("acme", unseen),
                partition);
  const auto refused = rejected_statuses(harness);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].reason() == "tenant 'acme' is being deleted: submit again once its deletion has ended");
  harness.out.clear();
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());  // the same record again: idempotent
  auto rest = harness.take("kcron.jobs");
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].partition == partition.value());
  auto continued = decode_command(rest[0].value, header::kProtobuf, "purge-tenant");
  REQUIRE(continued.ok());
  CHECK(!continued->purge_tenant().resume_after().empty());
  bytes = rest[0].value;
  record.value = bytes;
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());
  CHECK(harness.core.counts().purged == count);
  CHECK(harness.take("kcron.jobs").empty());
  CHECK_FALSE(harness.state(partition).get(DispatcherCore::purging_key("acme"))->has_value());
  CHECK(*harness.core.pending_of(harness.state(partition), "acme") == 0);
}

TEST_CASE("the default tenant cannot be purged") {
  Harness harness;
  v1::Command purge;
  purge.mutable_purge_tenant()->set_tenant("default");
  const std::string bytes = encode(purge);
  InputRecord record{Partition(0), 1, "default", bytes, "application/x-protobuf", "purge-tenant", harness.clock.now(), {}};
  REQUIRE(harness.core.apply(harness.state(Partition(0)), record, harness.out).ok());
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 1);
  CHECK(dead_letter(letters[0]).reason() == "the default tenant cannot be purged");
}

// ---- Audit (docs/tenancy.md#audit) ----

namespace {

std::vector<v1::AuditRecord> audits(Harness& harness, std::vector<std::string>* keys = nullptr) {
  std::vector<v1::AuditRecord> decisions;
  for (const auto& record : harness.take("kcron.audit")) {
    v1::AuditRecord decision;
    REQUIRE(decision.ParseFromString(record.value));
    decisions.push_back(decision);
    if (keys != nullptr) keys->push_back(record.key);
  }
  return decisions;
}

}  // namespace

TEST_CASE("every decision on a command goes to the audit topic: accepted, cancelled, refused by a limit, unreadable") {
  Harness harness;
  harness.tenants.put(tenant_settings("acme", 0, 0, {"batch"}));
  harness.submit(R"({"id":"ok","tenant":"acme","queue":"batch","delay":"5s","noop":{}})", "acme~ok");
  harness.apply(R"({"cancel":{"job_id":"ok","tenant":"acme","reason":"not needed"}})", "acme~ok");
  harness.submit(R"({"id":"no","tenant":"acme","queue":"critical","noop":{}})", "acme~no");
  harness.apply(R"({"cancel":{"job_id":"ghost"}})", "ghost");
  harness.apply("not json", "ghost");
  std::vector<std::string> keys;
  const auto decisions = audits(harness, &keys);
  REQUIRE(decisions.size() == 5);
  CHECK(keys == std::vector<std::string>{"acme~ok", "acme~ok", "acme~no", "ghost", "ghost"});
  CHECK(decisions[0].action() == "submit");
  CHECK(decisions[0].outcome() == "ACCEPTED");
  CHECK(decisions[0].tenant() == "acme");
  CHECK(decisions[0].job_id() == "ok");
  CHECK(decisions[0].component() == "dispatcher");
  CHECK(decisions[0].source() == fmt::format("kcron.jobs/{}@0", partition_for_key("acme~ok", 12).value()));
  CHECK(decisions[1].action() == "cancel");
  CHECK(decisions[1].outcome() == "CANCELLED");
  CHECK(decisions[1].reason() == "not needed");
  CHECK(decisions[2].action() == "submit");
  CHECK(decisions[2].outcome() == "REJECTED");
  CHECK(decisions[2].reason() == "tenant 'acme' may not use queue 'critical' (its queues: batch)");
  CHECK(decisions[3].outcome() == "CANCEL_MARKED");
  CHECK(decisions[3].tenant().empty());
  CHECK(decisions[4].action() == "unknown");
  CHECK(decisions[4].outcome() == "REJECTED");
  CHECK(decisions[4].job_id().empty());
}

TEST_CASE("the audit level keeps refusals only, or nothing") {
  for (const auto level : {AuditLevel::kRefusals, AuditLevel::kOff}) {
    Harness harness;
    harness.settings.audit = level;
    DispatcherCore core(harness.settings, harness.clock, &harness.tenants);
    const std::string ok = R"({"id":"ok","noop":{}})";
    const std::string bad = R"({"id":"bad","queue":"nope","noop":{}})";
    for (const auto& [json, id] : {std::pair{ok, "ok"}, std::pair{bad, "bad"}}) {
      const Partition partition = harness.partition_of(id);
      InputRecord record{partition, 1, routing_key_for_job(id), json, "", "", harness.clock.now(), {}};
      REQUIRE(core.apply(harness.state(partition), record, harness.out).ok());
    }
    const auto decisions = audits(harness);
    if (level == AuditLevel::kOff) {
      CHECK(decisions.empty());
    } else {
      REQUIRE(decisions.size() == 1);
      CHECK(decisions[0].outcome() == "REJECTED");
      CHECK_THAT(decisions[0].reason(), Catch::Contains("unknown queue 'nope'"));
    }
  }
}

TEST_CASE("after a purge, a fired job of the tenant that fails is not re-armed by its retry") {
  Harness harness;
  harness.submit(R"({"id":"runs","tenant":"acme","noop":{}})", "acme~runs");  // fired at once
  REQUIRE(harness.exec_ids() == std::vector<std::string>{"acme~runs"});
  const auto partition = partition_for_key("acme~runs", harness.settings.jobs_partitions);
  v1::Command purge;
  purge.mutable_purge_tenant()->set_tenant("acme");
  const std::string bytes = encode(purge);
  InputRecord record{partition, 99, "acme", bytes, "application/x-protobuf", "purge-tenant", harness.clock.now(), {}};
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());
  harness.apply(R"({"retry":{"job":{"id":"runs","tenant":"acme","attempt":2,"noop":{}},"due_ms":1790000001000,"error":"x"}})",
                "acme~runs");
  CHECK(*harness.core.pending_of(harness.state(partition), "acme") == 0);
  harness.clock.advance(Millis(5'000));
  harness.fire("acme~runs");
  CHECK(harness.exec_ids().empty());
}

// ---------------------------------------------------------------------------------------------
// Fire-ahead (docs/fire-ahead.md)

namespace {

FireAheadSettings ahead_settings() {
  return FireAheadSettings{
      .max = Millis(5000), .min_lead = Millis(500), .max_per_exec_partition = 20000, .assumed_fire_rate = 20000};
}

v1::Execution execution_of(const OutRecord& record) {
  v1::Execution execution;
  REQUIRE(execution.ParseFromString(record.value));
  return execution;
}

}  // namespace

TEST_CASE("fire-ahead commits a job's exec record within the lead before its instant, carrying the instant") {
  Harness harness(ahead_settings());
  harness.submit(R"({"id":"soon","delay":"10s","noop":{}})", "soon");
  harness.out.clear();
  harness.clock.advance(Millis(9'000));  // 1 s before: outside the 500 ms lead
  CHECK(harness.fire("soon") == 0);
  harness.clock.advance(Millis(600));  // 400 ms before
  CHECK(harness.fire("soon") == 1);
  const auto exec = harness.take(".exec.");
  REQUIRE(exec.size() == 1);
  const auto execution = execution_of(exec[0]);
  CHECK(execution.due_ms() == kStart + 10'000);
  CHECK(execution.fired_ms() == kStart + 9'600);
  CHECK(harness.core.counts().fired_ahead == 1);
  CHECK(harness.core.ahead_count() == 1);
  harness.clock.advance(Millis(400));
  CHECK(harness.fire("soon") == 0);        // fired once: nothing more at its instant
  CHECK(harness.core.ahead_count() == 0);  // due now: no longer ahead
}

TEST_CASE("with fire-ahead closed (a worker of an earlier release in the group) jobs fire at their instant") {
  Harness harness(ahead_settings());
  harness.core.set_fire_ahead_open(false);
  harness.submit(R"({"id":"soon","delay":"10s","noop":{}})", "soon");
  harness.clock.advance(Millis(9'900));
  CHECK(harness.fire("soon") == 0);
  harness.clock.advance(Millis(100));
  CHECK(harness.fire("soon") == 1);
  CHECK(harness.core.counts().fired_ahead == 0);
}

TEST_CASE("the fire-ahead window widens for a burst so that its last job is committed before the instant") {
  auto settings = ahead_settings();
  settings.max = Millis(10'000);
  settings.assumed_fire_rate = 1000;  // 3000 jobs take 3 s; with the 1.5x margin and the lead, 5 s
  Harness harness(settings);
  const std::string first = "burst-0";
  const auto partition = harness.partition_of(first);
  std::vector<std::string> ids;
  for (int index = 0; ids.size() < 3000 && index < 100'000; ++index) {
    auto id = fmt::format("burst-{}", index);
    if (harness.partition_of(id) == partition) ids.push_back(std::move(id));
  }
  REQUIRE(ids.size() == 3000);
  for (const auto& id : ids) harness.submit(fmt::format(R"({{"id":"{}","delay":"20s","noop":{{}}}})", id), id);
  harness.out.clear();
  harness.clock.advance(Millis(14'500));  // 5.5 s before
  CHECK(harness.fire(first, 10'000) == 0);
  harness.clock.advance(Millis(600));  // 4.9 s before: the window reaches the burst
  CHECK(harness.fire(first, 10'000) == 3000);
  CHECK(harness.core.last_window() >= Millis(4'900));
  CHECK(harness.core.counts().fired_ahead == 3000);
}

TEST_CASE("schedule runs whose overlap is forbid or replace are never fired ahead, other runs are") {
  Harness harness(ahead_settings());
  const auto run = [](const std::string& id, const std::string& overlap) {
    return fmt::format(R"({{"id":"{}","run_at_ms":"{}","noop":{{}},"schedule_run":{{"schedule_id":"s-{}","overlap":"{}"}}}})", id,
                       kStart + 10'000, overlap, overlap);
  };
  harness.submit(run("s-FORBID@1", "FORBID"), "s-FORBID@1");
  harness.submit(run("s-REPLACE@1", "REPLACE"), "s-REPLACE@1");
  harness.submit(run("s-ALLOW@1", "ALLOW"), "s-ALLOW@1");
  harness.out.clear();
  harness.clock.advance(Millis(9'700));
  for (const auto* id : {"s-FORBID@1", "s-REPLACE@1", "s-ALLOW@1"}) (void)harness.fire(id);
  CHECK(harness.exec_ids() == std::vector<std::string>{"s-ALLOW@1"});
  const auto forbid = harness.partition_of("s-FORBID@1");
  CHECK(harness.core.next_look(harness.state(forbid), forbid) <= instant_from_ms(kStart + 10'000));
  harness.clock.advance(Millis(300));  // their instant
  for (const auto* id : {"s-FORBID@1", "s-REPLACE@1"}) (void)harness.fire(id);
  auto fired = harness.exec_ids();
  std::sort(fired.begin(), fired.end());
  CHECK(fired == std::vector<std::string>{"s-FORBID@1", "s-REPLACE@1"});
}

TEST_CASE("an update is refused as already fired exactly within W_max of the instant, whatever the window") {
  Harness harness(ahead_settings());
  harness.submit(R"({"id":"upd","delay":"20s","noop":{}})", "upd");
  harness.clock.advance(Millis(14'000));  // 6 s before: outside W_max
  harness.apply(R"({"update":{"job":{"id":"upd","delay":"10s","noop":{}}}})", "upd");
  CHECK(harness.take("dead-letters").empty());
  harness.clock.advance(Millis(5'100));  // 4.9 s before the new instant: within W_max, not yet fired
  harness.apply(R"({"update":{"job":{"id":"upd","delay":"30s","noop":{}}}})", "upd");
  const auto rejected = harness.take("dead-letters");
  REQUIRE(rejected.size() == 1);
  CHECK_THAT(dead_letter(rejected[0]).reason(),
             Catch::Contains("already fired (it is due in 4900 ms") && Catch::Contains("5000 ms"));
}

TEST_CASE("a cancel of a job fired ahead goes to the workers through control") {
  Harness harness(ahead_settings());
  harness.submit(R"({"id":"held","delay":"10s","noop":{}})", "held");
  harness.clock.advance(Millis(9'600));
  REQUIRE(harness.fire("held") == 1);
  harness.out.clear();
  harness.apply(R"({"cancel":{"job_id":"held","reason":"changed my mind"}})", "held");
  const auto control = harness.take(".control");
  REQUIRE(control.size() == 1);
  CHECK(control[0].key == "held");
}

TEST_CASE("records fired ahead are bounded per exec partition, and the rest fire at their instant") {
  auto settings = ahead_settings();
  settings.max_per_exec_partition = 2;
  Harness harness(settings);
  harness.core.set_exec_partitions({{"kcron.exec.default.normal", 1}});
  const std::string first = "cap-0";
  const auto partition = harness.partition_of(first);
  std::vector<std::string> ids;
  for (int index = 0; ids.size() < 5 && index < 10'000; ++index) {
    auto id = fmt::format("cap-{}", index);
    if (harness.partition_of(id) == partition) ids.push_back(std::move(id));
  }
  for (const auto& id : ids) harness.submit(fmt::format(R"({{"id":"{}","delay":"10s","noop":{{}}}})", id), id);
  harness.out.clear();
  harness.clock.advance(Millis(9'700));
  CHECK(harness.fire(first) == 2);
  CHECK(harness.fire(first) == 0);  // full until those fall due
  CHECK(harness.core.next_look(harness.state(partition), partition) <= instant_from_ms(kStart + 10'000));
  harness.clock.advance(Millis(300));
  CHECK(harness.fire(first) == 3);
  CHECK(harness.core.counts().fired_ahead == 2);
}

TEST_CASE("a job in the fire-ahead window whose exec record the broker refuses can be given up on") {
  Harness harness(ahead_settings());
  harness.submit(R"({"id":"refused","delay":"10s","noop":{}})", "refused");
  harness.clock.advance(Millis(9'600));
  CHECK(harness.fail_due("refused", "MESSAGE_TOO_LARGE"));
}

TEST_CASE("records fired ahead by a transaction that did not commit do not count against their exec partition's bound") {
  auto settings = ahead_settings();
  settings.max_per_exec_partition = 2;
  Harness harness(settings);
  harness.core.set_exec_partitions({{"kcron.exec.default.normal", 1}});
  const std::string first = "undone-0";
  const auto partition = harness.partition_of(first);
  std::vector<std::string> ids;
  for (int index = 0; ids.size() < 2 && index < 10'000; ++index) {
    auto id = fmt::format("undone-{}", index);
    if (harness.partition_of(id) == partition) ids.push_back(std::move(id));
  }
  for (const auto& id : ids) harness.submit(fmt::format(R"({{"id":"{}","delay":"10s","noop":{{}}}})", id), id);
  REQUIRE(harness.state(partition).commit(Checkpoint{}).ok());
  harness.out.clear();
  harness.clock.advance(Millis(9'700));
  CHECK(harness.fire(first) == 2);
  // The transaction aborted: the loop drops the batch (the store's writes and the core's fires).
  harness.out.clear();
  harness.state(partition).discard();
  harness.core.discard_uncommitted();
  CHECK(harness.core.ahead_count() == 0);
  CHECK(harness.fire(first) == 2);  // fired ahead again, once each
  CHECK(harness.core.ahead_count() == 2);
  harness.core.observe_commit(2, Millis(10), Millis(100));  // committed: they stay counted
  harness.core.discard_uncommitted();
  CHECK(harness.core.ahead_count() == 2);
}

TEST_CASE("a job inside W_max but outside the window is looked at again with half the lead left, not at once") {
  Harness harness(ahead_settings());
  harness.submit(R"({"id":"later","delay":"10s","noop":{}})", "later");
  const auto partition = harness.partition_of("later");
  harness.out.clear();
  harness.clock.advance(Millis(7'000));  // 3 s before: within W_max, outside the 500 ms lead
  CHECK(harness.fire("later") == 0);
  std::size_t fired = 0;
  for (int look_count = 0; look_count < 10 && fired == 0; ++look_count) {
    const Instant look = harness.core.next_look(harness.state(partition), partition);
    REQUIRE(look > harness.clock.now());                      // no polling (the loop's wait would be 2 ms)
    REQUIRE(look <= instant_from_ms(kStart + 10'000 - 250));  // but with half the 500 ms lead left to commit in
    harness.clock.set(look);
    fired = harness.fire("later");
  }
  CHECK(fired == 1);
}

TEST_CASE("the window is planned from the jobs coming due on every partition, which share one fire rate") {
  auto settings = ahead_settings();
  settings.max = Millis(10'000);
  settings.assumed_fire_rate = 1000;  // 1,500 jobs: 2.75 s of need alone; 3,000 over two partitions: 5 s
  Harness harness(settings);
  const std::string first_a = "spread-a";
  const auto partition_a = harness.partition_of(first_a);
  std::string first_b;
  std::vector<std::string> ids;
  std::size_t on_a = 0;
  std::size_t on_b = 0;
  for (int index = 0; (on_a < 1500 || on_b < 1500) && index < 200'000; ++index) {
    auto id = fmt::format("spread-{}", index);
    const auto partition = harness.partition_of(id);
    if (partition == partition_a && on_a < 1500) {
      ++on_a;
    } else if (partition != partition_a && (first_b.empty() || partition == harness.partition_of(first_b)) && on_b < 1500) {
      if (first_b.empty()) first_b = id;
      ++on_b;
    } else {
      continue;
    }
    ids.push_back(std::move(id));
  }
  REQUIRE(on_a == 1500);
  REQUIRE(on_b == 1500);
  for (const auto& id : ids) harness.submit(fmt::format(R"({{"id":"{}","delay":"20s","noop":{{}}}})", id), id);
  harness.out.clear();
  harness.clock.advance(Millis(15'100));          // 4.9 s before
  CHECK(harness.fire(ids.front(), 10'000) == 0);  // one partition's own jobs: not yet
  const auto partition_b = harness.partition_of(first_b);
  REQUIRE(harness.core.plan_window({&harness.state(partition_a), &harness.state(partition_b)}).ok());
  CHECK(harness.core.fire_due(harness.state(partition_a), partition_a, 10'000, harness.out).value() == 1500);
  CHECK(harness.core.fire_due(harness.state(partition_b), partition_b, 10'000, harness.out).value() == 1500);
  CHECK(harness.core.counts().fired_ahead == 3000);
}

TEST_CASE("a decision names the HTTP request that carried the command, and a forwarded command keeps it") {
  Harness harness;
  const std::string json = R"({"id":"web-1","tenant":"acme","delay":"5s","noop":{}})";
  const Partition partition = partition_for_key("acme~web-1", harness.settings.jobs_partitions);
  InputRecord record{partition, 4, "acme~web-1", json, "", "", harness.clock.now(), "req-7f3a"};
  REQUIRE(harness.core.apply(harness.state(partition), record, harness.out).ok());
  const auto decisions = audits(harness);
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].request_id() == "req-7f3a");
  CHECK(decisions[0].outcome() == "ACCEPTED");

  const Partition elsewhere((partition.value() + 1) % harness.settings.jobs_partitions);
  InputRecord misrouted{elsewhere, 5, "acme~web-1", json, "", "", harness.clock.now(), "req-7f3b"};
  REQUIRE(harness.core.apply(harness.state(elsewhere), misrouted, harness.out).ok());
  const auto forwarded = harness.take("kcron.jobs");
  REQUIRE(forwarded.size() == 1);
  CHECK(std::find(forwarded[0].headers.begin(), forwarded[0].headers.end(),
                  std::pair<std::string, std::string>{"kcron-request-id", "req-7f3b"}) != forwarded[0].headers.end());
}
