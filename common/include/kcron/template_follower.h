// The template catalog kept current from the compacted kcron.templates topic (compacted_follower.h):
// each record folded into a templates::Catalog (templates.h). Single-threaded: the owner's thread
// calls start, poll and close.
#pragma once

#include <chrono>

#include "kcron/clock.h"
#include "kcron/compacted_follower.h"
#include "kcron/kafka.h"
#include "kcron/templates.h"
#include "kcron/topics.h"

namespace kcron {

class TemplateFollower : public CompactedFollower {
 public:
  // `client`: the program's client properties (client_properties()); its client.id names the
  // never-committed group `<prefix>templates-<client.id>`. `catalog` outlives the follower.
  // `assign_retry`: how often poll() looks again for a topic that did not exist.
  TemplateFollower(kafka::Properties client, const TopicNames& names, templates::Catalog& catalog,
                   Millis assign_retry = std::chrono::seconds(30));
};

}  // namespace kcron
