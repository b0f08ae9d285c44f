#include "kafka/band_pauses.h"

namespace kcron::worker {

void BandPauses::set(RdKafka::KafkaConsumer& consumer, Band band, bool pause) {
  auto& held = held_[band_index(band)];
  if (pause == !held.empty()) return;
  if (pause) {
    std::vector<RdKafka::TopicPartition*> assignment;
    if (consumer.assignment(assignment) != RdKafka::ERR_NO_ERROR) {
      RdKafka::TopicPartition::destroy(assignment);
      return;
    }
    for (auto* partition : assignment) {
      const auto found = band_of_topic_.find(partition->topic());
      if (found != band_of_topic_.end() && found->second == band) {
        held.push_back(partition);
      } else {
        delete partition;
      }
    }
    if (!held.empty()) (void)consumer.pause(held);
  } else {
    (void)consumer.resume(held);
    RdKafka::TopicPartition::destroy(held);
    held.clear();
  }
}

void BandPauses::resume_all(RdKafka::KafkaConsumer& consumer) {
  for (auto& held : held_) {
    if (!held.empty()) (void)consumer.resume(held);
    RdKafka::TopicPartition::destroy(held);
    held.clear();
  }
}

void BandPauses::forget() {
  for (auto& held : held_) {
    RdKafka::TopicPartition::destroy(held);
    held.clear();
  }
}

}  // namespace kcron::worker
