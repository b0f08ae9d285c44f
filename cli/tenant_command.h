// `kcron tenant create|get|list|set|delete`: the tenant registry on the compacted kcron.tenants
// topic (tenant_registry.h), read to its end with read_committed, written with an idempotent
// producer. `delete` also purges the tenant: its schedules are tombstoned and a PurgeTenant goes
// to every partition of kcron.jobs. A read-then-write is not a lock: two operators racing on one
// tenant both succeed, the later record wins.
//
// With --api, `get` and `set` go through kcron-api (GET and PATCH /v1/tenant?tenant=NAME): an
// admin token for its own tenant (limits within the operators' ceilings), a system token for any.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "api_client.h"
#include "kafka_access.h"
#include "kcron/config.h"
#include "kcron/tenant_registry.h"
#include "tenant_edit.h"

namespace kcron::cli {

// The registry read to its end, and one tenant's settings written (idempotent producer).
Result<TenantRegistry> read_tenant_registry(const Config& config, std::ostream& err);
Status write_tenant_settings(const Config& config, const v1::TenantSettings& settings);

class TenantCommands {
 public:
  explicit TenantCommands(CLI::App& app);
  bool parsed() const;
  int run(const Config& config, std::ostream& out, std::ostream& err) const;
  // get or set: what --api serves.
  bool api_parsed() const;
  int run_api(ApiClient& client, std::ostream& out, std::ostream& err) const;

 private:
  // The options of create and of set (each subcommand has its own CLI::Option objects).
  struct EditOptions {
    CLI::Option* max_pending = nullptr;
    CLI::Option* max_rate = nullptr;
    CLI::Option* max_running = nullptr;
    CLI::Option* queues = nullptr;
    CLI::Option* description = nullptr;
    CLI::Option* admin_max_pending = nullptr;
    CLI::Option* admin_max_rate = nullptr;
    CLI::Option* admin_max_running = nullptr;
    CLI::Option* kafka_topics = nullptr;
    CLI::Option* programs = nullptr;
    CLI::Option* env_names = nullptr;
    CLI::Option* http_targets = nullptr;
  };
  // The given options as an edit; an error for a bad --queues.
  Result<TenantEdit> edit_of(const EditOptions& given) const;
  EditOptions add_edit_options(CLI::App& command);
  int run_edit(const Config& config, bool create, const EditOptions& given, std::ostream& out, std::ostream& err) const;
  int run_delete(const Config& config, std::ostream& out, std::ostream& err) const;

  CLI::App* create_ = nullptr;
  CLI::App* set_ = nullptr;
  CLI::App* get_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* delete_ = nullptr;
  EditOptions create_options_;
  EditOptions set_options_;
  TenantKafkaOptions create_kafka_;
  TenantKafkaOptions set_kafka_;
  std::string name_;
  std::uint64_t max_pending_ = 0;
  double max_rate_ = 0;
  std::uint32_t max_running_ = 0;
  std::string queues_;
  std::string description_;
  std::uint64_t admin_max_pending_ = 0;
  double admin_max_rate_ = 0;
  std::uint32_t admin_max_running_ = 0;
  std::string kafka_topics_;
  std::string programs_;
  std::string env_names_;
  std::string http_targets_;
  std::string reason_;
  bool json_ = false;
  bool yes_ = false;
};

}  // namespace kcron::cli
