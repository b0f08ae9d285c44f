// A compacted topic kept current in memory: every partition read from the beginning by a consumer
// that commits nothing, each record folded by the topic's `apply`. start() catches up to the end
// the topic had when it began; poll() applies what arrived since. The tenant registry
// (tenant_follower.h) and the template catalog (template_follower.h) are followed this way.
// Single-threaded: the owner's thread calls start, poll and close.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "kcron/clock.h"
#include "kcron/kafka.h"
#include "kcron/result.h"

namespace kcron {

// What a follower reads, how it folds a record, and how its logs and errors name them.
struct FollowedTopic {
  std::string topic;
  // The never-committed consumer group is `<group_prefix><client.id>`.
  std::string group_prefix;
  // Log events are `<event>_topic_missing`, `<event>_record_applied`, `<event>_record_refused`, ...
  std::string event;
  std::string key_field;     // how a log line names a record's key ("tenant", "key")
  std::string key_meaning;   // what the key is, for a record without one
  std::string what;          // what the follower keeps, for errors ("tenant registry")
  std::string loaded_event;  // logged when start() caught up
  std::string missing_hint;  // logged when the topic does not exist
  // Folds one record (tombstone: a null value). An error leaves the fold as it was; it is logged.
  std::function<Status(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone)> apply;
  // Extra `name=value ` fields of the loaded event (may be empty).
  std::function<std::string()> loaded_fields;
};

class CompactedFollower {
 public:
  // `client`: the program's client properties (client_properties()); its client.id names the
  // group. `assign_retry`: how often poll() looks again for a topic that did not exist.
  CompactedFollower(kafka::Properties client, FollowedTopic topic, Millis assign_retry);
  ~CompactedFollower();
  CompactedFollower(const CompactedFollower&) = delete;
  CompactedFollower& operator=(const CompactedFollower&) = delete;

  // Assigns every partition of the topic from its beginning and applies records until each
  // partition reaches the high watermark it had at the start, for at most `timeout`. A missing
  // topic is not an error: it is logged (`kcron topics create` makes it) and poll() looks again
  // every `assign_retry`. An error when the consumer cannot be made, or the catch-up did not end
  // within `timeout` (the fold then holds a prefix of the topic; poll() carries on reading).
  Status start(Millis timeout);
  // Applies up to `max_records` records that have arrived, without waiting for more; assigns the
  // topic first if start() did not find it and `assign_retry` has passed since the last look.
  void poll(int max_records = 100);
  void close();

  // The topic is assigned (it existed at start or at a later look).
  bool following() const { return following_; }
  // Records applied and refused since start: a refused record leaves the fold as it was.
  std::int64_t applied() const { return applied_; }
  std::int64_t refused() const { return refused_; }

 private:
  // Assigns the topic's partitions from the beginning; false if the topic does not exist. Fills
  // catch_up_ with each partition's high watermark.
  Result<bool> assign(Millis timeout);
  // Whether the record applied (a refused one is logged and counted, never fatal).
  bool apply(RdKafka::Message& message);

  kafka::Properties client_;
  FollowedTopic topic_;
  Millis assign_retry_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  bool following_ = false;
  std::chrono::steady_clock::time_point next_assign_{};
  std::map<std::int32_t, std::int64_t> catch_up_;  // partition -> high watermark still to reach at start
  std::int64_t applied_ = 0;
  std::int64_t refused_ = 0;
};

}  // namespace kcron
