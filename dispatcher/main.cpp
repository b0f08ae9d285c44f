// kcron-dispatcher: consumes kcron.jobs, keeps future jobs in RocksDB delay buckets and fires due
// jobs to kcron.exec.<queue>.<band>, exactly once, inside Kafka transactions.
#include <spdlog/spdlog.h>

#include <iostream>

#include "kafka/dispatcher_loop.h"
#include "kcron/config.h"
#include "kcron/program.h"
#include "kcron/service.h"
#include "kcron/tenant_follower.h"
#include "store/rocksdb_store.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("dispatcher", 9471);
  keys.insert(
      keys.end(),
      {
          {"state_dir", "./kcron-state/dispatcher", "RocksDB directory (one per instance)"},
          {"jobs_partitions", "12", "partition count of the jobs topic (checked at start)"},
          {"bucket_width_ms", "1000", "width of a delay bucket"},
          {"commit_interval_ms", "100", "longest time a batch stays open"},
          {"max_batch_records", "5000", "records consumed per transaction at most"},
          {"max_fires_per_batch", "10000", "due jobs fired per transaction at most"},
          {"transaction_timeout_ms", "10000", "transaction.timeout.ms"},
          {"recovery_timeout_ms", "300000", "how long a fenced or unsure producer keeps retrying its transaction coordinator"},
          {"max_record_bytes", "900000", "larger input records are REJECTED"},
          {"max_horizon_days", "1830", "a job due later than this is REJECTED"},
          {"cancel_marker_ttl_ms", "86400000", "how long a cancel for an unseen id waits for its submit"},
          {"dedupe_retention_ms", "604800000", "how long a fired id is remembered (re-submits ignored)"},
          {"emit_events", "false",
           "also write every transition to the events topic (the status topic keeps every transition for a day)"},
          {"misfire_threshold_ms", "5000", "a schedule run released later than this after its instant misfired"},
          {"heartbeat_interval_ms", "5000",
           "heartbeats to the workers topic, saying which protocol features this dispatcher understands (0: none; "
           "writers then hold back tenants' records, docs/tenancy.md)"},
          {"fire_ahead_max_ms", "5000",
           "fire-ahead: a job's exec record may be committed up to this long before its instant, and the worker holds "
           "it until then (docs/fire-ahead.md); updates within this of the instant are refused; 0: off"},
          {"fire_ahead_min_lead_ms", "500", "fire-ahead: the least lead a job gets (a commit and the worker's fetch)"},
          {"fire_ahead_per_exec_partition", "20000",
           "fire-ahead: records fired ahead and not yet due per exec partition, at most"},
          {"upgrade_check_interval_ms", "10000",
           "how often to check that every dispatcher and worker supports fire-ahead before using it (0: assume they do)"},
          {"audit", "all", "decisions written to the audit topic: all, refusals (REJECTED only) or off"},
          {"block_cache_mb", "64", "RocksDB block cache shared by all partitions"},
          {"write_buffer_mb", "64", "RocksDB memtable budget shared by all partitions"},
      });
  return keys;
}

int run(int argc, char** argv) {
  auto loaded = kcron::load_program_config("kcron-dispatcher", "fires jobs from kcron.jobs to the execution topics, exactly once",
                                           config_keys(), argc, argv);
  if (!loaded.config) return loaded.exit_code;
  const auto& config = *loaded.config;
  kcron::ConfigNumbers number(config);

  kcron::dispatcher::Settings settings;
  settings.names = kcron::TopicNames(config.get("topic_prefix"));
  settings.jobs_partitions = static_cast<std::int32_t>(number("jobs_partitions"));
  settings.queues.clear();
  for (const auto& queue : config.get_list("queues")) settings.queues.insert(queue);
  settings.bucket_width = number.ms("bucket_width_ms");
  settings.max_record_bytes = static_cast<std::size_t>(number("max_record_bytes"));
  settings.max_horizon = std::chrono::duration_cast<kcron::Millis>(std::chrono::hours(24 * number("max_horizon_days")));
  settings.cancel_marker_ttl = number.ms("cancel_marker_ttl_ms");
  settings.dedupe_retention = number.ms("dedupe_retention_ms");
  settings.misfire_threshold = number.ms("misfire_threshold_ms");
  settings.emit_events = config.get_bool("emit_events").ok() && *config.get_bool("emit_events");
  settings.fire_ahead.max = number.ms("fire_ahead_max_ms");
  settings.fire_ahead.min_lead = std::min(settings.fire_ahead.max, number.ms("fire_ahead_min_lead_ms"));
  settings.fire_ahead.max_per_exec_partition = static_cast<std::size_t>(number("fire_ahead_per_exec_partition"));
  if (const auto audit = config.get("audit"); audit == "all") {
    settings.audit = kcron::dispatcher::AuditLevel::kAll;
  } else if (audit == "refusals") {
    settings.audit = kcron::dispatcher::AuditLevel::kRefusals;
  } else if (audit == "off") {
    settings.audit = kcron::dispatcher::AuditLevel::kOff;
  } else {
    std::cerr << "kcron-dispatcher: audit = '" << audit << "' is not one of all, refusals, off\n";
    return 2;
  }

  kcron::dispatcher::RocksDbOptions store_options;
  store_options.path = config.get("state_dir");
  store_options.bucket_width = settings.bucket_width;
  store_options.block_cache_bytes = static_cast<std::size_t>(number("block_cache_mb")) << 20U;
  store_options.write_buffer_bytes = static_cast<std::size_t>(number("write_buffer_mb")) << 20U;

  kcron::dispatcher::LoopSettings loop_settings;
  loop_settings.client = kcron::kafka::client_properties(config, "kcron-dispatcher-" + config.get("instance_id"));
  loop_settings.instance_id = config.get("instance_id");
  loop_settings.commit_interval = number.ms("commit_interval_ms");
  loop_settings.max_batch_records = static_cast<std::size_t>(number("max_batch_records"));
  loop_settings.max_fires_per_batch = static_cast<std::size_t>(number("max_fires_per_batch"));
  loop_settings.transaction_timeout = number.ms("transaction_timeout_ms");
  loop_settings.recovery_timeout = number.ms("recovery_timeout_ms");
  loop_settings.heartbeat_interval = number.ms("heartbeat_interval_ms");
  loop_settings.upgrade_check_interval = number.ms("upgrade_check_interval_ms");
  const auto http_port = number("http_port");
  if (!number.ok()) {
    std::cerr << "kcron-dispatcher: " << number.problems().front() << "\n";
    return 2;
  }

  kcron::init_logging("dispatcher", config.get("log_level"));
  kcron::install_stop_signals();
  auto store = kcron::dispatcher::RocksDbDelayStore::open_db(store_options);
  if (!store) return kcron::exit_code_for(store.error());
  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(http_port), metrics);
  // The tenant registry: read to its end before the first batch, then followed between batches.
  kcron::TenantRegistry tenants;
  kcron::TenantFollower follower(loop_settings.client, settings.names, tenants);
  if (auto started = follower.start(kcron::Millis(30000)); !started) {
    spdlog::warn("event=tenant_registry_catch_up error=\"{}\" msg=\"tenant limits apply as the registry is read\"",
                 started.error().message());
  }
  loop_settings.between_batches = [&follower] { follower.poll(1000); };
  kcron::dispatcher::DispatcherCore core(settings, kcron::SystemClock::instance(), &tenants);
  kcron::dispatcher::DispatcherLoop loop(loop_settings, core, **store, kcron::SystemClock::instance(), metrics, &http);
  return kcron::exit_code_for(loop.run());
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron-dispatcher", [&] { return run(argc, argv); });
}
