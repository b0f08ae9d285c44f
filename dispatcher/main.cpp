// kcron-dispatcher: consumes kcron.jobs, keeps future jobs in RocksDB delay buckets and fires due
// jobs to kcron.exec.<queue>.<band>, exactly once, inside Kafka transactions.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "kafka/dispatcher_loop.h"
#include "kcron/config.h"
#include "kcron/service.h"
#include "store/rocksdb_store.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("dispatcher", 9471);
  keys.insert(keys.end(), {
                              {"state_dir", "./kcron-state/dispatcher", "RocksDB directory (one per instance)"},
                              {"jobs_partitions", "12", "partition count of the jobs topic (checked at start)"},
                              {"bucket_width_ms", "1000", "width of a delay bucket"},
                              {"commit_interval_ms", "100", "longest time a batch stays open"},
                              {"max_batch_records", "5000", "records consumed per transaction at most"},
                              {"max_fires_per_batch", "10000", "due jobs fired per transaction at most"},
                              {"transaction_timeout_ms", "10000", "transaction.timeout.ms"},
                              {"max_record_bytes", "900000", "larger input records are REJECTED"},
                              {"max_horizon_days", "1830", "a job due later than this is REJECTED"},
                              {"cancel_marker_ttl_ms", "86400000", "how long a cancel for an unseen id waits for its submit"},
                              {"dedupe_retention_ms", "604800000", "how long a fired id is remembered (re-submits ignored)"},
                              {"emit_events", "true", "write every transition to the events topic"},
                              {"misfire_threshold_ms", "5000", "a schedule run released later than this after its instant misfired"},
                              {"block_cache_mb", "64", "RocksDB block cache shared by all partitions"},
                              {"write_buffer_mb", "64", "RocksDB memtable budget shared by all partitions"},
                          });
  return keys;
}

std::int64_t int_or(const kcron::Config& config, const std::string& name, std::int64_t fallback) {
  auto value = config.get_int(name);
  if (!value) {
    spdlog::error("event=bad_config error=\"{}\"", value.error().message());
    return fallback;
  }
  return *value;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kcron-dispatcher: fires jobs from kcron.jobs to the execution topics, exactly once"};
  std::string config_file;
  std::vector<std::string> overrides;
  app.add_option("-c,--config", config_file, "TOML configuration file");
  app.add_option("-s,--set", overrides, "override a configuration key: --set key=value (repeatable)");
  app.footer(kcron::Config::describe(config_keys()));
  CLI11_PARSE(app, argc, argv);

  auto loaded = kcron::Config::load(config_keys(), config_file, overrides, kcron::process_environment());
  if (!loaded) {
    std::cerr << "kcron-dispatcher: " << loaded.error().message() << "\n";
    return 2;
  }
  const auto& config = *loaded;
  kcron::init_logging("dispatcher", config.get("log_level"));
  kcron::install_stop_signals();

  kcron::dispatcher::Settings settings;
  settings.names = kcron::TopicNames(config.get("topic_prefix"));
  settings.jobs_partitions = static_cast<std::int32_t>(int_or(config, "jobs_partitions", 12));
  settings.queues.clear();
  for (const auto& queue : config.get_list("queues")) settings.queues.insert(queue);
  settings.bucket_width = kcron::Millis(int_or(config, "bucket_width_ms", 1000));
  settings.max_record_bytes = static_cast<std::size_t>(int_or(config, "max_record_bytes", 900000));
  settings.max_horizon =
      std::chrono::duration_cast<kcron::Millis>(std::chrono::hours(24 * int_or(config, "max_horizon_days", 1830)));
  settings.cancel_marker_ttl = kcron::Millis(int_or(config, "cancel_marker_ttl_ms", 86400000));
  settings.dedupe_retention = kcron::Millis(int_or(config, "dedupe_retention_ms", 604800000));
  settings.misfire_threshold = kcron::Millis(int_or(config, "misfire_threshold_ms", 5000));
  settings.emit_events = config.get_bool("emit_events").ok() && *config.get_bool("emit_events");

  kcron::dispatcher::RocksDbOptions store_options;
  store_options.path = config.get("state_dir");
  store_options.bucket_width = settings.bucket_width;
  store_options.block_cache_bytes = static_cast<std::size_t>(int_or(config, "block_cache_mb", 64)) << 20U;
  store_options.write_buffer_bytes = static_cast<std::size_t>(int_or(config, "write_buffer_mb", 64)) << 20U;
  auto store = kcron::dispatcher::RocksDbDelayStore::open_db(store_options);
  if (!store) {
    spdlog::error("event=fatal error=\"{}\"", store.error().message());
    return 1;
  }

  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(int_or(config, "http_port", 9471)), metrics);

  kcron::dispatcher::LoopSettings loop_settings;
  loop_settings.client = kcron::kafka::client_properties(config, "kcron-dispatcher-" + config.get("instance_id"));
  loop_settings.instance_id = config.get("instance_id");
  loop_settings.commit_interval = kcron::Millis(int_or(config, "commit_interval_ms", 100));
  loop_settings.max_batch_records = static_cast<std::size_t>(int_or(config, "max_batch_records", 5000));
  loop_settings.max_fires_per_batch = static_cast<std::size_t>(int_or(config, "max_fires_per_batch", 10000));
  loop_settings.transaction_timeout = kcron::Millis(int_or(config, "transaction_timeout_ms", 10000));

  kcron::dispatcher::DispatcherCore core(settings, kcron::SystemClock::instance());
  kcron::dispatcher::DispatcherLoop loop(loop_settings, core, **store, metrics, &http);
  const auto status = loop.run();
  if (!status) {
    if (kcron::stop_requested()) {
      spdlog::info("event=stopped msg=\"stop requested during start-up\" detail=\"{}\"", status.error().message());
      return 0;
    }
    spdlog::error("event=fatal error=\"{}\"", status.error().message());
    return 1;
  }
  return 0;
}
