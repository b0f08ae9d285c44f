// Delay-bucket keys. A pending entry lives under [bucket][9 - priority][due_ms][job id], all
// integers big-endian, so a RocksDB scan in key order visits buckets in time order and, inside a
// bucket, higher priority first. Every bucket before the current one is entirely due; the current
// bucket is scanned whole and its entries with due_ms <= now fire. This layout is on disk: keep it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kcron/clock.h"
#include "kcron/result.h"

namespace kcron::dispatcher {

struct BucketKey {
  std::int64_t bucket = 0;     // index of the bucket: epoch ms / bucket width
  std::uint32_t priority = 0;  // 0-9
  Instant due{};               // encoded as epoch ms, 0 for an instant before the epoch
  std::string job_id;
  auto operator<=>(const BucketKey&) const = default;
};

// The bucket an instant falls in (instants before the epoch fall in bucket 0).
std::int64_t bucket_of(Instant due, Millis bucket_width);
// The first instant of a bucket.
Instant bucket_begin(std::int64_t bucket, Millis bucket_width);

// Encoded key without the store's one-byte prefix.
std::string encode_bucket_key(const BucketKey& key);
Result<BucketKey> decode_bucket_key(std::string_view encoded);

// The smallest encoded key of a bucket (a scan's lower or upper bound).
std::string bucket_start(std::int64_t bucket);

void put_big_endian(std::string& out, std::uint64_t value);
std::uint64_t read_big_endian(std::string_view bytes);

}  // namespace kcron::dispatcher
