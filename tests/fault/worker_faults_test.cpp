// Worker fault test (label `fault`): three workers share a queue; one is killed with SIGKILL
// while its slots run jobs. Every job must end with exactly one SUCCEEDED result: the dead
// worker's unpublished jobs run again on their partition's next owner, and jobs it published are
// never run or published again (done markers, committed offsets).
#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

TEST_CASE("three workers share a queue, after one is killed mid-job every job has exactly one SUCCEEDED result", "[fault]") {
  // 6 exec partitions so every worker owns some.
  TestEnv env("workerkill", 4, 6);
  const auto start = [&](const std::string& program, const std::string& instance) {
    auto vars = env.program_env(instance);
    vars.push_back("KCRON_SLOTS=3");
    auto process = std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}.log", env.state_root, instance));
    INFO(tail_file(process->log_path()));
    REQUIRE(wait_for_log(*process, "event=assigned", 60s));
    return process;
  };
  auto dispatcher = start("kcron-dispatcher", "d1");
  auto w1 = start("kcron-worker", "w1");
  auto w2 = start("kcron-worker", "w2");
  auto w3 = start("kcron-worker", "w3");
  std::this_thread::sleep_for(3s);  // let the group settle with three members

  constexpr int kJobs = 90;
  TestProducer producer;
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("job-{}", index);
    // 0.5-1.5 s each: 9 slots take ~8 s, so the kill lands while slots are busy.
    producer.send(env.prefix + "jobs", id,
                  fmt::format(R"({{"id":"{}","sleep":{{"duration":"{:.3f}s"}}}})", id, 0.5 + ((index * 37) % 1000) / 1000.0), -1,
                  {{"content-type", "application/json"}});
  }
  producer.flush();
  std::this_thread::sleep_for(3s);
  w2->kill_hard();

  std::map<std::string, int> succeeded;
  const auto count = [&](const std::vector<Record>& records) {
    succeeded.clear();
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value) && result.state() == v1::SUCCEEDED) ++succeeded[result.job_id()];
    }
    return succeeded.size() >= static_cast<std::size_t>(kJobs);
  };
  read_topics({env.prefix + "results"}, 120s, count);
  std::this_thread::sleep_for(3s);  // late duplicates, if any, show up
  count(read_topics({env.prefix + "results"}, 10s));
  int once = 0;
  int duplicated = 0;
  for (const auto& [id, times] : succeeded) (times == 1 ? once : duplicated) += 1;
  const int lost = kJobs - static_cast<int>(succeeded.size());
  WARN(report_fault("worker-sigkill", kJobs, once, lost, duplicated, -1,
                    fmt::format("done_marker_loads={}", count_in_log(w1->log_path(), "event=done_markers_loaded") +
                                                            count_in_log(w3->log_path(), "event=done_markers_loaded"))));
  CHECK(lost == 0);
  CHECK(duplicated == 0);
  CHECK(once == kJobs);
}

TEST_CASE("a worker frozen past its session timeout publishes nothing when it wakes up, every job succeeds once", "[fault]") {
  TestEnv env("workerzombie", 4, 4);
  const auto start = [&](const std::string& program, const std::string& instance) {
    auto vars = env.program_env(instance);
    vars.push_back("KCRON_SLOTS=3");
    auto process = std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}.log", env.state_root, instance));
    INFO(tail_file(process->log_path()));
    REQUIRE(wait_for_log(*process, "event=assigned", 60s));
    return process;
  };
  auto dispatcher = start("kcron-dispatcher", "d1");
  auto w1 = start("kcron-worker", "w1");
  auto w2 = start("kcron-worker", "w2");
  std::this_thread::sleep_for(3s);  // let the group settle with two members

  constexpr int kJobs = 60;
  TestProducer producer;
  for (int index = 0; index < kJobs; ++index) {
    const auto id = fmt::format("job-{}", index);
    producer.send(env.prefix + "jobs", id,
                  fmt::format(R"({{"id":"{}","sleep":{{"duration":"{:.3f}s"}}}})", id, 0.3 + ((index * 37) % 700) / 1000.0), -1,
                  {{"content-type", "application/json"}});
  }
  producer.flush();
  std::this_thread::sleep_for(2s);
  // Frozen with jobs on its slots: past session.timeout.ms (6 s) the group gives its partitions
  // to w1, which runs those jobs again. Thawed, w2's finished jobs must not be published.
  const int assignments_before = count_in_log(w1->log_path(), "event=assigned");
  REQUIRE(::kill(w2->pid(), SIGSTOP) == 0);
  const auto frozen_at = std::chrono::steady_clock::now();
  const auto deadline = frozen_at + 40s;
  while (count_in_log(w1->log_path(), "event=assigned") <= assignments_before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  const double takeover_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - frozen_at).count();
  REQUIRE(count_in_log(w1->log_path(), "event=assigned") > assignments_before);
  std::this_thread::sleep_for(5s);
  REQUIRE(::kill(w2->pid(), SIGCONT) == 0);

  std::map<std::string, int> succeeded;
  const auto count = [&](const std::vector<Record>& records) {
    succeeded.clear();
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value) && result.state() == v1::SUCCEEDED) ++succeeded[result.job_id()];
    }
    return succeeded.size() >= static_cast<std::size_t>(kJobs);
  };
  read_topics({env.prefix + "results"}, 120s, count);
  std::this_thread::sleep_for(5s);  // the zombie's late commits, if any, would show up now
  count(read_topics({env.prefix + "results"}, 10s));
  int once = 0;
  int duplicated = 0;
  for (const auto& [id, times] : succeeded) (times == 1 ? once : duplicated) += 1;
  const int lost = kJobs - static_cast<int>(succeeded.size());
  WARN(report_fault("worker-zombie-sigstop", kJobs, once, lost, duplicated, takeover_s,
                    fmt::format("zombie_aborts={} zombie_exited={}", count_in_log(w2->log_path(), "event=transaction_abort"),
                                w2->running() ? "no" : "yes")));
  CHECK(lost == 0);
  CHECK(duplicated == 0);
  CHECK(once == kJobs);
}
