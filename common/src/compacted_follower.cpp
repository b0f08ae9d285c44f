#include "kcron/compacted_follower.h"

#include <spdlog/spdlog.h>

#include <string_view>
#include <utility>

#include "kcron/codec.h"
#include "kcron/service.h"

namespace kcron {
namespace {

constexpr Millis kMetadataTimeout(10000);

}  // namespace

CompactedFollower::CompactedFollower(kafka::Properties client, FollowedTopic topic, Millis assign_retry)
    : client_(std::move(client)), topic_(std::move(topic)), assign_retry_(assign_retry) {}

CompactedFollower::~CompactedFollower() {
  close();
}

Status CompactedFollower::start(Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!consumer_) {
    auto properties = client_;
    const auto client_id = properties.find("client.id");
    properties["group.id"] = topic_.group_prefix + (client_id != properties.end() ? client_id->second : "kcron");
    properties["enable.auto.commit"] = "false";  // the group is never committed: every start reads from the beginning
    properties["isolation.level"] = "read_committed";
    properties["enable.partition.eof"] = "true";
    auto consumer = kafka::make_consumer(properties);
    if (!consumer) return consumer.error();
    consumer_ = std::move(*consumer);
  }
  auto assigned = assign(std::min(timeout, kMetadataTimeout));
  if (!assigned) return assigned.error();
  if (!*assigned) {
    spdlog::warn("event={}_topic_missing topic={} retry_s={} hint=\"{}\"", topic_.event, topic_.topic,
                 std::chrono::duration_cast<std::chrono::seconds>(assign_retry_).count(), topic_.missing_hint);
    return Status::success();
  }
  while (!catch_up_.empty()) {
    if (std::chrono::steady_clock::now() >= deadline || stop_requested()) {
      const auto& [partition, high] = *catch_up_.begin();
      return make_error("{}: {}[{}] not read up to offset {} within {} ms ({} records applied)", topic_.what, topic_.topic,
                        partition, high, timeout.count(), applied_);
    }
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(100));
    const auto code = message->err();
    if (code == RdKafka::ERR_NO_ERROR) {
      apply(*message);
      if (auto pending = catch_up_.find(message->partition());
          pending != catch_up_.end() && message->offset() + 1 >= pending->second) {
        catch_up_.erase(pending);
      }
      continue;
    }
    if (code == RdKafka::ERR__PARTITION_EOF) {
      if (auto pending = catch_up_.find(message->partition());
          pending != catch_up_.end() && message->offset() >= pending->second) {
        catch_up_.erase(pending);
      }
    } else if (code != RdKafka::ERR__TIMED_OUT) {
      spdlog::warn("event={}_consume_error error=\"{}\"", topic_.event, message->errstr());
    }
    // A transaction's commit marker ends a partition without a record: the position shows it.
    kafka::PartitionList positions;
    for (const auto& [partition, high] : catch_up_)
      positions.items.push_back(RdKafka::TopicPartition::create(topic_.topic, partition));
    if (consumer_->position(positions.items) != RdKafka::ERR_NO_ERROR) continue;
    for (const auto* position : positions.items) {
      if (position->offset() >= 0 && position->offset() >= catch_up_[position->partition()])
        catch_up_.erase(position->partition());
    }
  }
  spdlog::info("event={} topic={} {}applied={} refused={}", topic_.loaded_event, topic_.topic,
               topic_.loaded_fields ? topic_.loaded_fields() : std::string(), applied_, refused_);
  return Status::success();
}

Result<bool> CompactedFollower::assign(Millis timeout) {
  auto counts = kafka::partition_counts(*consumer_, timeout);
  if (!counts) return counts.error();
  const auto found = counts->find(topic_.topic);
  if (found == counts->end()) {
    next_assign_ = std::chrono::steady_clock::now() + assign_retry_;
    return false;
  }
  kafka::PartitionList list;
  catch_up_.clear();
  for (std::int32_t partition = 0; partition < found->second; ++partition) {
    // Retried inside: a topic created a moment ago answers "not leader" until it has one.
    auto marks = kafka::watermarks(*consumer_, topic_.topic, partition, timeout);
    if (!marks) return marks.error();
    if (marks->second > marks->first) catch_up_[partition] = marks->second;
    list.items.push_back(RdKafka::TopicPartition::create(topic_.topic, partition, RdKafka::Topic::OFFSET_BEGINNING));
  }
  if (const auto code = consumer_->assign(list.items); code != RdKafka::ERR_NO_ERROR)
    return kafka::to_error(code, fmt::format("assign {}", topic_.topic));
  following_ = true;
  return true;
}

void CompactedFollower::poll(int max_records) {
  if (!consumer_) return;
  if (!following_) {
    if (std::chrono::steady_clock::now() < next_assign_) return;
    auto assigned = assign(kMetadataTimeout);
    if (!assigned) {
      next_assign_ = std::chrono::steady_clock::now() + assign_retry_;
      spdlog::warn("event={}_assign_failed topic={} error=\"{}\"", topic_.event, topic_.topic, assigned.error().message());
      return;
    }
    if (!*assigned) return;
    spdlog::info("event={}_topic_found topic={}", topic_.event, topic_.topic);
  }
  for (int count = 0; count < max_records; ++count) {
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(0));
    const auto code = message->err();
    if (code == RdKafka::ERR__TIMED_OUT) return;
    if (code == RdKafka::ERR__PARTITION_EOF) continue;
    if (code != RdKafka::ERR_NO_ERROR) {
      spdlog::warn("event={}_consume_error error=\"{}\"", topic_.event, message->errstr());
      return;
    }
    // After the start: each change is logged (tenant settings and templates change rarely).
    if (apply(*message)) {
      spdlog::info("event={}_record_applied {}={} partition={} offset={}", topic_.event, topic_.key_field,
                   message->key() != nullptr ? *message->key() : std::string(), message->partition(), message->offset());
    }
  }
}

bool CompactedFollower::apply(RdKafka::Message& message) {
  const std::string key = message.key() != nullptr ? *message.key() : std::string();
  const bool tombstone = message.payload() == nullptr;
  Status status = Status::success();
  if (key.empty()) {
    status = make_error("a record without a key (the key is {})", topic_.key_meaning);
  } else {
    const std::string_view value(static_cast<const char*>(message.payload()), tombstone ? 0 : message.len());
    status = topic_.apply(key, value, kafka::header_value(message, header::kContentType), tombstone);
  }
  if (status) {
    ++applied_;
    return true;
  }
  ++refused_;
  spdlog::warn("event={}_record_refused {}={} partition={} offset={} reason=\"{}\"", topic_.event, topic_.key_field, key,
               message.partition(), message.offset(), status.error().message());
  return false;
}

void CompactedFollower::close() {
  if (!consumer_) return;
  consumer_->close();
  consumer_.reset();
  following_ = false;
}

}  // namespace kcron
