#include "core/runner.h"

#include <fmt/format.h>

#include <thread>

namespace kcron::worker {

namespace {

const char* kind_name(v1::Job::TaskCase kind) {
  switch (kind) {
    case v1::Job::kExec:
      return "exec";
    case v1::Job::kHttp:
      return "http";
    case v1::Job::kKafka:
      return "kafka";
    case v1::Job::kSealed:
      return "sealed";
    default:
      return "unknown";
  }
}

}  // namespace

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
      if (clock_.now() < until) return failed("interrupted before the sleep ended");
      if (job.sleep().fail()) return failed("sleep task asked to fail", true, 1);
      return {};
    }
    case v1::Job::kHandler: {
      const auto found = handlers_.find(job.handler().name());
      if (found == handlers_.end())
        return failed(fmt::format("no handler named '{}' is registered on this worker", job.handler().name()), false);
      return found->second(job, stop);
    }
    case v1::Job::kExec:
    case v1::Job::kHttp:
    case v1::Job::kKafka:
    case v1::Job::kSealed: {
      const auto found = executors_.find(job.task_case());
      if (found == executors_.end()) {
        return failed(fmt::format("{} jobs are not enabled on this worker (see its {}.* settings)", kind_name(job.task_case()),
                                  kind_name(job.task_case())),
                      false);
      }
      return found->second(job, stop);
    }
    default:
      return failed("job has no task (set one of noop, sleep, exec, http, kafka, handler)", false);
  }
}

}  // namespace kcron::worker
