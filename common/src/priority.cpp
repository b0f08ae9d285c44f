#include "kcron/priority.h"

#include <fmt/format.h>

namespace kcron {

Band band_for_priority(std::uint32_t priority) {
  if (priority >= 7) return Band::kHigh;
  if (priority >= 3) return Band::kNormal;
  return Band::kLow;
}

std::string_view band_name(Band band) {
  switch (band) {
    case Band::kHigh:
      return "high";
    case Band::kNormal:
      return "normal";
    case Band::kLow:
      return "low";
  }
  return "normal";
}

std::string exec_topic(std::string_view prefix, std::string_view queue, Band band) {
  return fmt::format("{}exec.{}.{}", prefix, queue, band_name(band));
}

}  // namespace kcron
