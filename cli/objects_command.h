// `kcron objects sweep [--older-than 24h] [--dry-run]`: collects the object store's orphans
// (docs/large-results.md). It lists the bucket first, then reads every committed result on
// kcron.results and every dead letter's history (read_committed, to their end), and deletes the
// objects none of them names that are older than the grace: an upload whose result transaction is
// still in flight is younger than it. The decision is plan_sweep (objects/object_store.h, pure).
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include "kcron/config.h"

namespace kcron::cli {

class ObjectsCommands {
 public:
  explicit ObjectsCommands(CLI::App& app);
  bool parsed() const { return sweep_->parsed(); }
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* sweep_ = nullptr;
  std::string older_than_ = "24h";
  bool dry_run_ = false;
  bool force_ = false;
};

}  // namespace kcron::cli
