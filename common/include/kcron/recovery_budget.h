// How often a program may heal itself in place (a new producer after a fence or an unknown commit
// outcome, a new consumer after its group membership was fenced) before it gives up and exits for
// its supervisor. One fence is weather: a broker restart, a coordinator that moved, a transaction
// the coordinator aborted after transaction.timeout.ms. A fence that keeps coming back means
// something no recovery fixes, such as a second process running with the same instance id: the
// two would fence each other forever.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <deque>
#include <string>
#include <string_view>

namespace kcron {

class RecoveryBudget {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr std::size_t kDefaultMax = 5;
  static constexpr std::chrono::minutes kDefaultWindow{10};

  RecoveryBudget(std::size_t max_events = kDefaultMax, std::chrono::milliseconds window = kDefaultWindow)
      : max_events_(max_events), window_(window) {}

  // Records a recovery at `now` if fewer than max_events happened in the window before it; false
  // (and nothing recorded) when the budget is spent.
  bool try_spend(TimePoint now) {
    while (!events_.empty() && now - events_.front() >= window_) events_.pop_front();
    if (events_.size() >= max_events_) return false;
    events_.push_back(now);
    return true;
  }
  // Why a program gives up when try_spend refused: names the likely cause and the last fault.
  std::string refusal(std::string_view program, std::string_view instance_id, std::string_view last) const {
    return fmt::format("gave up after {} recoveries within {} s (a second {} with instance id '{}'?); last: {}", max_events_,
                       window_.count() / 1000, program, instance_id, last);
  }
  std::size_t max_events() const { return max_events_; }
  std::chrono::milliseconds window() const { return window_; }

 private:
  std::size_t max_events_;
  std::chrono::milliseconds window_;
  std::deque<TimePoint> events_;
};

}  // namespace kcron
