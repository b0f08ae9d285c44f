#include "core/tenant_walls.h"

#include <fmt/format.h>

#include <algorithm>

#include "kcron/tenant.h"
#include "kcron/tenant_registry.h"

namespace kcron::worker {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// A job's text in a message: at most 200 bytes, control characters and non-ASCII as '?'.
std::string shown(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 200)) {
    const auto byte = static_cast<unsigned char>(c);
    out += byte >= 0x20 && byte < 0x7f ? c : '?';
  }
  if (text.size() > 200) out += "...";
  return out;
}

std::string tenant_name(std::string_view tenant) {
  return std::string(tenant.empty() ? kDefaultTenant : tenant);
}

}  // namespace

TenantAllowlists allowlists_of(const v1::TenantSettings& settings) {
  TenantAllowlists lists;
  lists.kafka_topics.assign(settings.allowed_kafka_topics().begin(), settings.allowed_kafka_topics().end());
  lists.programs.assign(settings.allowed_programs().begin(), settings.allowed_programs().end());
  lists.env_names.assign(settings.allowed_env_names().begin(), settings.allowed_env_names().end());
  lists.http_targets.assign(settings.allowed_http_targets().begin(), settings.allowed_http_targets().end());
  return lists;
}

Status check_kafka_target(const WallSettings& settings, std::string_view tenant, const TenantAllowlists* lists,
                          std::string_view topic) {
  if (topic.empty()) return make_error("kafka job without a topic");
  const bool under_prefix = !settings.topic_prefix.empty() && topic.starts_with(settings.topic_prefix);
  if (under_prefix || topic.starts_with("kcron.") || topic.starts_with("__")) {
    return make_error(
        "kafka job may not write '{}': kcron's own topics ({}*, kcron.*) and Kafka's internal topics (__*) are never "
        "a kafka job's target; submit jobs through kcron (the API or the tenant's input topic)",
        shown(topic), settings.topic_prefix);
  }
  if (!settings.kafka_topics.empty() && !contains(settings.kafka_topics, topic)) {
    return make_error("kafka job may not write topic '{}': it is not in this worker's jobs.kafka_topics", shown(topic));
  }
  const std::string name = tenant_name(tenant);
  const bool has_list = lists != nullptr && !lists->kafka_topics.empty();
  if (is_default_tenant(tenant) && !has_list) return Status::success();
  if (!has_list) {
    return make_error(
        "tenant '{}' may not write topic '{}': the tenant has no allowed_kafka_topics (kcron tenant set {} "
        "--kafka-topics {})",
        name, shown(topic), name, shown(topic));
  }
  if (!contains(lists->kafka_topics, topic)) {
    return make_error(
        "tenant '{}' may not write topic '{}': it is not in the tenant's allowed_kafka_topics (kcron tenant set {} "
        "--kafka-topics ...)",
        name, shown(topic), name);
  }
  return Status::success();
}

Status check_exec_for_tenant(const WallSettings& settings, std::string_view tenant, const TenantAllowlists* lists,
                             const v1::ExecTask& task) {
  const std::string name = tenant_name(tenant);
  const bool required = settings.require_allowlists && !is_default_tenant(tenant);
  const bool has_programs = lists != nullptr && !lists->programs.empty();
  const std::string_view program = task.argv().empty() ? std::string_view() : std::string_view(task.argv(0));
  if (has_programs && !contains(lists->programs, program)) {
    return make_error(
        "tenant '{}' may not run program '{}': it is not in the tenant's allowed_programs (kcron tenant set {} "
        "--programs ...)",
        name, shown(program), name);
  }
  if (!has_programs && required) {
    return make_error(
        "tenant '{}' may not run program '{}': the tenant has no allowed_programs and this worker requires one "
        "(tenants.require_allowlists; kcron tenant set {} --programs ...)",
        name, shown(program), name);
  }
  const bool has_env = lists != nullptr && !lists->env_names.empty();
  for (const auto& [env, value] : task.env()) {
    if (has_env && !contains(lists->env_names, env)) {
      return make_error(
          "tenant '{}' may not set environment variable '{}': it is not in the tenant's allowed_env_names (kcron "
          "tenant set {} --env-names ...)",
          name, shown(env), name);
    }
    if (!has_env && required) {
      return make_error(
          "tenant '{}' may not set environment variable '{}': the tenant has no allowed_env_names and this worker "
          "requires one (tenants.require_allowlists; kcron tenant set {} --env-names ...)",
          name, shown(env), name);
    }
  }
  return Status::success();
}

Status check_http_for_tenant(const WallSettings& settings, std::string_view tenant, const TenantAllowlists* lists,
                             std::string_view host, std::uint16_t port) {
  const std::string name = tenant_name(tenant);
  const bool has_list = lists != nullptr && !lists->http_targets.empty();
  if (!has_list) {
    if (!settings.require_allowlists || is_default_tenant(tenant)) return Status::success();
    return make_error(
        "tenant '{}' may not reach {}:{}: the tenant has no allowed_http_targets and this worker requires one "
        "(tenants.require_allowlists; kcron tenant set {} --http-targets ...)",
        name, shown(host), port, name);
  }
  const bool matched = std::any_of(lists->http_targets.begin(), lists->http_targets.end(),
                                   [&](const std::string& rule) { return http_target_matches(rule, host, port); });
  if (!matched) {
    return make_error(
        "tenant '{}' may not reach {}:{}: it matches none of the tenant's allowed_http_targets (kcron tenant set {} "
        "--http-targets ...)",
        name, shown(host), port, name);
  }
  return Status::success();
}

void TenantWalls::update(const std::map<std::string, v1::TenantSettings, std::less<>>& tenants, std::uint64_t generation) {
  if (updated_ && generation == generation_) return;
  auto next = std::make_shared<Map>();
  for (const auto& [name, settings] : tenants)
    next->emplace(name, std::make_shared<const TenantAllowlists>(allowlists_of(settings)));
  std::shared_ptr<const Map> frozen = std::move(next);
  {
    const std::lock_guard lock(mutex_);
    tenants_.swap(frozen);
  }
  generation_ = generation;
  updated_ = true;
}

std::shared_ptr<const TenantAllowlists> TenantWalls::find(std::string_view tenant) const {
  std::shared_ptr<const Map> tenants;
  {
    const std::lock_guard lock(mutex_);
    tenants = tenants_;
  }
  const auto found = tenants->find(tenant.empty() ? kDefaultTenant : tenant);
  return found == tenants->end() ? nullptr : found->second;
}

}  // namespace kcron::worker
