// Batch records in the dispatcher core (docs/batch.md): each job handed to its owner partition as a
// Submit of its own in the batch record's transaction, or decided where the batch landed; each job
// refused with its own dead letter; a whole batch refused only for what concerns it as a whole.
#include <catch2/catch.hpp>

#include "kcron/codec.h"
#include "tests/core_harness.h"

using namespace kcron;
using namespace kcron::dispatcher;
using namespace kcron::dispatcher::testing;

namespace {

std::string batch_json(const std::string& tenant, const std::vector<std::string>& jobs) {
  std::string list;
  for (const auto& job : jobs) list += (list.empty() ? "" : ",") + job;
  return fmt::format(R"({{"batch":{{"tenant":"{}","jobs":[{}]}}}})", tenant, list);
}

std::vector<std::string> reasons_of(const std::vector<OutRecord>& letters) {
  std::vector<std::string> reasons;
  for (const auto& record : letters) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    reasons.push_back(letter.reason());
  }
  return reasons;
}

}  // namespace

TEST_CASE("batch: each job goes to its owner partition as its own Submit or is decided where the batch landed") {
  Harness harness;
  std::vector<std::string> jobs;
  for (int at = 0; at < 40; ++at) jobs.push_back(fmt::format(R"({{"id":"b-{}","delay":"60s","noop":{{}}}})", at));
  jobs.emplace_back(R"({"delay":"60s","noop":{}})");                     // no id
  jobs.emplace_back(R"({"id":"etl/load","noop":{}})");                   // a node's id
  jobs.emplace_back(R"({"id":"b-other","tenant":"globex","noop":{}})");  // another tenant
  const Partition landed(0);
  harness.apply(batch_json("acme", jobs), "", landed, kStart - 5'000);
  CHECK(harness.core.counts().batches == 1);

  auto forwarded = harness.take("kcron.jobs");
  std::size_t local = 0;
  for (int at = 0; at < 40; ++at) {
    const auto id = fmt::format("b-{}", at);
    const auto key = scoped_routing_key("acme", id);
    const auto owner = partition_for_key(key, harness.settings.jobs_partitions);
    if (owner == landed) {
      ++local;
      CHECK(harness.state(landed).get(scoped_key("acme", id))->has_value());  // decided here
    }
  }
  CHECK(local > 0);
  // Every job is handed on as it is: its owner decides it (`etl/load` too, refused there).
  const auto node_id_owner = partition_for_key(scoped_routing_key("acme", "etl/load"), harness.settings.jobs_partitions);
  REQUIRE(forwarded.size() == 40 - local + (node_id_owner == landed ? 0 : 1));
  for (const auto& record : forwarded) {
    v1::Command command;
    REQUIRE(command.ParseFromString(record.value));
    REQUIRE(command.has_submit());
    CHECK(command.submit().tenant() == "acme");
    CHECK(record.key == scoped_routing_key("acme", command.submit().id()));
    CHECK(record.partition == partition_for_key(record.key, harness.settings.jobs_partitions).value());
    CHECK(record.partition != landed.value());
    CHECK(record.timestamp_ms == kStart - 5'000);  // a delay counts from the batch
  }
  // Each owner decides its jobs: a delay of 60 s from the batch's time.
  for (const auto& record : forwarded) {
    harness.apply(record.value, record.key, Partition(record.partition), record.timestamp_ms);
  }
  harness.clock.advance(Millis(54'999));
  CHECK(harness.fire("b-0") == 0);
  harness.clock.advance(Millis(1));
  std::size_t fired = 0;
  for (int partition = 0; partition < harness.settings.jobs_partitions; ++partition) {
    auto count = harness.core.fire_due(harness.state(Partition(partition)), Partition(partition), 1000, harness.out);
    REQUIRE(count.ok());
    fired += *count;
  }
  CHECK(fired == 40);

  // The three refused jobs: each its own dead letter in the batch's tenant, the others unharmed.
  const auto letters = harness.take("dead-letters");
  auto reasons = reasons_of(letters);
  REQUIRE(reasons.size() == 3);
  std::sort(reasons.begin(), reasons.end());
  CHECK_THAT(reasons[0], Catch::StartsWith("batch job 40: "));
  CHECK(reasons[1] == "batch job 42: names another tenant than the batch's");
  CHECK_THAT(reasons[2], Catch::Contains("job id 'etl/load' contains '/'"));
  std::set<std::string> keys;
  for (const auto& letter : letters) keys.insert(letter.key);
  CHECK(keys == std::set<std::string>{"acme~rejected-batch-0-0-40", "acme~rejected-batch-0-0-42", "acme~etl/load"});
}

TEST_CASE("batch: the same batch again decides nothing twice, and an empty or oversized batch is REJECTED as a whole") {
  Harness harness;
  const auto batch = batch_json("", {R"({"id":"x1","noop":{}})", R"({"id":"x2","noop":{}})", R"({"id":"x3","noop":{}})"});
  const auto run_batch = [&] {
    harness.apply(batch, "", Partition(1));
    for (const auto& record : harness.take("kcron.jobs"))
      harness.apply(record.value, record.key, Partition(record.partition), record.timestamp_ms);
  };
  run_batch();
  auto first = harness.exec_ids();
  std::sort(first.begin(), first.end());
  CHECK(first == std::vector<std::string>{"x1", "x2", "x3"});
  run_batch();
  CHECK(harness.exec_ids().empty());
  CHECK(harness.core.counts().duplicates == 3);

  harness.apply(batch_json("", {}), "", Partition(0));
  std::vector<std::string> many(10'001, R"({"id":"m","noop":{}})");
  harness.apply(batch_json("", many), "", Partition(0));
  CHECK(harness.take("kcron.jobs").empty());
  const auto letters = harness.take("dead-letters");
  for (const auto& letter : letters) CHECK(letter.key.starts_with("rejected-batch-0-"));  // the batch's own, default tenant
  auto reasons = reasons_of(letters);
  REQUIRE(reasons.size() == 2);
  CHECK(reasons[0] == "a batch holds no jobs");
  CHECK(reasons[1] == "a batch of 10001 jobs is over the limit of 10000: split it");
}

TEST_CASE("batch: a default-tenant job whose id names another tenant is refused under the batch's own name") {
  Harness harness;
  harness.apply(batch_json("", {R"({"id":"acme~payroll","noop":{}})", R"({"id":"","noop":{}})", R"({"id":"ok","noop":{}})"}), "",
                Partition(0));
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].key == "rejected-batch-0-0-0");
  CHECK(letters[1].key == "rejected-batch-0-0-1");
  const auto reasons = reasons_of(letters);
  CHECK_THAT(reasons[0], Catch::StartsWith("batch job 0: "));
  CHECK_THAT(reasons[1], Catch::StartsWith("batch job 1: "));
  for (const auto& record : harness.take("kcron.status")) {
    v1::StatusRecord status;
    REQUIRE(status.ParseFromString(record.value));
    CHECK(status.job_id() != "payroll");  // nothing written over acme's job of that id
    CHECK(status.tenant().empty());
  }
}

TEST_CASE("batch: a batch whose outputs the broker refused gives each job its own whole dead letter, in its tenant") {
  Harness harness;
  const auto json = batch_json("acme", {R"({"id":"u1","noop":{}})", R"({"id":"u2","payload":"AAAA","noop":{}})"});
  const InputRecord record{Partition(2), 17, "", json, "application/json", "", harness.clock.now(), {}};
  harness.core.reject_unpublishable(record, "Broker: Topic authorization failed", harness.out);
  const auto letters = harness.take("dead-letters");
  REQUIRE(letters.size() == 2);
  CHECK(letters[0].key == "acme~u1");
  CHECK(letters[1].key == "acme~u2");
  v1::DeadLetter letter;
  REQUIRE(letter.ParseFromString(letters[1].value));
  CHECK(letter.reason() ==
        "batch job 1: its outputs could not be published: Broker: Topic authorization failed (the batch's jobs were not "
        "submitted)");
  CHECK(letter.tenant() == "acme");
  v1::Command copy;
  REQUIRE(copy.ParseFromString(letter.original()));
  CHECK(copy.submit().id() == "u2");
  CHECK(harness.take("kcron.status").empty());
}
