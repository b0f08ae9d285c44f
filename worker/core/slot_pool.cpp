#include "core/slot_pool.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <iterator>

#include "kcron/tenant.h"

namespace kcron::worker {
namespace {

// A slot waiting for an early attempt's instant wakes at least this often (a clock that moved).
constexpr Millis kLongestEarlySleep{1000};

}  // namespace

SlotPool::SlotPool(std::size_t slots, BandPolicy policy, const Runner& runner, const Clock& clock,
                   std::function<void(const Attempt&)> on_start, std::function<void(Attempt&)> after_run)
    : slots_(slots),
      runner_(runner),
      clock_(clock),
      on_start_(std::move(on_start)),
      after_run_(std::move(after_run)),
      scheduler_(policy) {}

SlotPool::~SlotPool() {
  stop();
}

void SlotPool::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  timer_wake_.notify_all();
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

namespace {

std::string_view tenant_of(const Attempt& attempt) {
  return tenant_or_default(attempt.execution.job().tenant());
}

}  // namespace

bool SlotPool::runnable(std::string_view tenant) const {
  const auto cap = caps_.find(tenant);
  if (cap == caps_.end()) return true;
  const auto running = running_by_tenant_.find(tenant);
  return (running == running_by_tenant_.end() ? 0 : running->second) < cap->second;
}

std::size_t SlotPool::held_in(std::size_t band) const {
  std::size_t held = 0;
  for (const auto& [tenant, count] : waiting_by_tenant_[band]) {
    if (!runnable(tenant)) held += count;
  }
  return held;
}

bool SlotPool::anything_runnable() const {
  for (std::size_t band = 0; band < kBandCount; ++band) {
    if (waiting_[band].size() > held_in(band)) return true;
  }
  return false;
}

void SlotPool::count_waiting(const Attempt& attempt, std::size_t band, int delta) {
  auto& counts = waiting_by_tenant_[band];
  const auto tenant = tenant_of(attempt);
  auto found = counts.find(tenant);
  if (delta > 0) {
    if (found == counts.end()) found = counts.emplace(std::string(tenant), 0).first;
    ++found->second;
  } else if (found != counts.end() && --found->second == 0) {
    counts.erase(found);
  }
}

std::size_t SlotPool::pick_in(std::size_t band) {
  const auto& queue = waiting_[band];
  const auto& tenants = waiting_by_tenant_[band];
  if (caps_.empty() && tenants.size() <= 1) return 0;  // one tenant, no caps: the oldest
  // The tenant after the last one served, by name, among those with a job a slot may take.
  const std::string* chosen = nullptr;
  for (const auto& [tenant, count] : tenants) {
    if (!runnable(tenant)) continue;
    if (chosen == nullptr) chosen = &tenant;  // wraps around to the first
    if (tenant > last_tenant_[band]) {
      chosen = &tenant;
      break;
    }
  }
  if (chosen == nullptr) return queue.size();
  for (std::size_t index = 0; index < queue.size(); ++index) {
    if (tenant_of(queue[index]) == *chosen) return index;
  }
  return queue.size();
}

void SlotPool::push_waiting(Attempt attempt) {
  const auto band = band_index(attempt.band);
  count_waiting(attempt, band, 1);
  waiting_[band].push_back(std::move(attempt));
}

std::size_t SlotPool::enqueue(Attempt attempt) {
  std::size_t count = 0;
  {
    std::lock_guard lock(mutex_);
    const auto band = band_index(attempt.band);
    if (attempt.not_before > clock_.now()) {
      const bool earliest = early_.empty() || attempt.not_before < early_.begin()->first;
      const Instant at = attempt.not_before;
      early_.emplace(at, std::move(attempt));
      count = waiting_[band].size() - held_in(band);
      // The timer, asleep until a later instant, waits for this one instead; with no timer, a
      // slot becomes it.
      if (timer_waiting_ && earliest) {
        timer_wake_.notify_one();
      } else if (!timer_waiting_) {
        wake_.notify_one();
      }
      return count;
    }
    push_waiting(std::move(attempt));
    count = waiting_[band].size() - held_in(band);
  }
  wake_pending_ = true;
  return count;
}

std::size_t SlotPool::promote_due(Instant now) {
  std::size_t promoted = 0;
  while (!early_.empty() && early_.begin()->first <= now) {
    auto node = early_.extract(early_.begin());
    node.mapped().fetched = now;  // it joins its band at its instant
    push_waiting(std::move(node.mapped()));
    ++promoted;
  }
  return promoted;
}

void SlotPool::poke() {
  wake_.notify_all();
  timer_wake_.notify_all();
}

std::size_t SlotPool::early() {
  std::size_t count = 0;
  std::size_t promoted = 0;
  {
    std::lock_guard lock(mutex_);
    promoted = promote_due(clock_.now());
    count = early_.size();
  }
  if (promoted > 0) wake_.notify_one();  // the chain of slots takes the rest
  return count;
}

void SlotPool::set_running_caps(std::map<std::string, std::size_t, std::less<>> caps) {
  {
    std::lock_guard lock(mutex_);
    caps_ = std::move(caps);
  }
  wake_.notify_all();
}

std::array<std::size_t, kBandCount> SlotPool::held() {
  std::array<std::size_t, kBandCount> counts{};
  std::size_t promoted = 0;
  {
    std::lock_guard lock(mutex_);
    promoted = promote_due(clock_.now());
    for (std::size_t band = 0; band < kBandCount; ++band) counts[band] = held_in(band);
  }
  if (promoted > 0) wake_.notify_one();  // the chain of slots takes the rest
  return counts;
}

void SlotPool::wake() {
  if (std::exchange(wake_pending_, false)) wake_.notify_one();
}

std::optional<Attempt> SlotPool::take_waiting(const AttemptControl& control) {
  std::lock_guard lock(mutex_);
  for (auto early = early_.begin(); early != early_.end(); ++early) {
    if (early->second.control.get() != &control) continue;
    Attempt attempt = std::move(early->second);
    early_.erase(early);
    return attempt;
  }
  for (std::size_t band = 0; band < kBandCount; ++band) {
    auto& queue = waiting_[band];
    const auto found =
        std::find_if(queue.begin(), queue.end(), [&](const Attempt& waiting) { return waiting.control.get() == &control; });
    if (found == queue.end()) continue;
    Attempt attempt = std::move(*found);
    queue.erase(found);
    count_waiting(attempt, band, -1);
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
  for (auto& counts : waiting_by_tenant_) counts.clear();
  for (auto& [at, attempt] : early_) taken.push_back(std::move(attempt));
  early_.clear();
  return taken;
}

std::deque<Attempt> SlotPool::take_finished() {
  std::deque<Attempt> finished;
  std::lock_guard lock(mutex_);
  finished.swap(finished_);
  return finished;
}

std::array<std::size_t, kBandCount> SlotPool::waiting() {
  std::array<std::size_t, kBandCount> counts{};
  std::size_t promoted = 0;
  {
    std::lock_guard lock(mutex_);
    promoted = promote_due(clock_.now());
    for (std::size_t index = 0; index < kBandCount; ++index) counts[index] = waiting_[index].size();
  }
  if (promoted > 0) wake_.notify_one();  // the chain of slots takes the rest
  return counts;
}

void SlotPool::slot_main() {
  while (true) {
    Attempt attempt;
    bool more = false;
    {
      std::unique_lock lock(mutex_);
      // Asleep until something is runnable. One slot at a time (the timer) sleeps only until the
      // earliest early attempt's instant, to move it to its band then; the others sleep until
      // woken. (Every idle slot waking at each instant — with jobs due every millisecond, fifty
      // threads a thousand times a second — took the CPU the slots needed.)
      while (!stopping_) {
        promote_due(clock_.now());
        if (anything_runnable()) break;
        if (early_.empty() || timer_waiting_) {
          wake_.wait(lock);
          continue;
        }
        timer_waiting_ = true;
        const auto until = early_.begin()->first - clock_.now();
        // The clock counts whole milliseconds: wait to the next one at least.
        timer_wake_.wait_for(lock, std::clamp(until, Millis(1), kLongestEarlySleep));
        timer_waiting_ = false;
      }
      if (stopping_) return;
      BandBacklogs backlogs{};
      for (const auto band : kAllBands) {
        const auto& queue = waiting_[band_index(band)];
        const std::size_t takeable = queue.size() - held_in(band_index(band));
        if (takeable == 0) continue;
        // The oldest job a slot may take (held ones do not age their band).
        const auto oldest =
            std::find_if(queue.begin(), queue.end(), [&](const Attempt& waiting) { return runnable(tenant_of(waiting)); });
        backlogs[band_index(band)] = {takeable, oldest != queue.end() ? oldest->fetched : queue.front().fetched};
      }
      const auto band = scheduler_.pick(backlogs, clock_.now());
      if (!band) continue;
      const auto band_at = band_index(*band);
      auto& queue = waiting_[band_at];
      const std::size_t index = pick_in(band_at);
      if (index >= queue.size()) continue;
      attempt = std::move(queue[index]);
      queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(index));
      count_waiting(attempt, band_at, -1);
      last_tenant_[band_at] = tenant_of(attempt);
      ++running_by_tenant_[std::string(tenant_of(attempt))];
      // Under the lock: an attempt whose start time is unset is still on a waiting queue.
      attempt.started = clock_.now();
      attempt.control->started_at = attempt.started;
      attempt.control->started = true;
      // The next slot, for what this one leaves, or to take the timer this one gave up.
      more = anything_runnable() || (!early_.empty() && !timer_waiting_);
    }
    if (more) wake_.notify_one();
    if (attempt.control->stop) {
      attempt.outcome = failed("stopped before it started");
      attempt.finished = clock_.now();
    } else {
      if (on_start_) on_start_(attempt);
      try {
        attempt.outcome = runner_.run(attempt.execution.job(), attempt.control->stop);
      } catch (const std::exception& error) {
        attempt.outcome = failed(fmt::format("the handler threw: {}", error.what()), false);
      } catch (...) {
        attempt.outcome = failed("the handler threw a non-standard exception", false);
      }
      attempt.finished = clock_.now();  // the job's end; storing its large outputs comes after
      if (after_run_) after_run_(attempt);
    }
    attempt.outcome.whole_outputs.clear();  // never kept past the slot
    bool freed = false;                     // a held job of its tenant may run now
    {
      std::lock_guard lock(mutex_);
      const auto running = running_by_tenant_.find(tenant_of(attempt));
      if (running != running_by_tenant_.end() && --running->second == 0) running_by_tenant_.erase(running);
      freed = caps_.contains(tenant_of(attempt)) && anything_runnable();
      finished_.push_back(std::move(attempt));
    }
    if (freed) wake_.notify_one();
  }
}

}  // namespace kcron::worker
