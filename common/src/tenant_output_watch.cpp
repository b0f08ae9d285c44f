#include "kcron/tenant_output_watch.h"

#include <spdlog/spdlog.h>

#include "kcron/kafka.h"
#include "kcron/tenant.h"

namespace kcron {

void TenantOutputWatch::refresh(const TenantRegistry& registry, RdKafka::Handle& handle,
                                std::chrono::steady_clock::time_point now) {
  bool changed = false;
  if (registry.generation() != generation_) {
    generation_ = registry.generation();
    TenantSet opted;
    for (const auto& [tenant, settings] : registry.all()) {
      if (settings.kafka_output() && !is_default_tenant(tenant)) opted.insert(tenant);
    }
    changed = opted != opted_;
    opted_ = std::move(opted);
  }
  if (opted_.empty()) {
    writable_.clear();
    return;
  }
  if (!changed && now - checked_ < recheck_) return;
  checked_ = now;
  auto counts = kafka::partition_counts(handle, std::chrono::seconds(5));
  if (!counts) {
    spdlog::warn("event=tenant_output_check_failed error=\"{}\" msg=\"tenant output topics keep their last state\"",
                 counts.error().message());
    return;
  }
  TenantSet writable;
  for (const auto& tenant : opted_) {
    const auto topic = tenant_output_topic(names_.prefix, tenant);
    if (counts->contains(topic)) {
      writable.insert(tenant);
      reported_missing_.erase(tenant);
    } else if (reported_missing_.insert(tenant).second) {
      spdlog::warn(
          "event=tenant_output_missing tenant={} topic={} msg=\"the tenant opted in to its output topic, which does not "
          "exist: no copies until it does (kcron tenant set {} --kafka --kafka-output creates it)\"",
          tenant, topic, tenant);
    }
  }
  writable_ = std::move(writable);
}

}  // namespace kcron
