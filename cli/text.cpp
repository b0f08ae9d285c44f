#include "text.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <ctime>

namespace kcron::cli {

std::string rfc3339_ms(std::int64_t epoch_ms) {
  if (epoch_ms <= 0) return "-";
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(static_cast<std::time_t>(epoch_ms / 1000)),
                     static_cast<int>(epoch_ms % 1000));
}

std::string one_line(std::string text, std::size_t limit) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

}  // namespace kcron::cli
