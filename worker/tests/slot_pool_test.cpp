// The slot pool with real threads, registered handlers and a manual clock. Waits are bounded
// polls (a few seconds at most) for what other threads do; nothing asserts a duration.
#include "core/slot_pool.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>

using namespace kcron;
using namespace kcron::worker;
using std::chrono::milliseconds;

namespace {

Attempt attempt_of(std::string id, Band band, std::string handler = "record") {
  Attempt attempt;
  attempt.execution.mutable_job()->set_id(std::move(id));
  attempt.execution.mutable_job()->mutable_handler()->set_name(std::move(handler));
  attempt.control = std::make_shared<AttemptControl>();
  attempt.band = band;
  return attempt;
}

// Collects finished attempts until `count` arrived or 5 s passed.
std::vector<Attempt> finished(SlotPool& pool, std::size_t count) {
  std::vector<Attempt> all;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (all.size() < count && std::chrono::steady_clock::now() < deadline) {
    for (auto& attempt : pool.take_finished()) all.push_back(std::move(attempt));
    std::this_thread::sleep_for(milliseconds(2));
  }
  return all;
}

bool eventually(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!condition() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(2));
  return condition();
}

// Releases blocked handlers when a test leaves early (a failed REQUIRE), before the pool joins.
struct Release {
  std::atomic<bool>& flag;
  ~Release() { flag = true; }
};

struct Recorder {
  std::mutex mutex;
  std::vector<std::string> order;
  Handler handler() {
    return [this](const v1::Job& job, const std::atomic<bool>&) {
      std::lock_guard lock(mutex);
      order.push_back(job.id());
      return Outcome{v1::SUCCEEDED, "", "ran " + job.id(), 0};
    };
  }
};

}  // namespace

TEST_CASE("a slot runs a woken attempt and hands it back finished, with its start and finish instants") {
  ManualClock clock(instant_from_ms(1000));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  std::atomic<int> starts{0};
  SlotPool pool(2, BandPolicy{}, runner, clock, [&](const Attempt&) { ++starts; });
  pool.start();
  CHECK(pool.enqueue(attempt_of("a", Band::kNormal)) == 1);
  pool.wake();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].outcome.output == "ran a");
  CHECK(done[0].started == instant_from_ms(1000));
  CHECK(done[0].finished == instant_from_ms(1000));
  CHECK(done[0].control->started);
  CHECK(done[0].control->started_at.load() == instant_from_ms(1000));
  CHECK(starts == 1);
}

TEST_CASE("after_run sees the finished outcome on the slot before the main thread, whose copy keeps no whole output") {
  ManualClock clock(instant_from_ms(1000));
  Runner runner(clock);
  runner.register_handler("big", [](const v1::Job&, const std::atomic<bool>&) {
    Outcome outcome;
    outcome.output = "head";
    outcome.whole_outputs.emplace_back("stdout", std::string(1000, 'x'));
    return outcome;
  });
  std::atomic<std::size_t> seen{0};
  SlotPool pool(1, BandPolicy{}, runner, clock, {}, [&](Attempt& attempt) {
    seen = attempt.outcome.whole_outputs.empty() ? 0 : attempt.outcome.whole_outputs[0].bytes.size();
    v1::ObjectRef ref;
    ref.set_name("stdout");
    attempt.outcome.objects.push_back(ref);
  });
  pool.start();
  pool.enqueue(attempt_of("a", Band::kNormal, "big"));
  pool.wake();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(seen == 1000);
  CHECK(done[0].outcome.whole_outputs.empty());
  REQUIRE(done[0].outcome.objects.size() == 1);
  CHECK(done[0].outcome.output == "head");
}

TEST_CASE("one slot facing three backlogged bands serves them high first, by weight") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(1, BandPolicy{{8, 4, 1}, milliseconds(0)}, runner, clock);
  for (int index = 0; index < 13; ++index) {
    pool.enqueue(attempt_of(fmt::format("H{}", index), Band::kHigh));
    pool.enqueue(attempt_of(fmt::format("N{}", index), Band::kNormal));
    pool.enqueue(attempt_of(fmt::format("L{}", index), Band::kLow));
  }
  pool.start();
  pool.wake();
  REQUIRE(finished(pool, 13).size() >= 13);
  std::string bands;
  {
    std::lock_guard lock(recorder.mutex);
    for (std::size_t index = 0; index < 13; ++index) bands += recorder.order[index][0];
  }
  CHECK(bands == "HNHHNHLHNHHNH");
}

TEST_CASE("an attempt no slot has started can be taken back, one a slot runs cannot") {
  ManualClock clock(instant_from_ms(0));
  Runner runner(clock);
  std::atomic<bool> release{false};
  runner.register_handler("block", [&](const v1::Job&, const std::atomic<bool>& stop) {
    for (int spin = 0; spin < 10000 && !release && !stop; ++spin) std::this_thread::sleep_for(milliseconds(1));
    return Outcome{};
  });
  SlotPool pool(1, BandPolicy{}, runner, clock);
  Release guard{release};  // a failed REQUIRE below must not leave the slot blocked at the pool's join
  auto running = attempt_of("running", Band::kHigh, "block");
  auto waiting = attempt_of("waiting", Band::kLow, "block");
  const auto running_control = running.control;
  const auto waiting_control = waiting.control;
  pool.enqueue(std::move(running));
  pool.enqueue(std::move(waiting));
  pool.start();
  pool.wake();
  REQUIRE(eventually([&] { return running_control->started || waiting_control->started; }));
  // High is served first: the running one is on the slot, the low one still waits.
  CHECK(running_control->started);
  CHECK_FALSE(waiting_control->started);
  CHECK_FALSE(pool.take_waiting(*running_control).has_value());
  const auto taken = pool.take_waiting(*waiting_control);
  REQUIRE(taken.has_value());
  CHECK(taken->job_id() == "waiting");
  CHECK(pool.waiting() == std::array<std::size_t, kBandCount>{0, 0, 0});
  release = true;
  CHECK(finished(pool, 1).size() == 1);
}

TEST_CASE("one wake-up starts as many slots as there are attempts waiting, each slot waking the next") {
  ManualClock clock(instant_from_ms(0));
  Runner runner(clock);
  std::atomic<bool> release{false};
  std::atomic<int> running{0};
  runner.register_handler("block", [&](const v1::Job&, const std::atomic<bool>& stop) {
    ++running;
    for (int spin = 0; spin < 10000 && !release && !stop; ++spin) std::this_thread::sleep_for(milliseconds(1));
    return Outcome{};
  });
  SlotPool pool(3, BandPolicy{}, runner, clock);
  Release guard{release};
  pool.start();
  // Give the slots time to block on the wake-up (a slot that has not blocked yet sees the queue
  // without being woken, which would hide a broken chain).
  std::this_thread::sleep_for(milliseconds(100));
  for (const auto* id : {"a", "b", "c"}) pool.enqueue(attempt_of(id, Band::kNormal, "block"));
  pool.wake();
  CHECK(eventually([&] { return running == 3; }));
  release = true;
  CHECK(finished(pool, 3).size() == 3);
}

TEST_CASE("a low attempt that waited past the aging threshold in the pool is served before high ones") {
  ManualClock clock(instant_from_ms(10'000));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(1, BandPolicy{{8, 4, 1}, milliseconds(500)}, runner, clock);
  auto old = attempt_of("old-low", Band::kLow);
  old.fetched = clock.now();
  pool.enqueue(std::move(old));
  clock.advance(milliseconds(600));
  for (const auto* id : {"h1", "h2"}) {
    auto fresh = attempt_of(id, Band::kHigh);
    fresh.fetched = clock.now();
    pool.enqueue(std::move(fresh));
  }
  pool.start();
  pool.wake();
  REQUIRE(finished(pool, 3).size() == 3);
  std::lock_guard lock(recorder.mutex);
  CHECK(recorder.order == std::vector<std::string>{"old-low", "h1", "h2"});
}

TEST_CASE("every waiting attempt can be handed back at once, and none of them runs") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(2, BandPolicy{}, runner, clock);
  pool.enqueue(attempt_of("a", Band::kHigh));
  pool.enqueue(attempt_of("b", Band::kLow));
  CHECK(pool.waiting() == std::array<std::size_t, kBandCount>{1, 0, 1});
  const auto taken = pool.take_all_waiting();
  CHECK(taken.size() == 2);
  CHECK(pool.waiting() == std::array<std::size_t, kBandCount>{0, 0, 0});
  pool.enqueue(attempt_of("c", Band::kNormal));
  pool.start();
  pool.wake();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].job_id() == "c");
  std::lock_guard lock(recorder.mutex);
  CHECK(recorder.order == std::vector<std::string>{"c"});
}

TEST_CASE("an attempt asked to stop before a slot took it fails without running") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(1, BandPolicy{}, runner, clock);
  auto attempt = attempt_of("a", Band::kNormal);
  attempt.control->request(StopReason::kCancel);
  pool.enqueue(std::move(attempt));
  pool.start();
  pool.wake();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].outcome.state == v1::FAILED);
  CHECK(done[0].outcome.error == "stopped before it started");
  std::lock_guard lock(recorder.mutex);
  CHECK(recorder.order.empty());
}

TEST_CASE("a handler that throws fails its attempt, not retriable, and the slot goes on") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  runner.register_handler("throw", [](const v1::Job&, const std::atomic<bool>&) -> Outcome { throw std::runtime_error("bad"); });
  SlotPool pool(1, BandPolicy{}, runner, clock);
  pool.start();
  pool.enqueue(attempt_of("a", Band::kNormal, "throw"));
  pool.enqueue(attempt_of("b", Band::kNormal));
  pool.wake();
  const auto done = finished(pool, 2);
  REQUIRE(done.size() == 2);
  CHECK(done[0].outcome.error == "the handler threw: bad");
  CHECK_FALSE(done[0].outcome.retriable);
  CHECK(done[1].outcome.state == v1::SUCCEEDED);
}

TEST_CASE("a stopped pool lets the running attempt finish and starts nothing that still waits") {
  ManualClock clock(instant_from_ms(0));
  Runner runner(clock);
  std::atomic<bool> release{false};
  std::vector<std::string> ran;
  std::mutex ran_mutex;
  runner.register_handler("block", [&](const v1::Job& job, const std::atomic<bool>& stop) {
    {
      std::lock_guard lock(ran_mutex);
      ran.push_back(job.id());
    }
    for (int spin = 0; spin < 10000 && !release && !stop; ++spin) std::this_thread::sleep_for(milliseconds(1));
    return Outcome{};
  });
  SlotPool pool(1, BandPolicy{}, runner, clock);
  Release guard{release};
  auto first = attempt_of("first", Band::kHigh, "block");
  const auto running = first.control;
  pool.enqueue(std::move(first));
  pool.enqueue(attempt_of("second", Band::kLow, "block"));
  pool.start();
  pool.wake();
  REQUIRE(eventually([&] { return running->started.load(); }));
  std::thread stopper([&] { pool.stop(); });
  CHECK(eventually([&] { return pool.stopping(); }));
  release = true;  // the running attempt ends only now, after the stop began
  stopper.join();
  CHECK(pool.take_finished().size() == 1);
  CHECK(pool.waiting() == std::array<std::size_t, kBandCount>{0, 0, 1});
  std::lock_guard lock(ran_mutex);
  CHECK(ran == std::vector<std::string>{"first"});
}

namespace {

Attempt tenant_attempt(const std::string& tenant, std::string id, std::string handler = "record") {
  Attempt attempt = attempt_of(std::move(id), Band::kNormal, std::move(handler));
  attempt.execution.mutable_job()->set_tenant(tenant);
  return attempt;
}

}  // namespace

TEST_CASE("within a band, tenants take turns: a tenant with a backlog does not hold back another's first job") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(1, BandPolicy{}, runner, clock);
  for (int index = 0; index < 6; ++index) pool.enqueue(tenant_attempt("big", fmt::format("big-{}", index)));
  pool.enqueue(tenant_attempt("", "default-0"));
  pool.enqueue(tenant_attempt("small", "small-0"));
  pool.enqueue(tenant_attempt("small", "small-1"));
  pool.start();
  pool.wake();
  REQUIRE(finished(pool, 9).size() == 9);
  std::lock_guard lock(recorder.mutex);
  // By name after the last served, wrapping: big, default, small, big, small, big, big, ...
  CHECK(recorder.order ==
        std::vector<std::string>{"big-0", "default-0", "small-0", "big-1", "small-1", "big-2", "big-3", "big-4", "big-5"});
}

TEST_CASE("a tenant at its running cap waits while others run, and runs again when one of its jobs ends") {
  ManualClock clock(instant_from_ms(0));
  Runner runner(clock);
  std::atomic<bool> release{false};
  Release guard{release};
  std::atomic<int> running_capped{0};
  std::atomic<int> most_capped{0};
  runner.register_handler("block", [&](const v1::Job& job, const std::atomic<bool>&) {
    const bool capped = job.tenant() == "capped";
    if (capped) most_capped = std::max(most_capped.load(), ++running_capped);
    while (!release) std::this_thread::sleep_for(milliseconds(1));
    if (capped) --running_capped;
    return Outcome{v1::SUCCEEDED, "", "", 0};
  });
  SlotPool pool(3, BandPolicy{}, runner, clock);
  pool.set_running_caps({{"capped", 1}});
  for (int index = 0; index < 3; ++index) pool.enqueue(tenant_attempt("capped", fmt::format("c-{}", index), "block"));
  pool.enqueue(tenant_attempt("free", "f-0", "block"));
  pool.enqueue(tenant_attempt("free", "f-1", "block"));
  pool.start();
  pool.wake();
  // One of capped's and both of free's run; capped's other two are held.
  REQUIRE(eventually([&] { return pool.waiting()[band_index(Band::kNormal)] == 2; }));
  CHECK(pool.held()[band_index(Band::kNormal)] == 2);
  release = true;
  REQUIRE(finished(pool, 5).size() == 5);
  CHECK(most_capped == 1);
  CHECK(pool.held()[band_index(Band::kNormal)] == 0);
}

TEST_CASE("raising a tenant's running cap lets its held jobs start at once") {
  ManualClock clock(instant_from_ms(0));
  Runner runner(clock);
  std::atomic<bool> release{false};
  Release guard{release};
  std::atomic<int> started{0};
  runner.register_handler("block", [&](const v1::Job&, const std::atomic<bool>&) {
    ++started;
    while (!release) std::this_thread::sleep_for(milliseconds(1));
    return Outcome{v1::SUCCEEDED, "", "", 0};
  });
  SlotPool pool(3, BandPolicy{}, runner, clock);
  pool.set_running_caps({{"capped", 1}});
  for (int index = 0; index < 3; ++index) pool.enqueue(tenant_attempt("capped", fmt::format("c-{}", index), "block"));
  pool.start();
  pool.wake();
  REQUIRE(eventually([&] { return started == 1 && pool.held()[band_index(Band::kNormal)] == 2; }));
  pool.set_running_caps({{"capped", 3}});
  CHECK(eventually([&] { return started == 3; }));
  release = true;
  CHECK(finished(pool, 3).size() == 3);
}

TEST_CASE("an attempt fired ahead waits apart until its instant, then starts at it") {
  ManualClock clock(instant_from_ms(1000));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(2, BandPolicy{}, runner, clock);
  pool.start();
  auto early = attempt_of("early", Band::kNormal);
  early.not_before = instant_from_ms(1500);
  const auto band_count = pool.enqueue(std::move(early));
  CHECK(band_count == 0);  // fills no band
  pool.wake();
  CHECK(pool.early() == 1);
  CHECK(pool.waiting()[band_index(Band::kNormal)] == 0);
  std::this_thread::sleep_for(milliseconds(50));
  CHECK(pool.take_finished().empty());  // not before its instant
  clock.set(instant_from_ms(1500));
  pool.poke();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].started == instant_from_ms(1500));
  CHECK(pool.early() == 0);
}

TEST_CASE("an attempt waiting for its instant never blocks an immediate one of its band") {
  ManualClock clock(instant_from_ms(1000));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(1, BandPolicy{}, runner, clock);
  pool.start();
  for (int index = 0; index < 5; ++index) {
    auto early = attempt_of(fmt::format("later-{}", index), Band::kNormal);
    early.not_before = instant_from_ms(60'000);
    pool.enqueue(std::move(early));
  }
  pool.enqueue(attempt_of("now", Band::kNormal));
  pool.wake();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].job_id() == "now");
  CHECK(pool.early() == 5);
}

TEST_CASE("an attempt waiting for its instant can be taken back (a cancel) and is handed back on a revoke") {
  ManualClock clock(instant_from_ms(1000));
  Runner runner(clock);
  SlotPool pool(1, BandPolicy{}, runner, clock);
  pool.start();
  auto first = attempt_of("a", Band::kNormal);
  first.not_before = instant_from_ms(5000);
  const auto control = first.control;
  auto second = attempt_of("b", Band::kHigh);
  second.not_before = instant_from_ms(6000);
  pool.enqueue(std::move(first));
  pool.enqueue(std::move(second));
  const auto taken = pool.take_waiting(*control);
  REQUIRE(taken.has_value());
  CHECK(taken->job_id() == "a");
  CHECK_FALSE(taken->control->started);
  const auto rest = pool.take_all_waiting();
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].job_id() == "b");
  CHECK(pool.early() == 0);
  clock.set(instant_from_ms(7000));
  pool.poke();
  std::this_thread::sleep_for(milliseconds(20));
  CHECK(pool.take_finished().empty());  // nothing left to start
}

TEST_CASE("with the system clock an attempt fired ahead starts within milliseconds of its instant, not before") {
  Recorder recorder;
  Runner runner(SystemClock::instance());
  runner.register_handler("record", recorder.handler());
  SlotPool pool(2, BandPolicy{}, runner, SystemClock::instance());
  pool.start();
  const Instant due = SystemClock::instance().now() + milliseconds(120);
  auto early = attempt_of("precise", Band::kNormal);
  early.not_before = due;
  pool.enqueue(std::move(early));
  pool.wake();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].started >= due);  // never before; how close is the bench's to say
}

TEST_CASE("an attempt fired ahead whose instant came while every slot is busy counts in its band's queue") {
  ManualClock clock(instant_from_ms(1000));
  Runner runner(clock);
  std::atomic<bool> release{false};
  runner.register_handler("block", [&](const v1::Job&, const std::atomic<bool>& stop) {
    for (int spin = 0; spin < 10000 && !release && !stop; ++spin) std::this_thread::sleep_for(milliseconds(1));
    return Outcome{};
  });
  SlotPool pool(1, BandPolicy{}, runner, clock);
  Release guard{release};
  pool.start();
  auto busy = attempt_of("busy", Band::kNormal, "block");
  const auto busy_control = busy.control;
  pool.enqueue(std::move(busy));
  pool.wake();
  REQUIRE(eventually([&] { return busy_control->started.load(); }));
  for (int index = 0; index < 3; ++index) {
    auto early = attempt_of(fmt::format("early-{}", index), Band::kNormal, "block");
    early.not_before = instant_from_ms(1500);
    pool.enqueue(std::move(early));
  }
  CHECK(pool.early() == 3);
  CHECK(pool.waiting()[band_index(Band::kNormal)] == 0);
  clock.set(instant_from_ms(2000));
  pool.poke();
  // Due now: the main thread sees them waiting (a full band pauses its fetching), not held apart.
  CHECK(pool.waiting()[band_index(Band::kNormal)] == 3);
  CHECK(pool.early() == 0);
  release = true;
  CHECK(finished(pool, 4).size() == 4);
}
