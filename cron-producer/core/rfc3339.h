// RFC 3339 text for instants, as the CLI and the cron-producer print and read them:
// "2026-03-01T09:00:00Z", with milliseconds only when they are not zero.
#pragma once

#include <string>
#include <string_view>

#include "kcron/clock.h"
#include "kcron/result.h"

namespace kcron::cron {

// Always UTC ("Z"): "2026-03-01T09:00:00Z", "2026-03-01T09:00:00.250Z". An instant outside the
// years 0000-9999 prints as "<n> ms since the Unix epoch".
std::string format_rfc3339(Instant instant);

// "2026-03-01T09:00:00Z", "2026-03-01t09:00:00.5+01:00", "2026-03-01 09:00:00-05:00"; digits
// past milliseconds are dropped.
Result<Instant> parse_rfc3339(std::string_view text);

}  // namespace kcron::cron
