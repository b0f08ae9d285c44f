// kcron: the operator's command line. Creates and checks topics, submits and cancels jobs with
// the same murmur2 routing the programs use, manages tenants, reads the audit topic, and tails any
// kcron topic as JSON lines; makes signing keys and bearer tokens for kcron-api. With --api,
// submit, cancel, status and jobs go through kcron-api instead of Kafka (api_commands.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include "api_client.h"
#include "api_commands.h"
#include "audit_command.h"
#include "batch_lines.h"
#include "core/cron_expression.h"
#include "cron_command.h"
#include "curl_transport.h"
#include "flow_command.h"
#include "inspect_command.h"
#include "kafka_access.h"
#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/codec.h"
#include "kcron/config.h"
#include "kcron/kafka.h"
#include "kcron/program.h"
#include "kcron/records.h"
#include "kcron/routing.h"
#include "kcron/service.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"
#include "kcron/upgrade_gate.h"
#include "objects/s3_store.h"
#include "objects_command.h"
#include "result_command.h"
#include "schedule_lint.h"
#include "sealing_command.h"
#include "template_command.h"
#include "template_wait.h"
#include "tenant_command.h"
#include "token_command.h"
#include "topics_command.h"
#include "upgrade_check.h"

namespace {

using kcron::Millis;

struct Common {
  std::string config_file;
  std::vector<std::string> overrides;
  std::string brokers;
  std::string prefix;
  std::string tenant;
  std::string api_url;    // set: submit, cancel, status and jobs go through kcron-api
  std::string api_token;  // the JWT, or @FILE
  std::string api_ca;
};

kcron::Config load_config(const Common& common) {
  auto keys = kcron::common_config_keys("cli", -1);
  keys.push_back({"tenant", "", "the tenant whose jobs and schedules a command names (empty: the default tenant)"});
  const auto object_keys = kcron::worker::object_config_keys();
  keys.insert(keys.end(), object_keys.begin(), object_keys.end());
  keys.push_back(
      {"upgrade_check", "true", "before writing a tenant's records, check that every dispatcher and worker understands them"});
  auto loaded = kcron::Config::load(keys, common.config_file, common.overrides, kcron::process_environment());
  if (!loaded) {
    std::cerr << "kcron: " << loaded.error().message() << "\n";
    std::exit(2);
  }
  auto config = *loaded;
  std::vector<std::string> extra;
  if (!common.brokers.empty()) extra.push_back("brokers=" + common.brokers);
  if (!common.prefix.empty()) extra.push_back("topic_prefix=" + common.prefix);
  if (!common.tenant.empty()) extra.push_back("tenant=" + common.tenant);
  if (!extra.empty()) {
    std::vector<std::string> all = common.overrides;
    all.insert(all.end(), extra.begin(), extra.end());
    config = *kcron::Config::load(keys, common.config_file, all, kcron::process_environment());
  }
  return config;
}

int fail(const std::string& message) {
  std::cerr << "kcron: " << message << "\n";
  return 1;
}

kcron::TopicLayout layout_from(const kcron::Config& config, int jobs, int exec, int outputs, int schedules) {
  kcron::TopicLayout layout;
  layout.jobs_partitions = jobs;
  layout.exec_partitions = exec;
  layout.output_partitions = outputs;
  layout.schedules_partitions = schedules;
  layout.queues = config.get_list("queues");
  return layout;
}

// Produces a command for `job_id` of `tenant`, keyed by the job's scoped routing key (kcron/tenant.h).
int produce_command(const kcron::Config& config, const kcron::v1::Command& command, const std::string& tenant,
                    const std::string& job_id) {
  if (auto open = kcron::cli::check_upgrade(config, tenant, kcron::feature::kTenantKeys); !open)
    return fail(open.error().message());
  auto producer = kcron::kafka::make_producer(kcron::kafka::client_properties(config, "kcron-cli"), "");
  if (!producer) return fail(producer.error().message());
  const kcron::TopicNames names(config.get("topic_prefix"));
  const auto record = kcron::command_record(names, command, tenant, job_id);
  if (auto status = kcron::kafka::produce(**producer, record); !status) return fail(status.error().message());
  if ((*producer)->flush(15000) != RdKafka::ERR_NO_ERROR) return fail("the record was not acknowledged within 15 s");
  return 0;
}

std::string read_input(const std::string& argument) {
  if (argument != "-") return argument;
  return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
}

// `bytes` random bytes as hex (a batch run's key: only needs to differ between runs).
std::string random_hex(std::size_t bytes) {
  std::random_device source;
  std::string text;
  for (std::size_t index = 0; index < bytes; ++index) text += fmt::format("{:02x}", source() & 0xFFU);
  return text;
}

// A --batch file: its text, or stdin's for "-".
kcron::Result<std::string> read_batch_file(const std::string& argument) {
  if (argument == "-") return read_input(argument);
  std::ifstream file(argument, std::ios::binary);
  if (!file) return kcron::make_error("cannot read {}", argument);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

struct TailOptions {
  std::string topic;
  bool from_beginning = false;
  bool follow = false;
  long count = -1;  // -1: 10 latest, or every record with from_beginning
  long timeout_ms = 0;
};

// The message type a record of `topic` holds, from its kcron-type header or else its topic.
std::unique_ptr<google::protobuf::Message> message_for(const kcron::TopicNames& names, const std::string& topic,
                                                       const std::string& type) {
  if (type == "execution") return std::make_unique<kcron::v1::Execution>();
  if (type == "result") return std::make_unique<kcron::v1::Result>();
  if (type == "dead-letter") return std::make_unique<kcron::v1::DeadLetter>();
  if (type == "status") return std::make_unique<kcron::v1::StatusRecord>();
  if (type == "done") return std::make_unique<kcron::v1::DoneMarker>();
  if (type == "worker" || topic == names.workers()) return std::make_unique<kcron::v1::WorkerHeartbeat>();
  if (topic == names.control()) return std::make_unique<kcron::v1::Command>();
  if (topic == names.dispatcher_changelog()) return std::make_unique<kcron::v1::DispatcherEntry>();
  if (topic == names.schedules()) return std::make_unique<kcron::v1::Schedule>();
  if (topic == names.cron_changelog()) return std::make_unique<kcron::v1::CronState>();
  if (topic == names.tenants()) return std::make_unique<kcron::v1::TenantSettings>();
  if (topic == names.templates()) return std::make_unique<kcron::v1::Template>();
  if (type == "audit" || topic == names.audit()) return std::make_unique<kcron::v1::AuditRecord>();
  return nullptr;
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// One record as a JSON line: topic, partition, offset, timestamp, key, kcron-type and the decoded
// value (null for a tombstone; {"undecodable": reason} for bytes that are not what the topic holds).
std::string tail_line(const kcron::TopicNames& names, const std::string& topic, RdKafka::Message& message) {
  const std::string_view value(static_cast<const char*>(message.payload()), message.len());
  const std::string type = kcron::kafka::header_value(message, kcron::header::kType);
  const std::string content_type = kcron::kafka::header_value(message, kcron::header::kContentType);
  std::string body = "null";
  if (message.payload() != nullptr) {
    if (topic == names.jobs()) {
      auto command = kcron::decode_command(value, content_type, type);
      body = command ? kcron::to_json(*command) : fmt::format("{{\"undecodable\":{}}}", json_string(command.error().message()));
    } else if (auto decoded = message_for(names, topic, type)) {
      auto status = kcron::decode_message(value, content_type, *decoded);
      body = status ? kcron::to_json(*decoded) : fmt::format("{{\"undecodable\":{}}}", json_string(status.error().message()));
    } else {
      body = fmt::format("{{\"bytes\":{}}}", message.len());
    }
  }
  return fmt::format(R"({{"topic":"{}","partition":{},"offset":{},"timestamp_ms":{},"key":{},"type":{},"value":{}}})", topic,
                     message.partition(), message.offset(), message.timestamp().timestamp,
                     json_string(message.key() != nullptr ? *message.key() : std::string()), json_string(type), body);
}

// kcron tail: the last N records (default), or all from the beginning; then stops at the end of
// the topic as it was at start, or with --follow keeps printing new records.
int tail(const kcron::Config& config, const TailOptions& options) {
  const kcron::TopicNames names(config.get("topic_prefix"));
  const std::string topic = options.topic.starts_with(names.prefix) ? options.topic : names.prefix + options.topic;
  auto properties = kcron::kafka::client_properties(config, "kcron-cli-tail");
  properties["group.id"] = names.prefix + "cli-tail";  // never joined; under the prefix (kcron's ACLs)
  properties["enable.partition.eof"] = "true";
  auto consumer = kcron::kafka::make_consumer(properties);
  if (!consumer) return fail(consumer.error().message());
  auto counts = kcron::kafka::partition_counts(**consumer, Millis(10000));
  if (!counts) return fail(counts.error().message());
  const auto found = counts->find(topic);
  if (found == counts->end()) return fail("no topic " + topic);

  const long latest = options.count >= 0 ? options.count : 10;
  kcron::kafka::PartitionList assignment;
  std::set<std::int32_t> open;  // partitions not read to their end yet
  for (std::int32_t partition = 0; partition < found->second; ++partition) {
    auto marks = kcron::kafka::watermarks(**consumer, topic, partition, Millis(10000));
    if (!marks) return fail(marks.error().message());
    const auto [low, high] = *marks;
    const std::int64_t start = options.from_beginning ? low : std::max(low, high - latest);
    assignment.items.push_back(RdKafka::TopicPartition::create(topic, partition, start));
    if (start < high) open.insert(partition);
  }
  if (const auto code = (*consumer)->assign(assignment.items); code != RdKafka::ERR_NO_ERROR)
    return fail(kcron::kafka::to_error(code, "assign").message());

  const auto deadline = std::chrono::steady_clock::now() + Millis(options.timeout_ms);
  auto timed_out = [&] { return options.timeout_ms > 0 && std::chrono::steady_clock::now() >= deadline; };
  // History first: the last N records across partitions, in timestamp order (or all of them).
  std::vector<std::pair<std::int64_t, std::string>> history;
  while (!open.empty() && !timed_out() && !kcron::stop_requested()) {
    std::unique_ptr<RdKafka::Message> message((*consumer)->consume(200));
    if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      open.erase(message->partition());
      continue;
    }
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    history.emplace_back(message->timestamp().timestamp, tail_line(names, topic, *message));
    if (options.from_beginning && options.count > 0 && static_cast<long>(history.size()) >= options.count) break;
  }
  std::stable_sort(history.begin(), history.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::size_t first = 0;
  if (!options.from_beginning && history.size() > static_cast<std::size_t>(latest))
    first = history.size() - static_cast<std::size_t>(latest);
  for (std::size_t index = first; index < history.size(); ++index) std::cout << history[index].second << "\n";
  std::cout.flush();
  if (!options.follow) return 0;
  while (!timed_out() && !kcron::stop_requested()) {
    std::unique_ptr<RdKafka::Message> message((*consumer)->consume(200));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    std::cout << tail_line(names, topic, *message) << std::endl;
  }
  return 0;
}

// "dlq list", "tenant create": the subcommand path the command line chose.
std::string chosen_command(const CLI::App& app) {
  std::string name;
  const CLI::App* level = &app;
  for (int depth = 0; depth < 4; ++depth) {
    const auto chosen = level->get_subcommands();
    if (chosen.empty()) break;
    level = chosen.front();
    name += (name.empty() ? "" : " ") + level->get_name();
  }
  return name;
}

int run(int argc, char** argv) {
  CLI::App app{"kcron: operate a kcron deployment (topics, jobs, inspection)"};
  app.require_subcommand(1);
  Common common;
  app.add_option("-c,--config", common.config_file, "TOML configuration file");
  app.add_option("-s,--set", common.overrides, "override a configuration key: --set key=value");
  app.add_option("-b,--brokers", common.brokers, "Kafka bootstrap servers (default 127.0.0.1:9092, env KCRON_BROKERS)");
  app.add_option("-p,--prefix", common.prefix, "topic prefix (default kcron., env KCRON_TOPIC_PREFIX)");
  app.add_option("-t,--tenant", common.tenant,
                 "the tenant whose jobs and schedules the command names (default: the default tenant, env KCRON_TENANT)");
  app.add_option("--api", common.api_url,
                 "kcron-api's URL: submit, cancel, status and jobs go through it instead of Kafka (env KCRON_API_URL)")
      ->envname("KCRON_API_URL");
  app.add_option("--token", common.api_token, "the bearer JWT for --api, or @FILE to read it (env KCRON_API_TOKEN)")
      ->envname("KCRON_API_TOKEN");
  app.add_option("--api-ca", common.api_ca, "PEM bundle that verifies --api's TLS certificate (default: the system's)")
      ->envname("KCRON_API_CA");

  auto* topics = app.add_subcommand("topics", "create or check kcron's topics");
  topics->require_subcommand(1);
  int replication = 1;
  int jobs_partitions = 12;
  int exec_partitions = 12;
  int output_partitions = 12;
  int schedules_partitions = 6;
  bool align_configs = false;
  auto* create_command = topics->add_subcommand(
      "create", "create every missing topic of the layout and align the cleanup.policy of existing ones (idempotent)");
  create_command->add_flag("--align-configs", align_configs,
                           "also set kcron's value of every other differing config key (retention.ms, ...) on existing topics");
  auto* check_command =
      topics->add_subcommand("check", "check that every topic exists with its partition count and cleanup.policy");
  for (auto* command : {create_command, check_command}) {
    command->add_option("--replication-factor", replication, "replication factor of new topics")->capture_default_str();
    command->add_option("--jobs-partitions", jobs_partitions, "partitions of jobs and the dispatcher changelog")
        ->capture_default_str();
    command->add_option("--exec-partitions", exec_partitions, "partitions of each exec topic and worker-done")
        ->capture_default_str();
    command->add_option("--output-partitions", output_partitions, "partitions of results, dead-letters, status, events")
        ->capture_default_str();
    command->add_option("--schedules-partitions", schedules_partitions, "partitions of schedules and the cron changelog")
        ->capture_default_str();
  }

  auto* submit = app.add_subcommand("submit", "submit a job (JSON Job or Command; '-' reads stdin)");
  std::string submit_input;
  submit->add_option("job", submit_input, "JSON, e.g. '{\"id\":\"j1\",\"delay\":\"5s\",\"noop\":{}}' (none with --template)");
  std::string submit_template;
  std::vector<std::string> submit_params;
  std::string submit_id;
  double template_wait_s = 10;
  submit->add_option("--template", submit_template,
                     "render the job from a template version on kcron.templates, NAME@VERSION (docs/templates.md)");
  submit->add_option("--param", submit_params, "a template parameter, name=value (repeat for each)");
  submit->add_option("--id", submit_id, "the job's id (with --template: instead of the id the template gives)");
  auto* template_wait_option =
      submit
          ->add_option("--template-wait", template_wait_s,
                       "seconds to wait for a template version this CLI does not see yet, then refuse (without --api)")
          ->capture_default_str();
  std::string batch_key;
  submit->add_option("--idempotency-key", batch_key,
                     "with --batch --api: the run key of an earlier run whose lines were not confirmed, so its lines keep "
                     "their ids (default: a new random key)");
  bool submit_batch = false;
  submit->add_flag("--batch", submit_batch,
                   "the argument is a JSON Lines file ('-': stdin), one job or template line per line, written as batch "
                   "records of up to 1,000 jobs; with --api, sent to POST /v1/jobs:batch (docs/batch.md)");
  bool seal = false;
  std::string master_key_file;
  submit->add_flag("--seal", seal, "seal the task and payload with the tenant's data key (only a worker opens them)");
  submit->add_option("--master-key", master_key_file, "the sealing master key file, for --seal")
      ->envname("KCRON_SEALING_MASTER_KEY_FILE");

  auto* schedule =
      app.add_subcommand("schedule", "create, update, pause or delete a schedule on kcron.schedules, or lint the stored ones");
  schedule->require_subcommand(1);
  auto* schedule_put = schedule->add_subcommand("put", "create or replace a schedule (JSON Schedule; '-' reads stdin)");
  std::string schedule_input;
  schedule_put
      ->add_option(
          "schedule", schedule_input,
          R"(JSON, e.g. '{"id":"nightly","expression":"0 2 * * *","time_zone":"Europe/Berlin","job_template":{"noop":{}}}')")
      ->required();
  schedule_put->add_flag("--seal", seal, "seal the job template's task and payload (each run opens on a worker)");
  schedule_put->add_option("--master-key", master_key_file, "the sealing master key file, for --seal")
      ->envname("KCRON_SEALING_MASTER_KEY_FILE");
  auto* schedule_delete = schedule->add_subcommand("delete", "delete a schedule (a tombstone); runs emitted ahead are cancelled");
  std::string schedule_id;
  schedule_delete->add_option("schedule-id", schedule_id)->required();
  const kcron::cli::ScheduleLint schedule_lint(*schedule);

  auto* cancel = app.add_subcommand("cancel", "cancel a job by id");
  std::string cancel_id;
  std::string cancel_reason;
  cancel->add_option("job-id", cancel_id)->required();
  cancel->add_option("--reason", cancel_reason);

  auto* tail_command = app.add_subcommand(
      "tail", "print a topic's records as JSON lines: the last N (default 10), or --from-beginning; --follow for new ones");
  TailOptions tail_options;
  tail_command->add_option("topic", tail_options.topic, "topic name, with or without the prefix (e.g. results)")->required();
  tail_command->add_flag("--from-beginning", tail_options.from_beginning, "every record from the start (-n then caps it)");
  tail_command->add_flag("-f,--follow", tail_options.follow, "keep printing new records until Ctrl-C or --timeout-ms");
  tail_command->add_option("-n,--lines", tail_options.count, "how many of the latest records (default 10)");
  tail_command->add_option("--timeout-ms", tail_options.timeout_ms, "stop after this long (0: no limit)");

  const kcron::cli::CronCommand cron_command(app);
  const kcron::cli::InspectCommands inspect_commands(app);
  const kcron::cli::TenantCommands tenant_commands(app);
  const kcron::cli::AuditCommand audit_command(app);
  const kcron::cli::TokenCommands token_commands(app);
  const kcron::cli::JobsCommand jobs_command(app);
  const kcron::cli::KafkaAclsCommand kafka_acls_command(app);
  const kcron::cli::SealingCommands sealing_commands(app);
  const kcron::cli::FlowCommands flow_commands(app);
  const kcron::cli::TemplateCommands template_commands(app);
  const kcron::cli::ResultCommands result_commands(app);
  const kcron::cli::ObjectsCommands objects_commands(app);

  CLI11_PARSE(app, argc, argv);
  if (cron_command.parsed()) return cron_command.run(std::cout, std::cerr);      // pure: no config, no broker
  if (token_commands.parsed()) return token_commands.run(std::cout, std::cerr);  // local files only
  if (submit->parsed()) {
    if (submit_template.empty() == submit_input.empty()) {
      return fail(submit_input.empty() ? "submit needs the job: JSON, '-' for stdin, or --template NAME@VERSION"
                                       : "--template renders the job: give no JSON with it");
    }
    if (submit_batch && (!submit_params.empty() || !submit_id.empty())) {
      return fail(submit_params.empty() ? "--id does not apply to --batch: each line holds its own id"
                                        : "--param does not apply to --batch: each template line holds its own params");
    }
    if (submit_template.empty() && (!submit_params.empty() || !submit_id.empty())) {
      return fail(fmt::format("{} goes with --template: a JSON job holds its own id and values",
                              submit_params.empty() ? "--id" : "--param"));
    }
    if (!(template_wait_s >= 0 && template_wait_s <= 3600)) return fail("--template-wait is seconds from 0 to 3600");
    if (template_wait_option->count() > 0 && !common.api_url.empty()) {
      return fail("--template-wait does not apply to --api: kcron-api waits for a version up to its api.template_wait_ms");
    }
    if (!batch_key.empty() && (!submit_batch || common.api_url.empty())) {
      return fail("--idempotency-key goes with --batch --api: it names the requests of a batch file sent to kcron-api");
    }
    if (batch_key.size() > 128 || std::any_of(batch_key.begin(), batch_key.end(),
                                              [](char c) { return std::isgraph(static_cast<unsigned char>(c)) == 0; })) {
      return fail("--idempotency-key is at most 128 characters without spaces");
    }
  }
  if (!common.api_url.empty()) {
    const bool served = submit->parsed() || cancel->parsed() || inspect_commands.api_parsed() || jobs_command.parsed() ||
                        tenant_commands.api_parsed() || audit_command.parsed() || schedule_put->parsed() ||
                        schedule_delete->parsed();
    if (!served) return fail(kcron::cli::api_refusal(chosen_command(app)));
    const auto config = load_config(common);
    auto target = kcron::cli::make_api_target(common.api_url, common.api_token, config.get("tenant"));
    if (!target) return fail(target.error().message());
    // A batch request may wait for template versions (api.template_wait_ms) and then for Kafka's
    // acknowledgement (api.ack_timeout_ms) before it answers: it is given longer.
    const bool batch_request = submit->parsed() && submit_batch;
    auto transport = kcron::cli::make_curl_transport({common.api_ca, Millis(5000), Millis(batch_request ? 60000 : 30000)});
    kcron::cli::ApiClient client(std::move(*target), *transport);
    if (submit->parsed() && submit_batch) {
      if (!submit_template.empty()) {
        return fail(
            "--template does not apply to --batch: write template lines in the file, "
            "{\"template\":\"NAME@VERSION\",\"params\":{...}}");
      }
      if (seal) return fail("--seal does not apply to --batch yet: submit sealed jobs one by one");
      auto text = read_batch_file(submit_input);
      if (!text) return fail(text.error().message());
      kcron::cli::ApiBatchOptions options;
      options.run_key = batch_key.empty() ? "batch-" + random_hex(16) : batch_key;
      return kcron::cli::api_submit_batch(client, *text, options, std::cout, std::cerr);
    }
    if (submit->parsed() && !submit_template.empty()) {
      if (seal) return fail("--seal seals in the CLI, which needs Kafka access (without --api)");
      return kcron::cli::api_submit_template(client, submit_template, submit_params, submit_id, std::cout, std::cerr);
    }
    if (submit->parsed()) return kcron::cli::api_submit(client, read_input(submit_input), std::cout, std::cerr);
    if (cancel->parsed()) return kcron::cli::api_cancel(client, cancel_id, cancel_reason, std::cout, std::cerr);
    if (tenant_commands.api_parsed()) return tenant_commands.run_api(client, std::cout, std::cerr);
    if (inspect_commands.api_parsed()) return inspect_commands.run_api(client, std::cout, std::cerr);
    if (audit_command.parsed()) return audit_command.run_api(client, std::cout, std::cerr);
    if (schedule_put->parsed()) return kcron::cli::api_schedule_put(client, read_input(schedule_input), std::cout, std::cerr);
    if (schedule_delete->parsed()) return kcron::cli::api_schedule_delete(client, schedule_id, std::cout, std::cerr);
    return jobs_command.run(client, kcron::SystemClock::instance().now(), std::cout, std::cerr);
  }
  if (jobs_command.parsed()) {
    return fail("jobs needs the API: --api URL --token T (or KCRON_API_URL and KCRON_API_TOKEN); it has no Kafka path");
  }
  const auto config = load_config(common);
  const kcron::TopicNames names(config.get("topic_prefix"));
  const std::string tenant(kcron::tenant_or_default(config.get("tenant")));
  if (auto valid = kcron::validate_tenant_name(tenant); !valid) return fail(valid.error().message());
  // A body naming a tenant must name this one: the command acts inside one tenant.
  const auto tenant_of = [&](std::string_view named) -> kcron::Result<std::string> {
    if (named.empty() || named == tenant) return tenant;
    if (config.get("tenant").empty()) return std::string(named);  // no --tenant: the body's
    return kcron::make_error("the JSON names tenant '{}' but --tenant is '{}'", named, tenant);
  };

  if (topics->got_subcommand("create") || topics->got_subcommand("check")) {
    const auto specs =
        kcron::all_topics(names, layout_from(config, jobs_partitions, exec_partitions, output_partitions, schedules_partitions));
    const auto properties = kcron::kafka::client_properties(config, "kcron-cli");
    if (create_command->parsed()) {
      return kcron::cli::topics_create(properties, specs, {replication, align_configs}, std::cout, std::cerr);
    }
    return kcron::cli::topics_check(properties, specs, std::cout, std::cerr);
  }
  const auto template_wait = Millis(static_cast<std::int64_t>(template_wait_s * 1000));
  if (submit->parsed() && submit_batch && !submit_template.empty()) {
    return fail(
        "--template does not apply to --batch: write template lines in the file, "
        "{\"template\":\"NAME@VERSION\",\"params\":{...}}");
  }
  if (submit->parsed() && submit_batch) {
    if (seal) return fail("--seal does not apply to --batch yet: submit sealed jobs one by one");
    auto read = read_batch_file(submit_input);
    if (!read) return fail(read.error().message());
    std::string text = std::move(*read);
    const auto batch_tenant = tenant_of("");
    if (!batch_tenant) return fail(batch_tenant.error().message());
    // Template lines rendered first, each version read once (docs/templates.md).
    std::map<std::string, kcron::v1::Template> versions_read;
    auto rendered = kcron::cli::render_template_lines(
        text, [&](const kcron::templates::Ref& ref, const kcron::templates::Params& params) -> kcron::Result<kcron::v1::Job> {
          auto known = versions_read.find(ref.text());
          if (known == versions_read.end()) {
            auto found = kcron::cli::find_template(config, *batch_tenant, ref, template_wait);
            if (!found) return found.error();
            known = versions_read.emplace(ref.text(), std::move(*found)).first;
          }
          return kcron::templates::render(known->second, params);
        });
    if (!rendered) return fail(rendered.error().message());
    text = std::move(*rendered);
    if (auto checked = kcron::cli::split_batch_lines(text, *batch_tenant); !checked) return fail(checked.error().message());
    if (auto open = kcron::cli::check_upgrade(config, *batch_tenant, kcron::feature::kBatch); !open)
      return fail(open.error().message());
    // Delivery reports: "submitted" only for records the broker acknowledged.
    struct Deliveries final : RdKafka::DeliveryReportCb {
      void dr_cb(RdKafka::Message& message) override {
        if (message.err() == RdKafka::ERR_NO_ERROR) {
          ++acknowledged;
        } else if (failed++ == 0) {
          first_error = message.errstr();
        }
      }
      std::size_t acknowledged = 0;
      std::size_t failed = 0;
      std::string first_error;
    } deliveries;
    auto producer = kcron::kafka::make_producer(kcron::kafka::client_properties(config, "kcron-cli"), "", &deliveries);
    if (!producer) return fail(producer.error().message());
    const kcron::TopicNames batch_names(config.get("topic_prefix"));
    // Grouped by owner partition and written there: each dispatcher decides its jobs where it reads
    // them, with no forwarding (any partition would do, at the cost of forwards).
    auto counts = kcron::kafka::partition_counts(**producer, std::chrono::seconds(15));
    if (!counts) return fail(counts.error().message());
    const auto found = counts->find(batch_names.jobs());
    if (found == counts->end())
      return fail(fmt::format("topic {} does not exist: run `kcron topics create`", batch_names.jobs()));
    auto records = kcron::cli::split_batch_lines(text, *batch_tenant, {}, found->second);
    if (!records) return fail(records.error().message());
    std::size_t jobs = 0;
    for (auto& record : *records) {
      jobs += static_cast<std::size_t>(record.batch.jobs_size());
      kcron::v1::Command command;
      *command.mutable_batch() = std::move(record.batch);
      const kcron::OutRecord out{batch_names.jobs(),
                                 record.partition,
                                 "",
                                 kcron::encode(command),
                                 false,
                                 kcron::typed_headers("batch", "", kcron::tenant_field(*batch_tenant))};
      if (auto status = kcron::kafka::produce(**producer, out); !status) return fail(status.error().message());
    }
    const bool flushed = (*producer)->flush(60000) == RdKafka::ERR_NO_ERROR;
    if (!flushed || deliveries.failed > 0) {
      return fail(fmt::format(
          "{} of {} batch records were acknowledged ({}); send the file again: jobs already submitted are deduplicated by id",
          deliveries.acknowledged, records->size(),
          deliveries.failed > 0 ? "the broker refused " + std::to_string(deliveries.failed) + ": " + deliveries.first_error
                                : "the rest not within 60 s"));
    }
    std::cout << fmt::format("submitted {} jobs in {} batch record{}{}\n", jobs, records->size(), records->size() == 1 ? "" : "s",
                             kcron::is_default_tenant(*batch_tenant) ? "" : " for tenant " + *batch_tenant);
    return 0;
  }
  if (submit->parsed() && !submit_template.empty()) {
    const auto job_tenant = tenant_of("");
    if (!job_tenant) return fail(job_tenant.error().message());
    auto ref = kcron::templates::parse_ref(submit_template, true);
    if (!ref) return fail(ref.error().message());
    auto params = kcron::templates::parse_params(submit_params);
    if (!params) return fail(params.error().message());
    auto definition = kcron::cli::find_template(config, *job_tenant, *ref, template_wait);
    if (!definition) return fail(definition.error().message());
    auto rendered = kcron::templates::render(*definition, *params);
    if (!rendered) return fail(rendered.error().message());
    if (!submit_id.empty()) rendered->set_id(submit_id);
    if (rendered->id().empty()) return fail(fmt::format("template '{}' gives the job no id: pass --id", ref->text()));
    if (seal) {
      if (auto sealed =
              kcron::cli::seal_for_tenant(config, master_key_file, *job_tenant, *rendered, {"job", rendered->id()}, std::cerr);
          !sealed) {
        return fail(sealed.error().message());
      }
    }
    kcron::v1::Command command;
    *command.mutable_submit() = std::move(*rendered);
    const auto& job = command.submit();
    if (int code = produce_command(config, command, *job_tenant, job.id()); code != 0) return code;
    std::cout << "submitted " << job.id() << " from template " << job.template_()
              << (kcron::is_default_tenant(*job_tenant) ? "" : " for tenant " + *job_tenant) << "\n";
    return 0;
  }
  if (submit->parsed()) {
    auto command = kcron::decode_command(read_input(submit_input), "application/json", "");
    if (!command) return fail(command.error().message());
    auto& job = command->has_submit() ? *command->mutable_submit() : *command->mutable_update()->mutable_job();
    if (job.id().empty()) return fail("the job needs an id");
    const auto job_tenant = tenant_of(job.tenant());
    if (!job_tenant) return fail(job_tenant.error().message());
    job.set_tenant(std::string(kcron::tenant_field(*job_tenant)));
    if (seal) {
      if (auto sealed = kcron::cli::seal_for_tenant(config, master_key_file, *job_tenant, job, {"job", job.id()}, std::cerr);
          !sealed) {
        return fail(sealed.error().message());
      }
    }
    if (int code = produce_command(config, *command, *job_tenant, job.id()); code != 0) return code;
    std::cout << "submitted " << job.id() << (kcron::is_default_tenant(*job_tenant) ? "" : " for tenant " + *job_tenant) << "\n";
    return 0;
  }
  if (schedule_lint.parsed()) return schedule_lint.run(config, std::cout, std::cerr);
  if (schedule_put->parsed() || schedule_delete->parsed()) {
    kcron::v1::Schedule definition;
    const bool remove = schedule_delete->parsed();
    if (!remove) {
      if (auto decoded = kcron::decode_message(read_input(schedule_input), "application/json", definition); !decoded) {
        return fail(decoded.error().message());
      }
      // Check what the cron-producer would check, so mistakes show here and not as a dead letter.
      auto expression = kcron::cron::CronExpression::parse(definition.expression());
      if (!expression) return fail(expression.error().message());
      if (definition.id().empty()) return fail("the schedule needs an id");
      const auto schedule_tenant = tenant_of(definition.tenant());
      if (!schedule_tenant) return fail(schedule_tenant.error().message());
      definition.set_tenant(std::string(kcron::tenant_field(*schedule_tenant)));
      if (definition.has_template_ref()) {
        // Checked against kcron.templates as it is now: a version there must render with these
        // parameters; one not there yet is accepted with a warning (the cron-producer waits
        // template_wait_ms for it, then REJECTS the schedule naming it). docs/templates.md
        if (seal) return fail("--seal seals a job_template; a schedule on a template renders its job at each run");
        if (definition.has_job_template() || definition.has_flow_template()) {
          return fail("set one of job_template, flow_template, template_ref");
        }
        auto ref = kcron::templates::parse_ref(definition.template_ref().ref(), true);
        if (!ref) return fail(ref.error().within("template_ref").message());
        const kcron::templates::Params params(definition.template_ref().params().begin(),
                                              definition.template_ref().params().end());
        auto found = kcron::cli::find_template(config, *schedule_tenant, *ref, kcron::Millis(0));
        if (found) {
          if (auto rendered = kcron::templates::render(*found, params); !rendered) return fail(rendered.error().message());
        } else {
          std::cerr << "kcron: warning: " << found.error().message()
                    << "; the cron-producer waits for it (template_wait_ms) and then REJECTS the schedule\n";
        }
      }
      if (definition.has_flow_template()) {
        // Nodes naming template versions (docs/templates.md#templates-in-flows), checked as a
        // template_ref is: a version there must render, one not there yet is a warning.
        auto refs = kcron::templates::flow_template_refs(definition.flow_template());
        if (!refs) return fail(refs.error().within("flow_template").message());
        auto catalog = kcron::cli::read_catalog(config);  // read once for every version
        if (!catalog) return fail(catalog.error().message());
        kcron::v1::Flow present = definition.flow_template();  // without the nodes whose version is not there
        for (const auto& ref : *refs) {
          if (catalog->find(*schedule_tenant, ref.name, ref.version) != nullptr) continue;
          std::cerr << "kcron: warning: flow_template: "
                    << kcron::cli::missing_version(*catalog, *schedule_tenant, ref, kcron::Millis(0))
                    << "; the cron-producer waits for it (template_wait_ms) and then REJECTS the schedule\n";
          for (int at = present.nodes_size() - 1; at >= 0; --at) {
            auto named = kcron::templates::parse_ref(present.nodes(at).template_ref().ref(), true);
            if (present.nodes(at).has_template_ref() && named && named->text() == ref.text()) {
              present.mutable_nodes()->DeleteSubrange(at, 1);
            }
          }
        }
        // Checked as the cron-producer checks each run (templates::schedule_run_rules).
        auto rendered =
            kcron::templates::render_flow_nodes(present, *catalog, *schedule_tenant, kcron::templates::kMaxFlowRecordBytes);
        if (!rendered) return fail(rendered.error().within("flow_template").message());
        if (auto refused = kcron::templates::check_rendered_flow(present, kcron::templates::schedule_run_rules())) {
          return fail("flow_template: " + refused->message);
        }
      }
      if (seal) {
        auto& job_template = *definition.mutable_job_template();
        if (auto sealed = kcron::cli::seal_for_tenant(config, master_key_file, *schedule_tenant, job_template,
                                                      {"schedule", definition.id()}, std::cerr);
            !sealed) {
          return fail(sealed.error().message());
        }
      }
    }
    // The record key is the schedule's scoped key: (tenant, id) is its identity.
    const std::string id =
        remove ? kcron::scoped_key(tenant, schedule_id) : kcron::scoped_key(definition.tenant(), definition.id());
    if (auto open = kcron::cli::check_upgrade(config, remove ? tenant : definition.tenant(), kcron::feature::kTenantKeys); !open)
      return fail(open.error().message());
    auto producer = kcron::kafka::make_producer(kcron::kafka::client_properties(config, "kcron-cli"), "");
    if (!producer) return fail(producer.error().message());
    const auto record = remove ? kcron::schedule_record(names, tenant, schedule_id, nullptr)
                               : kcron::schedule_record(names, definition.tenant(), definition.id(), &definition);
    if (auto status = kcron::kafka::produce(**producer, record); !status) return fail(status.error().message());
    if ((*producer)->flush(15000) != RdKafka::ERR_NO_ERROR) return fail("the record was not acknowledged within 15 s");
    std::cout << (remove ? "deleted schedule " : "put schedule ") << id << "\n";
    return 0;
  }
  if (cancel->parsed()) {
    kcron::v1::Command command;
    command.mutable_cancel()->set_job_id(cancel_id);
    command.mutable_cancel()->set_tenant(std::string(kcron::tenant_field(tenant)));
    command.mutable_cancel()->set_reason(cancel_reason);
    if (int code = produce_command(config, command, tenant, cancel_id); code != 0) return code;
    std::cout << "cancel sent for " << cancel_id << (kcron::is_default_tenant(tenant) ? "" : " of tenant " + tenant) << "\n";
    return 0;
  }
  if (inspect_commands.parsed()) return inspect_commands.run(config, std::cout, std::cerr);
  if (tenant_commands.parsed()) return tenant_commands.run(config, std::cout, std::cerr);
  if (kafka_acls_command.parsed()) return kafka_acls_command.run(config, std::cout, std::cerr);
  if (sealing_commands.parsed()) return sealing_commands.run(config, std::cout, std::cerr);
  if (flow_commands.parsed()) return flow_commands.run(config, std::cout, std::cerr);
  if (template_commands.parsed()) return template_commands.run(config, std::cout, std::cerr);
  if (result_commands.parsed()) return result_commands.run(config, std::cout, std::cerr);
  if (objects_commands.parsed()) return objects_commands.run(config, std::cout, std::cerr);
  if (audit_command.parsed()) return audit_command.run(config, std::cout, std::cerr);
  if (tail_command->parsed()) {
    kcron::install_stop_signals();
    return tail(config, tail_options);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron", [&] { return run(argc, argv); });
}
