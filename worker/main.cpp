// kcron-worker: consumes kcron.exec.<queue>.<band>, runs each job on a slot and publishes its
// result, status and done marker in one transaction with the consumed offsets.
#include <spdlog/spdlog.h>

#include <iostream>

#include "kafka/worker_loop.h"
#include "kcron/config.h"
#include "kcron/program.h"
#include "kcron/service.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("worker", 9472);
  keys.insert(keys.end(), {
                              {"slots", "4", "jobs run at once"},
                              {"exec_partitions", "12", "partition count of the exec topics"},
                              {"commit_interval_ms", "100", "how often finished jobs are published"},
                              {"transaction_timeout_ms", "10000", "transaction.timeout.ms"},
                              {"drain_timeout_ms", "30000", "on SIGTERM, how long running jobs may finish"},
                              {"emit_events", "true", "write every transition to the events topic"},
                          });
  return keys;
}

}  // namespace

int main(int argc, char** argv) {
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
  settings.exec_partitions = static_cast<std::int32_t>(number("exec_partitions"));
  settings.commit_interval = kcron::Millis(number("commit_interval_ms"));
  settings.transaction_timeout = kcron::Millis(number("transaction_timeout_ms"));
  settings.drain_timeout = kcron::Millis(number("drain_timeout_ms"));
  settings.emit_events = config.get_bool("emit_events").ok() && *config.get_bool("emit_events");
  const auto http_port = number("http_port");
  if (!number.ok()) {
    std::cerr << "kcron-worker: " << number.problems().front() << "\n";
    return 2;
  }
  kcron::init_logging("worker", config.get("log_level"));
  kcron::install_stop_signals();

  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(http_port), metrics);
  kcron::worker::Runner runner(kcron::SystemClock::instance());
  kcron::worker::WorkerLoop loop(settings, runner, metrics, &http);
  return kcron::exit_code_for(loop.run());
}
