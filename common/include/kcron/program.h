// The start and end every kcron program's main() shares: flags (--config, --set, --help listing
// every key), loading the configuration, reading its numbers with every problem reported, and
// turning how the main loop ended into an exit code.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/config.h"
#include "kcron/result.h"

namespace kcron {

struct ProgramConfig {
  std::optional<Config> config;  // empty: main() returns exit_code (help printed, or an error)
  int exit_code = 0;
};

// Parses the command line and loads the configuration; errors go to standard error.
ProgramConfig load_program_config(const std::string& program, const std::string& description, const std::vector<ConfigKey>& keys,
                                  int argc, char** argv);

// Reads integer keys, collecting every malformed one instead of stopping at the first.
class ConfigNumbers {
 public:
  explicit ConfigNumbers(const Config& config) : config_(config) {}
  std::int64_t operator()(const std::string& name);
  std::chrono::milliseconds ms(const std::string& name) { return std::chrono::milliseconds((*this)(name)); }
  bool ok() const { return problems_.empty(); }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  const Config& config_;
  std::vector<std::string> problems_;
};

// 0 when the main loop ended cleanly or a stop signal interrupted start-up; 1 (logged) otherwise.
int exit_code_for(const Status& status);

// main()'s body, guarded: an exception it lets escape (a fatal start-up error) ends the program
// with "<program>: <what>" on standard error and exit code 1, not with std::terminate.
int run_main(std::string_view program, const std::function<int()>& body) noexcept;

}  // namespace kcron
