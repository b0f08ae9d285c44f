#include "kcron/tenant_output_watch.h"

#include <spdlog/spdlog.h>

#include <memory>

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
  // One metadata request per opted-in topic (not the whole cluster's), with a short timeout: this
  // runs on the transaction path.
  TenantSet writable;
  for (const auto& tenant : opted_) {
    const auto topic = tenant_output_topic(names_.prefix, tenant);
    std::string error;
    std::unique_ptr<RdKafka::Topic> handle_of(RdKafka::Topic::create(&handle, topic, nullptr, error));
    RdKafka::Metadata* raw = nullptr;
    const auto code = handle_of ? handle.metadata(false, handle_of.get(), &raw, 2000) : RdKafka::ERR__INVALID_ARG;
    std::unique_ptr<RdKafka::Metadata> metadata(raw);
    if (code != RdKafka::ERR_NO_ERROR) {
      // Unknown: keep what was known of this tenant.
      if (writable_.contains(tenant)) writable.insert(tenant);
      continue;
    }
    const bool exists = metadata->topics()->size() == 1 && metadata->topics()->front()->err() == RdKafka::ERR_NO_ERROR;
    if (exists) {
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
