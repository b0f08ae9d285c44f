#include "kcron/kafka_acls.h"

#include <fmt/format.h>

namespace kcron {

std::string tenant_principal_name(std::string_view tenant) {
  return fmt::format("tenant.{}", tenant);
}

std::string tenant_principal(std::string_view tenant) {
  return "User:" + tenant_principal_name(tenant);
}

std::string tenant_client_prefix(std::string_view tenant) {
  return tenant_principal_name(tenant) + ".";
}

std::string tenant_input_topic(std::string_view topic_prefix, std::string_view tenant) {
  return fmt::format("{}in.{}", topic_prefix, tenant);
}

std::string tenant_schedules_topic(std::string_view topic_prefix, std::string_view tenant) {
  return fmt::format("{}in.{}.schedules", topic_prefix, tenant);
}

std::vector<AclEntry> tenant_acls(std::string_view topic_prefix, std::string_view tenant, bool output) {
  const auto principal = tenant_principal(tenant);
  std::vector<AclEntry> entries;
  for (const auto& topic : {tenant_input_topic(topic_prefix, tenant), tenant_schedules_topic(topic_prefix, tenant)}) {
    for (const auto operation : {AclOperation::kWrite, AclOperation::kDescribe}) {
      entries.push_back({AclResource::kTopic, topic, AclPattern::kLiteral, principal, operation});
    }
  }
  if (output) {
    for (const auto operation : {AclOperation::kRead, AclOperation::kDescribe}) {
      entries.push_back(
          {AclResource::kTopic, fmt::format("{}out.{}", topic_prefix, tenant), AclPattern::kLiteral, principal, operation});
    }
  }
  const auto prefix = tenant_client_prefix(tenant);
  for (const auto operation : {AclOperation::kRead, AclOperation::kDescribe}) {
    entries.push_back({AclResource::kGroup, prefix, AclPattern::kPrefixed, principal, operation});
  }
  for (const auto operation : {AclOperation::kWrite, AclOperation::kDescribe}) {
    entries.push_back({AclResource::kTransactionalId, prefix, AclPattern::kPrefixed, principal, operation});
  }
  return entries;
}

std::vector<AclEntry> kcron_acls(std::string_view topic_prefix, std::string_view principal) {
  const std::string name(topic_prefix);
  const std::string who(principal);
  return {{AclResource::kTopic, name, AclPattern::kPrefixed, who, AclOperation::kAll},
          {AclResource::kGroup, name, AclPattern::kPrefixed, who, AclOperation::kAll},
          {AclResource::kTransactionalId, name, AclPattern::kPrefixed, who, AclOperation::kAll}};
}

std::string_view acl_resource_name(AclResource resource) {
  switch (resource) {
    case AclResource::kTopic:
      return "TOPIC";
    case AclResource::kGroup:
      return "GROUP";
    case AclResource::kTransactionalId:
      return "TRANSACTIONAL_ID";
    case AclResource::kCluster:
      return "CLUSTER";
  }
  return "?";
}

std::string_view acl_operation_name(AclOperation operation) {
  switch (operation) {
    case AclOperation::kAll:
      return "ALL";
    case AclOperation::kRead:
      return "READ";
    case AclOperation::kWrite:
      return "WRITE";
    case AclOperation::kDescribe:
      return "DESCRIBE";
    case AclOperation::kCreate:
      return "CREATE";
    case AclOperation::kDelete:
      return "DELETE";
    case AclOperation::kDescribeConfigs:
      return "DESCRIBE_CONFIGS";
    case AclOperation::kAlterConfigs:
      return "ALTER_CONFIGS";
    case AclOperation::kIdempotentWrite:
      return "IDEMPOTENT_WRITE";
  }
  return "?";
}

std::string describe_acl(const AclEntry& entry) {
  return fmt::format("ALLOW {} {} on {} {} ({})", entry.principal, acl_operation_name(entry.operation),
                     acl_resource_name(entry.resource), entry.name,
                     entry.pattern == AclPattern::kLiteral ? "LITERAL" : "PREFIXED");
}

}  // namespace kcron
