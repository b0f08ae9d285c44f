// How the kcron command prints values in its tables: instants as RFC 3339 UTC with milliseconds,
// free text on one line, cut at a limit. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kcron::cli {

// `2026-12-06T15:32:51.525Z`; "-" for 0 or less (not set).
std::string rfc3339_ms(std::int64_t epoch_ms);
// Newlines and tabs as spaces, and at most `limit` bytes (then "...").
std::string one_line(std::string text, std::size_t limit = 100);

}  // namespace kcron::cli
