// kcron-worker: consumes kcron.exec.<queue>.<band>, runs each job on a slot and publishes its
// result, status and done marker in one transaction with the consumed offsets.
#include <spdlog/spdlog.h>

#include <iostream>
#include <optional>
#include <string_view>
#include <utility>

#include "core/sealed_executor.h"
#include "exec/exec_task.h"
#include "http/http_task.h"
#include "kafka/worker_loop.h"
#include "kcron/config.h"
#include "kcron/fault_points.h"
#include "kcron/program.h"
#include "kcron/service.h"
#include "kcron/tenant_follower.h"
#include "kcron/tenant_registry.h"
#include "objects/s3_store.h"
#include "objects/store_outputs.h"
#include "secrets/secret_dir.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("worker", 9472);
  keys.insert(
      keys.end(),
      {
          {"slots", "4", "jobs run at once"},
          {"bands.high_weight", "8", "share of the slots for the high band while all bands wait (1-1000)"},
          {"bands.normal_weight", "4", "share of the slots for the normal band (1-1000)"},
          {"bands.low_weight", "1", "share of the slots for the low band (1-1000)"},
          {"bands.aging_ms", "30000", "a job waiting this long on the worker is served next (0: off)"},
          {"bands.prefetch", "0", "jobs fetched ahead per band while the slots are busy (0: slots)"},
          {"exec_partitions", "12", "partition count of the exec topics"},
          {"commit_interval_ms", "100", "how often finished jobs are published"},
          {"transaction_timeout_ms", "10000", "transaction.timeout.ms"},
          {"recovery_timeout_ms", "300000", "how long a fenced or unsure producer keeps retrying its transaction coordinator"},
          {"drain_timeout_ms", "30000", "on SIGTERM, how long running jobs may finish"},
          {"default_timeout_ms", "3600000", "a job without its own timeout is stopped after this"},
          {"max_poll_interval_ms", "300000", "max.poll.interval.ms of the exec consumer"},
          {"heartbeat_interval_ms", "5000", "heartbeats to the workers topic (0: none)"},
          {"upgrade_check_interval_ms", "10000",
           "how often to check that every worker reads results as done markers before writing none "
           "(0: assume they do)"},
          {"cancel_lookback_ms", "600000", "at start, cancels on the control topic this recent apply"},
          {"dedupe_lookback_ms", "21600000", "at most this far back, done markers are read on assignment"},
          {"max_history", "10", "earlier failed attempts a retried job carries"},
          {"retry.initial_backoff_ms", "1000", "first retry delay when the job does not say"},
          {"retry.multiplier", "2", "backoff growth per retry when the job does not say"},
          {"retry.max_backoff_ms", "300000", "backoff cap when the job does not say"},
          {"sealing.master_key_file", "",
           "the deployment's sealing master key (64 hex digits): this worker opens sealed tasks (empty: it fails them)"},
          {"emit_events", "false",
           "also write every transition to the events topic (the status topic keeps every transition for a day)"},
          {"jobs.kafka_topics", "",
           "topics kafka jobs may write, comma-separated exact names (empty: any topic but kcron's and Kafka's own); "
           "narrows each tenant's allowed_kafka_topics"},
          {"tenants.require_allowlists", "false",
           "a tenant other than the default without allowed_programs / allowed_env_names / allowed_http_targets may run no "
           "exec job / set no env / run no http job (false: it gets the worker's lists)"},
          {"secrets.dir", "",
           "directory of the tenants' secrets, <dir>/<tenant>/<NAME>, for secret:NAME references (empty: secrets off)"},
      });
  const auto exec_keys = kcron::worker::exec_config_keys();
  keys.insert(keys.end(), exec_keys.begin(), exec_keys.end());
  const auto http_keys = kcron::worker::http_config_keys();
  keys.insert(keys.end(), http_keys.begin(), http_keys.end());
  const auto object_keys = kcron::worker::object_config_keys();
  keys.insert(keys.end(), object_keys.begin(), object_keys.end());
  return keys;
}

int run(int argc, char** argv) {
  auto loaded = kcron::load_program_config("kcron-worker", "runs jobs from the execution topics", config_keys(), argc, argv);
  if (!loaded.config) return loaded.exit_code;
  const auto& config = *loaded.config;
  kcron::ConfigNumbers number(config);
  kcron::worker::LoopSettings settings;
  settings.client = kcron::kafka::client_properties(config, "kcron-worker-" + config.get("instance_id"));
  settings.names = kcron::TopicNames(config.get("topic_prefix"));
  settings.queues = config.get_list("queues");
  settings.instance_id = config.get("instance_id");
  settings.slots = static_cast<std::size_t>(std::max<std::int64_t>(1, number("slots")));
  settings.bands.weights = {number("bands.high_weight"), number("bands.normal_weight"), number("bands.low_weight")};
  settings.bands.aging = kcron::Millis(number("bands.aging_ms"));
  settings.prefetch = static_cast<std::size_t>(std::max<std::int64_t>(0, number("bands.prefetch")));
  settings.exec_partitions = static_cast<std::int32_t>(number("exec_partitions"));
  settings.commit_interval = kcron::Millis(number("commit_interval_ms"));
  settings.transaction_timeout = kcron::Millis(number("transaction_timeout_ms"));
  settings.recovery_timeout = kcron::Millis(number("recovery_timeout_ms"));
  settings.drain_timeout = kcron::Millis(number("drain_timeout_ms"));
  settings.emit_events = config.get_bool("emit_events").ok() && *config.get_bool("emit_events");
  settings.default_timeout = kcron::Millis(number("default_timeout_ms"));
  settings.max_poll_interval = kcron::Millis(number("max_poll_interval_ms"));
  settings.heartbeat_interval = kcron::Millis(number("heartbeat_interval_ms"));
  settings.upgrade_check_interval = kcron::Millis(number("upgrade_check_interval_ms"));
  settings.cancel_lookback = kcron::Millis(number("cancel_lookback_ms"));
  settings.dedupe_lookback = kcron::Millis(number("dedupe_lookback_ms"));
  settings.max_history = static_cast<std::size_t>(std::max<std::int64_t>(1, number("max_history")));
  settings.default_backoff.initial = kcron::Millis(number("retry.initial_backoff_ms"));
  settings.default_backoff.max = kcron::Millis(number("retry.max_backoff_ms"));
  try {
    settings.default_backoff.multiplier = std::stod(config.get("retry.multiplier"));
  } catch (const std::exception&) {
    std::cerr << "kcron-worker: retry.multiplier: '" << config.get("retry.multiplier") << "' is not a number\n";
    return 2;
  }
  const auto http_port = number("http_port");
  if (!number.ok()) {
    std::cerr << "kcron-worker: " << number.problems().front() << "\n";
    return 2;
  }
  if (auto bands = kcron::worker::validate(settings.bands); !bands) {
    std::cerr << "kcron-worker: " << bands.error().message() << "\n";
    return 2;
  }
  auto exec_policy = kcron::worker::exec_policy_from(config);
  if (!exec_policy) {
    std::cerr << "kcron-worker: " << exec_policy.error().message() << "\n";
    return 2;
  }
  if (!exec_policy->programs.empty()) {
    if (auto sandbox = kcron::worker::check_sandbox(*exec_policy); !sandbox) {
      std::cerr << "kcron-worker: " << sandbox.error().message() << "\n";
      return 2;
    }
  }
  // Large outputs in an S3-compatible store (docs/large-results.md), when objects.endpoint is set.
  auto object_settings = kcron::worker::object_settings_from(config);
  if (!object_settings) {
    std::cerr << "kcron-worker: " << object_settings.error().message() << "\n";
    return 2;
  }
  std::unique_ptr<kcron::worker::S3Store> object_store;
  if (object_settings->enabled()) {
    auto made = kcron::worker::make_s3_store(*object_settings);
    if (!made) {
      std::cerr << "kcron-worker: " << made.error().message() << "\n";
      return 2;
    }
    object_store = std::move(*made);
    exec_policy->whole_bytes = object_settings->max_bytes;
    exec_policy->whole_threshold = object_settings->threshold_bytes;
    settings.after_run = [store = object_store.get(), objects = *object_settings](kcron::worker::Attempt& attempt) {
      if (auto stored = kcron::worker::store_large_outputs(attempt, *store, objects, kcron::worker::new_run_token()); !stored) {
        spdlog::warn("event=object_store_failed job={} attempt={} error=\"{}\" msg=\"the attempt fails, retriable\"",
                     attempt.job_key(), attempt.execution.job().attempt(), stored.error().message());
      }
      // The fault suite kills a worker here: its upload done, its result not yet committed.
      if (!attempt.outcome.objects.empty()) (void)kcron::fault::hit("worker.after_object_put");
    };
  }
  auto http_policy = kcron::worker::http_policy_from(config);
  if (!http_policy) {
    std::cerr << "kcron-worker: " << http_policy.error().message() << "\n";
    return 2;
  }
  if (object_store) {
    http_policy->whole_bytes = object_settings->max_bytes;
    http_policy->whole_threshold = object_settings->threshold_bytes;
  }
  for (const auto& [setting, bytes] : {std::pair<std::string_view, std::size_t>{"exec.capture_bytes", exec_policy->capture_bytes},
                                       {"http.max_body_bytes", http_policy->max_body_bytes}}) {
    if (auto checked = kcron::worker::check_inline_limit(*object_settings, setting, bytes); !checked) {
      std::cerr << "kcron-worker: " << checked.error().message() << "\n";
      return 2;
    }
  }
  kcron::worker::WallSettings wall_settings;
  wall_settings.topic_prefix = settings.names.prefix;
  wall_settings.kafka_topics = config.get_list("jobs.kafka_topics");
  for (const auto& topic : wall_settings.kafka_topics) {
    if (!kcron::is_valid_kafka_topic_name(topic)) {
      std::cerr << "kcron-worker: jobs.kafka_topics: '" << topic << "' is not a Kafka topic name\n";
      return 2;
    }
  }
  auto require_allowlists = config.get_bool("tenants.require_allowlists");
  if (!require_allowlists) {
    std::cerr << "kcron-worker: tenants.require_allowlists: " << require_allowlists.error().message() << "\n";
    return 2;
  }
  wall_settings.require_allowlists = *require_allowlists;
  wall_settings.exec_sandboxed = exec_policy->sandbox.kind == kcron::worker::ExecSandbox::kBwrap;
  kcron::worker::TenantWalls walls(wall_settings);
  std::optional<kcron::worker::SecretDirectory> secrets;
  if (!config.get("secrets.dir").empty()) {
    if (!config.get("secrets.dir").starts_with('/')) {
      std::cerr << "kcron-worker: secrets.dir: '" << config.get("secrets.dir") << "' is not an absolute path\n";
      return 2;
    }
    secrets.emplace(config.get("secrets.dir"));
  }
  const kcron::worker::JobWalls job_walls{&walls, secrets ? &*secrets : nullptr};
  kcron::init_logging("worker", config.get("log_level"));
  if (object_store) {
    spdlog::info("event=object_store endpoint={} bucket={} threshold_bytes={} max_bytes={}", object_settings->endpoint,
                 object_settings->bucket, object_settings->threshold_bytes, object_settings->max_bytes);
  }
  kcron::worker::http_global_init();
  kcron::install_stop_signals();

  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(http_port), metrics);
  // The system clock, unless the fault suite skews this worker's (KCRON_FAULT_CLOCK_OFFSET_MS).
  const kcron::Millis offset = kcron::fault::clock_offset_from_environment();
  const kcron::OffsetClock skewed(offset);
  const kcron::Clock& clock = offset.count() != 0 ? static_cast<const kcron::Clock&>(skewed) : kcron::SystemClock::instance();
  kcron::worker::Runner runner(clock);
  // The tenant registry: each tenant's running-jobs cap, followed live.
  kcron::TenantRegistry tenants;
  kcron::TenantFollower follower(settings.client, settings.names, tenants);
  if (auto started = follower.start(kcron::Millis(30000)); !started) {
    spdlog::warn("event=tenant_registry_catch_up error=\"{}\" msg=\"running caps apply as the registry is read\"",
                 started.error().message());
  }
  std::string master_key;
  if (const auto path = config.get("sealing.master_key_file"); !path.empty()) {
    auto read = kcron::read_master_key(path);
    if (!read) {
      std::cerr << "kcron-worker: " << read.error().message() << "\n";
      return 2;
    }
    master_key = std::move(*read);
  }
  kcron::worker::SealingKeys sealing_keys(std::move(master_key));
  sealing_keys.refresh(tenants);
  settings.tenants = &tenants;
  walls.update(tenants.all(), tenants.generation());
  settings.follow_tenants = [&follower, &walls, &tenants, &sealing_keys] {
    follower.poll(1000);
    walls.update(tenants.all(), tenants.generation());
    sealing_keys.refresh(tenants);
  };
  settings.walls = &walls;
  // The heartbeat says what this worker can run (the console offers these in its job form).
  if (exec_policy->programs.size() <= 100) settings.programs = exec_policy->programs;
  settings.handlers = runner.handler_names();
  kcron::worker::WorkerLoop loop(settings, runner, clock, metrics, &http);
  runner.register_executor(kcron::v1::Job::kKafka, loop.kafka_executor());
  runner.register_executor(kcron::v1::Job::kHttp, kcron::worker::make_http_executor(*http_policy, job_walls));
  if (!exec_policy->programs.empty())
    runner.register_executor(kcron::v1::Job::kExec, kcron::worker::make_exec_executor(*exec_policy, job_walls));
  runner.register_executor(kcron::v1::Job::kSealed, kcron::worker::make_sealed_executor(runner, sealing_keys));
  return kcron::exit_code_for(loop.run());
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron-worker", [&] { return run(argc, argv); });
}
