#include "kcron/service.h"

#include <google/protobuf/stubs/logging.h>
#include <httplib.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "kcron/fault_points.h"

namespace kcron {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int /*signal*/) {
  g_stop.store(true);
}

}  // namespace

namespace {

// Protobuf reports each string field with invalid UTF-8 it parses as an unstructured ERROR line
// on stderr; poison input would flood the log with them. The record is REJECTED (or counted)
// with a reason anyway: route protobuf's messages into the structured log, below info for parse
// noise.
void protobuf_log(google::protobuf::LogLevel level, const char* filename, int line, const std::string& message) {
  const auto spd_level = level >= google::protobuf::LOGLEVEL_FATAL    ? spdlog::level::critical
                         : level >= google::protobuf::LOGLEVEL_DFATAL ? spdlog::level::err
                                                                      : spdlog::level::debug;
  std::string text = message;
  for (auto& c : text) {
    if (c == '"' || c == '\n') c = '\'';
  }
  spdlog::log(spd_level, "event=protobuf file={}:{} msg=\"{}\"", filename != nullptr ? filename : "?", line, text);
}

}  // namespace

void init_logging(const std::string& component, const std::string& level) {
  auto logger = spdlog::stderr_logger_mt(component);
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l component=%n %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  google::protobuf::SetLogHandler(&protobuf_log);
  fault::init_from_environment();  // test-only crash points; inactive unless KCRON_FAULT_POINTS is set
}

void install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() {
  return g_stop.load();
}
void request_stop() {
  g_stop.store(true);
}

struct HttpEndpoint::Impl {
  httplib::Server server;
};

HttpEndpoint::HttpEndpoint(const std::string& address, int port, Metrics& metrics) : impl_(std::make_unique<Impl>()) {
  if (port < 0) return;
  impl_->server.Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics.render(), "text/plain; version=0.0.4");
  });
  impl_->server.Get("/healthz", [this](const httplib::Request&, httplib::Response& response) {
    response.status = healthy_ ? 200 : 503;
    response.set_content(healthy_ ? "ok\n" : "unhealthy\n", "text/plain");
  });
  impl_->server.Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    response.status = ready_ ? 200 : 503;
    response.set_content(ready_ ? "ready\n" : "not ready\n", "text/plain");
  });
  bound_port_ = port == 0 ? impl_->server.bind_to_any_port(address) : (impl_->server.bind_to_port(address, port) ? port : -1);
  if (bound_port_ < 0) {
    spdlog::warn("event=http_bind_failed address={} port={} msg=\"metrics endpoint disabled\"", address, port);
    return;
  }
  thread_ = std::thread([this] { impl_->server.listen_after_bind(); });
  spdlog::info("event=http_listening address={} port={}", address, bound_port_);
}

HttpEndpoint::~HttpEndpoint() {
  if (thread_.joinable()) {
    // httplib's stop() does nothing until its thread is inside listen: a stop right after the
    // start would leave that thread accepting for ever and this join waiting on it.
    for (int wait = 0; wait < 500 && !impl_->server.is_running(); ++wait)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    impl_->server.stop();
    thread_.join();
  }
}

}  // namespace kcron
