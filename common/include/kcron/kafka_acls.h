// The Kafka ACLs kcron relies on (docs/security.md#acls): what kcron's own principal needs, and
// what a Kafka-native tenant's principal gets, as data. `kcron kafka-acls` and `kcron tenant
// create NAME --kafka` write them through the Admin API (kafka.h); `kcron tenant delete` removes a
// tenant's. Pure: no librdkafka.
//
// A tenant's topics get LITERAL ACLs: a PREFIXED one on `kcron.in.a` would also match `kcron.in.ab`.
// Its consumer groups and transactional ids get a PREFIXED ACL on `tenant.<name>.`: tenant names
// cannot contain '.', so `tenant.a.` never matches another tenant's `tenant.ab.…`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kcron {

enum class AclResource { kTopic, kGroup, kTransactionalId, kCluster };
enum class AclPattern { kLiteral, kPrefixed };
enum class AclOperation { kAll, kRead, kWrite, kDescribe, kCreate, kDelete, kDescribeConfigs, kAlterConfigs, kIdempotentWrite };

// One ALLOW entry (kcron writes no DENY entries), for any host.
struct AclEntry {
  AclResource resource = AclResource::kTopic;
  std::string name;
  AclPattern pattern = AclPattern::kLiteral;
  std::string principal;  // "User:NAME"
  AclOperation operation = AclOperation::kRead;
  friend bool operator==(const AclEntry&, const AclEntry&) = default;
};

// The principal of a Kafka-native tenant: `User:tenant.<name>` (the CN of its certificate, or
// its SASL/PLAIN user name). Never kcron's own (`kcron` by default), whatever the tenant's name.
std::string tenant_principal_name(std::string_view tenant);  // "tenant.<name>"
std::string tenant_principal(std::string_view tenant);       // "User:tenant.<name>"
// The prefix of a tenant's own consumer groups and transactional ids: "tenant.<name>.".
std::string tenant_client_prefix(std::string_view tenant);

// A tenant's input topics under the deployment's topic prefix: jobs and commands, and schedules.
std::string tenant_input_topic(std::string_view topic_prefix, std::string_view tenant);      // "<prefix>in.<name>"
std::string tenant_schedules_topic(std::string_view topic_prefix, std::string_view tenant);  // "<prefix>in.<name>.schedules"

// What a Kafka-native tenant may do: write (and describe) its two input topics, use groups and
// transactional ids under its client prefix, and with `output` read (and describe) its output
// topic `<prefix>out.<name>`. Nothing else: no kcron topic, no other tenant's.
std::vector<AclEntry> tenant_acls(std::string_view topic_prefix, std::string_view tenant, bool output = false);

// What kcron's programs need under `principal`: every operation on the topics, groups and
// transactional ids under the topic prefix (the programs name all of theirs so).
std::vector<AclEntry> kcron_acls(std::string_view topic_prefix, std::string_view principal);

// "ALLOW User:tenant.a WRITE on TOPIC kcron.in.a (LITERAL)".
std::string describe_acl(const AclEntry& entry);
std::string_view acl_resource_name(AclResource resource);
std::string_view acl_operation_name(AclOperation operation);

}  // namespace kcron
