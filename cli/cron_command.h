// `kcron cron next|explain`: check a cron expression and its fire instants without a broker.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

#include "core/time_zone.h"
#include "kcron/clock.h"

namespace kcron::cli {

// An instant as wall-clock time in a zone, with the weekday, the offset in force and its
// abbreviation when the zone has one: "Fri 2026-01-16 09:59:00 +01:00 CET", "Thu 2026-01-01
// 09:00:00 -03:00" (milliseconds only when not zero).
std::string wall_time_text(Instant instant, const cron::TimeZone& zone);

// Registers `cron next EXPR [--tz ZONE] [--from RFC3339] [--count N]` and
// `cron explain EXPR [--tz ZONE] [--from RFC3339] [--count N]` on the app; the options bind to
// this object, so it stays where it was constructed.
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
  int explain_count_ = 5;
};

}  // namespace kcron::cli
