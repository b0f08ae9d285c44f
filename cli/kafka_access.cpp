#include "kafka_access.h"

#include <fmt/format.h>

#include <chrono>
#include <ostream>
#include <vector>

#include "kafka_ca.h"
#include "kcron/kafka.h"
#include "kcron/kafka_acls.h"
#include "kcron/tenant.h"
#include "kcron/tenant_output.h"
#include "kcron/topics.h"

namespace kcron::cli {
namespace {

constexpr std::chrono::milliseconds kAdminTimeout{15000};

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

// Whether an Admin API error says the broker has no authorizer (a plaintext development broker).
bool security_disabled(const Error& error) {
  return error.message().find("SECURITY_DISABLED") != std::string::npos ||
         error.message().find("ecurity features are disabled") != std::string::npos ||
         error.message().find("No Authorizer is configured") != std::string::npos;
}

// The kafka-acls command an operator runs for a transactional-id entry.
std::string kafka_acls_command(const std::string& brokers, const std::string& principal, const std::string& prefix) {
  return fmt::format(
      "kafka-acls.sh --bootstrap-server {} --command-config admin.properties --add --allow-principal {} --operation Write "
      "--operation Describe --transactional-id '{}' --resource-pattern-type prefixed",
      brokers, principal, prefix);
}

}  // namespace

void add_tenant_kafka_options(CLI::App& command, TenantKafkaOptions& options) {
  command.add_flag(
      "--kafka", options.kafka,
      "set up Kafka-native access: the input topics <prefix>in.NAME and <prefix>in.NAME.schedules, their LITERAL ACLs "
      "for User:tenant.NAME and, with --ca-dir, a client certificate");
  command.add_option("--ca-dir", options.ca_dir, "the kcron CA (ca.pem, ca.key) that signs the tenant's client certificate")
      ->envname("KCRON_CA_DIR");
  command.add_option("--cert-out", options.cert_out,
                     "where the tenant's key, certificate and client.properties go (default ./kcron-tenant-NAME)");
  command.add_option("--cert-days", options.cert_days, "validity of the certificate in days")->capture_default_str();
  command.add_option("--input-partitions", options.input_partitions, "partitions of the tenant's input topics")
      ->capture_default_str();
  command.add_option("--input-replication-factor", options.replication, "replication factor of the input topics")
      ->capture_default_str();
  command.add_flag("--kafka-output", options.output,
                   "with --kafka: also <prefix>out.NAME, where the tenant reads its results, status changes and dead letters");
  command.add_flag("--no-kafka-output", options.no_output,
                   "stop copying the tenant's records to <prefix>out.NAME (the topic stays)");
}

int setup_tenant_kafka(const Config& config, const std::string& name, const TenantKafkaOptions& options, std::ostream& out,
                       std::ostream& err) {
  if (is_default_tenant(name)) return fail(err, "the default tenant has no Kafka-native access: it is kcron's own");
  const TopicNames names(config.get("topic_prefix"));
  if (names.prefix.starts_with("tenant.")) {
    return fail(err,
                fmt::format("topic_prefix '{}' starts with 'tenant.', the namespace of tenants' groups and transactional ids",
                            names.prefix));
  }
  if (options.input_partitions < 1 || options.input_partitions > 1000) return fail(err, "--input-partitions must be 1 to 1000");
  const auto properties = kafka::client_properties(config, "kcron-cli");
  const auto input = tenant_input_topic(names.prefix, name);
  const auto schedules = tenant_schedules_topic(names.prefix, name);
  std::vector<TopicSpec> specs{
      {input, options.input_partitions, {{"cleanup.policy", "delete"}, {"retention.ms", "604800000"}}},
      {schedules, options.input_partitions, {{"cleanup.policy", "compact"}, {"min.compaction.lag.ms", "0"}}}};
  if (options.output) {
    specs.push_back({tenant_output_topic(names.prefix, name),
                     options.input_partitions,
                     {{"cleanup.policy", "delete"}, {"retention.ms", "604800000"}}});
  }
  auto created = kafka::create_topics(properties, specs, options.replication, kAdminTimeout);
  if (!created) return fail(err, fmt::format("creating the input topics of '{}': {}", name, created.error().message()));
  out << fmt::format("input topics: {} and {}{}\n", input, schedules, created->empty() ? " (already there)" : "");
  if (options.output)
    out << fmt::format("output topic: {} (results, status changes, dead letters)\n", tenant_output_topic(names.prefix, name));

  const auto acls = tenant_acls(names.prefix, name, options.output);
  std::vector<AclEntry> writable;
  std::vector<AclEntry> printed;
  for (const auto& entry : acls) (entry.resource == AclResource::kTransactionalId ? printed : writable).push_back(entry);
  if (auto status = kafka::create_acls(properties, writable, kAdminTimeout); !status) {
    if (!security_disabled(status.error()))
      return fail(err, fmt::format("writing the ACLs of '{}': {}", name, status.error().message()));
    err << "kcron: warning: the broker has no authorizer, so no ACL was written: anyone who reaches it may write any topic\n";
  } else {
    for (const auto& entry : writable) out << "  " << describe_acl(entry) << "\n";
    out << fmt::format("  (if the tenant's client uses transactions, an operator runs: {})\n",
                       kafka_acls_command(config.get("brokers"), tenant_principal(name), tenant_client_prefix(name)));
  }
  (void)printed;

  if (options.ca_dir.empty()) {
    out << fmt::format(
        "no certificate issued (no --ca-dir): the tenant connects as {} by SASL/PLAIN or a certificate from your CA\n",
        tenant_principal(name));
    return 0;
  }
  auto issued = issue_client_certificate(options.ca_dir + "/ca.pem", options.ca_dir + "/ca.key", tenant_principal_name(name),
                                         options.cert_days);
  if (!issued) return fail(err, fmt::format("issuing the certificate of '{}': {}", name, issued.error().message()));
  const auto dir = options.cert_out.empty() ? fmt::format("kcron-tenant-{}", name) : options.cert_out;
  if (auto written = write_tenant_client_files(dir, *issued, config.get("brokers")); !written) {
    return fail(err, written.error().message());
  }
  out << fmt::format("certificate CN={} (serial {}, valid until {}) in {}/: client.key, client.pem, ca.pem, client.properties\n",
                     tenant_principal_name(name), issued->serial, issued->not_after, dir);
  return 0;
}

int teardown_tenant_kafka(const Config& config, const std::string& name, std::ostream& out, std::ostream& err) {
  const TopicNames names(config.get("topic_prefix"));
  const auto properties = kafka::client_properties(config, "kcron-cli");
  auto removed = kafka::delete_acls_of(properties, tenant_principal(name), kAdminTimeout);
  if (!removed && !security_disabled(removed.error())) {
    return fail(err, fmt::format("removing the ACLs of '{}': {}", name, removed.error().message()));
  }
  if (removed && !removed->empty()) out << fmt::format("removed {} ACL(s) of {}\n", removed->size(), tenant_principal(name));
  auto deleted = kafka::delete_topics(properties,
                                      {tenant_input_topic(names.prefix, name), tenant_schedules_topic(names.prefix, name),
                                       tenant_output_topic(names.prefix, name)},
                                      kAdminTimeout);
  if (!deleted) return fail(err, fmt::format("deleting the input topics of '{}': {}", name, deleted.error().message()));
  for (const auto& topic : *deleted) out << "deleted topic " << topic << "\n";
  return 0;
}

KafkaAclsCommand::KafkaAclsCommand(CLI::App& app) {
  command_ = app.add_subcommand(
      "kafka-acls",
      "grant (or --list, --remove) the Kafka ACLs kcron's programs need under the topic prefix (a broker with an authorizer)");
  command_->add_option("--principal", principal_, "the principal kcron's programs connect as")->capture_default_str();
  command_->add_flag("--list", list_, "show the principal's topic and group ACLs");
  command_->add_flag("--remove", remove_, "remove the principal's topic and group ACLs");
}

int KafkaAclsCommand::run(const Config& config, std::ostream& out, std::ostream& err) const {
  if (!principal_.starts_with("User:") || principal_.size() <= 5) return fail(err, "--principal must look like User:NAME");
  const TopicNames names(config.get("topic_prefix"));
  const auto properties = kafka::client_properties(config, "kcron-cli");
  if (list_ || remove_) {
    auto found = remove_ ? kafka::delete_acls_of(properties, principal_, kAdminTimeout)
                         : kafka::describe_acls_of(properties, principal_, kAdminTimeout);
    if (!found) return fail(err, found.error().message());
    for (const auto& entry : *found) out << (remove_ ? "removed " : "") << describe_acl(entry) << "\n";
    if (found->empty()) out << "no topic or group ACL names " << principal_ << "\n";
    return 0;
  }
  std::vector<AclEntry> writable;
  std::vector<AclEntry> printed;
  for (const auto& entry : kcron_acls(names.prefix, principal_)) {
    (entry.resource == AclResource::kTransactionalId ? printed : writable).push_back(entry);
  }
  if (auto status = kafka::create_acls(properties, writable, kAdminTimeout); !status) return fail(err, status.error().message());
  for (const auto& entry : writable) out << describe_acl(entry) << "\n";
  for (const auto& entry : printed) {
    out << fmt::format(
        "not written: {} (librdkafka 2.0.2 cannot write ACLs on transactional ids); run:\n  {}\n", describe_acl(entry),
        fmt::format(
            "kafka-acls.sh --bootstrap-server {} --command-config admin.properties --add --allow-principal {} --operation All "
            "--transactional-id '{}' --resource-pattern-type prefixed",
            config.get("brokers"), principal_, entry.name));
  }
  return 0;
}

}  // namespace kcron::cli
