// Test-only fault injection at named points of the transaction paths, for the fault suite's
// crash-point scenarios. Inactive (one relaxed atomic load per point) unless the process starts
// with KCRON_FAULT_POINTS set, e.g.
//   KCRON_FAULT_POINTS=dispatcher.after_commit@3            SIGKILL itself at the 3rd hit
//   KCRON_FAULT_POINTS=dispatcher.commit_outcome@2:unknown  the 2nd hit answers kUnknown
// Entries are comma separated: point[@N][:action], N counts hits from 1 (default 1), action is
// crash (default; SIGKILL, no cleanup, like kill -9), crash_soon (SIGKILL from another thread after
// a millisecond, i.e. while the caller is inside the call that follows) or unknown (the caller
// pretends the outcome of what it just did is unknown). Each entry fires once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/clock.h"
#include "kcron/result.h"

namespace kcron::fault {

enum class Action { kNone, kCrash, kCrashSoon, kUnknown };

struct Point {
  std::string name;
  std::uint64_t nth = 1;
  Action action = Action::kCrash;
};

// Parses a KCRON_FAULT_POINTS value (pure).
Result<std::vector<Point>> parse(std::string_view spec);

// Reads KCRON_FAULT_POINTS once; an invalid value is logged and ignored.
void init_from_environment();

// True when KCRON_FAULT_POINTS armed any point (one relaxed load): callers that build a point's
// name skip that work otherwise.
bool armed();

// Test-only: the offset KCRON_FAULT_CLOCK_OFFSET_MS (an integer, may be negative) asks a
// program to add to its wall clock; 0 when unset or not a number (then logged). The fault suite
// skews one program's scheduling clock with it (libfaketime also shifts librdkafka's own timed
// waits, which stalls its consumer for the size of the shift).
Millis clock_offset_from_environment();

// Counts a hit of `point`. Crashes the process for kCrash; returns the action otherwise
// (kNone unless an entry for this hit says kUnknown; kCrashSoon returns kNone and the process
// dies shortly after).
Action hit(std::string_view point);

}  // namespace kcron::fault
