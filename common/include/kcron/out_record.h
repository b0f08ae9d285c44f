// A record a kcron core decided to write: the adapters produce it as is. Pure data, no Kafka types.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kcron {

struct OutRecord {
  std::string topic;
  std::int32_t partition = -1;  // -1: the producer's partitioner (murmur2 of the key)
  std::string key;
  std::string value;  // empty with tombstone = true means delete (compacted topics)
  bool tombstone = false;
  std::vector<std::pair<std::string, std::string>> headers;
  std::int64_t timestamp_ms = 0;  // 0: now (CreateTime set by the producer)

  bool operator==(const OutRecord&) const = default;
};

}  // namespace kcron
