// Distinct types for identifiers, so a job id cannot be passed where a reason or a key is
// expected and a partition is not just any integer. Both format with fmt as their value.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "kcron/result.h"

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

// A job id as the dispatcher accepts it: 1 to kMaxJobIdBytes bytes, no control characters.
inline Status validate_job_id(std::string_view job_id) {
  if (job_id.empty()) return make_error("job id is empty");
  if (job_id.size() > kMaxJobIdBytes) return make_error("job id of {} bytes exceeds {} bytes", job_id.size(), kMaxJobIdBytes);
  for (const char c : job_id) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return make_error("job id contains a control character");
  }
  return Status::success();
}

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
