// The control topic as a worker reads it: every partition, no consumer group, nothing committed,
// from `lookback` before start (a job may reach this worker after its cancel). The dispatcher
// and the CLI write cancels of fired jobs there. Main thread only.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <functional>
#include <memory>
#include <string>

#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/kafka.h"
#include "kcron/result.h"
#include "kcron/topics.h"

namespace kcron::worker {

class ControlChannel {
 public:
  ControlChannel(kafka::Properties client, TopicNames names, std::string instance_id, Millis lookback, const Clock& clock);

  // Assigns every partition of the control topic at `lookback` before now (retrying, bounded,
  // while a just-created topic has no leader yet).
  Status start();
  // Reads up to `max_records` without waiting; calls `on_cancel` for each cancel with a job id,
  // with the instant it arrived (the record's timestamp). Other records are logged and skipped.
  void poll(const std::function<void(const v1::Cancel& cancel, Instant arrived)>& on_cancel, int max_records = 100);
  void close();

 private:
  kafka::Properties client_;
  TopicNames names_;
  std::string instance_id_;
  Millis lookback_;
  const Clock& clock_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
};

}  // namespace kcron::worker
