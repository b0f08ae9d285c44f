// End-to-end flows against the real broker: kcron-dispatcher and kcron-worker run as child
// processes on a fresh topic prefix; the tests produce like users do and read what was committed.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "kcron.pb.h"
#include "kcron/codec.h"
#include "kcron/routing.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

struct Deployment {
  TestEnv& env;
  std::unique_ptr<Process> dispatcher;
  std::unique_ptr<Process> worker;
  int dispatcher_starts = 0;
  std::vector<std::string> dispatcher_extra_env;

  explicit Deployment(TestEnv& test_env, bool with_worker = true, std::vector<std::string> extra_env = {})
      : env(test_env), dispatcher_extra_env(std::move(extra_env)) {
    start_dispatcher();
    if (with_worker) {
      worker = std::make_unique<Process>(program_path("kcron-worker"), env.program_env("w1"), env.state_root + "/worker.log");
      REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
    }
  }
  void start_dispatcher() {
    ++dispatcher_starts;
    const auto log = fmt::format("{}/dispatcher-{}.log", env.state_root, dispatcher_starts);
    auto vars = env.program_env("d1");
    vars.insert(vars.end(), dispatcher_extra_env.begin(), dispatcher_extra_env.end());
    dispatcher = std::make_unique<Process>(program_path("kcron-dispatcher"), vars, log);
    INFO(tail_file(log));
    REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  }
};

std::uint32_t crc32_partition(const std::string& key, std::uint32_t partitions) {
  const auto crc = ::crc32(0L, reinterpret_cast<const Bytef*>(key.data()), static_cast<uInt>(key.size()));
  return static_cast<std::uint32_t>(crc % partitions);
}

}  // namespace

TEST_CASE("an immediate job's result appears on kcron.results", "[integration]") {
  TestEnv env("immediate");
  Deployment deployment(env);
  TestProducer producer;
  producer.send(env.prefix + "jobs", "now-1", submit_json("now-1", ""));
  producer.flush();
  const auto results = read_topics({env.prefix + "results"}, 30s, [](const auto& records) { return !records.empty(); });
  REQUIRE(results.size() == 1);
  v1::Result result;
  REQUIRE(result.ParseFromString(results[0].value));
  CHECK(result.job_id() == "now-1");
  CHECK(result.state() == v1::SUCCEEDED);
  CHECK(results[0].headers.at("kcron-status") == "SUCCEEDED");
}

// Fire-ahead (docs/fire-ahead.md): the exec record is committed before the instant (once the
// upgrade gate has seen the worker's heartbeat), and the worker starts the job at its instant by
// its clock, never before. This replaced "nothing is on an exec topic 1 s before the instant".
TEST_CASE("a job due in 8 s is committed to its exec topic ahead of its instant and starts at it, not before", "[integration]") {
  TestEnv env("precise");
  Deployment deployment(env);
  TestProducer producer;
  producer.send(env.prefix + "jobs", "in-8s", submit_json("in-8s", R"("delay":"8s")"));
  producer.flush();

  const auto results = read_topics({env.prefix + "results"}, 30s, [](const auto& records) { return !records.empty(); });
  REQUIRE(results.size() == 1);
  const auto exec = read_topics(exec_topics(env.prefix), 2s, [](const auto& records) { return !records.empty(); });
  REQUIRE(exec.size() == 1);
  v1::Execution execution;
  REQUIRE(execution.ParseFromString(exec[0].value));
  v1::Result result;
  REQUIRE(result.ParseFromString(results[0].value));
  WARN(fmt::format("fired {} ms before the instant, committed at {} ms, started {} ms after it",
                   execution.due_ms() - execution.fired_ms(), exec[0].timestamp_ms - execution.due_ms(),
                   result.started_ms() - execution.due_ms()));
  CHECK(execution.fired_ms() < execution.due_ms());          // fired ahead
  CHECK(execution.due_ms() - execution.fired_ms() <= 5000);  // within W_max
  CHECK(result.started_ms() >= execution.due_ms());          // never started before its instant
}

TEST_CASE("garbage bytes and invalid JSON are REJECTED and a valid job behind them still runs", "[integration]") {
  TestEnv env("garbage");
  Deployment deployment(env);
  TestProducer producer;
  const std::string key = "after-garbage";
  producer.send(env.prefix + "jobs", key, std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00garbage", 19));
  producer.send(env.prefix + "jobs", key, R"({"id": "after-garbage", "noop": )");
  producer.send(env.prefix + "jobs", key, R"({"id":"after-garbage","queue":"no-such-queue","noop":{}})");
  producer.send(env.prefix + "jobs", key, submit_json(key, ""));
  producer.flush();

  const auto results = read_topics({env.prefix + "results"}, 30s, [](const auto& records) { return !records.empty(); });
  REQUIRE(results.size() == 1);
  CHECK(results[0].key == key);
  const auto letters = read_topics({env.prefix + "dead-letters"}, 10s, [](const auto& records) { return records.size() >= 3; });
  REQUIRE(letters.size() == 3);
  std::vector<std::string> reasons;
  for (const auto& record : letters) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    CHECK(letter.state() == v1::REJECTED);
    CHECK(record.headers.at("kcron-status") == "REJECTED");
    reasons.push_back(letter.reason());
  }
  CHECK_THAT(reasons[1], Catch::Contains("invalid JSON"));
  CHECK_THAT(reasons[2], Catch::Contains("unknown queue 'no-such-queue'"));
}

TEST_CASE("a cancel produced with a different partitioner than the submit still cancels", "[integration]") {
  TestEnv env("partitioner");
  Deployment deployment(env);
  // A key that kcat's default (consistent_random = CRC32) and Java's murmur2 place differently.
  std::string key;
  for (int candidate = 0; candidate < 1000 && key.empty(); ++candidate) {
    const auto name = fmt::format("crc-job-{}", candidate);
    if (crc32_partition(name, 4) != static_cast<std::uint32_t>(partition_for_key(name, 4).value())) key = name;
  }
  REQUIRE_FALSE(key.empty());

  TestProducer kcat_like("consistent_random");
  kcat_like.send(env.prefix + "jobs", key, submit_json(key, R"("delay":"4s")"));
  kcat_like.flush();
  CHECK(kcat_like.partition_of(key) == static_cast<std::int32_t>(crc32_partition(key, 4)));

  v1::Command cancel;
  cancel.mutable_cancel()->set_job_id(key);
  TestProducer java_like("murmur2_random");
  java_like.send(env.prefix + "jobs", key, encode(cancel), -1, {{"content-type", "application/x-protobuf"}});
  java_like.flush();
  CHECK(java_like.partition_of(key) == partition_for_key(key, 4).value());

  std::this_thread::sleep_for(7s);
  const auto exec = read_topics(exec_topics(env.prefix), 1s);
  CHECK(count_by_key(exec)[key] == 0);
  const auto status = read_topics({env.prefix + "status"}, 10s, [](const auto& records) {
    return std::any_of(records.begin(), records.end(),
                       [](const Record& record) { return record.headers.at("kcron-status") == "CANCELLED"; });
  });
  std::set<std::string> states;
  for (const auto& record : status) states.insert(record.headers.at("kcron-status"));
  CHECK(states.contains("CANCELLED"));
}

TEST_CASE("a dispatcher killed with SIGKILL and restarted fires each pending delayed job exactly once", "[integration]") {
  TestEnv env("sigkill");
  Deployment deployment(env, false);
  constexpr int kJobs = 600;
  TestProducer producer;
  // Due instants spread over 3..9 s from now, so the kill lands in the middle of the firing.
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("k-{}", index);
    const int delay_ms = 3000 + index * 10;
    producer.send(env.prefix + "jobs", id,
                  submit_json(id, fmt::format(R"("delay":"{}.{:03}s")", delay_ms / 1000, delay_ms % 1000)));
  }
  producer.flush();
  std::this_thread::sleep_for(5500ms);
  deployment.dispatcher->kill_hard();
  const auto before_restart = read_topics(exec_topics(env.prefix), 1500ms);
  deployment.start_dispatcher();

  const auto result = tally(read_exec_until_all(env.prefix, "k-", kJobs, 60s), "k-", kJobs);
  WARN(result.line("sigkill-restart") + fmt::format(" fired_before_kill={}", count_by_key(before_restart).size()));
  CHECK(count_by_key(before_restart).size() > 0);
  CHECK(count_by_key(before_restart).size() < static_cast<std::size_t>(kJobs));
  CHECK(result.lost == 0);
  CHECK(result.duplicated == 0);
  CHECK(result.once == kJobs);
}

TEST_CASE("SIGTERM stops the dispatcher and worker cleanly with exit code 0", "[integration]") {
  TestEnv env("sigterm");
  Deployment deployment(env);
  TestProducer producer;
  producer.send(env.prefix + "jobs", "t-1", submit_json("t-1", ""));
  producer.flush();
  (void)read_topics({env.prefix + "results"}, 30s, [](const auto& records) { return !records.empty(); });
  CHECK(deployment.worker->terminate() == 0);
  CHECK(deployment.dispatcher->terminate() == 0);
}

TEST_CASE("a burst of jobs due at one instant leaves in priority order", "[integration]") {
  TestEnv env("burst");
  Deployment deployment(env, false, {"KCRON_MAX_FIRES_PER_BATCH=50"});  // the burst spans many transactions
  constexpr int kJobs = 300;
  const auto due_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 4000;
  TestProducer producer;
  const int priorities[] = {0, 5, 9};
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("burst@{}", index);  // one routing key: one partition, one bucket
    producer.send(env.prefix + "jobs", "burst",
                  fmt::format(R"({{"id":"{}","run_at_ms":"{}","priority":{},"noop":{{}}}})", id, due_ms, priorities[index % 3]));
  }
  producer.flush();
  const auto exec = read_topics(exec_topics(env.prefix), 30s, [](const auto& records) { return records.size() >= kJobs; });
  REQUIRE(exec.size() == kJobs);
  std::map<std::uint32_t, std::pair<std::int64_t, std::int64_t>> window;  // priority -> first, last fired_ms
  for (const auto& record : exec) {
    v1::Execution execution;
    REQUIRE(execution.ParseFromString(record.value));
    CHECK(execution.fired_ms() >= due_ms - 5000);  // fired ahead at most W_max (docs/fire-ahead.md)
    auto [it, inserted] = window.try_emplace(execution.job().priority(), execution.fired_ms(), execution.fired_ms());
    it->second.first = std::min(it->second.first, execution.fired_ms());
    it->second.second = std::max(it->second.second, execution.fired_ms());
  }
  WARN(fmt::format("burst: p9 {}..{} p5 {}..{} p0 {}..{} (ms after due; negative: fired ahead)", window[9].first - due_ms,
                   window[9].second - due_ms, window[5].first - due_ms, window[5].second - due_ms, window[0].first - due_ms,
                   window[0].second - due_ms));
  CHECK(window[9].second <= window[5].first);
  CHECK(window[5].second <= window[0].first);
}

TEST_CASE("a cancel racing the due instant either cancels the job or reaches its worker, never both", "[integration]") {
  TestEnv env("race");
  Deployment deployment(env, false);
  constexpr int kJobs = 200;
  const auto now = std::chrono::system_clock::now();
  const auto due = now + 3s;
  const auto due_ms = std::chrono::duration_cast<std::chrono::milliseconds>(due.time_since_epoch()).count();
  TestProducer producer;
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("race-{}", index);
    producer.send(env.prefix + "jobs", id, fmt::format(R"({{"id":"{}","run_at_ms":"{}","noop":{{}}}})", id, due_ms));
  }
  producer.flush();
  // Cancels sent from 100 ms before to 100 ms after the due instant, one per millisecond.
  for (int index = 0; index < kJobs; ++index) {
    std::this_thread::sleep_until(due - 100ms + std::chrono::milliseconds(index));
    v1::Command cancel;
    cancel.mutable_cancel()->set_job_id(fmt::format("race-{}", index));
    producer.send(env.prefix + "jobs", cancel.cancel().job_id(), encode(cancel), -1,
                  {{"content-type", "application/x-protobuf"}});
    producer.poll();
  }
  producer.flush();
  std::this_thread::sleep_for(3s);
  const auto fired = count_by_key(read_topics(exec_topics(env.prefix), 5s));
  const auto control = count_by_key(read_topics({env.prefix + "control"}, 3s));
  std::map<std::string, std::set<std::string>> states;
  for (const auto& record : read_topics({env.prefix + "status"}, 5s))
    states[record.key].insert(record.headers.at("kcron-status"));
  int cancelled = 0;
  int reached_worker = 0;
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("race-{}", index);
    const bool was_fired = fired.count(id) > 0;
    INFO(id);
    CHECK(fired.count(id) <= 1);
    if (was_fired) {
      ++reached_worker;
      CHECK(control.count(id) == 1);  // the cancel went to kcron.control for the worker
      CHECK_FALSE(states[id].contains("CANCELLED"));
    } else {
      ++cancelled;
      CHECK(states[id].contains("CANCELLED"));
      CHECK(control.count(id) == 0);
    }
  }
  WARN(fmt::format("cancel-race: jobs={} cancelled_before_fire={} fired_then_cancel_sent_to_control={}", kJobs, cancelled,
                   reached_worker));
}

TEST_CASE("an update racing the due instant either replaces the job before it fires or is rejected, never both",
          "[integration]") {
  TestEnv env("update-race");
  Deployment deployment(env, false);
  constexpr int kJobs = 200;
  const auto due = std::chrono::system_clock::now() + 3s;
  const auto due_ms = std::chrono::duration_cast<std::chrono::milliseconds>(due.time_since_epoch()).count();
  TestProducer producer;
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("upd-{}", index);
    producer.send(env.prefix + "jobs", id,
                  fmt::format(R"({{"id":"{}","run_at_ms":"{}","payload":"{}","noop":{{}}}})", id, due_ms, "b3JpZ2luYWw="));
  }
  producer.flush();
  // Updates sent from 100 ms before to 100 ms after the due instant, one per millisecond; each keeps
  // the due instant and changes the payload, so the exec record shows which version fired.
  for (int index = 0; index < kJobs; ++index) {
    std::this_thread::sleep_until(due - 100ms + std::chrono::milliseconds(index));
    v1::Command update;
    auto* job = update.mutable_update()->mutable_job();
    job->set_id(fmt::format("upd-{}", index));
    job->set_run_at_ms(due_ms);
    job->set_payload("updated");
    job->mutable_noop();
    producer.send(env.prefix + "jobs", job->id(), encode(update), -1, {{"content-type", "application/x-protobuf"}});
    producer.poll();
  }
  producer.flush();
  const auto exec_records =
      read_topics(exec_topics(env.prefix), 20s, [&](const auto& records) { return records.size() >= std::size_t{kJobs}; });
  std::map<std::string, std::vector<std::string>> payloads;
  for (const auto& record : exec_records) {
    v1::Execution execution;
    REQUIRE(execution.ParseFromString(record.value));
    payloads[execution.job().id()].push_back(execution.job().payload());
  }
  std::map<std::string, std::string> rejected;
  for (const auto& record : read_topics({env.prefix + "dead-letters"}, 5s)) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    if (letter.state() == v1::REJECTED) rejected[record.key] = letter.reason();
  }
  int updated = 0;
  int too_late = 0;
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("upd-{}", index);
    INFO(id);
    REQUIRE(payloads[id].size() == 1);  // fired exactly once, whichever version
    if (payloads[id].front() == "updated") {
      ++updated;
      CHECK(rejected.count(id) == 0);
    } else {
      ++too_late;
      CHECK(payloads[id].front() == "original");
      REQUIRE(rejected.count(id) == 1);  // the update came after the fire: rejected with a reason
      CHECK_THAT(rejected[id], Catch::Contains("only a pending job can be updated"));
    }
  }
  WARN(fmt::format("update-race: jobs={} updated_before_fire={} rejected_after_fire={}", kJobs, updated, too_late));
}

TEST_CASE("schedule runs that come due during a dispatcher outage follow their misfire policy", "[integration]") {
  TestEnv env("misfire");
  Deployment deployment(env, false);
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  TestProducer producer;
  constexpr int kRuns = 5;
  // Three schedules, five runs each, due 4-8 s from now: accepted into the delay buckets, then the
  // dispatcher dies and comes back when every run is more than the misfire threshold (5 s) late.
  for (const std::string policy : {"FIRE_ONCE", "SKIP", "FIRE_ALL"}) {
    for (int run = 0; run < kRuns; ++run) {
      const auto id = fmt::format("{}@{}", policy, run);
      producer.send(env.prefix + "jobs", policy,
                    fmt::format(R"({{"id":"{}","run_at_ms":"{}","noop":{{}},)"
                                R"("schedule_run":{{"schedule_id":"{}","misfire":"{}","catchup_window":"120s"}}}})",
                                id, now_ms + 4000 + std::int64_t{run} * 1000, policy, policy));
    }
  }
  producer.flush();
  REQUIRE(read_topics({env.prefix + "status"}, 20s, [](const auto& records) {
            return records.size() >= std::size_t{3} * kRuns;
          }).size() >= std::size_t{3} * kRuns);
  deployment.dispatcher->kill_hard();
  const auto back_at =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(now_ms + 4000 + std::int64_t{kRuns} * 1000 + 7000));
  std::this_thread::sleep_until(back_at);
  deployment.start_dispatcher();
  const auto fired =
      count_by_key(read_topics(exec_topics(env.prefix), 30s, [](const auto& records) { return records.size() >= 1 + kRuns; }));
  std::map<std::string, int> per_schedule;
  for (const auto& [id, times] : fired) {
    CHECK(times == 1);
    ++per_schedule[id.substr(0, id.find('@'))];
  }
  CHECK(per_schedule["FIRE_ONCE"] == 1);
  CHECK(fired.count("FIRE_ONCE@4") == 1);  // the latest late run stands for all of them
  CHECK(per_schedule["SKIP"] == 0);
  CHECK(per_schedule["FIRE_ALL"] == kRuns);
  std::map<std::string, std::string> skipped;
  for (const auto& record : read_topics({env.prefix + "status"}, 5s)) {
    v1::StatusRecord status;
    REQUIRE(status.ParseFromString(record.value));
    if (status.state() == v1::SKIPPED) skipped[status.job_id()] = status.reason();
  }
  CHECK(skipped.size() == (kRuns - 1) + kRuns);
  for (const auto& [id, reason] : skipped) {
    INFO(id << ": " << reason);
    CHECK_THAT(reason, Catch::Contains("misfired"));
  }
  WARN(fmt::format("misfire-after-outage: fire_once fired={} skip fired={} fire_all fired={} skipped={}",
                   per_schedule["FIRE_ONCE"], per_schedule["SKIP"], per_schedule["FIRE_ALL"], skipped.size()));
}

TEST_CASE("overlap forbid skips a schedule run while the previous run is still running on a worker", "[integration]") {
  TestEnv env("overlap");
  Deployment deployment(env);
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  TestProducer producer;
  auto run = [&](int number, std::int64_t due_ms) {
    const auto id = fmt::format("every-2s@{}", number);
    producer.send(env.prefix + "jobs", "every-2s",
                  fmt::format(R"({{"id":"{}","run_at_ms":"{}","sleep":{{"duration":"3s"}},)"
                              R"("schedule_run":{{"schedule_id":"every-2s","overlap":"FORBID"}}}})",
                              id, due_ms));
  };
  run(1, now_ms + 1000);  // runs 3 s
  run(2, now_ms + 2000);  // while run 1 runs: SKIPPED
  run(3, now_ms + 7000);  // after run 1 finished: fires
  producer.flush();
  const auto results = read_topics({env.prefix + "results"}, 40s, [](const auto& records) { return records.size() >= 2; });
  const auto fired = count_by_key(read_topics(exec_topics(env.prefix), 3s));
  CHECK(fired.count("every-2s@1") == 1);
  CHECK(fired.count("every-2s@2") == 0);
  CHECK(fired.count("every-2s@3") == 1);
  bool skipped = false;
  for (const auto& record : read_topics({env.prefix + "status"}, 5s)) {
    v1::StatusRecord status;
    REQUIRE(status.ParseFromString(record.value));
    if (status.job_id() == "every-2s@2" && status.state() == v1::SKIPPED) {
      skipped = true;
      CHECK_THAT(status.reason(), Catch::Contains("still running (overlap forbid)"));
    }
  }
  CHECK(skipped);
  CHECK(results.size() == 2);
}
