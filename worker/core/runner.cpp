#include "core/runner.h"

#include <fmt/format.h>

#include <thread>

namespace kcron::worker {

Outcome Runner::run(const v1::Job& job, const std::atomic<bool>& stop) const {
  switch (job.task_case()) {
    case v1::Job::kNoop:
      return {};
    case v1::Job::kSleep: {
      const auto duration = Millis(job.sleep().duration().seconds() * 1000 + job.sleep().duration().nanos() / 1'000'000);
      const auto until = clock_.now() + duration;
      while (clock_.now() < until && !stop.load()) {
        std::this_thread::sleep_for(std::min<Millis>(Millis(20), until - clock_.now()));
      }
      if (clock_.now() < until) return {v1::FAILED, "interrupted before the sleep ended", "", -1};
      if (job.sleep().fail()) return {v1::FAILED, "sleep task asked to fail", "", 1};
      return {};
    }
    case v1::Job::kHandler: {
      const auto found = handlers_.find(job.handler().name());
      if (found == handlers_.end())
        return {v1::FAILED, fmt::format("no handler named '{}' is registered", job.handler().name()), "", -1};
      return found->second(job, stop);
    }
    case v1::Job::kExec:
      return {v1::FAILED, "exec jobs are not enabled on this worker yet", "", -1};
    case v1::Job::kHttp:
      return {v1::FAILED, "http jobs are not enabled on this worker yet", "", -1};
    case v1::Job::kKafka:
      return {v1::FAILED, "kafka jobs are not enabled on this worker yet", "", -1};
    default:
      return {v1::FAILED, "job has no task", "", -1};
  }
}

}  // namespace kcron::worker
