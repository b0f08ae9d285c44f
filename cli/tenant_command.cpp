#include "tenant_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iostream>
#include <optional>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "inspect_command.h"
#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/codec.h"
#include "kcron/kafka.h"
#include "kcron/out_record.h"
#include "kcron/tenant.h"
#include "kcron/tenant_registry.h"
#include "kcron/topics.h"
#include "kcron/upgrade_gate.h"
#include "tenant_edit.h"
#include "upgrade_check.h"

namespace kcron::cli {
namespace {

constexpr int kFlushTimeoutMs = 15000;

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

// Counts the delivery reports of one batch of records; the first failure names its record.
class DeliveryReports final : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      ++delivered;
      return;
    }
    if (first_failure.empty()) {
      first_failure = fmt::format("{}[{}] key '{}': {}", message.topic_name(), message.partition(),
                                  message.key() != nullptr ? *message.key() : std::string(), message.errstr());
    }
    ++failed;
  }
  std::size_t delivered = 0;
  std::size_t failed = 0;
  std::string first_failure;
};

// Produces every record and waits for each one's acknowledgement (idempotent producer, acks=all).
Status write_records(const Config& config, const std::vector<OutRecord>& records) {
  if (records.empty()) return Status::success();
  DeliveryReports reports;
  auto producer = kafka::make_producer(kafka::client_properties(config, "kcron-cli"), "", &reports);
  if (!producer) return producer.error();
  for (const auto& record : records) {
    if (auto status = kafka::produce(**producer, record); !status) return status;
  }
  (*producer)->flush(kFlushTimeoutMs);
  if (reports.failed > 0)
    return make_error("{} of {} records were not written; first: {}", reports.failed, records.size(), reports.first_failure);
  if (reports.delivered < records.size()) {
    return make_error("{} of {} records were not acknowledged within {} s", records.size() - reports.delivered, records.size(),
                      kFlushTimeoutMs / 1000);
  }
  return Status::success();
}

// The registry as kcron.tenants holds it now; records that do not apply are reported and skipped.
Result<TenantRegistry> read_registry(const Config& config, const TopicNames& names, std::ostream& err) {
  auto records = read_to_end(config, names.tenants());
  if (!records) return records.error();
  TenantRegistry registry;
  for (const auto& record : *records) {
    if (auto status = registry.apply(record.key, record.value, record.content_type, record.tombstone); !status) {
      err << "kcron: warning: skipping a tenant record of '" << record.key << "': " << status.error().message() << "\n";
    }
  }
  return registry;
}

OutRecord settings_record(const TopicNames& names, const v1::TenantSettings& settings) {
  return OutRecord{names.tenants(),
                   -1,
                   settings.name(),
                   encode(settings),
                   false,
                   {{std::string(header::kType), "tenant"}, {std::string(header::kContentType), std::string(header::kProtobuf)}}};
}

}  // namespace

Result<TenantRegistry> read_tenant_registry(const Config& config, std::ostream& err) {
  return read_registry(config, TopicNames(config.get("topic_prefix")), err);
}

Status write_tenant_settings(const Config& config, const v1::TenantSettings& settings) {
  return write_records(config, {settings_record(TopicNames(config.get("topic_prefix")), settings)});
}

TenantCommands::EditOptions TenantCommands::add_edit_options(CLI::App& command) {
  EditOptions options;
  options.max_pending =
      command.add_option("--max-pending", max_pending_, "most jobs waiting for their instant, over the deployment (0: no limit)");
  options.max_rate =
      command.add_option("--max-rate", max_rate_, "most submissions per second, over the deployment (0: no limit)");
  options.max_running = command.add_option("--max-running", max_running_, "most running jobs per worker process (0: no limit)");
  options.queues = command.add_option("--queues", queues_, "queues the tenant may use, e.g. default,batch ('': every queue)");
  options.description = command.add_option("--description", description_, "free text");
  options.admin_max_pending =
      command.add_option("--admin-max-pending", admin_max_pending_,
                         "how high the tenant's admins may set --max-pending through kcron-api (0: not at all)");
  options.admin_max_rate = command.add_option(
      "--admin-max-rate", admin_max_rate_, "how high the tenant's admins may set --max-rate through kcron-api (0: not at all)");
  options.admin_max_running =
      command.add_option("--admin-max-running", admin_max_running_,
                         "how high the tenant's admins may set --max-running through kcron-api (0: not at all)");
  options.kafka_topics =
      command.add_option("--kafka-topics", kafka_topics_,
                         "topics the tenant's kafka jobs may write, e.g. orders,billing ('': none; never kcron.* or __*)");
  options.programs = command.add_option("--programs", programs_,
                                        "absolute programs the tenant's exec jobs may run, within the workers' exec.programs "
                                        "('': the workers' list)");
  options.env_names = command.add_option("--env-names", env_names_,
                                         "env names the tenant's exec jobs may set, within the workers' exec.env ('': the "
                                         "workers' list)");
  options.http_targets = command.add_option("--http-targets", http_targets_,
                                            "hosts the tenant's http jobs may reach: host, *.suffix, host:port ('': any the "
                                            "workers' http rules allow)");
  return options;
}

TenantCommands::TenantCommands(CLI::App& app) {
  auto* tenant = app.add_subcommand("tenant", "create, change, show or delete tenants (the registry on kcron.tenants)");
  tenant->require_subcommand(1);
  create_ = tenant->add_subcommand("create", "register a new tenant with its limits (fails if it exists)");
  create_->add_option("name", name_, "tenant name: 1-40 of a-z, 0-9 and -")->required();
  create_options_ = add_edit_options(*create_);
  add_tenant_kafka_options(*create_, create_kafka_);
  set_ = tenant->add_subcommand("set", "change the given settings of an existing tenant");
  set_->add_option("name", name_)->required();
  set_options_ = add_edit_options(*set_);
  add_tenant_kafka_options(*set_, set_kafka_);
  get_ = tenant->add_subcommand("get", "one tenant's settings");
  get_->add_option("name", name_)->required();
  get_->add_flag("--json", json_, "the TenantSettings as JSON");
  list_ = tenant->add_subcommand("list", "every tenant with its limits");
  list_->add_flag("--json", json_, "JSON lines instead of a table");
  delete_ = tenant->add_subcommand(
      "delete", "purge a tenant: tombstone its schedules, cancel its pending jobs on every jobs partition, delete its settings");
  delete_->add_option("name", name_)->required();
  delete_->add_flag("--yes", yes_, "do it (without: say what it would do and exit 1)");
  delete_->add_option("--reason", reason_, "the reason the cancelled jobs carry (default: tenant 'T' was deleted)");
}

Result<TenantEdit> TenantCommands::edit_of(const EditOptions& given) const {
  TenantEdit edit;
  if (given.max_pending->count() > 0) edit.max_pending_jobs = max_pending_;
  if (given.max_rate->count() > 0) edit.max_submissions_per_second = max_rate_;
  if (given.max_running->count() > 0) edit.max_running_jobs = max_running_;
  if (given.description->count() > 0) edit.description = description_;
  if (given.admin_max_pending->count() > 0) edit.admin_max_pending_jobs = admin_max_pending_;
  if (given.admin_max_rate->count() > 0) edit.admin_max_submissions_per_second = admin_max_rate_;
  if (given.admin_max_running->count() > 0) edit.admin_max_running_jobs = admin_max_running_;
  if (given.queues->count() > 0) {
    auto queues = parse_queue_list(queues_);
    if (!queues) return queues.error();
    edit.allowed_queues = std::move(*queues);
  }
  const std::array<std::tuple<CLI::Option*, std::string_view, const std::string*, std::optional<std::vector<std::string>>*>, 4>
      lists{{{given.kafka_topics, "--kafka-topics", &kafka_topics_, &edit.allowed_kafka_topics},
             {given.programs, "--programs", &programs_, &edit.allowed_programs},
             {given.env_names, "--env-names", &env_names_, &edit.allowed_env_names},
             {given.http_targets, "--http-targets", &http_targets_, &edit.allowed_http_targets}}};
  for (const auto& [option, name, text, target] : lists) {
    if (option->count() == 0) continue;
    auto parsed = parse_name_list(name, *text);
    if (!parsed) return parsed.error();
    *target = std::move(*parsed);
  }
  return edit;
}

bool TenantCommands::api_parsed() const {
  return get_->parsed() || set_->parsed();
}

int TenantCommands::run_api(ApiClient& client, std::ostream& out, std::ostream& err) const {
  if (auto valid = validate_tenant_name(name_); !valid) return fail(err, valid.error().message());
  client.set_tenant(name_);
  if (get_->parsed()) {
    auto settings = client.tenant_settings();
    if (!settings) return fail(err, settings.error().message());
    out << (json_ ? to_json(*settings) + "\n" : describe_tenant(*settings));
    return 0;
  }
  auto edit = edit_of(set_options_);
  if (!edit) return fail(err, edit.error().message());
  if (edit->sets_allowlists()) {
    return fail(err,
                "--kafka-topics, --programs, --env-names and --http-targets are set by kcron's operators on kcron.tenants "
                "(kcron tenant set without --api); kcron-api does not change them");
  }
  auto settings = client.patch_tenant(tenant_patch_body(*edit));
  if (!settings) return fail(err, settings.error().message());
  out << "updated tenant " << name_ << "\n";
  return 0;
}

bool TenantCommands::parsed() const {
  return create_->parsed() || set_->parsed() || get_->parsed() || list_->parsed() || delete_->parsed();
}

int TenantCommands::run(const Config& config, std::ostream& out, std::ostream& err) const {
  if (!list_->parsed()) {
    if (auto valid = validate_tenant_name(name_); !valid) return fail(err, valid.error().message());
  }
  if (create_->parsed()) return run_edit(config, true, create_options_, out, err);
  if (set_->parsed()) return run_edit(config, false, set_options_, out, err);
  if (delete_->parsed()) return run_delete(config, out, err);
  const TopicNames names(config.get("topic_prefix"));
  auto registry = read_registry(config, names, err);
  if (!registry) return fail(err, registry.error().message());
  if (list_->parsed()) {
    if (!json_) {
      out << tenant_table(registry->all());
      return 0;
    }
    for (const auto& [name, settings] : registry->all()) out << to_json(settings) << "\n";
    return 0;
  }
  const auto* settings = registry->find(name_);
  if (settings == nullptr) return fail(err, fmt::format("no such tenant '{}'", name_));
  out << (json_ ? to_json(*settings) + "\n" : describe_tenant(*settings));
  return 0;
}

int TenantCommands::run_edit(const Config& config, bool create, const EditOptions& given, std::ostream& out,
                             std::ostream& err) const {
  auto edited = edit_of(given);
  if (!edited) return fail(err, edited.error().message());
  const TenantEdit& edit = *edited;
  if (edit.allowed_queues) {
    const auto deployment = config.get_list("queues");
    for (const auto& queue : *edit.allowed_queues) {
      if (std::find(deployment.begin(), deployment.end(), queue) == deployment.end()) {
        err << fmt::format("kcron: warning: queue '{}' is not one of the configured queues ({})\n", queue,
                           fmt::join(deployment, ", "));
      }
    }
  }
  const TopicNames names(config.get("topic_prefix"));
  auto registry = read_registry(config, names, err);
  if (!registry) return fail(err, registry.error().message());
  const auto* existing = registry->find(name_);
  if (create && existing != nullptr) {
    return fail(err, fmt::format("tenant '{}' already exists (kcron tenant set {} changes it)", name_, name_));
  }
  if (!create && existing == nullptr) {
    return fail(err, fmt::format("no such tenant '{}' (kcron tenant create {} makes it)", name_, name_));
  }
  auto settings = apply_edit(create ? v1::TenantSettings() : *existing, name_, edit, to_epoch_ms(SystemClock().now()));
  if (const auto& kafka_options = create ? create_kafka_ : set_kafka_; kafka_options.kafka && kafka_options.output) {
    settings.set_kafka_output(true);
  } else if (kafka_options.no_output) {
    settings.set_kafka_output(false);  // the topic stays; `kcron tenant delete` removes it
  }
  if (auto valid = validate_tenant_settings(name_, settings); !valid) return fail(err, valid.error().message());
  if (auto written = write_records(config, {settings_record(names, settings)}); !written) {
    return fail(err, written.error().message());
  }
  out << (create ? "created tenant " : "updated tenant ") << name_ << "\n";
  const auto& kafka_options = create ? create_kafka_ : set_kafka_;
  if (kafka_options.kafka) return setup_tenant_kafka(config, name_, kafka_options, out, err);
  return 0;
}

int TenantCommands::run_delete(const Config& config, std::ostream& out, std::ostream& err) const {
  if (is_default_tenant(name_)) return fail(err, "the default tenant cannot be deleted");
  const TopicNames names(config.get("topic_prefix"));
  auto registry = read_registry(config, names, err);
  if (!registry) return fail(err, registry.error().message());
  if (registry->find(name_) == nullptr) {
    return fail(err, fmt::format("no such tenant '{}' (to purge the jobs and schedules of a tenant that was never registered, "
                                 "kcron tenant create it first)",
                                 name_));
  }
  auto schedule_records = read_to_end(config, names.schedules());
  if (!schedule_records) return fail(err, schedule_records.error().message());
  const auto schedules = live_schedules_of(*schedule_records, name_);
  const auto bare = bare_schedules_naming(*schedule_records, name_);
  std::int32_t jobs_partitions = 0;
  {
    auto producer = kafka::make_producer(kafka::client_properties(config, "kcron-cli"), "");
    if (!producer) return fail(err, producer.error().message());
    auto counts = kafka::partition_counts(**producer, Millis(10000));
    if (!counts) return fail(err, counts.error().message());
    const auto found = counts->find(names.jobs());
    if (found == counts->end())
      return fail(err, fmt::format("topic {} does not exist (kcron topics create makes it)", names.jobs()));
    jobs_partitions = found->second;
  }

  if (yes_) {
    // Every dispatcher must act on the PurgeTenant, and every worker on the tenant-wide cancel.
    if (auto open = check_upgrade(config, name_, feature::kPurgeTenant); !open) return fail(err, open.error().message());
  }
  if (!yes_) {
    out << fmt::format(
        "kcron tenant delete {} --yes would:\n"
        "  tombstone {} schedule(s) of the tenant on {}\n"
        "  send a PurgeTenant to each of the {} partitions of {} (the dispatchers cancel the tenant's pending jobs)\n"
        "  tombstone the tenant's settings on {}\n"
        "  remove the ACLs of User:tenant.{} and its input topics, if any\n",
        name_, schedules.size(), names.schedules(), jobs_partitions, names.jobs(), names.tenants(), name_);
    return fail(err, fmt::format("tenant '{}' was not deleted: pass --yes to delete it", name_));
  }

  // Kafka access first (its ACLs and input topics), so the tenant can send nothing more; then
  // schedules, so no new run of them is emitted after the purge; then the purge; the settings
  // last, so a failure part-way leaves the tenant listed and the command can be rerun.
  if (const auto* current = registry->find(name_); current != nullptr && current->kafka_output()) {
    // The programs stop copying to the output topic before it is deleted: a copy to a deleted
    // topic would fail every transaction that carries one until they notice.
    auto off = *current;
    off.set_kafka_output(false);
    off.set_updated_ms(to_epoch_ms(SystemClock().now()));
    if (auto written = write_records(config, {settings_record(names, off)}); !written)
      return fail(err, written.error().message());
    out << "output topic turned off; waiting 5 s for the dispatchers and workers to stop writing to it\n";
    std::this_thread::sleep_for(std::chrono::seconds(5));
  }
  if (int code = teardown_tenant_kafka(config, name_, out, err); code != 0) return code;
  std::vector<OutRecord> tombstones;
  for (const auto& schedule : schedules) {
    tombstones.push_back(OutRecord{names.schedules(),
                                   schedule.partition,
                                   schedule.key,
                                   "",
                                   true,
                                   {{std::string(header::kContentType), std::string(header::kProtobuf)}}});
  }
  if (auto written = write_records(config, tombstones); !written) {
    return fail(err, fmt::format("tombstoning the schedules of '{}': {} (nothing else was written; run the delete again)", name_,
                                 written.error().message()));
  }
  v1::Command purge;
  purge.mutable_purge_tenant()->set_tenant(name_);
  purge.mutable_purge_tenant()->set_reason(reason_);
  std::vector<OutRecord> purges;
  for (std::int32_t partition = 0; partition < jobs_partitions; ++partition) {
    // Not routed: each dispatcher acts on the partition the command is written to.
    purges.push_back(OutRecord{
        names.jobs(),
        partition,
        name_,
        encode(purge),
        false,
        {{std::string(header::kType), "purge-tenant"}, {std::string(header::kContentType), std::string(header::kProtobuf)}}});
  }
  if (auto written = write_records(config, purges); !written) {
    return fail(err, fmt::format("purging '{}' on {}: {} ({} schedule(s) were tombstoned; run the delete again)", name_,
                                 names.jobs(), written.error().message(), schedules.size()));
  }
  if (auto written = write_records(
          config,
          {OutRecord{
              names.tenants(), -1, name_, "", true, {{std::string(header::kContentType), std::string(header::kProtobuf)}}}});
      !written) {
    return fail(err, fmt::format("tombstoning the settings of '{}': {} (its schedules and pending jobs were purged; run the "
                                 "delete again)",
                                 name_, written.error().message()));
  }
  out << fmt::format(
      "deleted tenant {}:\n"
      "  {} schedule(s) tombstoned on {}\n"
      "  PurgeTenant sent to {} partition(s) of {} (each dispatcher cancels the tenant's pending jobs when it reads it)\n"
      "  settings tombstoned on {}\n"
      "left in place:\n"
      "  the tenant's records on {}, {}, {} and {} (they go with those topics' retention)\n",
      name_, schedules.size(), names.schedules(), jobs_partitions, names.jobs(), names.tenants(), names.results(),
      names.dead_letters(), names.status(), names.events());
  if (!bare.empty()) {
    out << fmt::format(
        "  {} schedule(s) keyed by a bare id that name the tenant in their body ({}); kcron schedule delete ID removes them\n",
        bare.size(), fmt::join(bare, ", "));
  }
  out << "  a client certificate issued to the tenant stays valid until it expires, with no ACL left to use (docs/security.md)\n";
  return 0;
}

}  // namespace kcron::cli
