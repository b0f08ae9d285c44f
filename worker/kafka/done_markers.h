// The done markers a new owner of exec partitions reads on assignment. Slots finish out of order,
// so the committed offset of an exec partition trails its oldest unfinished job; a job that
// finished after it left a marker (job id, attempt, exec position) on worker-done in the
// transaction of its result. Markers that matter were written after the record at the committed
// offset was consumed, so reading starts at that record's timestamp (less a minute for clock skew,
// at most `dedupe_lookback` back) and ends at the end of each worker-done partition, waiting out
// a transaction the previous owner left open. Main thread only (the rebalance callback).
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/attempt.h"
#include "kcron/clock.h"
#include "kcron/kafka.h"
#include "kcron/topics.h"

namespace kcron::worker {

struct DoneMarkerSettings {
  TopicNames names{"kcron."};
  std::int32_t exec_partitions = 12;
  Millis dedupe_lookback{6 * 3600000};
  Millis transaction_timeout{10000};
};

class DoneMarkers {
 public:
  DoneMarkers(kafka::Properties client, DoneMarkerSettings settings, const Clock& clock);

  // Replaces what is known with the markers for the newly assigned `partitions`, read with
  // `consumer`'s committed offsets. On failure the index is left empty and the new owner may run
  // again jobs an earlier owner finished (execution is at least once); the failure is logged.
  void load(RdKafka::KafkaConsumer& consumer, const std::vector<RdKafka::TopicPartition*>& partitions);
  // True, once, when the record at `position` finished under an earlier owner.
  bool take(const ExecPosition& position);

 private:
  using TopicPartitionKey = std::pair<std::string, std::int32_t>;
  kafka::Properties client_;
  DoneMarkerSettings settings_;
  const Clock& clock_;
  std::map<TopicPartitionKey, std::set<std::int64_t>> done_;
};

}  // namespace kcron::worker
