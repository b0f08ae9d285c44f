// `kcron status`, `kcron dlq list|replay` and `kcron workers`: read kcron's output topics with
// read_committed up to their end and print what an operator asks about a job, the dead letters
// or the workers. Each command reads only the partition a key lives on when it has a key.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>

#include "kcron/config.h"

namespace kcron::cli {

class InspectCommands {
 public:
  explicit InspectCommands(CLI::App& app);
  bool parsed() const;
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* status_ = nullptr;
  CLI::App* dlq_list_ = nullptr;
  CLI::App* dlq_replay_ = nullptr;
  CLI::App* workers_ = nullptr;
  std::string job_id_;
  std::vector<std::string> replay_ids_;
  bool replay_all_ = false;
  bool json_ = false;
  long max_ = 0;
};

}  // namespace kcron::cli
