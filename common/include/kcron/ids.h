// Distinct types for identifiers, so a job id cannot be passed where a reason or a key is
// expected and a partition is not just any integer. Both format with fmt as their value.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace kcron {

template <typename T, typename Tag>
class NamedType {
 public:
  NamedType() = default;
  explicit NamedType(T value) : value_(std::move(value)) {}
  const T& value() const { return value_; }
  auto operator<=>(const NamedType&) const = default;

 private:
  T value_{};
};

using JobId = NamedType<std::string, struct JobIdTag>;
using Partition = NamedType<std::int32_t, struct PartitionTag>;

// The longest job id the dispatcher accepts (bytes); the key of a dead letter is cut to it too.
inline constexpr std::size_t kMaxJobIdBytes = 256;

}  // namespace kcron

template <typename T, typename Tag>
struct std::hash<kcron::NamedType<T, Tag>> {
  std::size_t operator()(const kcron::NamedType<T, Tag>& id) const noexcept { return std::hash<T>{}(id.value()); }
};

template <typename T, typename Tag>
struct fmt::formatter<kcron::NamedType<T, Tag>> : fmt::formatter<T> {
  template <typename FormatContext>
  auto format(const kcron::NamedType<T, Tag>& id, FormatContext& context) const {
    return fmt::formatter<T>::format(id.value(), context);
  }
};
