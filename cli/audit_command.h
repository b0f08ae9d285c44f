// `kcron audit`: the decisions the dispatcher wrote to kcron.audit (AuditRecord), read with
// read_committed from --since on (offsetsForTimes per partition, not the whole topic), filtered by
// tenant, job and outcome, and printed as a table or JSON lines in time order (audit_query.h).
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include "api_client.h"
#include "kcron/config.h"

namespace kcron::cli {

class AuditCommand {
 public:
  explicit AuditCommand(CLI::App& app);
  bool parsed() const;
  // 0 on success (also when nothing matched), 1 on an error, which goes to `err`; the notice that
  // --max cut the output goes to `err` too, so `out` stays one JSON object per line.
  int run(const Config& config, std::ostream& out, std::ostream& err) const;
  // Through kcron-api (GET /v1/audit, admin): the token's tenant's records, or --tenant's for a
  // system token; the same filters and output.
  int run_api(ApiClient& client, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* audit_ = nullptr;
  std::string tenant_;
  std::string since_;
  std::string job_id_;
  std::string outcome_;
  bool json_ = false;
  long max_ = 1000;
};

}  // namespace kcron::cli
