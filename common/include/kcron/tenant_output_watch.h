// Which tenants' output topics a dispatcher or worker writes (tenant_output.h): those whose
// registry record has kafka_output and whose `<prefix>out.<tenant>` exists. Refreshed by the loop
// before a transaction: the registry when it changed, the topics' existence at most every
// `recheck` (a copy to a topic that does not exist would fail the whole transaction). A tenant that
// opted in without its topic is logged once (event=tenant_output_missing) and gets no copies.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>

#include "kcron/tenant_output.h"
#include "kcron/tenant_registry.h"
#include "kcron/topics.h"

namespace kcron {

class TenantOutputWatch {
 public:
  explicit TenantOutputWatch(TopicNames names, std::chrono::milliseconds recheck = std::chrono::seconds(10))
      : names_(std::move(names)), recheck_(recheck) {}
  void refresh(const TenantRegistry& registry, RdKafka::Handle& handle, std::chrono::steady_clock::time_point now);
  // Opted in, with a topic.
  const TenantSet& tenants() const { return writable_; }
  // After a transaction that did not commit: the topics are checked again before the next one (a
  // copy to a topic deleted meanwhile fails the whole transaction).
  void invalidate() { checked_ = {}; }

 private:
  TopicNames names_;
  std::chrono::milliseconds recheck_;
  std::uint64_t generation_ = ~std::uint64_t{0};
  TenantSet opted_;
  TenantSet writable_;
  TenantSet reported_missing_;
  std::chrono::steady_clock::time_point checked_{};
};

}  // namespace kcron
