#include "kcron/template_follower.h"

#include <spdlog/spdlog.h>

#include <string_view>
#include <utility>

#include "kcron/codec.h"
#include "kcron/service.h"

namespace kcron {
namespace {

constexpr Millis kMetadataTimeout(10000);

}  // namespace

TemplateFollower::TemplateFollower(kafka::Properties client, TopicNames names, templates::Catalog& catalog, Millis assign_retry)
    : client_(std::move(client)), names_(std::move(names)), catalog_(catalog), assign_retry_(assign_retry) {}

TemplateFollower::~TemplateFollower() {
  close();
}

Status TemplateFollower::start(Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!consumer_) {
    auto properties = client_;
    const auto client_id = properties.find("client.id");
    properties["group.id"] = names_.prefix + "templates-" + (client_id != properties.end() ? client_id->second : "kcron");
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
    spdlog::warn(
        "event=template_topic_missing topic={} retry_s={} hint=\"run `kcron topics create`; references to templates wait until "
        "it exists\"",
        names_.templates(), std::chrono::duration_cast<std::chrono::seconds>(assign_retry_).count());
    return Status::success();
  }
  while (!catch_up_.empty()) {
    if (std::chrono::steady_clock::now() >= deadline || stop_requested()) {
      const auto& [partition, high] = *catch_up_.begin();
      return make_error("template catalog: {}[{}] not read up to offset {} within {} ms ({} records applied)", names_.templates(),
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
      spdlog::warn("event=template_consume_error error=\"{}\"", message->errstr());
    }
    // A transaction's commit marker ends a partition without a record: the position shows it.
    kafka::PartitionList positions;
    for (const auto& [partition, high] : catch_up_)
      positions.items.push_back(RdKafka::TopicPartition::create(names_.templates(), partition));
    if (consumer_->position(positions.items) != RdKafka::ERR_NO_ERROR) continue;
    for (const auto* position : positions.items) {
      if (position->offset() >= 0 && position->offset() >= catch_up_[position->partition()])
        catch_up_.erase(position->partition());
    }
  }
  spdlog::info("event=template_catalog_loaded topic={} applied={} refused={}", names_.templates(), applied_, refused_);
  return Status::success();
}

Result<bool> TemplateFollower::assign(Millis timeout) {
  auto counts = kafka::partition_counts(*consumer_, timeout);
  if (!counts) return counts.error();
  const auto found = counts->find(names_.templates());
  if (found == counts->end()) {
    next_assign_ = std::chrono::steady_clock::now() + assign_retry_;
    return false;
  }
  kafka::PartitionList list;
  catch_up_.clear();
  for (std::int32_t partition = 0; partition < found->second; ++partition) {
    // Retried inside: a topic created a moment ago answers "not leader" until it has one.
    auto marks = kafka::watermarks(*consumer_, names_.templates(), partition, timeout);
    if (!marks) return marks.error();
    if (marks->second > marks->first) catch_up_[partition] = marks->second;
    list.items.push_back(RdKafka::TopicPartition::create(names_.templates(), partition, RdKafka::Topic::OFFSET_BEGINNING));
  }
  if (const auto code = consumer_->assign(list.items); code != RdKafka::ERR_NO_ERROR)
    return kafka::to_error(code, fmt::format("assign {}", names_.templates()));
  following_ = true;
  return true;
}

void TemplateFollower::poll(int max_records) {
  if (!consumer_) return;
  if (!following_) {
    if (std::chrono::steady_clock::now() < next_assign_) return;
    auto assigned = assign(kMetadataTimeout);
    if (!assigned) {
      next_assign_ = std::chrono::steady_clock::now() + assign_retry_;
      spdlog::warn("event=template_assign_failed topic={} error=\"{}\"", names_.templates(), assigned.error().message());
      return;
    }
    if (!*assigned) return;
    spdlog::info("event=template_topic_found topic={}", names_.templates());
  }
  for (int count = 0; count < max_records; ++count) {
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(0));
    const auto code = message->err();
    if (code == RdKafka::ERR__TIMED_OUT) return;
    if (code == RdKafka::ERR__PARTITION_EOF) continue;
    if (code != RdKafka::ERR_NO_ERROR) {
      spdlog::warn("event=template_consume_error error=\"{}\"", message->errstr());
      return;
    }
    // After the start: each new version is logged (templates change rarely).
    if (apply(*message)) {
      spdlog::info("event=template_record_applied key={} partition={} offset={}",
                   message->key() != nullptr ? *message->key() : std::string(), message->partition(), message->offset());
    }
  }
}

bool TemplateFollower::apply(RdKafka::Message& message) {
  const std::string key = message.key() != nullptr ? *message.key() : std::string();
  const bool tombstone = message.payload() == nullptr;
  Status status = Status::success();
  if (key.empty()) {
    status = make_error("a record without a key (the key is the template version's scoped key)");
  } else {
    const std::string_view value(static_cast<const char*>(message.payload()), tombstone ? 0 : message.len());
    status = catalog_.apply(key, value, kafka::header_value(message, header::kContentType), tombstone);
  }
  if (status) {
    ++applied_;
    return true;
  }
  ++refused_;
  spdlog::warn("event=template_record_refused key={} partition={} offset={} reason=\"{}\"", key, message.partition(),
               message.offset(), status.error().message());
  return false;
}

void TemplateFollower::close() {
  if (!consumer_) return;
  consumer_->close();
  consumer_.reset();
  following_ = false;
}

}  // namespace kcron
