#include "core/sealed_executor.h"

#include <fmt/format.h>

#include "kcron/tenant.h"

namespace kcron::worker {

void SealingKeys::refresh(const TenantRegistry& registry) {
  if (!enabled() || registry.generation() == generation_) return;
  generation_ = registry.generation();
  std::map<std::string, Keyring, std::less<>> keyrings;
  std::map<std::string, std::string, std::less<>> broken;
  for (const auto& [tenant, settings] : registry.all()) {
    if (settings.sealing_keys().empty()) continue;
    auto keyring = keyring_of(master_key_, tenant, settings);
    if (keyring) {
      keyrings.emplace(tenant, std::move(*keyring));
    } else {
      broken.emplace(tenant, keyring.error().message());
    }
  }
  std::lock_guard lock(mutex_);
  keyrings_ = std::move(keyrings);
  broken_ = std::move(broken);
}

Result<Keyring> SealingKeys::keyring(std::string_view tenant) const {
  if (!enabled()) return make_error("this worker cannot open sealed tasks: its sealing.master_key_file is not set");
  std::lock_guard lock(mutex_);
  if (const auto found = keyrings_.find(tenant); found != keyrings_.end()) return found->second;
  if (const auto found = broken_.find(tenant); found != broken_.end()) return make_error("{}", found->second);
  return make_error("tenant '{}' has no sealing key in the registry", tenant);
}

Handler make_sealed_executor(const Runner& runner, const SealingKeys& keys) {
  return [&runner, &keys](const v1::Job& job, const std::atomic<bool>& stop) -> Outcome {
    const auto tenant = tenant_or_default(job.tenant());
    // A key this worker does not know (yet): the registry may not have reached it, or another
    // worker has the master key. Retried, so a key added just before the submit is no reason to fail.
    auto keyring = keys.keyring(tenant);
    if (!keyring)
      return failed(fmt::format("cannot open the sealed task of job '{}': {}", job.id(), keyring.error().message()), true);
    if (!keyring->keys.contains(job.sealed().key_version())) {
      return failed(
          fmt::format("cannot open the sealed task of job '{}': tenant '{}' has no data key version {} on this worker (yet)",
                      job.id(), tenant, job.sealed().key_version()),
          true);
    }
    v1::Job opened = job;
    // Altered, or moved from another job, schedule or tenant: it will never open.
    if (auto status = open_job(opened, *keyring, sealing_origin_of(job)); !status) return failed(status.error().message(), false);
    const auto secrets = sealed_strings(opened);
    auto outcome = runner.run(opened, stop);
    outcome.error = redact(std::move(outcome.error), secrets);
    outcome.output = redact(std::move(outcome.output), secrets);
    for (auto& whole : outcome.whole_outputs) whole.bytes = redact(std::move(whole.bytes), secrets);
    return outcome;
  };
}

}  // namespace kcron::worker
