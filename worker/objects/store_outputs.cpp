#include "objects/store_outputs.h"

#include <fmt/format.h>

namespace kcron::worker {

Status store_large_outputs(Attempt& attempt, ObjectStore& store, const ObjectSettings& settings, std::string_view run_token) {
  auto whole = std::move(attempt.outcome.whole_outputs);
  attempt.outcome.whole_outputs.clear();
  if (!settings.enabled()) return Status::success();
  // Handed back to the partition's next owner (shutdown, revoke): never published, so nothing to store.
  if (attempt.control && attempt.control->stop_reason() == StopReason::kShutdown) return Status::success();
  const auto& job = attempt.execution.job();
  // A shutdown or a moved partition while uploading: abandon it, the attempt is handed back.
  const StopCheck handed_back = [control = attempt.control] {
    return control && control->stop_reason() == StopReason::kShutdown;
  };
  for (const auto& output : whole) {
    const auto& name = output.name;
    const auto& bytes = output.bytes;
    if (!should_store(settings, bytes.size())) continue;
    const auto key = object_key(job.tenant(), job.id(), job.attempt(), run_token, name);
    auto stored = store.put(key, bytes, handed_back);
    if (!stored) {
      Outcome& outcome = attempt.outcome;
      const auto why = fmt::format("its {} ({} bytes) could not be stored: {}", name, bytes.size(), stored.error().message());
      if (outcome.state == v1::SUCCEEDED) {
        // Retriable: the store's outage is not the job's fault, and the next attempt stores anew.
        outcome.state = v1::FAILED;
        outcome.retriable = true;
        outcome.error = fmt::format("object store: {} (it had succeeded)", why);
      } else {
        // Failed, timed out or cancelled on its own: that stays the verdict (and whether it is
        // retried); the lost output is only noted.
        outcome.error = outcome.error.empty() ? fmt::format("object store: {}", why)
                                              : fmt::format("{} (object store: {})", outcome.error, why);
      }
      outcome.objects.clear();
      return stored.error();
    }
    stored->set_name(name);
    if (output.cut()) stored->set_original_size(output.total);
    attempt.outcome.objects.push_back(std::move(*stored));
  }
  return Status::success();
}

}  // namespace kcron::worker
