// Sealed tasks on the worker (docs/security.md#sealed-payloads): the executor registered for
// kSealed opens the job's task with its tenant's data key, runs the opened copy through the
// Runner (the same executors and allowlists as an unsealed task), and redacts every string of
// the opened task from the outcome's error and output. The job as stored (sealed) is what results,
// retries and dead letters carry: only this copy, on this slot thread, ever holds the task.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "core/runner.h"
#include "kcron/sealing.h"
#include "kcron/tenant_registry.h"

namespace kcron::worker {

// Each tenant's unwrapped data keys, refreshed from the registry on the worker's loop thread and
// read by the slot threads. Without a master key (sealing.master_key_file empty) it holds none.
class SealingKeys {
 public:
  explicit SealingKeys(std::string master_key) : master_key_(std::move(master_key)) {}
  bool enabled() const { return !master_key_.empty(); }
  // Re-derives the keyrings when the registry changed since the last call (generation).
  void refresh(const TenantRegistry& registry);
  // The keyring of `tenant` ("default" for the default tenant), or why there is none.
  Result<Keyring> keyring(std::string_view tenant) const;

 private:
  std::string master_key_;
  mutable std::mutex mutex_;
  std::map<std::string, Keyring, std::less<>> keyrings_;    // guarded by mutex_
  std::map<std::string, std::string, std::less<>> broken_;  // tenant -> why its keys do not open; guarded by mutex_
  std::uint64_t generation_ = ~std::uint64_t{0};            // loop thread only
};

// The Handler for kSealed: open, run through `runner`, redact. A job that does not open fails
// for good (a retry cannot open it either).
Handler make_sealed_executor(const Runner& runner, const SealingKeys& keys);

}  // namespace kcron::worker
