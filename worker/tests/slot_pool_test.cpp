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
  CHECK(pool.enqueue(attempt_of("a", Band::normal)) == 1);
  pool.wake();
  const auto done = finished(pool, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].outcome.output == "ran a");
  CHECK(done[0].started == instant_from_ms(1000));
  CHECK(done[0].finished == instant_from_ms(1000));
  CHECK(done[0].control->started_ms == 1000);
  CHECK(starts == 1);
}

TEST_CASE("one slot facing three backlogged bands serves them high first, by weight") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(1, BandPolicy{{8, 4, 1}, milliseconds(0)}, runner, clock);
  for (int index = 0; index < 13; ++index) {
    pool.enqueue(attempt_of(fmt::format("H{}", index), Band::high));
    pool.enqueue(attempt_of(fmt::format("N{}", index), Band::normal));
    pool.enqueue(attempt_of(fmt::format("L{}", index), Band::low));
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
  ManualClock clock(instant_from_ms(1000));
  Runner runner(clock);
  std::atomic<bool> release{false};
  runner.register_handler("block", [&](const v1::Job&, const std::atomic<bool>& stop) {
    while (!release && !stop) std::this_thread::sleep_for(milliseconds(1));
    return Outcome{};
  });
  SlotPool pool(1, BandPolicy{}, runner, clock);
  auto running = attempt_of("running", Band::high, "block");
  auto waiting = attempt_of("waiting", Band::low, "block");
  const auto running_control = running.control;
  const auto waiting_control = waiting.control;
  pool.enqueue(std::move(running));
  pool.enqueue(std::move(waiting));
  pool.start();
  pool.wake();
  REQUIRE(eventually([&] { return running_control->started_ms > 0 || waiting_control->started_ms > 0; }));
  // High is served first: the running one is on the slot, the low one still waits.
  CHECK(running_control->started_ms == 1000);
  CHECK(waiting_control->started_ms == 0);
  CHECK_FALSE(pool.take_waiting(*running_control).has_value());
  const auto taken = pool.take_waiting(*waiting_control);
  REQUIRE(taken.has_value());
  CHECK(taken->job_id() == "waiting");
  CHECK(pool.waiting() == std::array<std::size_t, kBandCount>{0, 0, 0});
  release = true;
  CHECK(finished(pool, 1).size() == 1);
}

TEST_CASE("every waiting attempt can be handed back at once, and none of them runs") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(2, BandPolicy{}, runner, clock);
  pool.enqueue(attempt_of("a", Band::high));
  pool.enqueue(attempt_of("b", Band::low));
  CHECK(pool.waiting() == std::array<std::size_t, kBandCount>{1, 0, 1});
  const auto taken = pool.take_all_waiting();
  CHECK(taken.size() == 2);
  pool.start();
  pool.wake();
  std::this_thread::sleep_for(milliseconds(20));
  CHECK(pool.take_finished().empty());
  std::lock_guard lock(recorder.mutex);
  CHECK(recorder.order.empty());
}

TEST_CASE("an attempt asked to stop before a slot took it fails without running") {
  ManualClock clock(instant_from_ms(0));
  Recorder recorder;
  Runner runner(clock);
  runner.register_handler("record", recorder.handler());
  SlotPool pool(1, BandPolicy{}, runner, clock);
  auto attempt = attempt_of("a", Band::normal);
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
  pool.enqueue(attempt_of("a", Band::normal, "throw"));
  pool.enqueue(attempt_of("b", Band::normal));
  pool.wake();
  const auto done = finished(pool, 2);
  REQUIRE(done.size() == 2);
  CHECK(done[0].outcome.error == "the handler threw: bad");
  CHECK_FALSE(done[0].outcome.retriable);
  CHECK(done[1].outcome.state == v1::SUCCEEDED);
}

TEST_CASE("a pool is destroyed once its attempts are asked to stop, and the waiting ones never run") {
  ManualClock clock(instant_from_ms(1000));
  Runner runner(clock);
  std::atomic<int> ran{0};
  runner.register_handler("until-stopped", [&](const v1::Job&, const std::atomic<bool>& stop) {
    ++ran;
    for (int spin = 0; spin < 10000 && !stop; ++spin) std::this_thread::sleep_for(milliseconds(1));
    return Outcome{};
  });
  {
    SlotPool pool(1, BandPolicy{}, runner, clock);
    auto first = attempt_of("first", Band::high, "until-stopped");
    auto second = attempt_of("second", Band::low, "until-stopped");
    const auto running = first.control;
    const auto waiting = second.control;
    pool.enqueue(std::move(first));
    pool.enqueue(std::move(second));
    pool.start();
    pool.wake();
    REQUIRE(eventually([&] { return running->started_ms > 0; }));
    // As the worker does at shutdown: every attempt it holds is asked to stop.
    waiting->request(StopReason::kShutdown);
    running->request(StopReason::kShutdown);
  }
  CHECK(ran == 1);
}
