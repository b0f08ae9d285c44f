// What every kcron program shares around its main loop: logging setup, SIGTERM/SIGINT handling
// (a flag the loop polls), and the HTTP server for /metrics, /healthz and /readyz.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "kcron/metrics.h"

namespace kcron {

// Installs logfmt logging to stderr for `component` at `level`, and arms the test-only fault points
// (kcron/fault_points.h) when KCRON_FAULT_POINTS is set.
void init_logging(const std::string& component, const std::string& level);

// Installs handlers for SIGTERM and SIGINT; stop_requested() turns true on the first one.
void install_stop_signals();
bool stop_requested();
void request_stop();

// Serves /metrics, /healthz and /readyz on its own thread until destroyed.
class HttpEndpoint {
 public:
  HttpEndpoint(const std::string& address, int port, Metrics& metrics);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  void set_ready(bool ready) { ready_ = ready; }
  void set_healthy(bool healthy) { healthy_ = healthy; }
  int port() const { return bound_port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> healthy_{true};
  int bound_port_ = 0;
  std::thread thread_;
};

}  // namespace kcron
