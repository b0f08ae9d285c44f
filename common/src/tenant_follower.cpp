#include "kcron/tenant_follower.h"

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace kcron {
namespace {

FollowedTopic tenant_topic(const TopicNames& names, TenantRegistry& registry) {
  FollowedTopic topic;
  topic.topic = names.tenants();
  topic.group_prefix = names.prefix + "tenants-";
  topic.event = "tenant";
  topic.key_field = "tenant";
  topic.key_meaning = "the tenant name";
  topic.what = "tenant registry";
  topic.loaded_event = "tenant_registry_loaded";
  topic.missing_hint = "run `kcron topics create`; every tenant has no limits until the topic exists";
  topic.apply = [&registry](std::string_view key, std::string_view value, std::string_view content_type, bool tombstone) {
    return registry.apply(key, value, content_type, tombstone);
  };
  topic.loaded_fields = [&registry] { return fmt::format("tenants={} ", registry.all().size()); };
  return topic;
}

}  // namespace

TenantFollower::TenantFollower(kafka::Properties client, const TopicNames& names, TenantRegistry& registry, Millis assign_retry)
    : CompactedFollower(std::move(client), tenant_topic(names, registry), assign_retry) {}

}  // namespace kcron
