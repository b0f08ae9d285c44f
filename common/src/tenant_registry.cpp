#include "kcron/tenant_registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kcron/codec.h"
#include "kcron/tenant.h"

namespace kcron {
namespace {

constexpr double kShareSlack = 1.25;
constexpr double kMaxRate = 1e9;

}  // namespace

Status validate_tenant_settings(std::string_view tenant, const v1::TenantSettings& settings) {
  if (auto valid = validate_tenant_name(tenant); !valid) return valid;
  if (!settings.name().empty() && settings.name() != tenant) {
    return make_error("tenant settings name '{}' differ from the record key '{}'", settings.name(), tenant);
  }
  const double rate = settings.limits().max_submissions_per_second();
  if (!std::isfinite(rate) || rate < 0 || rate > kMaxRate) {
    return make_error("tenant '{}': max_submissions_per_second {} is not a number from 0 to {}", tenant, rate, kMaxRate);
  }
  const double ceiling = settings.admin_ceilings().max_submissions_per_second();
  if (!std::isfinite(ceiling) || ceiling < 0 || ceiling > kMaxRate) {
    return make_error("tenant '{}': admin_ceilings.max_submissions_per_second {} is not a number from 0 to {}", tenant, ceiling,
                      kMaxRate);
  }
  for (const auto& queue : settings.allowed_queues()) {
    if (queue.empty()) return make_error("tenant '{}': an allowed queue name is empty", tenant);
  }
  return Status::success();
}

Status TenantRegistry::apply(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone) {
  if (tombstone) {
    erase(key);
    return Status::success();
  }
  v1::TenantSettings settings;
  if (auto decoded = decode_message(value, content_type, settings); !decoded) {
    return decoded.error().within(fmt::format("tenant record '{}'", key));
  }
  if (auto valid = validate_tenant_settings(key, settings); !valid) return valid;
  settings.set_name(std::string(key));
  put(settings);
  return Status::success();
}

void TenantRegistry::put(const v1::TenantSettings& settings) {
  tenants_[settings.name()] = settings;
  ++generation_;
}

void TenantRegistry::erase(std::string_view tenant) {
  if (auto found = tenants_.find(tenant); found != tenants_.end()) tenants_.erase(found);
  ++generation_;
}

const v1::TenantSettings* TenantRegistry::find(std::string_view tenant) const {
  const auto found = tenants_.find(tenant.empty() ? kDefaultTenant : tenant);
  return found == tenants_.end() ? nullptr : &found->second;
}

std::uint64_t partition_share(std::uint64_t limit, std::int32_t partitions) {
  if (limit == 0) return 0;
  const double share = std::ceil(static_cast<double>(limit) * kShareSlack / std::max(1, partitions));
  // A limit near 2^64 has a share past what uint64 holds: no practical limit, kept defined.
  if (share >= 18446744073709549568.0) return std::numeric_limits<std::uint64_t>::max();
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(share));
}

double partition_rate_share(double per_second, std::int32_t partitions) {
  if (per_second <= 0) return 0;
  return per_second * kShareSlack / std::max(1, partitions);
}

}  // namespace kcron
