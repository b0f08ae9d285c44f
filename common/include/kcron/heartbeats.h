// A program's heartbeats on the compacted workers topic: a worker's keyed by its worker id (host,
// queues, slots, running job ids, CPU and RSS, counts, start time and interval), a dispatcher's by
// `dispatcher/<instance>` with its role. Each says which features of the protocol its program
// understands (kcron/features.h): writers use a feature only once every member advertises it.
// Produced outside any transaction with a producer of their own, at most one per interval; the
// last one, at a clean stop, says `stopped`. `kcron workers` tells live, stopped and lost workers
// apart by them. Main thread only.
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

namespace kcron {

struct HeartbeatSettings {
  std::string topic;
  std::string worker_id;  // the record key: a worker's id, `dispatcher/<instance>` for a dispatcher
  std::string role;       // empty for a worker (as before roles), "dispatcher"
  std::vector<std::string> features;
  std::vector<std::string> queues;
  std::vector<std::string> programs;  // a worker's exec allowlist
  std::vector<std::string> handlers;  // a worker's registered handler names
  std::size_t slots = 0;
  Millis interval{5000};  // 0: no heartbeats
};

class Heartbeats {
 public:
  Heartbeats(HeartbeatSettings settings, const Clock& clock);

  Status start(const kafka::Properties& client);
  // True when a heartbeat is owed: the interval passed, or this is the last one.
  bool due(bool stopped) const;
  // The consumer group member id the program holds now (after each assignment): the next
  // heartbeat carries it, and is flushed at once, so the upgrade gate can match it.
  void set_member_id(std::string member_id);
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
  bool sent_ = false;
  std::string member_id_;
  bool member_id_sent_ = true;
};

}  // namespace kcron
