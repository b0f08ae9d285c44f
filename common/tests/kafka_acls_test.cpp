#include "kcron/kafka_acls.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

namespace {

// Whether `entry` grants `operation` on `resource` named `name` (Kafka's matching: LITERAL is
// equality, PREFIXED a string prefix; ALL covers every operation).
bool grants(const kcron::AclEntry& entry, kcron::AclResource resource, const std::string& name, kcron::AclOperation operation) {
  if (entry.resource != resource) return false;
  if (entry.operation != operation && entry.operation != kcron::AclOperation::kAll) return false;
  return entry.pattern == kcron::AclPattern::kLiteral ? entry.name == name : name.starts_with(entry.name);
}

bool any_grants(const std::vector<kcron::AclEntry>& entries, kcron::AclResource resource, const std::string& name,
                kcron::AclOperation operation) {
  return std::any_of(entries.begin(), entries.end(), [&](const auto& entry) { return grants(entry, resource, name, operation); });
}

}  // namespace

TEST_CASE("a tenant's ACLs cover its own input topics and nothing of another tenant, kcron or its output", "[kafka_acls]") {
  using kcron::AclOperation;
  using kcron::AclResource;
  const auto a = kcron::tenant_acls("kcron.", "a");
  CHECK(kcron::tenant_principal("a") == "User:tenant.a");
  CHECK(any_grants(a, AclResource::kTopic, "kcron.in.a", AclOperation::kWrite));
  CHECK(any_grants(a, AclResource::kTopic, "kcron.in.a.schedules", AclOperation::kWrite));
  CHECK_FALSE(any_grants(a, AclResource::kTopic, "kcron.in.a", AclOperation::kRead));
  // LITERAL: tenant a's entries never reach tenant ab's topics.
  CHECK_FALSE(any_grants(a, AclResource::kTopic, "kcron.in.ab", AclOperation::kWrite));
  CHECK_FALSE(any_grants(a, AclResource::kTopic, "kcron.in.ab.schedules", AclOperation::kWrite));
  for (const auto* topic : {"kcron.jobs", "kcron.schedules", "kcron.results", "kcron.status", "kcron.out.b", "kcron.out.ab"}) {
    for (const auto operation : {AclOperation::kRead, AclOperation::kWrite, AclOperation::kDescribe}) {
      CHECK_FALSE(any_grants(a, AclResource::kTopic, topic, operation));
    }
  }
  // Groups and transactional ids: its own prefix with a '.' no tenant name contains.
  CHECK(any_grants(a, AclResource::kGroup, "tenant.a.reader", AclOperation::kRead));
  CHECK(any_grants(a, AclResource::kTransactionalId, "tenant.a.tx1", AclOperation::kWrite));
  CHECK_FALSE(any_grants(a, AclResource::kGroup, "tenant.ab.reader", AclOperation::kRead));
  CHECK_FALSE(any_grants(a, AclResource::kTransactionalId, "tenant.ab.tx1", AclOperation::kWrite));
  CHECK_FALSE(any_grants(a, AclResource::kGroup, "kcron.dispatcher", AclOperation::kRead));
  CHECK_FALSE(any_grants(a, AclResource::kTransactionalId, "kcron.dispatcher-d1", AclOperation::kWrite));
  for (const auto& entry : a) CHECK(entry.principal == "User:tenant.a");
}

TEST_CASE("a tenant named like kcron's principal still gets a principal of its own", "[kafka_acls]") {
  CHECK(kcron::tenant_principal("kcron") == "User:tenant.kcron");
  const auto kcron_named = kcron::tenant_acls("kcron.", "kcron");
  CHECK_FALSE(any_grants(kcron_named, kcron::AclResource::kGroup, "kcron.workers", kcron::AclOperation::kRead));
}

TEST_CASE("kcron's principal gets every topic, group and transactional id under the prefix", "[kafka_acls]") {
  using kcron::AclOperation;
  using kcron::AclResource;
  const auto entries = kcron::kcron_acls("kcron.", "User:kcron");
  CHECK(any_grants(entries, AclResource::kTopic, "kcron.jobs", AclOperation::kWrite));
  CHECK(any_grants(entries, AclResource::kTopic, "kcron.in.a", AclOperation::kRead));
  CHECK(any_grants(entries, AclResource::kGroup, "kcron.workers", AclOperation::kRead));
  CHECK(any_grants(entries, AclResource::kTransactionalId, "kcron.dispatcher-d1", AclOperation::kWrite));
  CHECK_FALSE(any_grants(entries, AclResource::kTopic, "orders", AclOperation::kWrite));
  CHECK(kcron::describe_acl(entries.front()) == "ALLOW User:kcron ALL on TOPIC kcron. (PREFIXED)");
}
