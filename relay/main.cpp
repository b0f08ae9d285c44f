// kcron-relay: forwards what Kafka-native tenants write to their own input topics
// (<prefix>in.<tenant>, <prefix>in.<tenant>.schedules) into kcron.jobs and kcron.schedules, the
// tenant stamped from the topic name, exactly once, inside Kafka transactions (docs/relay.md).
#include <spdlog/spdlog.h>

#include <iostream>

#include "kafka/relay_loop.h"
#include "kcron/config.h"
#include "kcron/program.h"
#include "kcron/service.h"
#include "kcron/tenant_follower.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("relay", 9475);
  keys.insert(
      keys.end(),
      {
          {"group_id", "", "consumer group of the relays (empty: <topic_prefix>relay); never the dispatchers' group"},
          {"metadata_refresh_ms", "2000",
           "topic.metadata.refresh.interval.ms: a new tenant topic is subscribed within about this long"},
          {"commit_interval_ms", "100", "longest time a batch stays open"},
          {"max_batch_records", "5000", "records consumed per transaction at most"},
          {"max_record_bytes", "900000", "larger input records are REJECTED"},
          {"audit", "refusals", "decisions written to the audit topic: refusals (REJECTED records) or off"},
          {"upgrade_check_interval_ms", "30000",
           "how often to ask whether every dispatcher and worker understands tenant-scoped keys (tenants' input waits, "
           "paused, until they do); 0: never ask"},
          {"transaction_timeout_ms", "10000", "transaction.timeout.ms"},
          {"recovery_timeout_ms", "300000", "how long a fenced or unsure producer keeps retrying its transaction coordinator"},
      });
  return keys;
}

int run(int argc, char** argv) {
  auto loaded = kcron::load_program_config(
      "kcron-relay",
      "forwards tenants' input topics (<prefix>in.<tenant>[.schedules]) to kcron.jobs and kcron.schedules, exactly once",
      config_keys(), argc, argv);
  if (!loaded.config) return loaded.exit_code;
  const auto& config = *loaded.config;
  kcron::ConfigNumbers number(config);

  kcron::relay::RelaySettings settings{kcron::TopicNames(config.get("topic_prefix"))};
  settings.max_record_bytes = static_cast<std::size_t>(number("max_record_bytes"));
  if (const auto audit = config.get("audit"); audit == "refusals" || audit == "all") {
    settings.audit_refusals = true;  // the relay's only decisions worth a record are its refusals
  } else if (audit == "off") {
    settings.audit_refusals = false;
  } else {
    std::cerr << "kcron-relay: audit = '" << audit << "' is not one of refusals, off\n";
    return 2;
  }

  kcron::relay::RelayLoopSettings loop_settings;
  loop_settings.client = kcron::kafka::client_properties(config, "kcron-relay-" + config.get("instance_id"));
  loop_settings.instance_id = config.get("instance_id");
  loop_settings.group_id = config.get("group_id");
  loop_settings.commit_interval = number.ms("commit_interval_ms");
  loop_settings.max_batch_records = static_cast<std::size_t>(std::max<std::int64_t>(1, number("max_batch_records")));
  loop_settings.transaction_timeout = number.ms("transaction_timeout_ms");
  loop_settings.recovery_timeout = number.ms("recovery_timeout_ms");
  loop_settings.metadata_refresh = number.ms("metadata_refresh_ms");
  loop_settings.upgrade_check_interval = number.ms("upgrade_check_interval_ms");
  const auto http_port = number("http_port");
  if (!number.ok()) {
    std::cerr << "kcron-relay: " << number.problems().front() << "\n";
    return 2;
  }
  if (loop_settings.metadata_refresh.count() < 10) {
    std::cerr << "kcron-relay: metadata_refresh_ms = " << loop_settings.metadata_refresh.count() << " is below 10 ms\n";
    return 2;
  }

  kcron::init_logging("relay", config.get("log_level"));
  kcron::install_stop_signals();
  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(http_port), metrics);
  // The tenant registry, for the tenants' output topics: read to its end before the first batch,
  // then followed between batches.
  kcron::TenantRegistry tenants;
  kcron::TenantFollower follower(loop_settings.client, settings.names, tenants);
  if (auto started = follower.start(kcron::Millis(30000)); !started) {
    spdlog::warn("event=tenant_registry_catch_up error=\"{}\" msg=\"tenants' output copies apply as the registry is read\"",
                 started.error().message());
  }
  loop_settings.between_batches = [&follower] { follower.poll(1000); };
  loop_settings.tenants = &tenants;
  kcron::relay::Relay relay(settings, kcron::SystemClock::instance());
  kcron::relay::RelayLoop loop(loop_settings, relay, metrics, &http);
  return kcron::exit_code_for(loop.run());
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron-relay", [&] { return run(argc, argv); });
}
