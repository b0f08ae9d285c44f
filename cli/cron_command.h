// `kcron cron next|explain`: check a cron expression and its fire instants without a broker.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace kcron::cli {

// Registers `cron next EXPR [--tz ZONE] [--from RFC3339] [--count N]` and `cron explain EXPR` on
// the app; the options bind to this object, so it stays where it was constructed.
class CronCommand {
 public:
  explicit CronCommand(CLI::App& app);
  CronCommand(const CronCommand&) = delete;
  CronCommand& operator=(const CronCommand&) = delete;

  bool parsed() const;
  // Prints the result to `out` and an error to `err`; returns the process exit code.
  int run(std::ostream& out, std::ostream& err) const;

 private:
  int next(std::ostream& out, std::ostream& err) const;
  int explain(std::ostream& out, std::ostream& err) const;

  CLI::App* cron_ = nullptr;
  CLI::App* next_ = nullptr;
  CLI::App* explain_ = nullptr;
  std::string expression_;
  std::string zone_ = "UTC";
  std::string from_;
  int count_ = 5;
};

}  // namespace kcron::cli
