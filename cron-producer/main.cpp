// kcron-cron-producer: reads schedules from kcron.schedules and emits each due run as a job on
// kcron.jobs, exactly once per run, inside Kafka transactions.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "kafka/cron_loop.h"
#include "kcron/config.h"
#include "kcron/service.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("cron-producer", 9473);
  keys.insert(keys.end(),
              {
                  {"schedules_partitions", "6", "partition count of the schedules topic (checked at start)"},
                  {"lookahead_ms", "5000", "emit a run this long before its instant (the dispatcher fires it on time)"},
                  {"misfire_threshold_ms", "5000", "a run found this late was missed: its misfire policy applies"},
                  {"max_runs_per_tick", "1000", "runs one schedule may emit per batch"},
                  {"commit_interval_ms", "200", "longest time a batch stays open"},
                  {"transaction_timeout_ms", "10000", "transaction.timeout.ms"},
              });
  return keys;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kcron-cron-producer: emits the runs of cron schedules to kcron.jobs"};
  std::string config_file;
  std::vector<std::string> overrides;
  app.add_option("-c,--config", config_file, "TOML configuration file");
  app.add_option("-s,--set", overrides, "override a configuration key: --set key=value (repeatable)");
  app.footer(kcron::Config::describe(config_keys()));
  CLI11_PARSE(app, argc, argv);

  auto loaded = kcron::Config::load(config_keys(), config_file, overrides, kcron::process_environment());
  if (!loaded) {
    std::cerr << "kcron-cron-producer: " << loaded.error().message() << "\n";
    return 2;
  }
  const auto& config = *loaded;
  std::vector<std::string> problems;
  auto number = [&](const std::string& name) -> std::int64_t {
    auto value = config.get_int(name);
    if (!value) {
      problems.push_back(value.error().message());
      return 0;
    }
    return *value;
  };
  kcron::cron::PlannerSettings planner_settings;
  planner_settings.names = kcron::TopicNames(config.get("topic_prefix"));
  planner_settings.schedules_partitions = static_cast<std::int32_t>(number("schedules_partitions"));
  planner_settings.queues.clear();
  for (const auto& queue : config.get_list("queues")) planner_settings.queues.insert(queue);
  planner_settings.lookahead = kcron::Millis(number("lookahead_ms"));
  planner_settings.misfire_threshold = kcron::Millis(number("misfire_threshold_ms"));
  planner_settings.max_runs_per_tick = static_cast<std::size_t>(std::max<std::int64_t>(1, number("max_runs_per_tick")));
  kcron::cron::CronLoopSettings loop_settings;
  loop_settings.client = kcron::kafka::client_properties(config, "kcron-cron-producer-" + config.get("instance_id"));
  loop_settings.instance_id = config.get("instance_id");
  loop_settings.commit_interval = kcron::Millis(number("commit_interval_ms"));
  loop_settings.transaction_timeout = kcron::Millis(number("transaction_timeout_ms"));
  const auto http_port = number("http_port");
  if (!problems.empty()) {
    std::cerr << "kcron-cron-producer: " << problems.front() << "\n";
    return 2;
  }

  kcron::init_logging("cron-producer", config.get("log_level"));
  kcron::install_stop_signals();
  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(http_port), metrics);
  kcron::cron::SchedulePlanner planner(planner_settings, kcron::SystemClock::instance());
  kcron::cron::CronLoop loop(loop_settings, planner_settings, planner, metrics, &http);
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
