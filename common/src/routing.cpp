#include "kcron/routing.h"

#include <cstring>

namespace kcron {

std::int32_t murmur2(std::string_view key) {
  constexpr std::uint32_t kSeed = 0x9747b28cU;
  constexpr std::uint32_t kMultiplier = 0x5bd1e995U;
  constexpr int kShift = 24;

  const auto length = static_cast<std::uint32_t>(key.size());
  std::uint32_t hash = kSeed ^ length;
  const auto* bytes = reinterpret_cast<const unsigned char*>(key.data());

  std::size_t offset = 0;
  for (; offset + 4 <= key.size(); offset += 4) {
    // Little-endian 4-byte read, as Kafka's implementation does.
    std::uint32_t word = static_cast<std::uint32_t>(bytes[offset]) | (static_cast<std::uint32_t>(bytes[offset + 1]) << 8U) |
                         (static_cast<std::uint32_t>(bytes[offset + 2]) << 16U) |
                         (static_cast<std::uint32_t>(bytes[offset + 3]) << 24U);
    word *= kMultiplier;
    word ^= word >> kShift;
    word *= kMultiplier;
    hash *= kMultiplier;
    hash ^= word;
  }
  switch (key.size() % 4) {
    case 3:
      hash ^= static_cast<std::uint32_t>(bytes[offset + 2]) << 16U;
      [[fallthrough]];
    case 2:
      hash ^= static_cast<std::uint32_t>(bytes[offset + 1]) << 8U;
      [[fallthrough]];
    case 1:
      hash ^= static_cast<std::uint32_t>(bytes[offset]);
      hash *= kMultiplier;
      break;
    default:
      break;
  }
  hash ^= hash >> 13U;
  hash *= kMultiplier;
  hash ^= hash >> 15U;
  return static_cast<std::int32_t>(hash);
}

Partition partition_for_key(std::string_view key, std::int32_t partition_count) {
  const auto positive = static_cast<std::uint32_t>(murmur2(key)) & 0x7fffffffU;
  return Partition(static_cast<std::int32_t>(positive % static_cast<std::uint32_t>(partition_count)));
}

std::string_view routing_key_for_job(std::string_view job_id) {
  const auto separator = job_id.find_first_of("@/");
  if (separator == std::string_view::npos || separator == 0) return job_id;
  return job_id.substr(0, separator);
}

}  // namespace kcron
