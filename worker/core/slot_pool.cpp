#include "core/slot_pool.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <iterator>

namespace kcron::worker {

SlotPool::SlotPool(std::size_t slots, BandPolicy policy, const Runner& runner, const Clock& clock,
                   std::function<void(const Attempt&)> on_start)
    : slots_(slots), runner_(runner), clock_(clock), on_start_(std::move(on_start)), scheduler_(policy) {}

SlotPool::~SlotPool() {
  stop();
}

void SlotPool::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

bool SlotPool::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

void SlotPool::start() {
  for (std::size_t slot = 0; slot < slots_; ++slot) threads_.emplace_back([this] { slot_main(); });
}

bool SlotPool::anything_waiting() const {
  return std::any_of(waiting_.begin(), waiting_.end(), [](const auto& queue) { return !queue.empty(); });
}

std::size_t SlotPool::enqueue(Attempt attempt) {
  std::size_t count = 0;
  {
    std::lock_guard lock(mutex_);
    auto& queue = waiting_[band_index(attempt.band)];
    queue.push_back(std::move(attempt));
    count = queue.size();
  }
  wake_pending_ = true;
  return count;
}

void SlotPool::wake() {
  if (std::exchange(wake_pending_, false)) wake_.notify_one();
}

std::optional<Attempt> SlotPool::take_waiting(const AttemptControl& control) {
  std::lock_guard lock(mutex_);
  for (auto& queue : waiting_) {
    const auto found =
        std::find_if(queue.begin(), queue.end(), [&](const Attempt& waiting) { return waiting.control.get() == &control; });
    if (found == queue.end()) continue;
    Attempt attempt = std::move(*found);
    queue.erase(found);
    return attempt;
  }
  return std::nullopt;
}

std::vector<Attempt> SlotPool::take_all_waiting() {
  std::vector<Attempt> taken;
  std::lock_guard lock(mutex_);
  for (auto& queue : waiting_) {
    std::move(queue.begin(), queue.end(), std::back_inserter(taken));
    queue.clear();
  }
  return taken;
}

std::deque<Attempt> SlotPool::take_finished() {
  std::deque<Attempt> finished;
  std::lock_guard lock(mutex_);
  finished.swap(finished_);
  return finished;
}

std::array<std::size_t, kBandCount> SlotPool::waiting() const {
  std::array<std::size_t, kBandCount> counts{};
  std::lock_guard lock(mutex_);
  for (std::size_t index = 0; index < kBandCount; ++index) counts[index] = waiting_[index].size();
  return counts;
}

void SlotPool::slot_main() {
  while (true) {
    Attempt attempt;
    bool more = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || anything_waiting(); });
      if (stopping_) return;
      BandBacklogs backlogs{};
      for (const auto band : kAllBands) {
        const auto& queue = waiting_[band_index(band)];
        if (!queue.empty()) backlogs[band_index(band)] = {queue.size(), queue.front().fetched};
      }
      const auto band = scheduler_.pick(backlogs, clock_.now());
      if (!band) continue;
      auto& queue = waiting_[band_index(*band)];
      attempt = std::move(queue.front());
      queue.pop_front();
      // Under the lock: an attempt whose start time is unset is still on a waiting queue.
      attempt.started = clock_.now();
      attempt.control->started_at = attempt.started;
      attempt.control->started = true;
      more = anything_waiting();
    }
    if (more) wake_.notify_one();  // the next slot, for what this one leaves
    if (attempt.control->stop) {
      attempt.outcome = failed("stopped before it started");
    } else {
      if (on_start_) on_start_(attempt);
      try {
        attempt.outcome = runner_.run(attempt.execution.job(), attempt.control->stop);
      } catch (const std::exception& error) {
        attempt.outcome = failed(fmt::format("the handler threw: {}", error.what()), false);
      } catch (...) {
        attempt.outcome = failed("the handler threw a non-standard exception", false);
      }
    }
    attempt.finished = clock_.now();
    std::lock_guard lock(mutex_);
    finished_.push_back(std::move(attempt));
  }
}

}  // namespace kcron::worker
