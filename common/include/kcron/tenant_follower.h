// The tenant registry kept current from the compacted kcron.tenants topic (compacted_follower.h):
// each record folded into a TenantRegistry (tenant_registry.h). Single-threaded: the owner's
// thread calls start, poll and close.
#pragma once

#include <chrono>

#include "kcron/clock.h"
#include "kcron/compacted_follower.h"
#include "kcron/kafka.h"
#include "kcron/tenant_registry.h"
#include "kcron/topics.h"

namespace kcron {

class TenantFollower : public CompactedFollower {
 public:
  // `client`: the program's client properties (client_properties()); its client.id names the
  // never-committed group `<prefix>tenants-<client.id>`. `registry` outlives the follower.
  // `assign_retry`: how often poll() looks again for a topic that did not exist.
  TenantFollower(kafka::Properties client, const TopicNames& names, TenantRegistry& registry,
                 Millis assign_retry = std::chrono::seconds(30));
};

}  // namespace kcron
