// PATCH /v1/tenant: a JSON merge patch (RFC 7396) applied to a tenant's settings, and who may
// change which field. Pure: no HTTP, no Kafka.
//
//   description            an admin of the tenant, or system
//   limits.<limit>         system: any value; an admin: 1..admin_ceilings.<limit>, and only where
//                          that ceiling is set (not 0): the operators decide how far a tenant
//                          may raise its own limits, the tenant divides that among its needs
//   allowed_queues         system (which queues a tenant may use is the deployment's decision)
//   admin_ceilings         system
//   allowed_kafka_topics, allowed_programs, allowed_env_names, allowed_http_targets
//                          nobody (403): what a tenant may run is set on kcron.tenants only
//   name, created_ms, updated_ms   kcron's own: never in a patch
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/roles.h"
#include "kcron.pb.h"

namespace kcron::api {

inline constexpr std::size_t kMaxTenantDescriptionBytes = 1000;

struct TenantPatchOutcome {
  std::optional<v1::TenantSettings> settings;  // the settings to write; empty when refused
  int status = 400;                            // when refused: 400 (the patch is wrong) or 403 (not this role's to change)
  std::string field;                           // the field at fault, e.g. "limits.max_pending_jobs"
  std::string message;
  bool changed = false;  // whether the patch changes anything (an unchanged one need not be written)
};

// `current` (the tenant's settings, or empty ones for a tenant without a record) with `patch`
// applied by a caller of `role`, named `tenant`, at `now_ms` (created_ms too when it had none).
TenantPatchOutcome apply_tenant_patch(const v1::TenantSettings& current, std::string_view tenant, std::string_view patch,
                                      Role role, std::int64_t now_ms);

}  // namespace kcron::api
