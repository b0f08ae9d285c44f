// Tenants in kcron's keys. A job's identity is (tenant, id), and so is a schedule's: one encoding
// for every key that names one (routing keys, the dispatcher's store and changelog, schedule
// tracks, status, events, results, dead letters, done markers, control records, the worker's maps,
// schedules and the cron changelog). The default tenant keeps bare ids, as before tenants existed,
// so existing topics and state need no migration; any other tenant's keys are `<tenant>~<id>`.
// Tenant names are [a-z0-9][a-z0-9-]{0,39}: they cannot contain '~', so the first '~' of a key
// splits it, and keys stay readable in kcat. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "kcron/result.h"

namespace kcron {

inline constexpr std::string_view kDefaultTenant = "default";
inline constexpr char kTenantSeparator = '~';
inline constexpr std::size_t kMaxTenantNameBytes = 40;

// A tenant name as kcron accepts it: 1-40 of [a-z0-9-], starting with a letter or digit. "default"
// is the default tenant.
Status validate_tenant_name(std::string_view name);

// The tenant a record names: an empty field means the default tenant.
std::string_view tenant_or_default(std::string_view tenant);
bool is_default_tenant(std::string_view tenant);
// What a record's `tenant` field holds: empty for the default tenant (as records of the release
// before tenants say), else the name.
std::string_view tenant_field(std::string_view tenant);

// The key of `id` in `tenant`: the bare id for the default tenant, else `<tenant>~<id>`.
std::string scoped_key(std::string_view tenant, std::string_view id);

// A job (or a schedule) as its tenant names it, with the key that names it in the store and on
// every topic.
struct ScopedName {
  std::string tenant;  // "default" for the default tenant
  std::string id;
  std::string key;  // scoped_key(tenant, id)
};
ScopedName scoped(std::string_view tenant, std::string_view id);

// The routing key of a tenant's job: the scoped key of its id's routing key (routing.h), so every
// run of a tenant's schedule lands on one partition, and tenants' schedules of one name do not.
std::string scoped_routing_key(std::string_view tenant, std::string_view job_id);

// A key split back into its tenant and id. A key whose part before the first '~' is not a tenant
// name (or is "default") belongs to the default tenant, whole.
struct ScopedId {
  std::string_view tenant;
  std::string_view id;
};
ScopedId split_scoped_key(std::string_view key);

// The default tenant's ids must not read as another tenant's key: `acme~x` would be tenant
// acme's `x`. Such an id is refused, with the reason; every other id is fine.
Status validate_default_tenant_id(std::string_view id);

}  // namespace kcron
