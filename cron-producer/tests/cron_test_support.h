// Helpers for the cron tests: instants from RFC 3339 text and fire lists as RFC 3339 text, so a
// test reads like the schedule it checks.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/cron_expression.h"
#include "core/rfc3339.h"

namespace kcron::cron::testing {

inline Instant at(std::string_view rfc3339) {
  auto instant = parse_rfc3339(rfc3339);
  REQUIRE(instant.ok());
  return *instant;
}

inline TimeZone zone(std::string_view name) {
  auto located = TimeZone::locate(name);
  REQUIRE(located.ok());
  return *located;
}

inline CronExpression expression(std::string_view text) {
  auto parsed = CronExpression::parse(text);
  INFO(text);
  REQUIRE(parsed.ok());
  return *parsed;
}

// The first `count` fire instants strictly after `after`, in `zone_name`.
inline std::vector<std::string> fires(std::string_view text, std::string_view after, std::size_t count,
                                      std::string_view zone_name = "UTC") {
  const CronExpression parsed = expression(text);
  const TimeZone located = zone(zone_name);
  std::vector<std::string> instants;
  Instant from = at(after);
  for (std::size_t fired = 0; fired < count; ++fired) {
    auto next = parsed.next_after(from, located);
    INFO(text << " after " << format_rfc3339(from));
    REQUIRE(next.ok());
    instants.push_back(format_rfc3339(*next));
    from = *next;
  }
  return instants;
}

inline std::string first_fire(std::string_view text, std::string_view after, std::string_view zone_name = "UTC") {
  return fires(text, after, 1, zone_name).front();
}

// The parse error of an expression that must not parse.
inline std::string parse_error(std::string_view text) {
  auto parsed = CronExpression::parse(text);
  INFO(text);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error().message();
}

using Fires = std::vector<std::string>;

}  // namespace kcron::cron::testing
