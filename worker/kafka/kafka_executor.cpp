#include "kafka/kafka_executor.h"

#include <fmt/format.h>

namespace kcron::worker {

Status KafkaJobExecutor::start(const kafka::Properties& client) {
  auto metadata = kafka::make_producer(client, "");
  if (!metadata) return metadata.error();
  metadata_ = std::move(*metadata);
  return Status::success();
}

Handler KafkaJobExecutor::handler() {
  return [this](const v1::Job& job, const std::atomic<bool>&) -> Outcome { return check(job); };
}

Outcome KafkaJobExecutor::check(const v1::Job& job) {
  const auto& task = job.kafka();
  if (walls_ != nullptr) {
    const auto lists = walls_->find(job.tenant());
    if (auto allowed = check_kafka_target(walls_->settings(), job.tenant(), lists.get(), task.topic()); !allowed) {
      return failed(allowed.error().message(), false);
    }
  } else {
    WallSettings settings;
    settings.topic_prefix = names_.prefix;
    if (auto allowed = check_kafka_target(settings, "", nullptr, task.topic()); !allowed)
      return failed(allowed.error().message(), false);
  }
  if (task.key().size() + task.value().size() > kMaxKafkaJobRecordBytes) {
    return failed(fmt::format("kafka job record of {} bytes is over the {} byte limit", task.key().size() + task.value().size(),
                              kMaxKafkaJobRecordBytes),
                  false);
  }
  {
    std::lock_guard lock(mutex_);
    if (known_topics_.contains(task.topic())) return {};
  }
  if (!metadata_) return failed("the worker has not started its kafka job executor yet");
  // The record joins the result's transaction: producing to a missing topic would abort it
  // again and again, so the topic is checked here.
  auto counts = kafka::partition_counts(*metadata_, Millis(15000));
  if (!counts) return failed(fmt::format("could not check topic '{}': {}", task.topic(), counts.error().message()));
  if (!counts->contains(task.topic())) return failed(fmt::format("kafka job's topic '{}' does not exist", task.topic()), false);
  std::lock_guard lock(mutex_);
  known_topics_.insert(task.topic());
  return {};
}

}  // namespace kcron::worker
