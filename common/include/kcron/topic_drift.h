// How the configs of existing topics differ from what kcron ships (TopicSpec::config), and what
// `kcron topics create` does about it: a differing cleanup.policy is aligned, since kcron's
// correctness relies on it; other differences are operator tuning, reported as notes unless the
// operator asks to align them. Pure: the Kafka calls are in kafka.h.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kcron/result.h"
#include "kcron/topics.h"

namespace kcron {

inline constexpr std::string_view kCleanupPolicy = "cleanup.policy";

using ConfigEntries = std::vector<std::pair<std::string, std::string>>;

// A topic's config as the broker describes it (DescribeConfigs).
struct DescribedTopicConfig {
  std::string topic;
  std::map<std::string, std::string> effective;  // every key the broker gave a value: overrides, broker settings, defaults
  std::map<std::string, std::string> overrides;  // the topic's own dynamic overrides (kafka-configs --alter, creation configs)
  std::vector<std::string> hidden_overrides;     // dynamic overrides whose value the broker withholds (sensitive, null)
};

// One key of an existing topic whose effective value is not the one kcron ships.
struct ConfigDrift {
  std::string topic;
  std::string key;
  std::string current;  // empty: the broker gave no value for the key
  std::string wanted;
  bool operator==(const ConfigDrift&) const = default;
};

// The keys of `spec.config` whose effective value on the described topic differs, in spec order.
// cleanup.policy compares as a set ("delete,compact" is "compact,delete").
std::vector<ConfigDrift> config_drift(const TopicSpec& spec, const DescribedTopicConfig& described);

// The complete override set to send in a legacy AlterConfigs, which replaces every dynamic
// override of the topic: its current overrides (those kcron does not know included), with `wanted`
// laid over them. An error naming the keys when the topic has hidden overrides, which the alter
// would drop since their values cannot be sent back.
Result<std::map<std::string, std::string>> overlay_overrides(const DescribedTopicConfig& described, const ConfigEntries& wanted);

// What to do about the drift of a set of topics.
struct AlignmentPlan {
  std::vector<std::string> topics;   // to align with every key of their spec, in the order of the drift
  std::vector<ConfigDrift> changes;  // what aligning them changes
  std::vector<ConfigDrift> notes;    // differences left as they are (operator tuning)
  bool policy_differs() const;       // some topic's cleanup.policy is not kcron's
};

// A topic is aligned when its cleanup.policy differs, or when it differs at all and `align_all`
// (`--align-configs`) is set; the rest of the drift is notes.
AlignmentPlan plan_alignment(const std::vector<ConfigDrift>& drift, bool align_all);

// "  kcron.status: cleanup.policy compact -> compact,delete"
std::string change_line(const ConfigDrift& drift);
// "  note: kcron.results retention.ms is 86400000 (kcron ships 604800000)"
std::string note_line(const ConfigDrift& drift);

}  // namespace kcron
