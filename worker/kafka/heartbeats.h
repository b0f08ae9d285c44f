// A worker's heartbeats on the compacted workers topic, keyed by worker id: host, queues, slots,
// running job ids, CPU and RSS, counts, start time and interval. Produced outside any transaction
// with a producer of their own, at most one per interval; the last one, at a clean stop, says
// `stopped`. `kcron workers` tells live, stopped and lost workers apart by them. Main thread only.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kcron/clock.h"
#include "kcron/kafka.h"
#include "kcron/result.h"

namespace kcron::worker {

struct HeartbeatSettings {
  std::string topic;
  std::string worker_id;
  std::vector<std::string> queues;
  std::size_t slots = 0;
  Millis interval{5000};  // 0: no heartbeats
};

class Heartbeats {
 public:
  Heartbeats(HeartbeatSettings settings, const Clock& clock);

  Status start(const kafka::Properties& client);
  // True when a heartbeat is owed: the interval passed, or this is the last one.
  bool due(bool stopped) const;
  // Sends one now (and, when `stopped`, waits briefly for it to leave). A failure is logged: a
  // missed heartbeat is not worth stopping the worker for.
  void send(const std::vector<std::string>& running, std::uint64_t succeeded, std::uint64_t failed, bool stopped);

 private:
  HeartbeatSettings settings_;
  const Clock& clock_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::chrono::steady_clock::time_point last_{};
  Instant started_{};
  std::string host_;
};

}  // namespace kcron::worker
