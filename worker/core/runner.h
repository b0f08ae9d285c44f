// Runs one job on a worker slot and says how it went. Handlers are looked up by task kind
// (noop, sleep) or, for HandlerTask, by the name a C++ handler was registered under. Pure: no
// Kafka; thread-safe once handlers are registered (registration happens before the loop starts).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>

#include "kcron.pb.h"
#include "kcron/clock.h"

namespace kcron::worker {

struct Outcome {
  v1::JobState state = v1::SUCCEEDED;  // SUCCEEDED or FAILED
  std::string error;
  std::string output;
  int exit_code = 0;
};

// A C++ handler: gets the job and a flag that turns true when the job should stop early.
using Handler = std::function<Outcome(const v1::Job& job, const std::atomic<bool>& stop)>;

class Runner {
 public:
  explicit Runner(const Clock& clock) : clock_(clock) {}
  void register_handler(const std::string& name, Handler handler) { handlers_[name] = std::move(handler); }
  Outcome run(const v1::Job& job, const std::atomic<bool>& stop) const;

 private:
  const Clock& clock_;
  std::map<std::string, Handler> handlers_;
};

}  // namespace kcron::worker
