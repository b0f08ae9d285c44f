#include "kafka/control_channel.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "kcron/codec.h"
#include "kcron/service.h"

namespace kcron::worker {

ControlChannel::ControlChannel(kafka::Properties client, TopicNames names, std::string instance_id, Millis lookback,
                               const Clock& clock)
    : client_(std::move(client)),
      names_(std::move(names)),
      instance_id_(std::move(instance_id)),
      lookback_(lookback),
      clock_(clock) {}

Status ControlChannel::start() {
  auto properties = client_;
  properties["group.id"] = names_.prefix + "control-" + instance_id_;  // never committed
  auto consumer = kafka::make_consumer(properties);
  if (!consumer) return consumer.error();
  consumer_ = std::move(*consumer);
  auto counts = kafka::partition_counts(*consumer_, Millis(10000));
  if (!counts) return counts.error();
  const auto found = counts->find(names_.control());
  if (found == counts->end()) return make_error("topic {} does not exist", names_.control());
  const auto partitions = found->second;
  kafka::PartitionList list;
  const auto since = to_epoch_ms(clock_.now() - lookback_);
  for (std::int32_t partition = 0; partition < partitions; ++partition)
    list.items.push_back(RdKafka::TopicPartition::create(names_.control(), partition, since));
  // Just-created topics answer "not leader" until their leaders are known: retry, bounded.
  auto times_code = consumer_->offsetsForTimes(list.items, 10000);
  const auto deadline = std::chrono::steady_clock::now() + Millis(30000);
  while (times_code != RdKafka::ERR_NO_ERROR && std::chrono::steady_clock::now() < deadline && !stop_requested()) {
    spdlog::info("event=control_offsets_retry error=\"{}\"", RdKafka::err2str(times_code));
    std::this_thread::sleep_for(Millis(500));
    for (auto* partition : list.items) partition->set_offset(since);
    times_code = consumer_->offsetsForTimes(list.items, 10000);
  }
  if (times_code != RdKafka::ERR_NO_ERROR) return kafka::to_error(times_code, "offsetsForTimes on the control topic");
  for (auto* partition : list.items) {
    if (partition->offset() < 0) partition->set_offset(RdKafka::Topic::OFFSET_END);
  }
  if (const auto code = consumer_->assign(list.items); code != RdKafka::ERR_NO_ERROR)
    return kafka::to_error(code, "assign the control topic");
  return Status::success();
}

void ControlChannel::poll(const std::function<void(const v1::Cancel& cancel, Instant arrived)>& on_cancel, int max_records) {
  for (int count = 0; count < max_records; ++count) {
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(0));
    if (message->err() == RdKafka::ERR__TIMED_OUT || message->err() == RdKafka::ERR__PARTITION_EOF) return;
    if (message->err() != RdKafka::ERR_NO_ERROR) {
      spdlog::warn("event=control_consume_error error=\"{}\"", message->errstr());
      return;
    }
    auto command =
        decode_command(std::string_view(static_cast<const char*>(message->payload()), message->len()),
                       kafka::header_value(*message, header::kContentType), kafka::header_value(*message, header::kType));
    // A cancel names a job, or (a tenant's deletion) only its tenant.
    if (!command || !command->has_cancel() || (command->cancel().job_id().empty() && command->cancel().tenant().empty())) {
      spdlog::warn("event=control_record_ignored offset={} reason=\"{}\"", message->offset(),
                   command ? "not a cancel with a job id or a tenant" : command.error().message());
      continue;
    }
    on_cancel(command->cancel(), instant_from_ms(kafka::record_timestamp_ms(*message, to_epoch_ms(clock_.now()))));
  }
}

void ControlChannel::close() {
  if (consumer_) consumer_->close();
}

}  // namespace kcron::worker
