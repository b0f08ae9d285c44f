// What the benchmark tools share: wall-clock stamps, latency summaries (p50/p99/max), a small
// JSON object writer for their one-line reports, and the admin calls a benchmark run needs around
// kcron's own adapters (end offsets, deleting a run's topics). Benchmark code only: the programs
// never link it.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/kafka.h"
#include "kcron/result.h"

namespace kcron::bench {

// The client properties of a benchmark tool: bootstrap.servers, `extra`, and the librdkafka
// properties of KCRON_BENCH_KAFKA ("key=value" pairs separated by ';': scripts/bench sets the
// admin certificate's TLS settings for the secured broker's scenario).
kafka::Properties client_properties(const std::string& brokers, const kafka::Properties& extra = {});

// Milliseconds since the Unix epoch (the unit every kcron record timestamp uses).
std::int64_t wall_ms();

// Order statistics of a sample (nearest-rank percentiles); all zero for an empty sample.
struct Summary {
  std::size_t count = 0;
  std::int64_t min = 0;
  std::int64_t p50 = 0;
  std::int64_t p90 = 0;
  std::int64_t p99 = 0;
  std::int64_t max = 0;
  double mean = 0;
};
Summary summarize(std::vector<std::int64_t> samples);

// A flat-or-nested JSON object built field by field; values are escaped, numbers written as is.
class JsonObject {
 public:
  JsonObject& add(std::string_view name, std::int64_t value);
  JsonObject& add(std::string_view name, double value);
  JsonObject& add(std::string_view name, std::string_view value);
  JsonObject& add(std::string_view name, const char* value) { return add(name, std::string_view(value)); }
  JsonObject& add(std::string_view name, bool value);
  JsonObject& add(std::string_view name, const JsonObject& value);
  JsonObject& add(std::string_view name, const Summary& value);
  std::string str() const { return "{" + body_ + "}"; }

 private:
  JsonObject& raw(std::string_view name, std::string_view json);
  std::string body_;
};

std::string json_string(std::string_view text);

// Writes `text` to `path` ("-" = stdout). An error names the path.
Status write_text(const std::string& path, const std::string& text);

// Writes one sample per line (at most `limit` lines, evenly strided) for plotting.
Status write_samples(const std::string& path, const std::vector<std::int64_t>& samples, std::size_t limit = 200000);

// Topics whose name starts with `prefix`, with their partition counts.
Result<std::map<std::string, std::int32_t>> topics_with_prefix(RdKafka::Handle& handle, const std::string& prefix,
                                                               std::chrono::milliseconds timeout);

// Sum of the high watermarks of every partition of `topic` (records + transaction markers).
Result<std::int64_t> end_offset_sum(RdKafka::Handle& handle, const std::string& topic, std::int32_t partitions,
                                    std::chrono::milliseconds timeout);

// Deletes the topics (librdkafka Admin API); topics already gone are not an error.
Status delete_topics(const kafka::Properties& properties, const std::vector<std::string>& topics,
                     std::chrono::milliseconds timeout);

}  // namespace kcron::bench
