#include "core/rfc3339.h"

#include <catch2/catch.hpp>

using namespace kcron;
using namespace kcron::cron;

TEST_CASE("instants print as RFC 3339 UTC, with milliseconds only when they are not zero") {
  CHECK(format_rfc3339(instant_from_ms(1'772'355'600'000)) == "2026-03-01T09:00:00Z");
  CHECK(format_rfc3339(instant_from_ms(1'772'355'600'250)) == "2026-03-01T09:00:00.250Z");
  CHECK(format_rfc3339(instant_from_ms(0)) == "1970-01-01T00:00:00Z");
  CHECK(format_rfc3339(instant_from_ms(-1)) == "1969-12-31T23:59:59.999Z");
  CHECK(format_rfc3339(instant_from_ms(253'402'300'799'999)) == "9999-12-31T23:59:59.999Z");
  CHECK(format_rfc3339(Instant::max()) == "9223372036854775807 ms since the Unix epoch");
  CHECK(format_rfc3339(Instant::min()) == "-9223372036854775808 ms since the Unix epoch");
}

TEST_CASE("RFC 3339 text reads with Z or an offset, a fraction, and T, t or a space") {
  CHECK(to_epoch_ms(*parse_rfc3339("2026-03-01T09:00:00Z")) == 1'772'355'600'000);
  CHECK(to_epoch_ms(*parse_rfc3339("2026-03-01t09:00:00z")) == 1'772'355'600'000);
  CHECK(to_epoch_ms(*parse_rfc3339("2026-03-01 10:00:00+01:00")) == 1'772'355'600'000);
  CHECK(to_epoch_ms(*parse_rfc3339("2026-03-01T04:00:00-05:00")) == 1'772'355'600'000);
  CHECK(to_epoch_ms(*parse_rfc3339("2026-03-01T09:00:00.5Z")) == 1'772'355'600'500);
  CHECK(to_epoch_ms(*parse_rfc3339("2026-03-01T09:00:00.123456789Z")) == 1'772'355'600'123);
}

TEST_CASE("text that is not an RFC 3339 instant is an error that quotes it") {
  for (const char* text : {"", "2026-03-01", "2026-03-01T09:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
                           "2026-03-01T24:00:00Z", "2026-03-01T09:60:00Z", "2026-03-01T09:00:60Z", "2026-03-01T09:00:00.Z",
                           "2026-03-01T09:00:00+1:00", "2026-03-01T09:00:00Zjunk", "tomorrow"}) {
    INFO(text);
    auto parsed = parse_rfc3339(text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message() == fmt::format("{} is not an RFC 3339 instant (e.g. 2026-03-01T09:00:00Z)", text));
  }
}
