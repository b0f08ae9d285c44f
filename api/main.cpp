// kcron-api: the HTTP front door. Verifies bearer JWTs, checks each route's role in the caller's
// tenant, produces writes to kcron.jobs and answers reads from its own RocksDB view of the topics.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "auth/jwt.h"
#include "http/api_server.h"
#include "kafka/job_writer.h"
#include "kafka/template_source.h"
#include "kafka/view_follower.h"
#include "kcron/config.h"
#include "kcron/program.h"
#include "kcron/service.h"
#include "objects/s3_store.h"
#include "view/view_store.h"

namespace {

std::vector<kcron::ConfigKey> config_keys() {
  auto keys = kcron::common_config_keys("api", 9474);
  keys.insert(
      keys.end(),
      {
          {"api.address", "127.0.0.1", "address the API listens on"},
          {"api.port", "8080", "port the API listens on (0: any free port, printed in the log)"},
          {"api.threads", "16", "request threads (a fixed pool)"},
          {"api.listen_backlog", "1024", "connections the kernel queues before they are accepted"},
          {"api.read_timeout_ms", "10000", "a client that sends nothing for this long is disconnected"},
          {"api.consistency_wait_ms", "5000", "longest a read carrying Kcron-Consistency waits for the view"},
          {"api.template_wait_ms", "10000",
           "longest POST /v1/jobs waits for a template version not seen yet on kcron.templates, then 404 naming it"},
          {"api.ack_timeout_ms", "15000", "longest a write waits for Kafka's acknowledgement before a 503"},
          {"api.tls_cert_file", "", "PEM certificate chain: serve HTTPS (TLS 1.2 or later); empty: plain HTTP"},
          {"api.tls_key_file", "", "PEM private key of api.tls_cert_file"},
          {"api.cors_origin", "", "an origin allowed to call the API from a browser (CORS); empty: none"},
          {"api.console", "true", "serve the web console at / (static files built into kcron-api)"},
          {"api.requests_per_token", "100", "requests per second one caller (sub in tenant) may make; 0: no limit"},
          {"api.request_burst", "200", "requests one caller may make at once above its rate"},
          {"api.jobs_per_tenant", "2000", "jobs per second one tenant may submit through this instance; 0: no limit"},
          {"api.jobs_burst", "5000", "jobs one tenant may submit at once above its rate"},
          {"api.audit_requests", "true", "write a REQUESTED record with the caller and request id on kcron.audit per write"},
          {"auth.jwks_file", "", "JWKS file with the keys that verify tokens (kcron token keygen writes one)"},
          {"auth.hs256_secret_file", "", "a shared secret for HS256 tokens: development only, needs auth.allow_hs256"},
          {"auth.allow_hs256", "false", "accept HS256 tokens (never in production: anyone with the secret can mint any role)"},
          {"auth.issuer", "", "when set, tokens must carry this iss"},
          {"auth.audience", "", "when set, tokens must carry this aud"},
          {"auth.leeway_s", "30", "clock skew allowed on exp, nbf and iat"},
          {"state_dir", "./kcron-state/api", "RocksDB directory of the view (one per instance)"},
          {"upgrade_check_interval_ms", "30000",
           "how often to ask whether every dispatcher and worker understands tenant keys (tenants' writes wait until they "
           "do); 0: never ask"},
          {"view.commit_interval_ms", "100", "how often the view writes what it read"},
          {"view.finished_retention_hours", "168",
           "a job leaves the view this long after it finished (SUCCEEDED, DEAD, CANCELLED, SKIPPED, REJECTED); 0: kept"},
          {"view.event_retention", "1000000", "state changes the view keeps for GET /v1/events (the oldest go first)"},
      });
  // Large outputs (docs/large-results.md): the store GET /v1/jobs/{id}/outputs/{name} reads.
  for (auto& key : kcron::worker::object_config_keys()) keys.push_back(std::move(key));
  return keys;
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error(what + " " + path + " cannot be read");
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

int run(int argc, char** argv) {
  auto loaded = kcron::load_program_config("kcron-api", "the HTTP API of kcron (JWT, roles per tenant, a view of every job)",
                                           config_keys(), argc, argv);
  if (!loaded.config) return loaded.exit_code;
  const auto& config = *loaded.config;
  kcron::ConfigNumbers number(config);
  kcron::api::ApiSettings api;
  api.address = config.get("api.address");
  api.port = static_cast<int>(number("api.port"));
  api.threads = static_cast<std::size_t>(std::max<std::int64_t>(2, number("api.threads")));
  api.listen_backlog = static_cast<int>(std::clamp<std::int64_t>(number("api.listen_backlog"), 16, 65535));
  api.read_timeout = number.ms("api.read_timeout_ms");
  api.consistency_wait = number.ms("api.consistency_wait_ms");
  api.template_wait = number.ms("api.template_wait_ms");
  api.names = kcron::TopicNames(config.get("topic_prefix"));
  api.tls_cert_file = config.get("api.tls_cert_file");
  api.tls_key_file = config.get("api.tls_key_file");
  api.cors_origin = config.get("api.cors_origin");
  if (api.tls_cert_file.empty() != api.tls_key_file.empty()) {
    std::cerr << "kcron-api: api.tls_cert_file and api.tls_key_file go together\n";
    return 2;
  }
  api.requests_per_token = static_cast<double>(number("api.requests_per_token"));
  api.request_burst = static_cast<double>(number("api.request_burst"));
  api.jobs_per_tenant = static_cast<double>(number("api.jobs_per_tenant"));
  api.jobs_burst = static_cast<double>(number("api.jobs_burst"));
  const auto ack_timeout = number.ms("api.ack_timeout_ms");
  const auto leeway = number("auth.leeway_s");
  const auto commit_interval = number.ms("view.commit_interval_ms");
  const auto event_retention = number("view.event_retention");
  const auto finished_retention_hours = number("view.finished_retention_hours");
  const auto upgrade_check_interval = number.ms("upgrade_check_interval_ms");
  const auto http_port = number("http_port");
  auto allow_hs256 = config.get_bool("auth.allow_hs256");
  auto audit_requests = config.get_bool("api.audit_requests");
  auto console = config.get_bool("api.console");
  if (!number.ok() || !allow_hs256 || !audit_requests || !console) {
    std::cerr << "kcron-api: "
              << (!number.ok()      ? number.problems().front()
                  : !allow_hs256    ? allow_hs256.error().message()
                  : !audit_requests ? audit_requests.error().message()
                                    : console.error().message())
              << "\n";
    return 2;
  }
  api.audit_requests = *audit_requests;
  api.console = *console;
  kcron::auth::VerifierConfig verifier_config;
  if (!config.get("auth.jwks_file").empty()) verifier_config.jwks = read_file(config.get("auth.jwks_file"), "auth.jwks_file");
  if (!config.get("auth.hs256_secret_file").empty()) {
    verifier_config.hs256_secret = read_file(config.get("auth.hs256_secret_file"), "auth.hs256_secret_file");
  }
  verifier_config.allow_hs256 = *allow_hs256;
  verifier_config.issuer = config.get("auth.issuer");
  verifier_config.audience = config.get("auth.audience");
  verifier_config.leeway = std::chrono::seconds(leeway);
  auto verifier = kcron::auth::JwtVerifier::create(verifier_config);
  if (!verifier) {
    std::cerr << "kcron-api: " << verifier.error().message() << "\n";
    return 2;
  }

  kcron::init_logging("api", config.get("log_level"));
  kcron::install_stop_signals();
  kcron::Metrics metrics;
  kcron::HttpEndpoint http(config.get("http_address"), static_cast<int>(http_port), metrics);
  auto store = kcron::api::ViewStore::open(config.get("state_dir"));
  if (!store) return kcron::exit_code_for(store.error());
  (*store)->set_event_retention(static_cast<std::uint64_t>(std::max<std::int64_t>(1000, event_retention)));
  const auto client = kcron::kafka::client_properties(config, "kcron-api-" + config.get("instance_id"));
  auto writer = kcron::api::JobWriter::create(client, ack_timeout);
  if (!writer) return kcron::exit_code_for(writer.error());
  kcron::api::FollowerSettings follower_settings;
  follower_settings.client = client;
  follower_settings.names = api.names;
  follower_settings.commit_interval = commit_interval;
  follower_settings.finished_retention = std::chrono::hours(std::max<std::int64_t>(0, finished_retention_hours));
  kcron::api::ViewFollower follower(follower_settings, **store, metrics);
  if (auto started = follower.start(); !started) return kcron::exit_code_for(started);
  // The rolling-upgrade gate: asked once before serving, so the first tenant write meets an answer.
  std::unique_ptr<kcron::FeatureWatch> gate;
  if (upgrade_check_interval.count() > 0) {
    gate = std::make_unique<kcron::FeatureWatch>(client, api.names, std::string(kcron::feature::kTenantKeys),
                                                 upgrade_check_interval);
    gate->start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (gate->reason() == "not checked yet" && std::chrono::steady_clock::now() < deadline && !kcron::stop_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    spdlog::info("event=upgrade_gate feature={} open={} reason=\"{}\"", kcron::feature::kTenantKeys, gate->open(),
                 gate->reason());
    api.tenant_keys_gate = gate.get();
  }
  // kcron.templates, followed for the template routes and POST /v1/jobs with a template body.
  kcron::api::TemplateSource templates(client, api.names);
  if (auto started = templates.start(std::chrono::seconds(30)); !started) return kcron::exit_code_for(started);
  api.templates = &templates;
  auto object_settings = kcron::worker::object_settings_from(config);
  if (!object_settings) {
    std::cerr << "kcron-api: " << object_settings.error().message() << "\n";
    return 2;
  }
  std::unique_ptr<kcron::worker::S3Store> object_store;
  if (object_settings->enabled()) {
    auto made = kcron::worker::make_s3_store(*object_settings);
    if (!made) {
      std::cerr << "kcron-api: " << made.error().message() << "\n";
      return 2;
    }
    object_store = std::move(*made);
    api.object_store = object_store.get();
    spdlog::info("event=object_store endpoint={} bucket={}", object_settings->endpoint, object_settings->bucket);
  }
  kcron::api::ApiServer server(api, *verifier, **writer, **store, follower, metrics);
  if (auto started = server.start(); !started) return kcron::exit_code_for(started);
  spdlog::info("event=started port={} keys={}", server.port(), verifier->key_count());

  kcron::Status outcome;
  while (!kcron::stop_requested()) {
    http.set_ready(follower.caught_up());
    if (auto failure = follower.failure(); !failure.empty()) {
      http.set_healthy(false);
      outcome = kcron::make_error("the view stopped: {}", failure);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Drain: stop accepting, finish requests in progress (their writes are acknowledged first), then
  // the view writes what it read.
  http.set_ready(false);
  server.stop();
  (*writer)->flush(std::chrono::seconds(10));
  follower.stop();
  spdlog::info("event=stopped");
  return kcron::exit_code_for(outcome);
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron-api", [&] { return run(argc, argv); });
}
