#include "kafka/done_markers.h"

#include <spdlog/spdlog.h>

#include <limits>
#include <thread>

namespace kcron::worker {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr Millis kClockSkewMargin{60000};

}  // namespace

DoneMarkers::DoneMarkers(kafka::Properties client, DoneMarkerSettings settings, const Clock& clock)
    : client_(std::move(client)), settings_(std::move(settings)), clock_(clock) {}

bool DoneMarkers::take(const ExecPosition& position) {
  const auto found = done_.find({position.topic, position.partition});
  if (found == done_.end()) return false;
  return found->second.erase(position.offset) > 0;
}

void DoneMarkers::load(RdKafka::KafkaConsumer& consumer, const std::vector<RdKafka::TopicPartition*>& partitions) {
  done_.clear();
  if (partitions.empty()) return;
  const auto started = SteadyClock::now();
  const auto now_ms = [this] { return to_epoch_ms(clock_.now()); };
  kafka::PartitionList positions;
  for (const auto* partition : partitions)
    positions.items.push_back(RdKafka::TopicPartition::create(partition->topic(), partition->partition()));
  auto code = consumer.committed(positions.items, 10000);
  for (int attempt = 0; code != RdKafka::ERR_NO_ERROR && attempt < 3; ++attempt) {
    std::this_thread::sleep_for(Millis(500));
    code = consumer.committed(positions.items, 10000);
  }
  if (code != RdKafka::ERR_NO_ERROR) {
    spdlog::error("event=done_markers_skipped reason=\"committed offsets unavailable: {}\"", RdKafka::err2str(code));
    return;
  }
  auto properties = client_;
  properties["group.id"] = settings_.names.prefix + "worker-done-reader";
  properties["enable.partition.eof"] = "true";
  auto reader = kafka::make_consumer(properties);
  if (!reader) {
    spdlog::warn("event=done_markers_skipped reason=\"{}\"", reader.error().message());
    return;
  }
  // 1. The timestamp of the record at each committed offset (none: nothing consumed past it).
  std::map<TopicPartitionKey, std::int64_t> first_offset;
  for (auto* position : positions.items) {
    if (position->offset() < 0) position->set_offset(RdKafka::Topic::OFFSET_BEGINNING);
  }
  (void)(*reader)->assign(positions.items);
  std::map<std::int32_t, std::int64_t> read_from_ms;  // done partition -> earliest timestamp
  std::set<TopicPartitionKey> pending;
  for (const auto* position : positions.items) pending.insert({position->topic(), position->partition()});
  const auto probe_deadline = SteadyClock::now() + Millis(10000);
  while (!pending.empty() && SteadyClock::now() < probe_deadline) {
    std::unique_ptr<RdKafka::Message> message((*reader)->consume(100));
    if (message->err() != RdKafka::ERR_NO_ERROR && message->err() != RdKafka::ERR__PARTITION_EOF) continue;
    const TopicPartitionKey key{message->topic_name(), message->partition()};
    if (!pending.erase(key)) continue;
    if (message->err() == RdKafka::ERR__PARTITION_EOF) continue;
    first_offset[key] = message->offset();
    const auto timestamp = kafka::record_timestamp_ms(*message, now_ms()) - kClockSkewMargin.count();
    const auto done_partition = key.second % settings_.exec_partitions;
    const auto floor = now_ms() - settings_.dedupe_lookback.count();
    auto& earliest = read_from_ms.try_emplace(done_partition, std::numeric_limits<std::int64_t>::max()).first->second;
    earliest = std::min(earliest, std::max(timestamp, floor));
  }
  (void)(*reader)->unassign();
  if (read_from_ms.empty()) return;

  // 2. The done markers from there to the end of each partition that can hold one: worker-done
  // (markers), and results (a result names the exec record it came from). A result goes to the
  // job key's murmur2 partition, which is its exec partition when both topics have as many
  // partitions; otherwise any results partition may hold one.
  std::int32_t results_partitions = 0;
  if (auto counts = kafka::partition_counts(**reader, Millis(10000)); counts) {
    if (const auto found = counts->find(settings_.names.results()); found != counts->end()) results_partitions = found->second;
  } else {
    spdlog::warn("event=done_markers_results_skipped reason=\"{}\" msg=\"reading worker-done only\"", counts.error().message());
  }
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> since_of;  // (topic, partition) -> from ms
  std::int64_t earliest_overall = std::numeric_limits<std::int64_t>::max();
  for (const auto& [partition, since] : read_from_ms) {
    since_of[{settings_.names.worker_done(), partition}] = since;
    earliest_overall = std::min(earliest_overall, since);
    if (results_partitions == settings_.exec_partitions) since_of[{settings_.names.results(), partition}] = since;
  }
  if (results_partitions > 0 && results_partitions != settings_.exec_partitions) {
    for (std::int32_t partition = 0; partition < results_partitions; ++partition)
      since_of[{settings_.names.results(), partition}] = earliest_overall;
  }
  kafka::PartitionList done;
  for (const auto& [where, since] : since_of)
    done.items.push_back(RdKafka::TopicPartition::create(where.first, where.second, since));
  auto times_code = (*reader)->offsetsForTimes(done.items, 10000);
  for (int attempt = 0; times_code != RdKafka::ERR_NO_ERROR && attempt < 5; ++attempt) {
    std::this_thread::sleep_for(Millis(500));
    for (auto* partition : done.items) partition->set_offset(since_of.at({partition->topic(), partition->partition()}));
    times_code = (*reader)->offsetsForTimes(done.items, 10000);
  }
  if (times_code != RdKafka::ERR_NO_ERROR) {
    spdlog::warn("event=done_markers_skipped reason=\"offsetsForTimes failed\"");
    return;
  }
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> high;
  std::vector<RdKafka::TopicPartition*> to_read;
  for (auto* partition : done.items) {
    std::int64_t low_mark = 0;
    std::int64_t high_mark = 0;
    if (partition->offset() < 0 ||
        (*reader)->query_watermark_offsets(partition->topic(), partition->partition(), &low_mark, &high_mark, 5000) !=
            RdKafka::ERR_NO_ERROR ||
        partition->offset() >= high_mark) {
      continue;
    }
    high[{partition->topic(), partition->partition()}] = high_mark;
    to_read.push_back(partition);
  }
  (void)(*reader)->assign(to_read);
  std::size_t markers = 0;
  std::size_t from_results = 0;
  const auto record_done = [&](const std::string& exec_topic, std::int32_t exec_partition, std::int64_t exec_offset) {
    const TopicPartitionKey key{exec_topic, exec_partition};
    const auto first = first_offset.find(key);
    if (first == first_offset.end() || exec_offset < first->second) return false;
    done_[key].insert(exec_offset);
    return true;
  };
  const auto read_deadline = SteadyClock::now() + settings_.transaction_timeout + Millis(10000);
  while (!high.empty() && SteadyClock::now() < read_deadline) {
    std::unique_ptr<RdKafka::Message> message((*reader)->consume(200));
    const std::pair<std::string, std::int32_t> where{message->topic_name(), message->partition()};
    if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      // read_committed stops at the last stable offset; an open transaction of the previous
      // owner ends (commit or abort) within the transaction timeout.
      if (const auto found = high.find(where); found != high.end() && message->offset() >= found->second) high.erase(found);
      continue;
    }
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    if (const auto found = high.find(where); found != high.end() && message->offset() + 1 >= found->second) high.erase(found);
    if (message->payload() == nullptr) continue;
    const auto* bytes = message->payload();
    const auto size = static_cast<int>(message->len());
    if (where.first == settings_.names.results()) {
      v1::Result result;
      if (!result.ParseFromArray(bytes, size) || result.exec_topic().empty()) continue;  // a release before: its marker says it
      if (record_done(result.exec_topic(), result.exec_partition(), result.exec_offset())) ++from_results;
      continue;
    }
    v1::DoneMarker marker;
    if (!marker.ParseFromArray(bytes, size)) continue;
    if (record_done(marker.exec_topic(), marker.exec_partition(), marker.exec_offset())) ++markers;
  }
  (*reader)->close();
  spdlog::info("event=done_markers_loaded markers={} results={} partitions={} ms={}", markers, from_results, read_from_ms.size(),
               std::chrono::duration_cast<Millis>(SteadyClock::now() - started).count());
}

}  // namespace kcron::worker
