// What a tenant's jobs may run on this worker (docs/tenancy.md#what-a-tenant-may-run): the kafka
// topics it may write, the exec programs and env names, the http targets. Each list of the
// tenant's settings (kcron.tenants) narrows the worker's own allowlist: a job must pass both.
// TenantWalls holds the tenants' lists, replaced by the loop thread when the registry changes and
// read by the slot threads. Pure: no Kafka, no files; the checks say what to change when they refuse.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron::worker {

// The worker's own settings for the walls.
struct WallSettings {
  // tenants.require_allowlists: a tenant other than the default without allowed_programs may run
  // no exec job, without allowed_env_names may set no env, without allowed_http_targets may run no
  // http job. false: such a tenant gets the worker's lists (as before tenants had lists).
  bool require_allowlists = false;
  // jobs.kafka_topics: topics any kafka job may write (exact names); empty: any topic not
  // kcron's own. Narrows every tenant's allowed_kafka_topics.
  std::vector<std::string> kafka_topics;
  // The deployment's topic prefix (topic_prefix, "kcron." by default): never a kafka job's target.
  std::string topic_prefix = "kcron.";
};

// One tenant's lists, as its TenantSettings give them.
struct TenantAllowlists {
  std::vector<std::string> kafka_topics;
  std::vector<std::string> programs;
  std::vector<std::string> env_names;
  std::vector<std::string> http_targets;
};
TenantAllowlists allowlists_of(const v1::TenantSettings& settings);

// Whether a kafka job of `tenant` ("" or "default": the default tenant) may write `topic`.
// Never: a topic under the deployment's prefix or under "kcron.", or any "__" topic (Kafka's
// own). Then the worker's jobs.kafka_topics, when set. Then the tenant's
// allowed_kafka_topics: a tenant other than the default without that list (or without a
// record, `lists` null) may write none; the default tenant only when it has a list.
Status check_kafka_target(const WallSettings& settings, std::string_view tenant, const TenantAllowlists* lists,
                          std::string_view topic);

// The tenant's part of an exec job's check (the worker's exec.programs and exec.env are
// check_exec's): argv[0] in allowed_programs and every env name in allowed_env_names, when the
// tenant has those lists (or require_allowlists says it must).
Status check_exec_for_tenant(const WallSettings& settings, std::string_view tenant, const TenantAllowlists* lists,
                             const v1::ExecTask& task);

// The tenant's part of an http job's check (the worker's address rules are http_policy's): the
// URL's host and port match one of allowed_http_targets (kcron/tenant_registry.h,
// http_target_matches), when the tenant has that list (or require_allowlists says it must).
Status check_http_for_tenant(const WallSettings& settings, std::string_view tenant, const TenantAllowlists* lists,
                             std::string_view host, std::uint16_t port);

// The tenants' lists, shared between the loop thread (update) and the slot threads (find).
class TenantWalls {
 public:
  explicit TenantWalls(WallSettings settings = {}) : settings_(std::move(settings)) {}
  const WallSettings& settings() const { return settings_; }

  // The registry's tenants (TenantRegistry::all()), taken when `generation` moved.
  void update(const std::map<std::string, v1::TenantSettings, std::less<>>& tenants, std::uint64_t generation);
  // The lists of `tenant` ("" is "default"); null when the tenant has no record.
  std::shared_ptr<const TenantAllowlists> find(std::string_view tenant) const;

 private:
  using Map = std::map<std::string, std::shared_ptr<const TenantAllowlists>, std::less<>>;
  const WallSettings settings_;
  mutable std::mutex mutex_;
  std::shared_ptr<const Map> tenants_ = std::make_shared<const Map>();  // guarded by mutex_
  std::uint64_t generation_ = 0;                                        // loop thread only
  bool updated_ = false;                                                // loop thread only
};

class SecretResolver;  // core/secret_refs.h

// What the exec and http executors check beyond the worker's own policy: the tenants' lists and
// where secrets come from. Either may be null (no tenant lists; secrets off). Outlives the executors.
struct JobWalls {
  const TenantWalls* tenants = nullptr;
  const SecretResolver* secrets = nullptr;
};

}  // namespace kcron::worker
