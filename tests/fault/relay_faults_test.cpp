// kcron-relay killed while it forwards a tenant's input topic: once by its own fault point in the
// middle of a transaction (offsets sent, commit not yet), once with SIGKILL from outside. Each is
// restarted with the same instance id; then every input record must be on kcron.jobs exactly once.
#include <catch2/catch.hpp>
#include <thread>

#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

TEST_CASE("relay: SIGKILL mid-stream, twice, forwards each of 2000 input records exactly once", "[fault]") {
  TestEnv env("relay-kill");
  create_tenant_input_topics(env, "acme", 3);
  const int count = fault_jobs(2000);
  // Small batches: many transactions while the records arrive.
  const std::vector<std::string> small_batches = {"KCRON_MAX_BATCH_RECORDS=50", "KCRON_COMMIT_INTERVAL_MS=50"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), small_batches.begin(), small_batches.end());
    return extra;
  };
  auto relay = start_program(env, "kcron-relay", "r1", "relay-1", with({"KCRON_FAULT_POINTS=relay.after_offsets@5"}));

  // The records arrive over about 4 s, from a thread of their own, while the relay is killed.
  std::jthread writer([&] {
    TestProducer producer;
    const auto started = std::chrono::steady_clock::now();
    for (int index = 0; index < count; ++index) {
      const auto id = fmt::format("kr-{}", index);
      producer.send(env.prefix + "in.acme", id, fmt::format(R"({{"id":"{}","tenant":"other","noop":{{}}}})", id));
      if (index % 50 == 49) {
        producer.flush();
        std::this_thread::sleep_until(started + std::chrono::milliseconds((4000LL * index) / count));
      }
    }
    producer.flush();
  });

  // 1: the fault point kills it after the offsets of its 5th transaction were sent.
  const auto crash_deadline = std::chrono::steady_clock::now() + 60s;
  while (relay->running() && std::chrono::steady_clock::now() < crash_deadline) std::this_thread::sleep_for(20ms);
  CHECK_FALSE(relay->running());
  CHECK(count_in_log(relay->log_path(), "event=fault_point point=") == 1);
  // 2: restarted, then killed from outside while it forwards.
  relay = start_program(env, "kcron-relay", "r1", "relay-2", with({}));
  std::this_thread::sleep_for(700ms);
  relay->kill_hard();
  // 3: restarted; it finishes.
  relay = start_program(env, "kcron-relay", "r1", "relay-3", with({}));
  writer.join();

  std::map<std::string, int> forwarded;
  const auto collect = [&](const std::vector<Record>& records) {
    forwarded.clear();
    for (const auto& record : records) {
      if (record.headers.contains("kcron-relayed-from")) ++forwarded[record.key];
    }
    return forwarded.size() >= static_cast<std::size_t>(count);
  };
  collect(read_topics({env.prefix + "jobs"}, 60s, collect));
  std::this_thread::sleep_for(2s);  // late duplicates would show now
  collect(read_topics({env.prefix + "jobs"}, 20s, collect));
  Tally tally;
  tally.sent = count;
  for (int index = 0; index < count; ++index) {
    const auto found = forwarded.find(fmt::format("acme~kr-{}", index));
    if (found == forwarded.end()) {
      ++tally.lost;
    } else {
      (found->second == 1 ? tally.once : tally.duplicated) += 1;
    }
  }
  WARN(report_fault("relay killed twice while forwarding", tally, -1));
  INFO(tail_file(relay->log_path()));
  CHECK(forwarded.size() == static_cast<std::size_t>(count));  // nothing under another key (tenant "other")
  CHECK(tally.lost == 0);
  CHECK(tally.duplicated == 0);
  CHECK(tally.once == count);
  CHECK(relay->terminate() == 0);
}
