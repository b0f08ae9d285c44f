// Batch records (docs/batch.md) against the real broker: 10,000 jobs in one `kcron submit --batch`
// file, 10 of them invalid, handed by whichever dispatcher partition took each batch record to
// their owners: every valid job runs once, every invalid one is REJECTED with its reason, and the
// same file again runs nothing twice. Checked from the committed results and dead letters.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "kcron.pb.h"
#include "kcron/routing.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

TEST_CASE("batch: 10,000 jobs in batch records with 10 invalid run 9,990 once across every partition, and again nothing twice",
          "[integration]") {
  TestEnv env("batch");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "dispatcher");
  auto worker = start_program(env, "kcron-worker", "w1", "worker");

  const std::string file = env.state_root + "/jobs.jsonl";
  std::map<std::string, std::string> invalid;  // id -> what its reason says
  {
    std::ofstream out(file);
    for (int at = 0; at < 10'000; ++at) {
      const auto id = fmt::format("bj-{}", at);
      if (at % 1000 == 7) {
        switch ((at / 1000) % 5) {
          case 0:
            out << fmt::format(R"({{"id":"{}","queue":"nowhere","noop":{{}}}})", id) << "\n";
            invalid[id] = "unknown queue 'nowhere'";
            break;
          case 1:
            out << fmt::format(R"({{"id":"{}","priority":12,"noop":{{}}}})", id) << "\n";
            invalid[id] = "priority 12 is outside 0-9";
            break;
          case 2:
            out << fmt::format(R"({{"id":"{}/x","noop":{{}}}})", id) << "\n";
            invalid[id + "/x"] = "contains '/'";
            break;
          case 3:
            out << fmt::format(R"({{"id":"{}"}})", id) << "\n";
            invalid[id] = "no task";
            break;
          default:
            out << fmt::format(R"({{"id":"{}","delay":"-5s","noop":{{}}}})", id) << "\n";
            invalid[id] = "delay is negative";
            break;
        }
        continue;
      }
      out << fmt::format(R"({{"id":"{}","noop":{{}}}})", id) << "\n";
    }
  }
  REQUIRE(invalid.size() == 10);
  const auto submitted = run_cli(env, "submit --batch " + file);
  INFO(submitted.output);
  REQUIRE(submitted.exit_code == 0);
  CHECK(submitted.output.find("submitted 10000 jobs in ") != std::string::npos);

  const auto tally = read_succeeded_until_all(env.prefix, "bj-", 9'990, 120s, 2s);
  INFO(tally.line("batch of 10,000"));
  CHECK(tally.once == 9'990);
  CHECK(tally.duplicated == 0);
  CHECK(tally.lost == 0);

  // The 10 refusals: one dead letter each, naming the job and why.
  const auto letters = read_topics({env.prefix + "dead-letters"}, 20s, [](const auto& read) { return read.size() >= 10; });
  std::map<std::string, std::string> reasons;
  for (const auto& record : letters) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    reasons[record.key] = letter.reason();
  }
  REQUIRE(reasons.size() == 10);
  for (const auto& [id, says] : invalid) {
    INFO(id);
    REQUIRE(reasons.contains(id));
    CHECK_THAT(reasons[id], Catch::Contains(says));
  }
  // As a user reads them: `kcron dlq list` names each refused job by its id.
  const auto listed = run_cli(env, "dlq list");
  INFO(listed.output);
  CHECK(listed.exit_code == 0);
  for (const auto& [id, says] : invalid) {
    INFO(id);
    CHECK_THAT(listed.output, Catch::Contains(" " + id + " "));
  }
  // Every partition's dispatcher decided some of them: each changelog partition holds their entries.
  std::set<std::int32_t> deciders;
  for (const auto& record : read_topics({env.prefix + "dispatcher-changelog"}, 10s)) {
    if (record.key.starts_with("bj-")) deciders.insert(record.partition);
  }
  CHECK(deciders.size() == static_cast<std::size_t>(env.jobs_partitions));

  // The same file again: each job is a duplicate at its owner, nothing runs twice. A sentinel job
  // on every partition after it: once each ran, every partition has read the second file.
  const auto again = run_cli(env, "submit --batch " + file);
  REQUIRE(again.exit_code == 0);
  TestProducer sentinels;
  std::set<std::int32_t> covered;
  int sentinel_count = 0;
  for (int at = 0; covered.size() < static_cast<std::size_t>(env.jobs_partitions) && at < 1000; ++at) {
    const auto id = fmt::format("sentinel-{}", at);
    const auto partition = partition_for_key(id, env.jobs_partitions).value();
    if (!covered.insert(partition).second) continue;
    sentinels.send(env.prefix + "jobs", id, fmt::format(R"({{"id":"{}","noop":{{}}}})", id), partition,
                   {{"content-type", "application/json"}});
    ++sentinel_count;
  }
  sentinels.flush();
  const auto after = read_succeeded_until_all(env.prefix, "sentinel-", sentinel_count, 60s, 1s);
  CHECK(after.once == sentinel_count);
  const auto second = read_succeeded_until_all(env.prefix, "bj-", 9'990, 10s, 0s);
  CHECK(second.once == 9'990);
  CHECK(second.duplicated == 0);
  WARN(tally.line("batch of 10,000") << "\n" << second.line("the same batch again"));

  // A batch any client produces, in JSON, to one partition: the jobs other partitions own are
  // forwarded to them in the transaction of the batch's offset.
  std::string jobs;
  for (int at = 0; at < 200; ++at) jobs += fmt::format(R"({}{{"id":"fw-{}","noop":{{}}}})", at == 0 ? "" : ",", at);
  TestProducer producer;
  producer.send(env.prefix + "jobs", "", R"({"batch":{"jobs":[)" + jobs + "]}}", 0, {{"content-type", "application/json"}});
  producer.flush();
  const auto forwarded = read_succeeded_until_all(env.prefix, "fw-", 200, 60s, 1s);
  INFO(forwarded.line("a JSON batch on partition 0"));
  CHECK(forwarded.once == 200);
  CHECK(forwarded.duplicated == 0);
}
