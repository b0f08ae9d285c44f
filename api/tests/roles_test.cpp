#include "core/roles.h"

#include <catch2/catch.hpp>

using kcron::api::Action;
using kcron::api::Role;

namespace {

kcron::api::Principal principal(Role role, std::string subject = "alice") {
  return {std::move(subject), "acme", role};
}

}  // namespace

TEST_CASE("the highest role a token names is the principal's role") {
  auto parsed = kcron::api::principal_from_claims("alice", "acme", {"viewer", "operator", "member"});
  REQUIRE(parsed.ok());
  CHECK(parsed->role == Role::kOperator);
  CHECK(parsed->tenant == "acme");
}

TEST_CASE("a token with an unknown role, no role, no subject or a bad tenant is refused") {
  auto unknown = kcron::api::principal_from_claims("alice", "acme", {"viewer", "superuser"});
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message() ==
        "the token's roles: unknown role 'superuser' (roles: viewer, member, operator, admin, system)");
  CHECK_FALSE(kcron::api::principal_from_claims("alice", "acme", {}).ok());
  CHECK_FALSE(kcron::api::principal_from_claims("", "acme", {"viewer"}).ok());
  CHECK_FALSE(kcron::api::principal_from_claims("alice", "Acme~x", {"viewer"}).ok());
}

TEST_CASE("each role may do what the matrix says and no more") {
  // Every action against every role: the least role passes, the one below it is refused.
  const std::vector<Action> actions{Action::kReadJobs,         Action::kSubmitJob,      Action::kManageJob,
                                    Action::kReadSchedules,    Action::kManageSchedule, Action::kReadDeadLetters,
                                    Action::kReplayDeadLetter, Action::kReadWorkers,    Action::kReadStats,
                                    Action::kReadAudit,        Action::kReadTenant,     Action::kManageTenant};
  REQUIRE(actions.size() == kcron::api::kActionCount);
  for (const auto action : actions) {
    const auto least = kcron::api::requirement(action).least;
    for (const auto role : {Role::kViewer, Role::kMember, Role::kOperator, Role::kAdmin, Role::kSystem}) {
      INFO(kcron::api::action_name(action) << " as " << kcron::api::role_name(role));
      CHECK(kcron::api::authorize(principal(role), action, "alice").ok() == (role >= least));
    }
  }
  CHECK(kcron::api::requirement(Action::kSubmitJob).least == Role::kMember);
  CHECK(kcron::api::requirement(Action::kManageSchedule).least == Role::kOperator);
  CHECK(kcron::api::requirement(Action::kReadAudit).least == Role::kAdmin);
}

TEST_CASE("a member manages only the jobs it submitted, an operator any job") {
  CHECK(kcron::api::authorize(principal(Role::kMember), Action::kManageJob, "alice").ok());
  auto other = kcron::api::authorize(principal(Role::kMember), Action::kManageJob, "bob");
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().message() == "role member may manage a job only for jobs it submitted (operator or above may for any job)");
  CHECK_FALSE(kcron::api::authorize(principal(Role::kMember), Action::kManageJob, "").ok());
  CHECK(kcron::api::authorize(principal(Role::kOperator), Action::kManageJob, "bob").ok());
  auto viewer = kcron::api::authorize(principal(Role::kViewer), Action::kManageJob, "alice");
  REQUIRE_FALSE(viewer.ok());
  CHECK(viewer.error().message() == "role viewer may not manage a job (it needs member or above)");
}

TEST_CASE("only the system role acts in another tenant") {
  CHECK(*kcron::api::acting_tenant(principal(Role::kAdmin), "") == "acme");
  CHECK(*kcron::api::acting_tenant(principal(Role::kAdmin), "acme") == "acme");
  auto refused = kcron::api::acting_tenant(principal(Role::kAdmin), "globex");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message() == "only the system role may act in another tenant (?tenant=)");
  CHECK(*kcron::api::acting_tenant(principal(Role::kSystem), "globex") == "globex");
  CHECK_FALSE(kcron::api::acting_tenant(principal(Role::kSystem), "Not A Tenant").ok());
}
