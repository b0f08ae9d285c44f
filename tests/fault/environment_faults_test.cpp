// Environment fault tests (label `fault`, tag [environment]): the machine under the programs fails
// rather than the programs themselves: the RocksDB state dir runs out of space, the wall clock
// jumps, a broker stops or dies. Each scenario counts the committed exec records per job id (each
// must be there exactly once) and calls report_fault. A scenario that lacks what it needs (root
// for mount, libfaketime, Kafka jars for a broker of its own) reports SKIP with the reason via
// skip_scenario, never a pass. KCRON_ENV_FAULT_JOBS sets the job count where one applies.
#include <sys/mount.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

// KCRON_ENV_FAULT_JOBS, else KCRON_FAULT_JOBS (a large run), else the CI size.
int env_fault_jobs(int fallback) {
  const char* text = std::getenv("KCRON_ENV_FAULT_JOBS");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : fault_jobs(fallback);
}

// A read timeout that grows with the job count (a large run reads 100k records).
std::chrono::milliseconds scaled(std::chrono::milliseconds base, int jobs) {
  return std::max<std::chrono::milliseconds>(base, jobs * std::chrono::milliseconds(2));
}

// A tmpfs mounted for the test's lifetime; unmounted (lazily, so a late reader cannot keep it) in
// the destructor. `error` says why the mount failed, empty when mounted.
struct TmpfsMount {
  std::string path;
  std::string error;
  TmpfsMount(std::string mount_path, const std::string& size) : path(std::move(mount_path)) {
    std::filesystem::create_directories(path);
    const auto options = "size=" + size + ",mode=0755";
    if (::mount("kcron-fault", path.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      error = fmt::format("mount -t tmpfs -o {} {}: {}", options, path, std::strerror(errno));
    }
  }
  ~TmpfsMount() {
    if (error.empty()) (void)::umount2(path.c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  bool resize(const std::string& size) const {
    const auto options = "size=" + size;
    return ::mount("kcron-fault", path.c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
  }
};

std::unique_ptr<Process> start_program(const std::string& program, const TestEnv& env, const std::string& instance, int run,
                                       const std::vector<std::string>& extra = {}) {
  auto vars = env.program_env(instance);
  vars.insert(vars.end(), extra.begin(), extra.end());
  return std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}-{}.log", env.state_root, instance, run));
}

}  // namespace

// The dispatcher's state dir is a 4 MB tmpfs. Jobs with 16 kB payloads, due 30-40 s later, fill
// it; small immediate jobs keep firing in between. RocksDB's write after a committed transaction
// fails with ENOSPC: the dispatcher must exit non-zero with an error naming the state dir, and
// commit nothing more (the failed batch's exec records are committed already; a second commit of
// them would duplicate). The tmpfs is then grown and the restarted dispatcher restores from its
// checkpoint + the changelog: every job fires exactly once.
TEST_CASE("disk full under the dispatcher's state dir: it exits with a clear error and a restart fires every job once",
          "[fault][environment]") {
  TestEnv env("env-disk-full", 2, 2);
  const std::string state_dir = env.state_root + "/d1";
  TmpfsMount tmpfs(state_dir, "4m");
  if (!tmpfs.error.empty()) {
    skip_scenario("needs root to mount a small tmpfs under the state dir: " + tmpfs.error);
    return;
  }
  auto dispatcher = start_program("kcron-dispatcher", env, "d1", 1);
  REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));

  const int big_jobs = 400;  // 400 x 16 kB = 6.4 MB of WAL: more than the 4 MB
  const int small_jobs = env_fault_jobs(200);
  const std::string payload(std::size_t{16384} / 3 * 4, 'Q');  // base64 text of 16 kB of bytes
  TestProducer producer;
  const auto started = std::chrono::steady_clock::now();
  int big_sent = 0;
  int small_sent = 0;
  // Produce until the dispatcher stops (or everything is out); bounded by the job counts.
  while ((big_sent < big_jobs || small_sent < small_jobs) && dispatcher->running()) {
    for (int batch = 0; batch < 10 && big_sent < big_jobs; ++batch, ++big_sent) {
      const auto id = fmt::format("big-{}", big_sent);
      producer.send(env.prefix + "jobs", id,
                    fmt::format(R"({{"id":"{}",{},"payload":"{}","noop":{{}}}})", id,
                                delay_json(30000 + (10000LL * big_sent) / big_jobs), payload));
    }
    for (int batch = 0; batch < 5 && small_sent < small_jobs; ++batch, ++small_sent) {
      const auto id = fmt::format("small-{}", small_sent);
      producer.send(env.prefix + "jobs", id, submit_json(id, ""));
    }
    producer.flush();
    std::this_thread::sleep_for(50ms);
  }
  // Whatever was not sent before the dispatcher died is sent now, for the restarted one.
  for (; big_sent < big_jobs; ++big_sent) {
    const auto id = fmt::format("big-{}", big_sent);
    producer.send(env.prefix + "jobs", id,
                  fmt::format(R"({{"id":"{}",{},"payload":"{}","noop":{{}}}})", id, delay_json(5000), payload));
  }
  for (; small_sent < small_jobs; ++small_sent) {
    const auto id = fmt::format("small-{}", small_sent);
    producer.send(env.prefix + "jobs", id, submit_json(id, ""));
  }
  producer.flush();

  const auto exit_code = dispatcher->wait_exit(60s);
  INFO(tail_file(dispatcher->log_path()));
  REQUIRE(exit_code.has_value());
  const auto failed_at = std::chrono::steady_clock::now();
  CHECK(*exit_code == 1);  // the error exit, not an abort (134) or a signal
  CHECK(count_in_log(dispatcher->log_path(), "event=fatal") == 1);
  CHECK(count_in_log(dispatcher->log_path(), "No space left on device") >= 1);
  CHECK(count_in_log(dispatcher->log_path(), "event=revoke_commit_failed") == 0);  // nothing committed after the error
  CHECK(count_in_log(dispatcher->log_path(), state_dir) >= 1);
  const int fired_before = static_cast<int>(read_topics(exec_topics(env.prefix), 5s).size());

  // A restart on the still-full disk must fail the same clear way, not fire anything twice.
  auto second = start_program("kcron-dispatcher", env, "d1", 2);
  const auto second_exit = second->wait_exit(60s);
  INFO(tail_file(second->log_path()));
  REQUIRE(second_exit.has_value());
  CHECK(*second_exit == 1);
  CHECK(count_in_log(second->log_path(), "disk full") >= 1);

  REQUIRE(tmpfs.resize("256m"));
  auto restarted = start_program("kcron-dispatcher", env, "d1", 3);
  INFO(tail_file(restarted->log_path()));
  REQUIRE(wait_for_log(*restarted, "event=assigned", 60s));
  const auto recovery_s = seconds_since(failed_at);
  const auto exec = read_exec_until_all(env.prefix, "big-", big_jobs, 90s);
  const auto big = tally(exec, "big-", big_jobs);
  const auto small = tally(exec, "small-", small_jobs);
  const Tally all{big.sent + small.sent, big.once + small.once, big.lost + small.lost, big.duplicated + small.duplicated};
  WARN(report_fault("dispatcher-disk-full", all, recovery_s,
                    fmt::format("tmpfs=4MB exit_code={} restart_on_full_disk_exit={} fired_before_full={} run_s={:.1f}",
                                *exit_code, *second_exit, fired_before, seconds_since(started))));
  CHECK(all.lost == 0);
  CHECK(all.duplicated == 0);
  CHECK(all.once == all.sent);
  CHECK(restarted->running());
}

namespace {

const char* const kFaketimeLibrary = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

// How many of ids id_prefix-0 .. id_prefix-(count-1) have a committed exec record (once or more).
int fired_count(const std::vector<Record>& exec, const std::string& id_prefix, int count) {
  const auto result = tally(exec, id_prefix, count);
  return result.sent - result.lost;
}

// Reads the exec topics until `want` of the ids have fired or the timeout passes; the fired count.
int wait_fired(const std::string& prefix, const std::string& id_prefix, int count, int want, std::chrono::milliseconds timeout) {
  const auto exec = read_topics(exec_topics(prefix), timeout, [&](const std::vector<Record>& records) {
    return fired_count(records, id_prefix, count) >= want;
  });
  return fired_count(exec, id_prefix, count);
}

void send_jobs(TestProducer& producer, const TestEnv& env, const std::string& id_prefix, int count, std::int64_t first_delay_ms,
               std::int64_t spread_ms) {
  for (int index = 0; index < count; ++index) {
    const auto id = fmt::format("{}{}", id_prefix, index);
    producer.send(env.prefix + "jobs", id,
                  submit_json(id, first_delay_ms < 0 ? std::string() : delay_json(first_delay_ms + spread_ms * index / count)));
  }
  producer.flush();
}

void set_faketime(const std::string& path, const std::string& offset) {
  std::ofstream(path, std::ios::trunc) << offset << "\n";
}

}  // namespace

// The dispatcher runs under libfaketime (wall clock only: FAKETIME_DONT_FAKE_MONOTONIC=1) with
// an offset it re-reads every second from a file. Phase 1, clock right: immediate jobs fire,
// delayed ones (due 20-30 s later) wait. Phase 2, the clock jumps -10 min: new jobs, immediate
// ones included (a job's due instant derives from its record's timestamp, the producer's clock),
// wait for the dispatcher's clock to reach them. Phase 3, it jumps +2 h: every pending job is due
// by the dispatcher's clock; what it can commit depends on the broker (below). Phase 4: the
// dispatcher is restarted with the right clock (a supervisor would restart one that exited).
// Whatever the clock did, every job fires exactly once. See docs/architecture.md, "Clock jumps".
TEST_CASE("wall clock jumps -10 min and +2 h under the dispatcher: timing follows the clock, every job fires once",
          "[fault][environment]") {
  if (!std::filesystem::exists(kFaketimeLibrary)) {
    skip_scenario(fmt::format("libfaketime is not installed ({} missing; apt-get install libfaketime)", kFaketimeLibrary));
    return;
  }
  TestEnv env("env-clock", 2, 2);
  const int jobs = env_fault_jobs(400) / 4;  // four groups of this many
  const auto faketime_file = env.state_root + "/faketime.rc";
  set_faketime(faketime_file, "+0");
  auto dispatcher = start_program("kcron-dispatcher", env, "d1", 1,
                                  {std::string("LD_PRELOAD=") + kFaketimeLibrary, "FAKETIME_TIMESTAMP_FILE=" + faketime_file,
                                   "FAKETIME_CACHE_DURATION=1", "FAKETIME_DONT_FAKE_MONOTONIC=1"});
  INFO(tail_file(dispatcher->log_path()));
  REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  TestProducer producer;

  // Phase 1: the clock is right.
  send_jobs(producer, env, "now-a-", jobs, -1, 0);
  send_jobs(producer, env, "later-a-", jobs, 20000, 10000);
  CHECK(wait_fired(env.prefix, "now-a-", jobs, jobs, scaled(30s, jobs)) == jobs);
  const int early_before_jump = wait_fired(env.prefix, "later-a-", jobs, 1, 1s);

  // Phase 2: -10 min. New jobs, immediate and 2-4 s delayed, wait for the clock to catch up.
  set_faketime(faketime_file, "-10m");
  std::this_thread::sleep_for(2s);  // the dispatcher re-reads the offset at most every second
  send_jobs(producer, env, "now-b-", jobs, -1, 0);
  send_jobs(producer, env, "later-b-", jobs, 2000, 2000);
  std::this_thread::sleep_for(8s);
  const auto while_behind = read_topics(exec_topics(env.prefix), 5s);
  const int fired_while_behind = fired_count(while_behind, "now-b-", jobs) + fired_count(while_behind, "later-b-", jobs);
  const bool survived_behind = dispatcher->running();

  // Phase 3: +2 h. Every pending job is due by the dispatcher's clock.
  set_faketime(faketime_file, "+2h");
  const auto jumped_forward = std::chrono::steady_clock::now();
  const auto exit_ahead = dispatcher->wait_exit(25s);
  const auto while_ahead = read_topics(exec_topics(env.prefix), 5s);
  const int fired_while_ahead = fired_count(while_ahead, "later-a-", jobs) + fired_count(while_ahead, "now-b-", jobs) +
                                fired_count(while_ahead, "later-b-", jobs) - fired_while_behind;
  const int invalid_timestamp = count_in_log(dispatcher->log_path(), "INVALID_TIMESTAMP");
  const std::string log_ahead = tail_file(dispatcher->log_path(), 20);
  dispatcher->kill_hard();  // if it still runs: what a supervisor does with a stuck process

  // Phase 4: restart with the right clock.
  auto restarted = start_program("kcron-dispatcher", env, "d1", 2);
  INFO(tail_file(restarted->log_path()));
  REQUIRE(wait_for_log(*restarted, "event=assigned", 60s));
  const double recovery_s = seconds_since(jumped_forward);
  const std::vector<std::string> groups = {"now-a-", "later-a-", "now-b-", "later-b-"};
  const auto all_fired = [&](const std::vector<Record>& records) {
    return std::all_of(groups.begin(), groups.end(),
                       [&](const std::string& group) { return fired_count(records, group, jobs) >= jobs; });
  };
  read_topics(exec_topics(env.prefix), scaled(60s, 4 * jobs), all_fired);
  std::this_thread::sleep_for(2s);  // late duplicates, if any, show in the final read
  const auto exec = read_topics(exec_topics(env.prefix), scaled(30s, 4 * jobs), all_fired);
  Tally all;
  for (const auto* id_prefix : {"now-a-", "later-a-", "now-b-", "later-b-"}) {
    const auto part = tally(exec, id_prefix, jobs);
    all.sent += part.sent;
    all.once += part.once;
    all.lost += part.lost;
    all.duplicated += part.duplicated;
  }
  WARN(report_fault("dispatcher-clock-jumps", all, recovery_s,
                    fmt::format("fired_before_due={} fired_while_-10min={}/{} survived_-10min={} fired_while_+2h={} "
                                "exit_while_+2h={} invalid_timestamp_errors={}",
                                early_before_jump, fired_while_behind, 2 * jobs, survived_behind, fired_while_ahead,
                                exit_ahead ? std::to_string(*exit_ahead) : std::string("none (killed)"), invalid_timestamp)));
  INFO(log_ahead);
  CHECK(early_before_jump == 0);
  CHECK(fired_while_behind == 0);
  CHECK(all.lost == 0);
  CHECK(all.duplicated == 0);
  CHECK(all.once == all.sent);
  CHECK(restarted->running());
}

// Fire-ahead and a worker whose clock is ahead (docs/fire-ahead.md, "Clocks"). The worker's clock
// runs 2 s ahead (KCRON_FAULT_CLOCK_OFFSET_MS: libfaketime would also shift librdkafka's own
// timed waits, which stalls its consumer by the shift); the dispatcher (right clock) gives every
// job at least 3 s of lead, so each exec record reaches the worker more than 2 s before its
// instant. By its own clock the worker never starts a job early; by the true clock it starts
// each about 2 s early, which this measures (a result's arrival at the test's reader, stamped up
// to ~0.3 s late) and reports. Exactly-once firing and completion do not depend on its clock.
TEST_CASE("a worker whose clock is 2 s ahead starts jobs fired ahead that much early, each exactly once",
          "[fault][environment]") {
  TestEnv env("env-skew", 2, 2);
  const int jobs = env_fault_jobs(400) / 4;
  auto dispatcher = start_program("kcron-dispatcher", env, "d1", 1, {"KCRON_FIRE_AHEAD_MIN_LEAD_MS=3000"});
  auto worker = start_program("kcron-worker", env, "w1", 1, {"KCRON_FAULT_CLOCK_OFFSET_MS=2000"});
  INFO(tail_file(dispatcher->log_path()));
  INFO(tail_file(worker->log_path()));
  REQUIRE(wait_for_log(*dispatcher, "event=assigned", 60s));
  REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
  REQUIRE(wait_for_log(*dispatcher, "event=fire_ahead_open", 60s));
  TestProducer producer;
  send_jobs(producer, env, "skew-", jobs, 6000, 2000);

  std::map<std::string, std::int64_t> arrived;  // job id -> when its SUCCEEDED result reached the reader (true clock)
  std::map<std::string, v1::Result> results;
  int succeeded_twice = 0;
  read_topics({env.prefix + "results"}, 60s, [&](const std::vector<Record>& records) {
    const auto now = wall_ms();
    for (const auto& record : records) {
      v1::Result result;
      if (!result.ParseFromString(record.value) || !result.job_id().starts_with("skew-") || result.state() != v1::SUCCEEDED) {
        continue;
      }
      if (arrived.try_emplace(result.job_id(), now).second) results[result.job_id()] = result;
    }
    return arrived.size() >= static_cast<std::size_t>(jobs);
  });
  std::this_thread::sleep_for(2s);  // late duplicates show
  for (const auto& [id, times] : succeeded_results(read_topics({env.prefix + "results"}, 10s))) {
    if (id.starts_with("skew-") && times.size() > 1) ++succeeded_twice;
  }
  const auto exec = read_topics(exec_topics(env.prefix), 10s);
  const auto fired = tally(exec, "skew-", jobs);
  std::vector<std::int64_t> early_ms;  // due - result seen, true clock
  int started_before_due_by_own_clock = 0;
  std::int64_t worst_own_start_lag_ms = 0;  // started - due, by the worker's clock
  for (const auto& [id, result] : results) {
    worst_own_start_lag_ms = std::max(worst_own_start_lag_ms, result.started_ms() - result.due_ms());
    early_ms.push_back(result.due_ms() - arrived[id]);
    if (result.started_ms() < result.due_ms()) ++started_before_due_by_own_clock;
  }
  std::sort(early_ms.begin(), early_ms.end());
  const auto at = [&](double share) {
    return early_ms.empty()
               ? 0
               : early_ms[std::min(early_ms.size() - 1, static_cast<std::size_t>(share * static_cast<double>(early_ms.size())))];
  };
  WARN(
      report_fault("worker-clock-ahead-2s", fired, 0.0,
                   fmt::format("results={} succeeded_twice={} started_early_by_true_clock_ms: min={} p50={} max={} "
                               "started_before_due_by_own_clock={} worst_start_lag_by_own_clock_ms={}",
                               results.size(), succeeded_twice, early_ms.empty() ? 0 : early_ms.front(), at(0.5),
                               early_ms.empty() ? 0 : early_ms.back(), started_before_due_by_own_clock, worst_own_start_lag_ms)));
  CHECK(fired.lost == 0);
  CHECK(fired.duplicated == 0);
  CHECK(results.size() == static_cast<std::size_t>(jobs));
  CHECK(succeeded_twice == 0);
  CHECK(started_before_due_by_own_clock == 0);
}

namespace {

int broker_port_base() {
  const char* text = std::getenv("KCRON_ENV_FAULT_BROKER_PORT");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : 19792;
}

}  // namespace

// A broker of the test's own (one node) with a dispatcher and a worker on it. Jobs (half due at
// once, half 3-20 s later) are submitted, then the broker is stopped (SIGTERM, controlled
// shutdown) for 8 s and started again. The programs must ride it out without a restart: a consumer
// fenced by its own static-membership rejoin, or a producer fenced after its coordinator came back,
// is recreated in place. Every job fires once and succeeds once.
TEST_CASE("the only broker restarts under a dispatcher and a worker: every job fires once and succeeds once",
          "[fault][environment]") {
  const auto root = std::filesystem::temp_directory_path() / fmt::format("kcron-env-broker-{}", ::getpid());
  OwnBroker broker(broker_port_base(), root.string(), 1);
  if (!broker.started()) {
    skip_scenario("could not start a broker of its own (scripts/kafka start; Java and the Kafka jars are needed): " +
                  tail_file(broker.log(), 5));
    return;
  }
  BrokersOverride brokers_override(broker.bootstrap());
  TestEnv env("env-broker-restart", 2, 2);
  const int jobs = env_fault_jobs(200);
  std::map<std::string, std::unique_ptr<Process>> programs;
  std::map<std::string, int> runs;
  const auto start = [&](const std::string& name) {
    const auto program = name == "d1" ? "kcron-dispatcher" : "kcron-worker";
    programs[name] = start_program(program, env, name, ++runs[name]);
  };
  start("d1");
  start("w1");
  REQUIRE(wait_for_log(*programs["d1"], "event=assigned", 60s));
  REQUIRE(wait_for_log(*programs["w1"], "event=assigned", 60s));

  TestProducer producer;
  for (int index = 0; index < jobs; ++index) {
    const auto id = fmt::format("br-{}", index);
    producer.send(env.prefix + "jobs", id,
                  submit_json(id, index % 2 == 0 ? std::string() : delay_json(3000 + (17000LL * index) / jobs)));
  }
  producer.flush();
  std::this_thread::sleep_for(2s);

  const auto stopped_at = std::chrono::steady_clock::now();
  REQUIRE(broker.run("stop") == 0);
  std::this_thread::sleep_for(8s);
  REQUIRE(broker.run("start") == 0);
  const double downtime_s = seconds_since(stopped_at);

  // No supervisor: the programs must ride it out (a fenced consumer or producer is recreated).
  std::string exits;
  const auto exec = read_exec_until_all(env.prefix, "br-", jobs, scaled(90s, jobs));
  const double recovery_s = seconds_since(stopped_at) - downtime_s;
  const auto fired = tally(exec, "br-", jobs);

  std::map<std::string, int> succeeded;
  const auto count = [&](const std::vector<Record>& records) {
    succeeded.clear();
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value) && result.state() == v1::SUCCEEDED) ++succeeded[result.job_id()];
    }
    return succeeded.size() >= static_cast<std::size_t>(jobs);
  };
  read_topics({env.prefix + "results"}, scaled(60s, jobs), count);
  std::this_thread::sleep_for(2s);
  count(read_topics({env.prefix + "results"}, 10s));
  int succeeded_once = 0;
  int succeeded_twice = 0;
  for (const auto& [id, times] : succeeded) {
    succeeded_once += times == 1 ? 1 : 0;
    succeeded_twice += times > 1 ? 1 : 0;
  }
  for (const auto* name : {"d1", "w1"}) {
    exits += fmt::format("{}_running={} {}_heals=[{}] ", name, programs[name]->running(), name,
                         heal_events(programs[name]->log_path()));
  }
  WARN(report_fault("single-broker-restart", fired, recovery_s,
                    fmt::format("downtime_s={:.1f} succeeded_once={} succeeded_twice={} {}", downtime_s, succeeded_once,
                                succeeded_twice, exits)));
  INFO(tail_file(programs["d1"]->log_path()));
  INFO(tail_file(programs["w1"]->log_path()));
  CHECK(fired.lost == 0);
  CHECK(fired.duplicated == 0);
  CHECK(fired.once == jobs);
  CHECK(succeeded_once == jobs);
  CHECK(succeeded_twice == 0);
  CHECK(programs["d1"]->running());
  CHECK(programs["w1"]->running());
}

namespace {

int cluster_port_base() {
  const char* text = std::getenv("KCRON_ENV_FAULT_CLUSTER_PORT");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : 19810;
}

// The partition of __transaction_state (or __consumer_offsets) whose leader coordinates a
// transactional id (or a group id): Kafka's Utils.abs(id.hashCode()) % 50 (the default
// transaction.state.log.num.partitions and offsets.topic.num.partitions). Java's String.hashCode
// over UTF-16 units equals this over bytes for an ASCII id.
std::int32_t coordinator_partition(const std::string& id, std::int32_t partitions = 50) {
  std::uint32_t hash = 0;
  for (const char c : id) hash = 31U * hash + static_cast<unsigned char>(c);
  const auto signed_hash = static_cast<std::int32_t>(hash);
  const std::int32_t magnitude = signed_hash == std::numeric_limits<std::int32_t>::min() ? 0 : std::abs(signed_hash);
  return magnitude % partitions;
}

}  // namespace

// A 3-broker cluster of the test's own (replication factor 3, min.insync.replicas 2, transaction
// state log replicated 3 with min ISR 2: scripts/kafka's 3-node mode). A dispatcher and a worker
// run while jobs stream in for about 12 s (half immediate, half due 2-15 s later). 4 s into the
// stream the broker coordinating the dispatcher's transactional id (it also leads jobs partitions)
// is SIGKILLed (`scripts/kafka kill-node`); 10 s later it is started again. The programs must heal
// in place (no restart); every job fires once and succeeds once.
// KCRON_ENV_FAULT_CLUSTER_PORT (default 19810; 6 ports) and KCRON_ENV_FAULT_JOBS size it.
TEST_CASE("a 3-broker cluster loses its jobs leader (kill -9): every job fires once and succeeds once", "[fault][environment]") {
  const auto root = std::filesystem::temp_directory_path() / fmt::format("kcron-env-cluster-{}", ::getpid());
  const auto cluster_started = std::chrono::steady_clock::now();
  OwnBroker cluster(cluster_port_base(), root.string(), 3);
  if (!cluster.started()) {
    skip_scenario(
        "could not start a 3-broker cluster of its own (scripts/kafka start --brokers 3; Java and the Kafka jars "
        "are needed): " +
        tail_file(cluster.log(), 5));
    return;
  }
  const double cluster_start_s = seconds_since(cluster_started);
  // scripts/kafka start reuses whatever answers on the ports: this test kills nodes, so they must be its own.
  if (count_in_log(cluster.log(), "not from a node started in") > 0) {
    FAIL("ports " << cluster.bootstrap() << " are taken by a cluster this test did not start (set KCRON_ENV_FAULT_CLUSTER_PORT)");
  }
  BrokersOverride brokers_override(cluster.bootstrap());
  TestEnv env("env-broker-kill", 4, 2, 3);
  const int jobs = env_fault_jobs(240);
  std::map<std::string, std::unique_ptr<Process>> programs;
  std::map<std::string, int> runs;
  const auto start = [&](const std::string& name) {
    const auto program = name == "d1" ? "kcron-dispatcher" : "kcron-worker";
    programs[name] = start_program(program, env, name, ++runs[name]);
  };
  start("d1");
  start("w1");
  // A program that exits before its first assignment is restarted too (at most twice), reported.
  std::string exits;
  const auto wait_assigned = [&](const std::string& name) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (wait_for_log(*programs[name], "event=assigned", 60s)) return true;
      const auto code = programs[name]->wait_exit(0ms);
      if (!code) return false;
      exits += fmt::format("{}_startup_exit={} ", name, *code);
      WARN(name << " exited before its first assignment, exit " << *code << ":\n" << tail_file(programs[name]->log_path(), 15));
      start(name);
    }
    return false;
  };
  REQUIRE(wait_assigned("d1"));
  REQUIRE(wait_assigned("w1"));

  // The victim: the transaction coordinator of the dispatcher's transactional id if it also leads a
  // jobs partition, else the leader of jobs partition 0.
  const auto jobs_leaders = cluster.leaders(env.prefix + "jobs");
  REQUIRE(jobs_leaders.size() == 4);
  const auto dispatcher_txn = env.prefix + "dispatcher-d1";
  const auto worker_txn = env.prefix + "worker-w1";
  const auto txn_leaders = cluster.leaders("__transaction_state");
  const auto group_leaders = cluster.leaders("__consumer_offsets");
  const auto coordinator_of = [](const std::map<std::int32_t, std::int32_t>& leaders, const std::string& id) {
    const auto found = leaders.find(coordinator_partition(id));
    return found == leaders.end() ? -1 : found->second;
  };
  const int dispatcher_coordinator = coordinator_of(txn_leaders, dispatcher_txn);
  const int worker_coordinator = coordinator_of(txn_leaders, worker_txn);
  // Group coordinators: a program whose group coordinator dies sees its session time out.
  const int dispatcher_group_coordinator = coordinator_of(group_leaders, env.prefix + "dispatcher");
  const int worker_group_coordinator = coordinator_of(group_leaders, env.prefix + "workers");
  int victim = jobs_leaders.at(0);
  int victim_jobs_partitions = 0;
  for (const auto& [partition, leader] : jobs_leaders) victim_jobs_partitions += leader == dispatcher_coordinator ? 1 : 0;
  if (victim_jobs_partitions > 0) {
    victim = dispatcher_coordinator;
  } else {
    for (const auto& [partition, leader] : jobs_leaders) victim_jobs_partitions += leader == victim ? 1 : 0;
  }
  REQUIRE(victim >= 1);
  REQUIRE(victim <= 3);

  // The stream: `jobs` jobs over 12 s in 24 batches; job i is immediate when even, else due
  // 2-15 s after it is sent. Due instants (producer's clock) are kept for the lag.
  std::map<std::string, std::int64_t> due_ms;
  TestProducer producer;
  const auto stream_start = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> killed_at;
  int kill_status = -1;
  int sent = 0;
  for (int batch = 0; batch < 24; ++batch) {
    const int until = jobs * (batch + 1) / 24;
    for (; sent < until; ++sent) {
      const auto id = fmt::format("bk-{}", sent);
      const std::int64_t delay = sent % 2 == 0 ? 0 : 2000 + (13000LL * sent) / jobs;
      due_ms[id] = wall_ms() + delay;
      producer.send(env.prefix + "jobs", id, submit_json(id, delay == 0 ? std::string() : delay_json(delay)));
    }
    producer.poll();
    if (!killed_at && std::chrono::steady_clock::now() - stream_start >= 4s) {
      killed_at = std::chrono::steady_clock::now();
      kill_status = cluster.run(fmt::format("kill-node {}", victim));
    }
    std::this_thread::sleep_until(stream_start + (batch + 1) * 500ms);
  }
  producer.flush();
  REQUIRE(killed_at.has_value());
  REQUIRE(kill_status == 0);
  std::this_thread::sleep_until(*killed_at + 10s);
  const auto restart_began = std::chrono::steady_clock::now();
  const int restart_status = cluster.run(fmt::format("start-node {}", victim));
  const double downtime_s = seconds_since(*killed_at);
  const double node_start_s = seconds_since(restart_began);

  const auto exec = read_exec_until_all(env.prefix, "bk-", jobs, scaled(90s, jobs));
  const auto fired = tally(exec, "bk-", jobs);
  std::map<std::string, std::vector<std::int64_t>> succeeded;
  read_topics({env.prefix + "results"}, scaled(60s, jobs), [&](const std::vector<Record>& records) {
    succeeded = succeeded_results(records);
    return succeeded.size() >= static_cast<std::size_t>(jobs);
  });
  std::this_thread::sleep_for(2s);
  succeeded = succeeded_results(read_topics({env.prefix + "results"}, 10s));

  int succeeded_once = 0;
  int succeeded_twice = 0;
  std::int64_t max_fire_lag_ms = 0;  // exec record produced - due
  std::int64_t max_done_lag_ms = 0;  // SUCCEEDED result produced (after the exec commit) - due
  for (const auto& record : exec) {
    if (const auto found = due_ms.find(record.key); found != due_ms.end() && record.timestamp_ms > 0) {
      max_fire_lag_ms = std::max(max_fire_lag_ms, record.timestamp_ms - found->second);
    }
  }
  for (const auto& [id, times] : succeeded) {
    succeeded_once += times.size() == 1 ? 1 : 0;
    succeeded_twice += times.size() > 1 ? 1 : 0;
    if (const auto found = due_ms.find(id); found != due_ms.end() && !times.empty()) {
      max_done_lag_ms = std::max(max_done_lag_ms, times.front() - found->second);
    }
  }
  // No supervisor after the start: losing a coordinator or a leader is healed in place.
  for (const auto* name : {"d1", "w1"}) {
    if (const auto code = programs[name]->wait_exit(0ms)) {
      exits += fmt::format("{}_exit={} ({}) ", name, *code, fatal_reason(programs[name]->log_path()));
    }
    exits += fmt::format("{}_running={} {}_heals=[{}] ", name, programs[name]->running(), name,
                         heal_events(programs[name]->log_path()));
  }
  // Recovery: the longest a job waited past its due instant until its SUCCEEDED result.
  WARN(report_fault("broker-kill-leader-3", fired, static_cast<double>(max_done_lag_ms) / 1000.0,
                    fmt::format("killed_node={} led_jobs_partitions={}/4 dispatcher_txn_coordinator={} "
                                "worker_txn_coordinator={} dispatcher_group_coordinator={} worker_group_coordinator={} "
                                "downtime_s={:.1f} node_restart_s={:.1f} cluster_start_s={:.1f} "
                                "max_fire_lag_s={:.1f} succeeded_once={} succeeded_twice={} {}",
                                victim, victim_jobs_partitions, dispatcher_coordinator, worker_coordinator,
                                dispatcher_group_coordinator, worker_group_coordinator, downtime_s, node_start_s, cluster_start_s,
                                static_cast<double>(max_fire_lag_ms) / 1000.0, succeeded_once, succeeded_twice, exits)));
  INFO(tail_file(programs["d1"]->log_path()));
  INFO(tail_file(programs["w1"]->log_path()));
  CHECK(restart_status == 0);
  CHECK(fired.lost == 0);
  CHECK(fired.duplicated == 0);
  CHECK(fired.once == jobs);
  CHECK(succeeded_once == jobs);
  CHECK(succeeded_twice == 0);
  CHECK(programs["d1"]->running());
  CHECK(programs["w1"]->running());
}
