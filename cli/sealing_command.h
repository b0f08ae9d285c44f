// `kcron sealing …` (docs/security.md#sealed-payloads): the deployment's master key, each tenant's
// data keys (kept wrapped in its registry record), and what `kcron submit --seal` and
// `kcron schedule put --seal` use to seal a task before it leaves the CLI.
//   kcron sealing init-master-key FILE            a new master key (64 hex digits, mode 0600)
//   kcron sealing add-key TENANT --master-key F   the tenant's first data key, or a new version (rotation)
//   kcron sealing export-key TENANT --master-key F  the newest data key in hex, for the tenant's own sealing client
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include "kcron.pb.h"
#include "kcron/config.h"
#include "kcron/result.h"
#include "kcron/sealing.h"

namespace kcron::cli {

class SealingCommands {
 public:
  explicit SealingCommands(CLI::App& app);
  bool parsed() const;
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* init_ = nullptr;
  CLI::App* add_ = nullptr;
  CLI::App* export_ = nullptr;
  std::string file_;
  std::string tenant_;
  std::string master_key_file_;
};

// Seals `job` for `tenant` ("default" or a name) with its newest data key, origin `origin`: reads
// the registry and the master key; refuses while a dispatcher or worker cannot schedule or open
// sealed tasks (the upgrade gate).
Status seal_for_tenant(const Config& config, const std::string& master_key_file, const std::string& tenant, v1::Job& job,
                       const SealingOrigin& origin, std::ostream& err);

}  // namespace kcron::cli
