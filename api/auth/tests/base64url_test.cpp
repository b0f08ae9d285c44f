#include "auth/base64url.h"

#include <catch2/catch.hpp>

using kcron::auth::base64url_decode;
using kcron::auth::base64url_encode;

TEST_CASE("base64url encodes the RFC 4648 test vectors without padding") {
  CHECK(base64url_encode("").empty());
  CHECK(base64url_encode("f") == "Zg");
  CHECK(base64url_encode("fo") == "Zm8");
  CHECK(base64url_encode("foo") == "Zm9v");
  CHECK(base64url_encode("foob") == "Zm9vYg");
  CHECK(base64url_encode("fooba") == "Zm9vYmE");
  CHECK(base64url_encode("foobar") == "Zm9vYmFy");
  CHECK(base64url_encode("\xfb\xff") == "-_8");
}

TEST_CASE("base64url decoding round-trips every byte value") {
  std::string bytes;
  for (int value = 0; value < 256; ++value) bytes += static_cast<char>(value);
  for (std::size_t length = 0; length <= bytes.size(); length += 7) {
    const auto decoded = base64url_decode(base64url_encode(bytes.substr(0, length)));
    REQUIRE(decoded);
    CHECK(*decoded == bytes.substr(0, length));
  }
}

TEST_CASE("base64url decoding refuses padding, foreign characters and non-canonical spellings") {
  CHECK_FALSE(base64url_decode("Zg=="));
  CHECK_FALSE(base64url_decode("Zm8="));
  CHECK_FALSE(base64url_decode("+/8"));  // the standard alphabet's 62 and 63
  CHECK_FALSE(base64url_decode("Zm 9v"));
  CHECK_FALSE(base64url_decode("Zm9v\n"));
  CHECK_FALSE(base64url_decode("Zm9vY"));  // 4n+1 characters spell no byte string
  CHECK_FALSE(base64url_decode("Zh"));     // "f" with a non-zero unused bit
  CHECK_FALSE(base64url_decode("Zm9"));    // "fo" with non-zero unused bits
  CHECK(base64url_decode("Zm8") == std::optional<std::string>("fo"));
}
