#include "core/roles.h"

#include <array>
#include <utility>

#include "kcron/tenant.h"

namespace kcron::api {
namespace {

struct ActionRow {
  Action action;
  std::string_view name;
  Requirement requirement;
};

// The role matrix. docs/api.md shows it as a table; api_core_test walks it.
constexpr std::array<ActionRow, kActionCount> kMatrix{{
    {Action::kReadJobs, "read jobs", {Role::kViewer, false}},
    {Action::kSubmitJob, "submit jobs", {Role::kMember, false}},
    {Action::kManageJob, "manage a job", {Role::kMember, true}},
    {Action::kReadSchedules, "read schedules", {Role::kViewer, false}},
    {Action::kManageSchedule, "manage schedules", {Role::kOperator, false}},
    {Action::kReadDeadLetters, "read dead letters", {Role::kViewer, false}},
    {Action::kReplayDeadLetter, "replay dead letters", {Role::kOperator, false}},
    {Action::kReadWorkers, "read workers", {Role::kViewer, false}},
    {Action::kReadStats, "read stats and events", {Role::kViewer, false}},
    {Action::kReadAudit, "read the audit log", {Role::kAdmin, false}},
    {Action::kReadTenant, "read tenant settings", {Role::kViewer, false}},
    {Action::kManageTenant, "manage tenant settings", {Role::kAdmin, false}},
}};

constexpr std::array<std::pair<Role, std::string_view>, 5> kRoleNames{{
    {Role::kViewer, "viewer"},
    {Role::kMember, "member"},
    {Role::kOperator, "operator"},
    {Role::kAdmin, "admin"},
    {Role::kSystem, "system"},
}};

const ActionRow& row(Action action) {
  return kMatrix.at(static_cast<std::size_t>(action));
}

}  // namespace

std::string_view role_name(Role role) {
  for (const auto& [value, name] : kRoleNames) {
    if (value == role) return name;
  }
  return "unknown";
}

Result<Role> parse_role(std::string_view name) {
  for (const auto& [value, role_text] : kRoleNames) {
    if (role_text == name) return value;
  }
  return make_error("unknown role '{}' (roles: viewer, member, operator, admin, system)", name.substr(0, 40));
}

std::string_view action_name(Action action) {
  return row(action).name;
}

Result<Principal> principal_from_claims(std::string subject, std::string tenant, const std::vector<std::string>& roles) {
  if (subject.empty()) return make_error("the token names no subject (sub)");
  if (auto valid = validate_tenant_name(tenant); !valid) return valid.error().within("the token's tenant");
  if (roles.empty()) return make_error("the token names no role (roles: viewer, member, operator, admin, system)");
  Principal principal{std::move(subject), std::move(tenant), Role::kViewer};
  for (const auto& name : roles) {
    auto role = parse_role(name);
    if (!role) return role.error().within("the token's roles");
    if (*role > principal.role) principal.role = *role;
  }
  return principal;
}

Requirement requirement(Action action) {
  return row(action).requirement;
}

Status authorize(const Principal& principal, Action action, std::string_view submitted_by) {
  const auto& needed = row(action);
  if (principal.role < needed.requirement.least) {
    return make_error("role {} may not {} (it needs {} or above)", role_name(principal.role), needed.name,
                      role_name(needed.requirement.least));
  }
  if (needed.requirement.member_own_only && principal.role == Role::kMember && submitted_by != principal.subject) {
    return make_error("role member may {} only for jobs it submitted (operator or above may for any job)", needed.name);
  }
  return Status::success();
}

Result<std::string> acting_tenant(const Principal& principal, std::string_view requested) {
  if (requested.empty() || requested == principal.tenant) return principal.tenant;
  if (principal.role != Role::kSystem) return make_error("only the system role may act in another tenant (?tenant=)");
  if (auto valid = validate_tenant_name(requested); !valid) return valid.error().within("tenant");
  return std::string(requested);
}

}  // namespace kcron::api
