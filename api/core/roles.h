// Who may do what through kcron-api: the roles a token names, and the one table that says which
// role each action needs (docs/api.md prints the same matrix). Pure: no HTTP, no Kafka.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/result.h"

namespace kcron::api {

// Ordered: each role may do everything the roles before it may. `system` is kcron's operators:
// admin in any tenant, chosen with ?tenant=.
enum class Role : std::uint8_t { kViewer, kMember, kOperator, kAdmin, kSystem };

std::string_view role_name(Role role);
Result<Role> parse_role(std::string_view name);

// What a route does, as far as authorization cares.
enum class Action : std::uint8_t {
  kReadJobs,          // GET /v1/jobs, /v1/jobs/{id}
  kSubmitJob,         // POST /v1/jobs, /v1/jobs:batch
  kManageJob,         // cancel, update, replay, clone of one job (a member: only its own)
  kReadSchedules,     // GET /v1/schedules..., GET /v1/templates...
  kManageSchedule,    // PUT/DELETE/pause/resume/trigger/backfill; PUT a template version
  kReadDeadLetters,   // GET /v1/dead-letters
  kReplayDeadLetter,  // POST /v1/dead-letters/{id}:replay
  kReadWorkers,       // GET /v1/workers
  kReadStats,         // GET /v1/stats, /v1/events
  kReadAudit,         // GET /v1/audit
  kReadTenant,        // GET /v1/tenant
  kManageTenant,      // PATCH /v1/tenant (which fields a role may change: core/tenant_patch.h)
};
inline constexpr std::size_t kActionCount = 12;
std::string_view action_name(Action action);

// A verified caller: the token's claims, with its roles parsed.
struct Principal {
  std::string subject;
  std::string tenant;         // the token's tenant ("default" for the default tenant)
  Role role = Role::kViewer;  // the highest role the token names
};

// A principal from a token's claims. Unknown role names are refused (a typo must not silently
// grant less, or more); a token must name at least one role.
Result<Principal> principal_from_claims(std::string subject, std::string tenant, const std::vector<std::string>& roles);

// The least role an action needs, and whether a member may do it only to jobs it submitted.
struct Requirement {
  Role least = Role::kAdmin;
  bool member_own_only = false;
};
Requirement requirement(Action action);

// Why an action is refused, or success. `submitted_by` is the job's submitter where the action
// concerns one job (empty when it has none or the action concerns none): a member passes a
// kManageJob check only for its own jobs.
Status authorize(const Principal& principal, Action action, std::string_view submitted_by = {});

// The tenant a request acts in: the token's, unless a system principal names another with
// ?tenant=. Anyone else naming a tenant other than their own is refused.
Result<std::string> acting_tenant(const Principal& principal, std::string_view requested);

}  // namespace kcron::api
