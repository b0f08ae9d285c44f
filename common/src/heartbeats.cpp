#include "kcron/heartbeats.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#include "kcron/codec.h"

namespace kcron {
namespace {

std::string host_name() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) return "unknown";
  return buffer;
}

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages_total = 0;
  std::uint64_t pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

double cpu_seconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  const auto seconds = [](const timeval& value) {
    return static_cast<double>(value.tv_sec) + static_cast<double>(value.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

Heartbeats::Heartbeats(HeartbeatSettings settings, const Clock& clock) : settings_(std::move(settings)), clock_(clock) {}

Status Heartbeats::start(const kafka::Properties& client) {
  started_ = clock_.now();
  host_ = host_name();
  if (settings_.interval.count() <= 0) return Status::success();
  auto producer = kafka::make_producer(client, "");
  if (!producer) return producer.error();
  producer_ = std::move(*producer);
  return Status::success();
}

bool Heartbeats::due(bool stopped) const {
  if (!producer_) return false;
  return stopped || !member_id_sent_ || std::chrono::steady_clock::now() - last_ >= settings_.interval;
}

void Heartbeats::set_member_id(std::string member_id) {
  if (member_id == member_id_) return;
  member_id_ = std::move(member_id);
  member_id_sent_ = false;
}

void Heartbeats::send(const std::vector<std::string>& running, std::uint64_t succeeded, std::uint64_t failed, bool stopped) {
  if (!producer_) return;
  last_ = std::chrono::steady_clock::now();
  v1::WorkerHeartbeat beat;
  beat.set_worker_id(settings_.worker_id);
  beat.set_host(host_);
  for (const auto& queue : settings_.queues) beat.add_queues(queue);
  beat.set_slots(static_cast<std::uint32_t>(settings_.slots));
  for (const auto& job_id : running) beat.add_running(job_id);
  beat.set_cpu_seconds(cpu_seconds());
  beat.set_rss_bytes(resident_bytes());
  beat.set_at_ms(to_epoch_ms(clock_.now()));
  beat.set_interval_ms(settings_.interval.count());
  beat.set_started_ms(to_epoch_ms(started_));
  beat.set_stopped(stopped);
  beat.set_succeeded(succeeded);
  beat.set_failed(failed);
  beat.set_role(settings_.role);
  beat.set_member_id(member_id_);
  for (const auto& feature : settings_.features) beat.add_features(feature);
  for (const auto& program : settings_.programs) beat.add_programs(program);
  for (const auto& handler : settings_.handlers) beat.add_handlers(handler);
  auto headers = typed_headers(settings_.role.empty() ? "worker" : settings_.role, "");
  headers.emplace_back(header::kStatus, stopped ? "STOPPED" : "LIVE");
  const OutRecord record{settings_.topic, -1, settings_.worker_id, encode(beat), false, headers};
  if (auto status = kafka::produce(*producer_, record); !status) {
    spdlog::warn("event=heartbeat_failed error=\"{}\"", status.error().message());
  }
  producer_->poll(0);
  // The first one is on the topic before the program joins its group: a writer asking the
  // upgrade gate never sees a member without its heartbeat.
  if (stopped || !sent_ || !member_id_sent_) producer_->flush(2000);
  sent_ = true;
  member_id_sent_ = true;
}

}  // namespace kcron
