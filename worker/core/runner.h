// Runs one job on a worker slot and says how it went. Built-in kinds (noop, sleep) run here;
// the other task kinds (exec, http, kafka) are executors registered by the program from the
// edge libraries (process, libcurl, Kafka), and HandlerTask jobs go to C++ handlers registered
// by name. Pure: no Kafka, no processes; thread-safe once everything is registered (which
// happens before the loop starts).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kcron.pb.h"
#include "kcron/clock.h"

namespace kcron::worker {

// An output kept whole for the object store: its name ("stdout", "stderr", "body"), the bytes kept
// (at most objects.max_bytes), and how many the output had (more when it was cut).
struct WholeOutput {
  WholeOutput(std::string output_name, std::string kept, std::uint64_t output_total = 0)
      : name(std::move(output_name)), bytes(std::move(kept)), total(std::max<std::uint64_t>(output_total, bytes.size())) {}
  std::string name;
  std::string bytes;
  std::uint64_t total = 0;
  bool cut() const { return total > bytes.size(); }
};

struct Outcome {
  v1::JobState state = v1::SUCCEEDED;  // SUCCEEDED or FAILED
  std::string error;
  std::string output;  // bounded by the executor
  int exit_code = 0;
  // A FAILED attempt with retriable=false goes to the dead letters without using its retries
  // (a refused program, a 404, a job with no task): running it again cannot succeed.
  bool retriable = true;
  int http_status = 0;  // http jobs: the response status (0 when no response)
  // With an object store configured (docs/large-results.md): an output over its threshold, kept
  // whole by the executor, by name ("stdout"). The slot stores each and empties this list
  // (objects/store_outputs.h); `output` keeps the bounded inline head either way.
  std::vector<WholeOutput> whole_outputs{};
  std::vector<v1::ObjectRef> objects{};  // the outputs stored for this attempt; they go on its Result
};

inline Outcome failed(std::string error, bool retriable = true, int exit_code = -1) {
  Outcome outcome;
  outcome.state = v1::FAILED;
  outcome.error = std::move(error);
  outcome.retriable = retriable;
  outcome.exit_code = exit_code;
  return outcome;
}

// Runs a job; `stop` turns true when the job must end early (timeout, cancel, shutdown): the
// handler returns promptly, killing what it started.
using Handler = std::function<Outcome(const v1::Job& job, const std::atomic<bool>& stop)>;

class Runner {
 public:
  explicit Runner(const Clock& clock) : clock_(clock) {}
  // A C++ handler for HandlerTask jobs with this name.
  void register_handler(const std::string& name, Handler handler) { handlers_[name] = std::move(handler); }
  std::vector<std::string> handler_names() const {
    std::vector<std::string> names;
    for (const auto& [name, handler] : handlers_) names.push_back(name);
    return names;
  }
  // The executor of a task kind (kExec, kHttp, kKafka). Without one, such jobs fail with a clear,
  // non-retriable error naming the setting that enables them.
  void register_executor(v1::Job::TaskCase kind, Handler executor) { executors_[kind] = std::move(executor); }
  Outcome run(const v1::Job& job, const std::atomic<bool>& stop) const;

 private:
  const Clock& clock_;
  std::map<std::string, Handler> handlers_;
  std::map<v1::Job::TaskCase, Handler> executors_;
};

}  // namespace kcron::worker
