#include "support/bench.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>

namespace kcron::bench {

kafka::Properties client_properties(const std::string& brokers, const kafka::Properties& extra) {
  kafka::Properties properties = {{"bootstrap.servers", brokers}};
  if (const char* value = std::getenv("KCRON_BENCH_KAFKA"); value != nullptr) {
    std::string_view rest(value);
    while (!rest.empty()) {
      const auto end = rest.find(';');
      const auto pair = rest.substr(0, end);
      if (const auto equals = pair.find('='); equals != std::string_view::npos) {
        properties[std::string(pair.substr(0, equals))] = std::string(pair.substr(equals + 1));
      }
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    }
  }
  for (const auto& [key, value] : extra) properties[key] = value;
  return properties;
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Summary summarize(std::vector<std::int64_t> samples) {
  Summary summary;
  if (samples.empty()) return summary;
  std::sort(samples.begin(), samples.end());
  const auto rank = [&](double fraction) {
    // Nearest rank: the smallest value with at least `fraction` of the sample at or below it.
    const auto position = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(samples.size())));
    return samples[std::clamp<std::size_t>(position, 1, samples.size()) - 1];
  };
  summary.count = samples.size();
  summary.min = samples.front();
  summary.p50 = rank(0.50);
  summary.p90 = rank(0.90);
  summary.p99 = rank(0.99);
  summary.max = samples.back();
  const double total = std::accumulate(samples.begin(), samples.end(), 0.0,
                                       [](double sum, std::int64_t value) { return sum + static_cast<double>(value); });
  summary.mean = total / static_cast<double>(samples.size());
  return summary;
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char character : text) {
    switch (character) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(character) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(character)));
        } else {
          out += character;
        }
    }
  }
  return out + "\"";
}

JsonObject& JsonObject::raw(std::string_view name, std::string_view json) {
  if (!body_.empty()) body_ += ",";
  body_ += json_string(name);
  body_ += ":";
  body_ += json;
  return *this;
}

JsonObject& JsonObject::add(std::string_view name, std::int64_t value) {
  return raw(name, std::to_string(value));
}

JsonObject& JsonObject::add(std::string_view name, double value) {
  return raw(name, std::isfinite(value) ? fmt::format("{:.3f}", value) : std::string("null"));
}

JsonObject& JsonObject::add(std::string_view name, std::string_view value) {
  return raw(name, json_string(value));
}

JsonObject& JsonObject::add(std::string_view name, bool value) {
  return raw(name, value ? "true" : "false");
}

JsonObject& JsonObject::add(std::string_view name, const JsonObject& value) {
  return raw(name, value.str());
}

JsonObject& JsonObject::add(std::string_view name, const Summary& value) {
  JsonObject object;
  object.add("count", static_cast<std::int64_t>(value.count))
      .add("min", value.min)
      .add("p50", value.p50)
      .add("p90", value.p90)
      .add("p99", value.p99)
      .add("max", value.max)
      .add("mean", value.mean);
  return raw(name, object.str());
}

Status write_text(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text << std::endl;
    return Status::success();
  }
  std::ofstream file(path, std::ios::trunc);
  file << text << "\n";
  file.close();
  if (!file) return make_error("cannot write {}", path);
  return Status::success();
}

Status write_samples(const std::string& path, const std::vector<std::int64_t>& samples, std::size_t limit) {
  std::ofstream file(path, std::ios::trunc);
  const std::size_t stride = std::max<std::size_t>(1, (samples.size() + limit - 1) / std::max<std::size_t>(1, limit));
  for (std::size_t index = 0; index < samples.size(); index += stride) file << samples[index] << "\n";
  file.close();
  if (!file) return make_error("cannot write samples to {}", path);
  return Status::success();
}

Result<std::map<std::string, std::int32_t>> topics_with_prefix(RdKafka::Handle& handle, const std::string& prefix,
                                                               std::chrono::milliseconds timeout) {
  auto counts = kafka::partition_counts(handle, timeout);
  if (!counts) return counts.error();
  std::map<std::string, std::int32_t> matching;
  for (const auto& [name, partitions] : *counts) {
    if (name.starts_with(prefix)) matching[name] = partitions;
  }
  return matching;
}

Result<std::int64_t> end_offset_sum(RdKafka::Handle& handle, const std::string& topic, std::int32_t partitions,
                                    std::chrono::milliseconds timeout) {
  std::int64_t sum = 0;
  for (std::int32_t partition = 0; partition < partitions; ++partition) {
    auto marks = kafka::watermarks(handle, topic, partition, timeout);
    if (!marks) return marks.error();
    sum += marks->second;
  }
  return sum;
}

Status delete_topics(const kafka::Properties& properties, const std::vector<std::string>& topics,
                     std::chrono::milliseconds timeout) {
  if (topics.empty()) return Status::success();
  auto producer = kafka::make_producer(properties, "");
  if (!producer) return producer.error();
  rd_kafka_t* handle = (*producer)->c_ptr();
  std::vector<rd_kafka_DeleteTopic_t*> requests;
  requests.reserve(topics.size());
  for (const auto& topic : topics) requests.push_back(rd_kafka_DeleteTopic_new(topic.c_str()));

  char error_text[512];
  rd_kafka_queue_t* queue = rd_kafka_queue_new(handle);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_DELETETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout.count()), error_text, sizeof error_text);
  rd_kafka_DeleteTopics(handle, requests.data(), requests.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 5000);

  Status outcome = make_error("delete topics: no answer from the cluster in time");
  if (event != nullptr) {
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      outcome = make_error("delete topics: {}", rd_kafka_event_error_string(event));
    } else {
      std::size_t count = 0;
      const auto* results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event), &count);
      std::string problems;
      for (std::size_t index = 0; index < count; ++index) {
        const auto code = rd_kafka_topic_result_error(results[index]);
        if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
          problems += fmt::format(" {}: {};", rd_kafka_topic_result_name(results[index]),
                                  rd_kafka_topic_result_error_string(results[index]));
        }
      }
      outcome = problems.empty() ? Status::success() : Status(make_error("delete topics:{}", problems));
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_DeleteTopic_destroy_array(requests.data(), requests.size());
  rd_kafka_queue_destroy(queue);
  return outcome;
}

}  // namespace kcron::bench
