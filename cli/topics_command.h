// `kcron topics create` and `kcron topics check`: the layout's topics exist with their partition
// counts, and the configs of existing ones match this release where kcron relies on them
// (cleanup.policy: aligned by create, a failure of check); other differing keys are operator
// tuning, noted and kept unless create is given --align-configs (kcron/topic_drift.h).
#pragma once

#include <ostream>
#include <vector>

#include "kcron/kafka.h"
#include "kcron/topics.h"

namespace kcron::cli {

struct TopicsOptions {
  int replication_factor = 1;
  bool align_configs = false;  // --align-configs: align every differing key, not only cleanup.policy
};

// Creates the missing topics, then aligns the configs of existing ones. Exit code 0 or 1.
int topics_create(const kafka::Properties& client, const std::vector<TopicSpec>& specs, const TopicsOptions& options,
                  std::ostream& out, std::ostream& err);

// Fails when a topic is missing, has another partition count or another cleanup.policy; notes the
// rest of the drift. Exit code 0 or 1.
int topics_check(const kafka::Properties& client, const std::vector<TopicSpec>& specs, std::ostream& out, std::ostream& err);

}  // namespace kcron::cli
