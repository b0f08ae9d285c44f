// The cron-producer end to end on the real broker: a schedule produced to kcron.schedules runs
// on a worker at each tick, exactly once, across a SIGKILL of the cron-producer; and `kcron
// schedule lint` names the stored schedules that cronie's day rule changes.
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Process> start_program(TestEnv& env, const std::string& program, const std::string& instance, int launch) {
  auto vars = env.program_env(instance);
  vars.emplace_back("KCRON_SCHEDULES_PARTITIONS=2");
  auto process =
      std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}-{}.log", env.state_root, instance, launch));
  INFO(tail_file(process->log_path()));
  REQUIRE(wait_for_log(*process, "event=assigned", 60s));
  return process;
}

// Nominal instants (epoch s) of the committed runs of a schedule, with how often each fired.
std::map<std::int64_t, int> runs_of(const std::vector<Record>& exec, const std::string& schedule_id) {
  std::map<std::int64_t, int> runs;
  for (const auto& record : exec) {
    v1::Execution execution;
    REQUIRE(execution.ParseFromString(record.value));
    if (execution.job().schedule_run().schedule_id() == schedule_id)
      ++runs[execution.job().schedule_run().nominal_instant().seconds()];
  }
  return runs;
}

struct Run {
  int count = 0;
  std::int64_t max_lateness_ms = 0;  // fired - nominal
};

std::map<std::int64_t, Run> run_details(const std::vector<Record>& exec, const std::string& schedule_id) {
  std::map<std::int64_t, Run> runs;
  for (const auto& record : exec) {
    v1::Execution execution;
    REQUIRE(execution.ParseFromString(record.value));
    const auto& run = execution.job().schedule_run();
    if (run.schedule_id() != schedule_id) continue;
    auto& entry = runs[run.nominal_instant().seconds()];
    ++entry.count;
    entry.max_lateness_ms = std::max(entry.max_lateness_ms, execution.fired_ms() - run.nominal_instant().seconds() * 1000);
  }
  return runs;
}

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Waits (bounded) until the committed runs of each schedule satisfy `done`, so a phase of a test
// starts from what the topics show rather than from a guess at how long start-up takes (which an
// ASan build on a loaded 2-core machine stretches).
void wait_for_runs(TestEnv& env, const std::vector<std::string>& schedule_ids,
                   const std::function<bool(const std::map<std::int64_t, Run>&)>& done, std::chrono::seconds timeout) {
  bool satisfied = false;
  read_topics(exec_topics(env.prefix), timeout, [&](const std::vector<Record>& records) {
    for (const auto& id : schedule_ids) {
      if (!done(run_details(records, id))) return false;
    }
    satisfied = true;
    return true;
  });
  INFO("waited for the schedules' runs");
  REQUIRE(satisfied);
}

auto at_least(std::size_t count, std::int64_t after_s = 0) {
  return [count, after_s](const std::map<std::int64_t, Run>& runs) {
    std::size_t seen = 0;
    for (const auto& [second, run] : runs) seen += second > after_s ? 1 : 0;
    return seen >= count;
  };
}

void put_schedule(TestProducer& producer, TestEnv& env, const std::string& id, const std::string& json) {
  producer.send(env.prefix + "schedules", id, json, -1, {{"content-type", "application/json"}});
  producer.flush();
}

}  // namespace

namespace {

// Runs of a schedule that ran: its SUCCEEDED results, by due second (a run is due at its nominal instant).
std::map<std::int64_t, int> started_runs(const std::vector<Record>& results, const std::string& schedule_id) {
  std::map<std::int64_t, int> runs;
  for (const auto& record : results) {
    v1::Result result;
    if (!result.ParseFromString(record.value) || result.state() != v1::SUCCEEDED) continue;
    if (!result.job_id().starts_with(schedule_id + "@")) continue;
    ++runs[result.due_ms() / 1000];
  }
  return runs;
}

// Waits (bounded) until at least `count` runs due after `after_s` have run.
void wait_for_started(TestEnv& env, const std::string& schedule_id, std::size_t count, std::int64_t after_s,
                      std::chrono::seconds timeout) {
  bool satisfied = false;
  read_topics({env.prefix + "results"}, timeout, [&](const std::vector<Record>& records) {
    std::size_t seen = 0;
    for (const auto& [second, times] : started_runs(records, schedule_id)) seen += second > after_s ? 1 : 0;
    satisfied = seen >= count;
    return satisfied;
  });
  INFO("waited for the schedule's runs to run");
  REQUIRE(satisfied);
}

}  // namespace

// With fire-ahead a run can be on its exec topic before its instant, and a pause, an update or a
// delete cancels the runs emitted ahead, through the workers when they have fired: what counts is
// which runs *ran* (their results), not which exec records exist.
TEST_CASE("update, pause and delete of a schedule take effect without a restart", "[integration]") {
  TestEnv env("cronlive");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", 1);
  auto worker = start_program(env, "kcron-worker", "w1", 1);
  auto cron_producer = start_program(env, "kcron-cron-producer", "c1", 1);
  TestProducer producer;
  const std::string every_second = R"({"id":"live","expression":"*/1 * * * * *","job_template":{"noop":{}}})";
  put_schedule(producer, env, "live", every_second);
  wait_for_started(env, "live", 3, 0, 60s);
  const auto paused_at = now_s();
  put_schedule(producer, env, "live", R"({"id":"live","expression":"*/1 * * * * *","paused":true,"job_template":{"noop":{}}})");
  std::this_thread::sleep_for(4s);
  const auto resumed_at = now_s();
  put_schedule(producer, env, "live", R"({"id":"live","expression":"*/2 * * * * *","job_template":{"noop":{}}})");
  wait_for_started(env, "live", 2, resumed_at, 60s);
  const auto deleted_at = now_s();
  producer.send(env.prefix + "schedules", "live", "", -1, {});  // tombstone
  producer.flush();
  std::this_thread::sleep_for(4s);

  const auto runs = started_runs(read_topics({env.prefix + "results"}, 5s), "live");
  int before_pause = 0;
  int while_paused = 0;
  int after_resume = 0;
  int odd_after_resume = 0;
  int after_delete = 0;
  for (const auto& [second, count] : runs) {
    CHECK(count == 1);
    if (second <= paused_at) ++before_pause;  // a run due in the second the pause was sent may run
    if (second > paused_at + 1 && second < resumed_at) ++while_paused;
    if (second > resumed_at && second <= deleted_at) {
      ++after_resume;
      odd_after_resume += second % 2 != 0 ? 1 : 0;
    }
    if (second > deleted_at + 1) ++after_delete;
  }
  WARN(
      fmt::format("cron-live: runs that ran every second before pause={} while paused={} every 2 s after update={} (odd={}) "
                  "after delete={}",
                  before_pause, while_paused, after_resume, odd_after_resume, after_delete));
  CHECK(before_pause >= 3);  // `*/1 * * * * *` fires once per second
  CHECK(while_paused == 0);
  CHECK(after_resume >= 2);
  CHECK(odd_after_resume == 0);
  CHECK(after_delete == 0);
}

TEST_CASE("after every cron-producer was down for 15 s, each misfire policy does what it says", "[integration]") {
  TestEnv env("misfire");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", 1);
  auto cron_producer = start_program(env, "kcron-cron-producer", "c1", 1);
  TestProducer producer;
  for (const auto* policy : {"SKIP", "FIRE_ONCE", "FIRE_ALL"}) {
    put_schedule(producer, env, policy,
                 fmt::format(R"({{"id":"{}","expression":"*/1 * * * * *","misfire":"{}","catchup_window":"60s",)"
                             R"("job_template":{{"noop":{{}}}}}})",
                             policy, policy));
  }
  wait_for_runs(env, {"SKIP", "FIRE_ONCE", "FIRE_ALL"}, at_least(2), 60s);
  cron_producer->kill_hard();
  // Longer than the 5 s look-ahead plus the 5 s misfire threshold, with room to spare: a restart
  // that restores in a fraction of a second still finds several runs missed.
  std::this_thread::sleep_for(15s);
  cron_producer = start_program(env, "kcron-cron-producer", "c1", 2);
  const auto restarted_at = now_s();
  wait_for_runs(env, {"SKIP", "FIRE_ONCE", "FIRE_ALL"}, at_least(3, restarted_at), 60s);
  const auto exec = read_topics(exec_topics(env.prefix), 5s);
  std::map<std::string, std::pair<int, int>> late_and_gaps;  // policy -> runs fired > 5 s late, seconds missing
  for (const auto* policy : {"SKIP", "FIRE_ONCE", "FIRE_ALL"}) {
    const auto runs = run_details(exec, policy);
    REQUIRE(runs.size() >= 5);
    int late = 0;
    int missing = 0;
    for (auto second = runs.begin()->first; second <= runs.rbegin()->first; ++second) {
      const auto found = runs.find(second);
      if (found == runs.end()) {
        ++missing;
        continue;
      }
      CHECK(found->second.count == 1);
      late += found->second.max_lateness_ms > 5000 ? 1 : 0;
    }
    late_and_gaps[policy] = {late, missing};
  }
  WARN(fmt::format(
      "misfire after a 15 s outage: skip late={} missing={}; fire_once late={} missing={}; fire_all late={} missing={}",
      late_and_gaps["SKIP"].first, late_and_gaps["SKIP"].second, late_and_gaps["FIRE_ONCE"].first,
      late_and_gaps["FIRE_ONCE"].second, late_and_gaps["FIRE_ALL"].first, late_and_gaps["FIRE_ALL"].second));
  CHECK(late_and_gaps["SKIP"].first == 0);
  CHECK(late_and_gaps["SKIP"].second >= 2);  // ~15 s down minus the look-ahead and the threshold
  // One catch-up run; and at most one more: the run due just before the restart was released
  // within the 5 s misfire threshold (so it fires as a normal run, not a misfire) but, with the
  // dispatch after it, can start more than 5 s after its instant on a loaded machine.
  CHECK(late_and_gaps["FIRE_ONCE"].first >= 1);
  CHECK(late_and_gaps["FIRE_ONCE"].first <= 2);
  CHECK(late_and_gaps["FIRE_ONCE"].second >= 1);
  CHECK(late_and_gaps["FIRE_ALL"].first >= 2);
  CHECK(late_and_gaps["FIRE_ALL"].second == 0);
}

TEST_CASE("a schedule runs at every tick, exactly once, across a SIGKILL of the cron-producer", "[integration]") {
  TestEnv env("cron");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", 1);
  auto worker = start_program(env, "kcron-worker", "w1", 1);
  auto producer_process = start_program(env, "kcron-cron-producer", "c1", 1);

  TestProducer producer;
  producer.send(env.prefix + "schedules", "every-2s",
                R"({"id":"every-2s","expression":"*/2 * * * * *","time_zone":"Europe/Berlin","misfire":"FIRE_ALL",)"
                R"("catchup_window":"60s","job_template":{"noop":{}}})",
                -1, {{"content-type", "application/json"}});
  producer.send(env.prefix + "schedules", "broken", R"({"id":"broken","expression":"0 0 30 2 *","job_template":{"noop":{}}})", -1,
                {{"content-type", "application/json"}});
  producer.flush();
  wait_for_runs(env, {"every-2s"}, at_least(3), 60s);
  producer_process->kill_hard();
  std::this_thread::sleep_for(1s);
  producer_process = start_program(env, "kcron-cron-producer", "c1", 2);
  const auto restarted_at = now_s();
  wait_for_runs(env, {"every-2s"}, at_least(4, restarted_at), 60s);

  const auto exec = read_topics(exec_topics(env.prefix), 10s);
  const auto runs = runs_of(exec, "every-2s");
  REQUIRE(runs.size() >= 6);
  // Every 2 s from the first run to the last: none missing, none twice.
  const auto first = runs.begin()->first;
  const auto last = runs.rbegin()->first;
  int doubled = 0;
  int missing = 0;
  for (auto instant = first; instant <= last; instant += 2) {
    const auto found = runs.find(instant);
    missing += found == runs.end() ? 1 : 0;
    doubled += found != runs.end() && found->second > 1 ? 1 : 0;
  }
  WARN(fmt::format("cron-failover: runs={} first={} last={} missing={} doubled={}", runs.size(), first, last, missing, doubled));
  CHECK(missing == 0);
  CHECK(doubled == 0);
  CHECK(last - first >= 12);

  bool rejected = false;
  for (const auto& record : read_topics({env.prefix + "dead-letters"}, 3s)) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    if (record.key == "broken") {
      rejected = true;
      CHECK_THAT(letter.reason(), Catch::Contains("never"));
    }
  }
  CHECK(rejected);
}

TEST_CASE("kcron schedule lint names only the stored schedules whose fires change under cronie's day rule", "[integration]") {
  TestEnv env("cronlint");
  const auto empty = run_cli(env, "schedule lint --from 2026-01-01T00:00:00Z");
  CHECK(empty.exit_code == 0);
  CHECK(empty.output ==
        fmt::format("no stored schedule fires differently under cronie's day rule (0 checked in {}schedules)\n", env.prefix));

  // Affected: */15 with a day-of-week fired on every Friday and Saturday before, now only on the
  // 1st, 16th and 31st that are one. Not affected: a plain weekday schedule (JSON on the topic).
  // Deleted: an affected schedule whose tombstone came later.
  const auto put = run_cli(
      env,
      R"(schedule put '{"id":"friday-report","expression":"59 9-15 */15 * 5-6","time_zone":"Europe/Berlin","job_template":{"noop":{}}}')");
  REQUIRE(put.exit_code == 0);
  TestProducer producer;
  put_schedule(producer, env, "weekdays", R"({"id":"weekdays","expression":"0 9 * * MON-FRI","job_template":{"noop":{}}})");
  REQUIRE(run_cli(env, R"(schedule put '{"id":"gone","expression":"0 0 */2 * MON","job_template":{"noop":{}}}')").exit_code == 0);
  REQUIRE(run_cli(env, "schedule delete gone").exit_code == 0);
  // Another tenant's schedule, keyed by its scoped key, is checked too and names its tenant.
  REQUIRE(
      run_cli(env, R"(--tenant acme schedule put '{"id":"odd-mondays","expression":"0 6 */2 * MON","job_template":{"noop":{}}}')")
          .exit_code == 0);

  const auto lint = run_cli(env, "schedule lint --from 2026-01-01T00:00:00Z --count 3");
  CHECK(lint.exit_code == 1);
  CHECK(lint.output ==
        "schedule odd-mondays (tenant acme): '0 6 */2 * MON' in UTC fires differently from Thu 2026-01-01\n"
        "  before: at 06:00 on every 2nd day of the month or on Monday\n"
        "  after:  at 06:00 on every 2nd day of the month if that day is a Monday\n"
        "  next before                          next after\n"
        "  Thu 2026-01-01 06:00:00 +00:00 UTC   Mon 2026-01-05 06:00:00 +00:00 UTC\n"
        "  Sat 2026-01-03 06:00:00 +00:00 UTC   Mon 2026-01-19 06:00:00 +00:00 UTC\n"
        "  Mon 2026-01-05 06:00:00 +00:00 UTC   Mon 2026-02-09 06:00:00 +00:00 UTC\n"
        "\n"
        "schedule friday-report: '59 9-15 */15 * 5-6' in Europe/Berlin fires differently from Thu 2026-01-01\n"
        "  before: at minute 59 between 09:00 and 15:59 on days 1, 16 and 31 of the month or on Friday through Saturday\n"
        "  after:  at minute 59 between 09:00 and 15:59 on days 1, 16 and 31 of the month if that day is a Friday or Saturday\n"
        "  next before                          next after\n"
        "  Thu 2026-01-01 09:59:00 +01:00 CET   Fri 2026-01-16 09:59:00 +01:00 CET\n"
        "  Thu 2026-01-01 10:59:00 +01:00 CET   Fri 2026-01-16 10:59:00 +01:00 CET\n"
        "  Thu 2026-01-01 11:59:00 +01:00 CET   Fri 2026-01-16 11:59:00 +01:00 CET\n"
        "\n"
        "2 of 3 stored schedules fire differently under cronie's day rule (see cron-producer/README.md)\n");
}
