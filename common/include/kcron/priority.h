// Priorities, bands and execution topics: priority 0-9 maps to a band (high 7-9, normal 3-6,
// low 0-2); each (queue, band) is its own execution topic `<prefix>exec.<queue>.<band>`.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kcron {

enum class Band { kHigh, kNormal, kLow };

constexpr std::uint32_t kDefaultPriority = 5;
constexpr std::uint32_t kMaxPriority = 9;
constexpr std::array<Band, 3> kAllBands = {Band::kHigh, Band::kNormal, Band::kLow};

Band band_for_priority(std::uint32_t priority);
std::string_view band_name(Band band);
std::string exec_topic(std::string_view prefix, std::string_view queue, Band band);

}  // namespace kcron
