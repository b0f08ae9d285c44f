// kcron-api's HTTP routes: authentication (bearer JWT), the role check of each route, request
// validation, writes through the JobWriter and reads from the view. Errors are RFC 9457 problems.
// The server runs its own thread pool (fixed size) and a listener thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "auth/jwt.h"
#include "kafka/job_writer.h"
#include "kafka/view_follower.h"
#include "kcron/metrics.h"
#include "kcron/topics.h"
#include "kcron/upgrade_gate.h"
#include "view/view_store.h"

namespace kcron::worker {
class ObjectStore;  // objects/object_store.h
}

namespace kcron::api {

class TemplateSource;

struct ApiSettings {
  std::string address = "127.0.0.1";
  int port = 8080;  // 0: any free port (tests)
  std::size_t threads = 16;
  int listen_backlog = 1024;  // connections the kernel queues before accept (capped by net.core.somaxconn)
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds consistency_wait{5000};  // longest a read waits for the view to cover a write
  TopicNames names{"kcron."};
  std::string cors_origin;    // empty: no CORS headers
  bool console = true;        // serve the web console at / (docs/console.md)
  std::string tls_cert_file;  // PEM certificate chain; empty: plain HTTP
  std::string tls_key_file;   // PEM private key of the certificate
  bool audit_requests = true;
  double requests_per_token = 100;  // per second, per caller (sub in tenant); 0: no limit
  double request_burst = 200;
  double jobs_per_tenant = 2000;  // submissions per second, per tenant; 0: no limit
  double jobs_burst = 5000;
  // Writes for a tenant other than the default wait for every dispatcher and worker to understand
  // tenant keys (a release before would misread them); null: no gate.
  // kcron.templates as this instance follows it (the template routes, POST /v1/jobs with a
  // template body); null: those answer 503. A version not seen yet is waited for template_wait.
  TemplateSource* templates = nullptr;
  std::chrono::milliseconds template_wait{10000};
  const FeatureWatch* tenant_keys_gate =
      nullptr;  // a REQUESTED record on kcron.audit per write, with the principal and request id
  // Large outputs (docs/large-results.md): the store GET /v1/jobs/{id}/outputs/{name} streams
  // them from; null: no objects.endpoint, such outputs are answered 501.
  worker::ObjectStore* object_store = nullptr;
};

class ApiServer {
 public:
  ApiServer(ApiSettings settings, const auth::JwtVerifier& verifier, JobWriter& writer, ViewStore& view, ViewFollower& follower,
            Metrics& metrics);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and starts serving on a thread. Fails if the address cannot be bound.
  Status start();
  // Stops accepting, lets requests in progress finish.
  void stop();
  int port() const { return port_; }
  // What it serves: (method, OpenAPI path template), e.g. ("POST", "/v1/jobs/{id}:cancel"); the
  // table of core/routes.h, which api/openapi/openapi.json documents route for route.
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::thread listener_;
};

}  // namespace kcron::api
