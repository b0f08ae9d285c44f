// Pauses and resumes the exec partitions of one priority band at a time, and resumes only what it
// paused: in librdkafka 2.0.2, resume() of a partition that is not paused can rewind it. Holds
// the paused partitions until they are resumed. Main thread only.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "core/band_scheduler.h"

namespace kcron::worker {

class BandPauses {
 public:
  explicit BandPauses(std::map<std::string, Band> band_of_topic) : band_of_topic_(std::move(band_of_topic)) {}
  ~BandPauses() { forget(); }
  BandPauses(const BandPauses&) = delete;
  BandPauses& operator=(const BandPauses&) = delete;

  // Pauses every assigned partition of the band's topics, or resumes what an earlier call paused.
  void set(RdKafka::KafkaConsumer& consumer, Band band, bool paused);
  // Resumes everything paused: only resume() clears a pause, and a partition paused at a revoke
  // would stay paused when assigned again.
  void resume_all(RdKafka::KafkaConsumer& consumer);
  // Drops what is held without resuming (the consumer is being discarded).
  void forget();

 private:
  std::map<std::string, Band> band_of_topic_;
  std::array<std::vector<RdKafka::TopicPartition*>, kBandCount> held_;
};

}  // namespace kcron::worker
