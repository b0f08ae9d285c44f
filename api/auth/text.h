// How kcron_auth's errors show values that come from a token or a key set: bounded, quoted, and
// printable, so a hostile token cannot flood or garble a log line; and instants as RFC 3339. Pure.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace kcron::auth {

// 'text' with bytes outside printable ASCII as \xNN, cut after 64 bytes with "...".
std::string quote_value(std::string_view text);

// An instant as RFC 3339 UTC to the second ("2026-12-06T10:00:00Z"); years outside 0000-9999 as
// seconds since the Unix epoch ("@-62167219201").
std::string format_instant(std::chrono::system_clock::time_point instant);

}  // namespace kcron::auth
