// libFuzzer target: RFC 3339 parsing (the CLI's and cron-producer's instants). A parsed instant
// printed back (always UTC) must parse to the same instant.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/rfc3339.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto instant = kcron::cron::parse_rfc3339(text);
  if (!instant) return 0;
  const auto printed = kcron::cron::format_rfc3339(*instant);
  if (printed.find("since the Unix epoch") != std::string::npos) return 0;  // outside years 0000-9999
  auto again = kcron::cron::parse_rfc3339(printed);
  if (!again || *again != *instant) std::abort();
  return 0;
}
