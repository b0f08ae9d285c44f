#include "kcron/template_follower.h"

#include <string>
#include <string_view>
#include <utility>

namespace kcron {
namespace {

FollowedTopic template_topic(const TopicNames& names, templates::Catalog& catalog) {
  FollowedTopic topic;
  topic.topic = names.templates();
  topic.group_prefix = names.prefix + "templates-";
  topic.event = "template";
  topic.key_field = "key";
  topic.key_meaning = "the template version's scoped key";
  topic.what = "template catalog";
  topic.loaded_event = "template_catalog_loaded";
  topic.missing_hint = "run `kcron topics create`; references to templates wait until it exists";
  topic.apply = [&catalog](std::string_view key, std::string_view value, std::string_view content_type, bool tombstone) {
    return catalog.apply(key, value, content_type, tombstone);
  };
  return topic;
}

}  // namespace

TemplateFollower::TemplateFollower(kafka::Properties client, const TopicNames& names, templates::Catalog& catalog,
                                   Millis assign_retry)
    : CompactedFollower(std::move(client), template_topic(names, catalog), assign_retry) {}

}  // namespace kcron
