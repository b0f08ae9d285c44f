#include "kcron/priority.h"

#include <fmt/format.h>

namespace kcron {

Band band_for_priority(std::uint32_t priority) {
  if (priority >= 7) return Band::high;
  if (priority >= 3) return Band::normal;
  return Band::low;
}

std::string_view band_name(Band band) {
  switch (band) {
    case Band::high:
      return "high";
    case Band::normal:
      return "normal";
    case Band::low:
      return "low";
  }
  return "normal";
}

std::string exec_topic(std::string_view prefix, std::string_view queue, Band band) {
  return fmt::format("{}exec.{}.{}", prefix, queue, band_name(band));
}

}  // namespace kcron
