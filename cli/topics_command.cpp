#include "topics_command.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "kcron/topic_drift.h"

namespace kcron::cli {
namespace {

constexpr std::chrono::milliseconds kAdminTimeout{30000};

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

void print_notes(const AlignmentPlan& plan, std::ostream& out) {
  if (plan.notes.empty()) return;
  out << fmt::format(
      "{} config value(s) differ from kcron's and are kept (`kcron topics create --align-configs` sets kcron's):\n",
      plan.notes.size());
  for (const auto& note : plan.notes) out << note_line(note) << "\n";
}

}  // namespace

int topics_create(const kafka::Properties& client, const std::vector<TopicSpec>& specs, const TopicsOptions& options,
                  std::ostream& out, std::ostream& err) {
  auto created = kafka::create_topics(client, specs, options.replication_factor, kAdminTimeout);
  if (!created) return fail(err, created.error().message());
  out << fmt::format("created {} topic(s), {} already existed\n", created->size(), specs.size() - created->size());
  for (const auto& name : *created) out << "  " << name << "\n";

  auto producer = kafka::make_producer(client, "");
  if (!producer) return fail(err, producer.error().message());
  auto drift = kafka::topic_config_drift(**producer, specs, kAdminTimeout);
  if (!drift) return fail(err, drift.error().message());
  const auto plan = plan_alignment(*drift, options.align_configs);

  std::vector<std::string> aligned;
  std::string failures;
  for (const auto& topic : plan.topics) {
    const auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const TopicSpec& candidate) { return candidate.name == topic; });
    if (auto status = kafka::align_topic_configs(**producer, topic, spec->config, kAdminTimeout); !status) {
      failures += (failures.empty() ? "" : "; ") + status.error().message();
    } else {
      aligned.push_back(topic);
    }
  }
  if (!aligned.empty()) out << fmt::format("aligned the configs of {} topic(s) with this release:\n", aligned.size());
  for (const auto& change : plan.changes) {
    if (std::find(aligned.begin(), aligned.end(), change.topic) != aligned.end()) out << change_line(change) << "\n";
  }
  print_notes(plan, out);
  if (!failures.empty()) return fail(err, failures);
  return 0;
}

int topics_check(const kafka::Properties& client, const std::vector<TopicSpec>& specs, std::ostream& out, std::ostream& err) {
  auto producer = kafka::make_producer(client, "");
  if (!producer) return fail(err, producer.error().message());
  if (auto status = kafka::check_topics(**producer, specs, kAdminTimeout); !status) return fail(err, status.error().message());
  auto drift = kafka::topic_config_drift(**producer, specs, kAdminTimeout);
  if (!drift) return fail(err, drift.error().message());
  const auto plan = plan_alignment(*drift, false);
  if (plan.policy_differs()) {
    out << fmt::format("{} topic(s) need the configs of this release:\n", plan.topics.size());
    for (const auto& change : plan.changes) out << change_line(change) << "\n";
    print_notes(plan, out);
    return fail(err, fmt::format("the cleanup.policy of {} topic(s) differs from this release's: run `kcron topics create`",
                                 plan.topics.size()));
  }
  out << fmt::format("all {} topics present with the expected partition counts\n", specs.size());
  print_notes(plan, out);
  return 0;
}

}  // namespace kcron::cli
