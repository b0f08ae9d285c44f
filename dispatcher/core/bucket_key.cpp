#include "core/bucket_key.h"

#include <algorithm>

namespace kcron::dispatcher {

void put_big_endian(std::string& out, std::uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xffU));
}

std::uint64_t read_big_endian(std::string_view bytes) {
  std::uint64_t value = 0;
  for (std::size_t index = 0; index < 8; ++index) value = (value << 8U) | static_cast<unsigned char>(bytes[index]);
  return value;
}

std::int64_t bucket_of(Instant due, Millis bucket_width) {
  return std::max<std::int64_t>(to_epoch_ms(due), 0) / std::max<std::int64_t>(bucket_width.count(), 1);
}

Instant bucket_begin(std::int64_t bucket, Millis bucket_width) {
  return instant_from_ms(bucket * std::max<std::int64_t>(bucket_width.count(), 1));
}

std::string bucket_start(std::int64_t bucket) {
  std::string out;
  put_big_endian(out, static_cast<std::uint64_t>(std::max<std::int64_t>(bucket, 0)));
  return out;
}

std::string encode_bucket_key(const BucketKey& key) {
  std::string out;
  out.reserve(17 + key.job_id.size());
  put_big_endian(out, static_cast<std::uint64_t>(std::max<std::int64_t>(key.bucket, 0)));
  out.push_back(static_cast<char>(9 - std::min<std::uint32_t>(key.priority, 9)));
  put_big_endian(out, static_cast<std::uint64_t>(std::max<std::int64_t>(to_epoch_ms(key.due), 0)));
  out += key.job_id;
  return out;
}

Result<BucketKey> decode_bucket_key(std::string_view encoded) {
  if (encoded.size() < 17) return make_error("bucket key of {} bytes is shorter than 17", encoded.size());
  BucketKey key;
  key.bucket = static_cast<std::int64_t>(read_big_endian(encoded.substr(0, 8)));
  key.priority = 9U - static_cast<unsigned char>(encoded[8]);
  key.due = instant_from_ms(static_cast<std::int64_t>(read_big_endian(encoded.substr(9, 8))));
  key.job_id = std::string(encoded.substr(17));
  return key;
}

}  // namespace kcron::dispatcher
