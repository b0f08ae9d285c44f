// The CLI's side of the rolling-upgrade gate (kcron/upgrade_gate.h): before it writes a record of
// a tenant other than the default (a submit, a cancel, a schedule) or a tenant's deletion, it asks
// whether every dispatcher and worker running understands it, and refuses with the member that
// does not. `upgrade_check = false` (env KCRON_UPGRADE_CHECK=false) skips the question.
#pragma once

#include <string_view>

#include "kcron/config.h"
#include "kcron/result.h"

namespace kcron::cli {

Status check_upgrade(const Config& config, std::string_view tenant, std::string_view feature);

}  // namespace kcron::cli
