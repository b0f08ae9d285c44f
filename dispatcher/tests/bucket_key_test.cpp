#include "core/bucket_key.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

using namespace kcron;
using namespace kcron::dispatcher;

TEST_CASE("bucket keys round-trip") {
  const BucketKey key{1234, 7, 1'234'567, "job-1"};
  auto decoded = decode_bucket_key(encode_bucket_key(key));
  REQUIRE(decoded.ok());
  CHECK(*decoded == key);
}

TEST_CASE("encoded bucket keys sort by bucket, then higher priority, then due instant, then id") {
  const Millis width(1000);
  std::vector<BucketKey> keys = {
      {bucket_of(2'500, width), 1, 2'500, "late-low"},     {bucket_of(1'900, width), 0, 1'900, "b-low"},
      {bucket_of(1'100, width), 9, 1'100, "b-high-early"}, {bucket_of(1'800, width), 9, 1'800, "b-high-later"},
      {bucket_of(1'500, width), 5, 1'500, "b-normal"},     {bucket_of(999, width), 0, 999, "first-bucket"},
  };
  std::vector<std::string> encoded;
  for (const auto& key : keys) encoded.push_back(encode_bucket_key(key));
  std::sort(encoded.begin(), encoded.end());
  std::vector<std::string> order;
  for (const auto& bytes : encoded) order.push_back(decode_bucket_key(bytes)->job_id);
  CHECK(order == std::vector<std::string>{"first-bucket", "b-high-early", "b-high-later", "b-normal", "b-low", "late-low"});
}

TEST_CASE("big-endian encoding keeps numeric order across byte boundaries") {
  CHECK(encode_bucket_key({255, 5, 0, "a"}) < encode_bucket_key({256, 5, 0, "a"}));
  CHECK(encode_bucket_key({1, 5, 255, "a"}) < encode_bucket_key({1, 5, 256, "a"}));
  CHECK(bucket_start(3) < encode_bucket_key({3, 9, 0, ""}));
}

TEST_CASE("a short key is an error, not a crash") {
  auto decoded = decode_bucket_key("short");
  REQUIRE_FALSE(decoded.ok());
}
