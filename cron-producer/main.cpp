// kcron-cron-producer: reads schedules from kcron.schedules and emits each due run as a job on
// kcron.jobs, exactly once per run, inside Kafka transactions.
#include <spdlog/spdlog.h>

#include <iostream>

#include "kafka/cron_loop.h"
#include "kcron/config.h"
#include "kcron/program.h"
#include "kcron/service.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("cron-producer", 9473);
  keys.insert(
      keys.end(),
      {
          {"schedules_partitions", "6", "partition count of the schedules topic (checked at start)"},
          {"lookahead_ms", "5000", "emit a run this long before its instant (the dispatcher fires it on time)"},
          {"misfire_threshold_ms", "5000", "a run found this late was missed: its misfire policy applies"},
          {"max_runs_per_tick", "1000", "runs one schedule may emit per batch"},
          {"template_wait_ms", "30000",
           "a schedule on a template version not seen on kcron.templates this long after its record is REJECTED naming it"},
          {"commit_interval_ms", "200", "longest time a batch stays open"},
          {"upgrade_check_interval_ms", "30000",
           "how often to ask whether every dispatcher and worker understands tenant-scoped keys (tenants' schedules wait "
           "until they do); 0: never ask"},
          {"transaction_timeout_ms", "10000", "transaction.timeout.ms"},
          {"recovery_timeout_ms", "300000", "how long a fenced or unsure producer keeps retrying its transaction coordinator"},
      });
  return keys;
}

int run(int argc, char** argv) {
  auto loaded = kcron::load_program_config("kcron-cron-producer", "emits the runs of cron schedules to kcron.jobs", config_keys(),
                                           argc, argv);
  if (!loaded.config) return loaded.exit_code;
  const auto& config = *loaded.config;
  kcron::ConfigNumbers number(config);
  kcron::cron::PlannerSettings planner_settings;
  planner_settings.names = kcron::TopicNames(config.get("topic_prefix"));
  planner_settings.schedules_partitions = static_cast<std::int32_t>(number("schedules_partitions"));
  planner_settings.queues.clear();
  for (const auto& queue : config.get_list("queues")) planner_settings.queues.insert(queue);
  planner_settings.lookahead = kcron::Millis(number("lookahead_ms"));
  planner_settings.misfire_threshold = kcron::Millis(number("misfire_threshold_ms"));
  planner_settings.template_wait = kcron::Millis(number("template_wait_ms"));
  planner_settings.max_runs_per_tick = static_cast<std::size_t>(std::max<std::int64_t>(1, number("max_runs_per_tick")));
  kcron::cron::CronLoopSettings loop_settings;
  loop_settings.client = kcron::kafka::client_properties(config, "kcron-cron-producer-" + config.get("instance_id"));
  loop_settings.instance_id = config.get("instance_id");
  loop_settings.commit_interval = kcron::Millis(number("commit_interval_ms"));
  loop_settings.transaction_timeout = kcron::Millis(number("transaction_timeout_ms"));
  loop_settings.recovery_timeout = kcron::Millis(number("recovery_timeout_ms"));
  loop_settings.upgrade_check_interval = kcron::Millis(number("upgrade_check_interval_ms"));
  const auto http_port = number("http_port");
  if (!number.ok()) {
    std::cerr << "kcron-cron-producer: " << number.problems().front() << "\n";
    return 2;
  }

  kcron::init_logging("cron-producer", config.get("log_level"));
  kcron::install_stop_signals();
  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(http_port), metrics);
  kcron::cron::SchedulePlanner planner(planner_settings, kcron::SystemClock::instance());
  kcron::cron::CronLoop loop(loop_settings, planner_settings, planner, metrics, &http);
  return kcron::exit_code_for(loop.run());
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron-cron-producer", [&] { return run(argc, argv); });
}
