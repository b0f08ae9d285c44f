#include "core/workers.h"

#include <string>

#include "kcron/tenant.h"

namespace kcron::api {

v1::WorkerHeartbeat worker_for_tenant(const v1::WorkerHeartbeat& heartbeat, std::string_view tenant) {
  v1::WorkerHeartbeat shown;
  shown.set_worker_id(heartbeat.worker_id());
  *shown.mutable_queues() = heartbeat.queues();
  shown.set_slots(heartbeat.slots());
  shown.set_at_ms(heartbeat.at_ms());
  shown.set_interval_ms(heartbeat.interval_ms());
  shown.set_started_ms(heartbeat.started_ms());
  shown.set_stopped(heartbeat.stopped());
  shown.set_role(heartbeat.role());
  // The process's CPU and memory: what a tenant needs to judge a worker's health; they name no job.
  shown.set_cpu_seconds(heartbeat.cpu_seconds());
  shown.set_rss_bytes(heartbeat.rss_bytes());
  *shown.mutable_programs() = heartbeat.programs();
  *shown.mutable_handlers() = heartbeat.handlers();
  const auto own = tenant_or_default(tenant);
  for (const auto& key : heartbeat.running()) {
    const auto job = split_scoped_key(key);
    if (!job.id.empty() && tenant_or_default(job.tenant) == own) shown.add_running(std::string(job.id));
  }
  return shown;
}

}  // namespace kcron::api
