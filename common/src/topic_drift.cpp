#include "kcron/topic_drift.h"

#include <algorithm>
#include <set>

namespace kcron {
namespace {

std::set<std::string> policy_set(std::string_view policy) {
  std::set<std::string> parts;
  while (!policy.empty()) {
    const auto comma = policy.find(',');
    auto part = policy.substr(0, comma);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (!part.empty()) parts.emplace(part);
    if (comma == std::string_view::npos) break;
    policy.remove_prefix(comma + 1);
  }
  return parts;
}

bool same_value(std::string_view key, const std::string& current, const std::string& wanted) {
  if (key == kCleanupPolicy) return policy_set(current) == policy_set(wanted);
  return current == wanted;
}

std::string shown(const std::string& value) {
  return value.empty() ? "(no value)" : value;
}

}  // namespace

std::vector<ConfigDrift> config_drift(const TopicSpec& spec, const DescribedTopicConfig& described) {
  std::vector<ConfigDrift> drift;
  for (const auto& [key, wanted] : spec.config) {
    const auto found = described.effective.find(key);
    const std::string current = found == described.effective.end() ? std::string() : found->second;
    if (!same_value(key, current, wanted)) drift.push_back({spec.name, key, current, wanted});
  }
  return drift;
}

Result<std::map<std::string, std::string>> overlay_overrides(const DescribedTopicConfig& described, const ConfigEntries& wanted) {
  if (!described.hidden_overrides.empty()) {
    std::string keys;
    for (const auto& key : described.hidden_overrides) keys += (keys.empty() ? "" : ", ") + key;
    return make_error(
        "topic {}: its override(s) {} have values the broker does not show, and aligning its configs (an AlterConfigs "
        "replaces every override) would drop them; set kcron's keys with kafka-configs --alter --add-config instead",
        described.topic, keys);
  }
  auto overrides = described.overrides;
  for (const auto& [key, value] : wanted) overrides[key] = value;
  return overrides;
}

bool AlignmentPlan::policy_differs() const {
  const auto is_policy = [](const ConfigDrift& drift) { return drift.key == kCleanupPolicy; };
  return std::any_of(changes.begin(), changes.end(), is_policy) || std::any_of(notes.begin(), notes.end(), is_policy);
}

AlignmentPlan plan_alignment(const std::vector<ConfigDrift>& drift, bool align_all) {
  std::set<std::string> aligned;
  for (const auto& entry : drift) {
    if (align_all || entry.key == kCleanupPolicy) aligned.insert(entry.topic);
  }
  AlignmentPlan plan;
  for (const auto& entry : drift) {
    if (!aligned.contains(entry.topic)) {
      plan.notes.push_back(entry);
      continue;
    }
    if (std::find(plan.topics.begin(), plan.topics.end(), entry.topic) == plan.topics.end()) plan.topics.push_back(entry.topic);
    plan.changes.push_back(entry);
  }
  return plan;
}

std::string change_line(const ConfigDrift& drift) {
  return fmt::format("  {}: {} {} -> {}", drift.topic, drift.key, shown(drift.current), drift.wanted);
}

std::string note_line(const ConfigDrift& drift) {
  return fmt::format("  note: {} {} is {} (kcron ships {})", drift.topic, drift.key, shown(drift.current), drift.wanted);
}

}  // namespace kcron
