#include "core/bucket_key.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

using namespace kcron;
using namespace kcron::dispatcher;

namespace {

BucketKey key_at(std::int64_t due_ms, std::uint32_t priority, std::string job_id, Millis width = Millis(1000)) {
  return {bucket_of(instant_from_ms(due_ms), width), priority, instant_from_ms(due_ms), std::move(job_id)};
}

}  // namespace

TEST_CASE("bucket keys round-trip") {
  const BucketKey key{1234, 7, instant_from_ms(1'234'567), "job-1"};
  auto decoded = decode_bucket_key(encode_bucket_key(key));
  REQUIRE(decoded.ok());
  CHECK(*decoded == key);
}

TEST_CASE("the encoded layout is bucket, 9 - priority, due epoch ms, all big-endian, then the id") {
  const std::string expected(
      "\0\0\0\0\0\0\x01\x02"
      "\x02"
      "\0\0\0\0\0\x03\x04\x05"
      "job",
      20);
  CHECK(encode_bucket_key({0x0102, 7, instant_from_ms(0x030405), "job"}) == expected);
  CHECK(bucket_start(0x0102) == expected.substr(0, 8));
}

TEST_CASE("an instant falls in the bucket of its epoch ms divided by the width, and a bucket begins at its multiple") {
  CHECK(bucket_of(instant_from_ms(2'999), Millis(1000)) == 2);
  CHECK(bucket_of(instant_from_ms(-5), Millis(1000)) == 0);
  CHECK(bucket_begin(3, Millis(1000)) == instant_from_ms(3'000));
}

TEST_CASE("encoded bucket keys sort by bucket, then higher priority, then due instant, then id") {
  std::vector<BucketKey> keys = {
      key_at(2'500, 1, "late-low"),     key_at(1'900, 0, "b-low"),    key_at(1'100, 9, "b-high-early"),
      key_at(1'800, 9, "b-high-later"), key_at(1'500, 5, "b-normal"), key_at(999, 0, "first-bucket"),
  };
  std::vector<std::string> encoded;
  for (const auto& key : keys) encoded.push_back(encode_bucket_key(key));
  std::sort(encoded.begin(), encoded.end());
  std::vector<std::string> order;
  for (const auto& bytes : encoded) order.push_back(decode_bucket_key(bytes)->job_id);
  CHECK(order == std::vector<std::string>{"first-bucket", "b-high-early", "b-high-later", "b-normal", "b-low", "late-low"});
}

TEST_CASE("big-endian encoding keeps numeric order across byte boundaries") {
  CHECK(encode_bucket_key({255, 5, Instant{}, "a"}) < encode_bucket_key({256, 5, Instant{}, "a"}));
  CHECK(encode_bucket_key({1, 5, instant_from_ms(255), "a"}) < encode_bucket_key({1, 5, instant_from_ms(256), "a"}));
  CHECK(bucket_start(3) < encode_bucket_key({3, 9, Instant{}, ""}));
}

TEST_CASE("a short key is an error, not a crash") {
  auto decoded = decode_bucket_key("short");
  REQUIRE_FALSE(decoded.ok());
}
