// The template catalog kept current from the compacted kcron.templates topic: every partition read
// from the beginning by a consumer that commits nothing, each record folded into a templates::Catalog
// (templates.h). start() catches up to the end the topic had when it began; poll() applies
// what arrived since. Single-threaded: the owner's thread calls start, poll and close.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "kcron/clock.h"
#include "kcron/kafka.h"
#include "kcron/result.h"
#include "kcron/templates.h"
#include "kcron/topics.h"

namespace kcron {

class TemplateFollower {
 public:
  // `client`: the program's client properties (client_properties()); its client.id names the
  // never-committed group `<prefix>templates-<client.id>`. `catalog` outlives the follower.
  // `assign_retry`: how often poll() looks again for a topic that did not exist.
  TemplateFollower(kafka::Properties client, TopicNames names, templates::Catalog& catalog,
                   Millis assign_retry = std::chrono::seconds(30));
  ~TemplateFollower();
  TemplateFollower(const TemplateFollower&) = delete;
  TemplateFollower& operator=(const TemplateFollower&) = delete;

  // Assigns every partition of the topic from its beginning and applies records until each
  // partition reaches the high watermark it had at the start, for at most `timeout`. A missing
  // topic is not an error: it is logged (`kcron topics create` makes it) and poll() looks again
  // every `assign_retry`. An error when the consumer cannot be made, or the catch-up did not end
  // within `timeout` (the catalog then holds a prefix of the topic; poll() carries on reading).
  Status start(Millis timeout);
  // Applies up to `max_records` records that have arrived, without waiting for more; assigns the
  // topic first if start() did not find it and `assign_retry` has passed since the last look.
  void poll(int max_records = 100);
  void close();

  // The topic is assigned (it existed at start or at a later look).
  bool following() const { return following_; }
  // Records applied and refused since start: a refused record leaves the catalog as it was.
  std::int64_t applied() const { return applied_; }
  std::int64_t refused() const { return refused_; }

 private:
  // Assigns the topic's partitions from the beginning; false if the topic does not exist. Fills
  // catch_up_ with each partition's high watermark.
  Result<bool> assign(Millis timeout);
  // Folds one consumed record into the catalog (refusals are logged, never fatal).
  // Whether the record applied (a refused one is logged and counted).
  bool apply(RdKafka::Message& message);

  kafka::Properties client_;
  TopicNames names_;
  templates::Catalog& catalog_;
  Millis assign_retry_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  bool following_ = false;
  std::chrono::steady_clock::time_point next_assign_{};
  std::map<std::int32_t, std::int64_t> catch_up_;  // partition -> high watermark still to reach at start
  std::int64_t applied_ = 0;
  std::int64_t refused_ = 0;
};

}  // namespace kcron
