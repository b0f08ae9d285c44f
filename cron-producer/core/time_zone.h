// An IANA time zone for schedule math: maps wall-clock times to instants and back with the
// system tzdata (Debian's howardhinnant date/tz over /usr/share/zoneinfo), never hand-written
// offsets. Past the last transition stored in a zone's file (2037 in Debian's data), the rule
// string at the end of that same file (e.g. "CET-1CEST,M3.5.0,M10.5.0/3") keeps DST going.
#pragma once

#include <date/tz.h>

#include <memory>
#include <string>
#include <string_view>

#include "kcron/result.h"

namespace kcron::cron {

// Immutable and cheap to copy; safe to share between threads.
class TimeZone {
 public:
  // UTC, which needs no tzdata.
  TimeZone() = default;
  static TimeZone utc() { return {}; }

  // An IANA name such as "Europe/Berlin" or "UTC"; an unknown name is an Error naming it.
  static Result<TimeZone> locate(std::string_view name);

  const std::string& name() const { return name_; }

  // The offset period that contains an instant.
  date::sys_info period_at(date::sys_seconds instant) const;
  // How a wall-clock time maps to instants: unique, nonexistent (skipped by a forward jump)
  // or ambiguous (repeated by a backward jump), with the periods on either side.
  date::local_info wall_time_info(date::local_seconds wall) const;

 private:
  struct RuleAfterLastTransition;

  std::string name_ = "UTC";
  const date::time_zone* zone_ = nullptr;  // nullptr: UTC
  std::shared_ptr<const RuleAfterLastTransition> later_rule_;
};

}  // namespace kcron::cron
