#include "upgrade_check.h"

#include "kcron/kafka.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"
#include "kcron/upgrade_gate.h"

namespace kcron::cli {

Status check_upgrade(const Config& config, std::string_view tenant, std::string_view feature) {
  if (is_default_tenant(tenant)) return Status::success();
  if (auto enabled = config.get_bool("upgrade_check"); enabled.ok() && !*enabled) return Status::success();
  const TopicNames names(config.get("topic_prefix"));
  auto open = require_feature(kafka::client_properties(config, "kcron-cli"), names, feature, SystemClock::instance().now(),
                              std::chrono::seconds(10));
  if (!open) {
    return open.error().within(
        fmt::format("nothing was written for tenant '{}' (KCRON_UPGRADE_CHECK=false skips this check)", tenant));
  }
  return Status::success();
}

}  // namespace kcron::cli
