// Kafka access for kcron's principal and for Kafka-native tenants (docs/security.md):
//   kcron kafka-acls [--principal User:kcron] [--list | --remove]
//     the ACLs kcron's programs need (kafka_acls.h), written through the Admin API;
//   kcron tenant create|set NAME --kafka [--ca-dir DIR] [--cert-out DIR] ...
//     the tenant's input topics (`<prefix>in.NAME`, `<prefix>in.NAME.schedules`), its LITERAL ACLs,
//     and, with the kcron CA, a client certificate (CN=tenant.NAME): no broker restart;
//   kcron tenant delete NAME --yes
//     also removes the tenant's ACLs and input topics.
// librdkafka 2.0.2's Admin API has no transactional-id resource: those entries are printed as
// kafka-acls commands for an operator to run (the local secured broker's scripts/kafka grants
// kcron's own at start).
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include "kcron/config.h"

namespace kcron::cli {

struct TenantKafkaOptions {
  bool kafka = false;        // --kafka: set up Kafka access
  std::string ca_dir;        // --ca-dir (env KCRON_CA_DIR): ca.pem and ca.key of the kcron CA; empty: no certificate
  std::string cert_out;      // --cert-out: where the tenant's files go (default ./kcron-tenant-NAME)
  int cert_days = 825;       // --cert-days
  int input_partitions = 3;  // --input-partitions
  int replication = 1;       // --replication-factor of the input topics
  bool output = false;       // --kafka-output: the tenant's output topic <prefix>out.NAME
  bool no_output = false;    // --no-kafka-output: stop copying to it
};

// Adds --kafka and its options to `command`.
void add_tenant_kafka_options(CLI::App& command, TenantKafkaOptions& options);

// Topics, ACLs and (with a CA) the certificate of tenant `name`. Prints what it did; an error
// names the step that failed (the steps before it stay done, and a rerun is idempotent).
int setup_tenant_kafka(const Config& config, const std::string& name, const TenantKafkaOptions& options, std::ostream& out,
                       std::ostream& err);

// Removes the tenant's ACLs and input topics (what exists of them).
int teardown_tenant_kafka(const Config& config, const std::string& name, std::ostream& out, std::ostream& err);

class KafkaAclsCommand {
 public:
  explicit KafkaAclsCommand(CLI::App& app);
  bool parsed() const { return command_->parsed(); }
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* command_ = nullptr;
  std::string principal_ = "User:kcron";
  bool list_ = false;
  bool remove_ = false;
};

}  // namespace kcron::cli
