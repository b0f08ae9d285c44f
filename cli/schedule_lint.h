// `kcron schedule lint`: the stored schedules that fire differently since kcron combines the day
// fields as cronie does (cron-producer/README.md, "Day-of-month and day-of-week"). Reads the
// compacted schedules topic to its end, keeps what the cron-producer keeps, and prints each
// changed schedule with its next fires under the earlier rule and under cronie's.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include "kcron/config.h"

namespace kcron::cli {

// Registers `lint [--from RFC3339] [--count N]` on `kcron schedule`; the options bind to this
// object, so it stays where it was constructed.
class ScheduleLint {
 public:
  explicit ScheduleLint(CLI::App& schedule);
  ScheduleLint(const ScheduleLint&) = delete;
  ScheduleLint& operator=(const ScheduleLint&) = delete;

  bool parsed() const;
  // Exit code: 0 when no schedule changes, 1 when some do (listed on `out`), 2 when the
  // schedules could not be read or an option is wrong (the error on `err`).
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* lint_ = nullptr;
  std::string from_;
  int count_ = 5;
};

}  // namespace kcron::cli
