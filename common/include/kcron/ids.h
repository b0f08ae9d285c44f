// Distinct types for identifiers, so a job id cannot be passed where a schedule id is expected
// and a partition is not just any integer.
#pragma once

#include <compare>
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
using ScheduleId = NamedType<std::string, struct ScheduleIdTag>;
using Partition = NamedType<std::int32_t, struct PartitionTag>;

}  // namespace kcron

template <typename T, typename Tag>
struct std::hash<kcron::NamedType<T, Tag>> {
  std::size_t operator()(const kcron::NamedType<T, Tag>& id) const noexcept { return std::hash<T>{}(id.value()); }
};
