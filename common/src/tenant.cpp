#include "kcron/tenant.h"

#include <fmt/format.h>

#include "kcron/routing.h"

namespace kcron {
namespace {

bool tenant_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool is_tenant_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxTenantNameBytes || name.front() == '-') return false;
  for (const char c : name) {
    if (!tenant_char(c)) return false;
  }
  return true;
}

}  // namespace

Status validate_tenant_name(std::string_view name) {
  if (name.empty()) return make_error("tenant name is empty");
  if (name.size() > kMaxTenantNameBytes)
    return make_error("tenant name of {} bytes exceeds {} bytes", name.size(), kMaxTenantNameBytes);
  if (name.front() == '-') return make_error("tenant name '{}' starts with '-'", name);
  for (const char c : name) {
    if (!tenant_char(c)) {
      return make_error("tenant name {:?} has {:?}: only a-z, 0-9 and '-' are allowed", name, std::string_view(&c, 1));
    }
  }
  return Status::success();
}

std::string_view tenant_or_default(std::string_view tenant) {
  return tenant.empty() ? kDefaultTenant : tenant;
}

bool is_default_tenant(std::string_view tenant) {
  return tenant.empty() || tenant == kDefaultTenant;
}

std::string_view tenant_field(std::string_view tenant) {
  return is_default_tenant(tenant) ? std::string_view() : tenant;
}

std::string scoped_key(std::string_view tenant, std::string_view id) {
  if (is_default_tenant(tenant)) return std::string(id);
  std::string key;
  key.reserve(tenant.size() + 1 + id.size());
  key.append(tenant);
  key.push_back(kTenantSeparator);
  key.append(id);
  return key;
}

ScopedId split_scoped_key(std::string_view key) {
  const auto separator = key.find(kTenantSeparator);
  if (separator == std::string_view::npos) return {kDefaultTenant, key};
  const auto tenant = key.substr(0, separator);
  if (!is_tenant_name(tenant) || tenant == kDefaultTenant) return {kDefaultTenant, key};
  return {tenant, key.substr(separator + 1)};
}

ScopedName scoped(std::string_view tenant, std::string_view id) {
  const auto name = tenant_or_default(tenant);
  return {std::string(name), std::string(id), scoped_key(name, id)};
}

std::string scoped_routing_key(std::string_view tenant, std::string_view job_id) {
  return scoped_key(tenant, routing_key_for_job(job_id));
}

Status validate_default_tenant_id(std::string_view id) {
  const auto split = split_scoped_key(id);
  if (split.tenant == kDefaultTenant) return Status::success();
  return make_error("id {:?} of the default tenant reads as tenant '{}''s id {:?} ('<tenant>~' starts another tenant's keys)", id,
                    split.tenant, split.id);
}

}  // namespace kcron
