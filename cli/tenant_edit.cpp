#include "tenant_edit.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "kcron/codec.h"
#include "kcron/tenant.h"
#include "text.h"

namespace kcron::cli {
namespace {

std::string_view trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

std::string queues_of(const v1::TenantSettings& settings, std::string_view none) {
  if (settings.allowed_queues().empty()) return std::string(none);
  return fmt::format("{}", fmt::join(settings.allowed_queues(), ","));
}

}  // namespace

Result<std::vector<std::string>> parse_queue_list(std::string_view text) {
  std::vector<std::string> queues;
  if (trimmed(text).empty()) return queues;
  for (std::string_view rest = text;;) {
    const auto comma = rest.find(',');
    const auto name = trimmed(rest.substr(0, comma));
    if (name.empty())
      return make_error("--queues: an empty queue name in '{}' (give names like a,b, or '' for every queue)", text);
    queues.emplace_back(name);
    if (comma == std::string_view::npos) return queues;
    rest.remove_prefix(comma + 1);
  }
}

Result<std::vector<std::string>> parse_name_list(std::string_view option, std::string_view text) {
  std::vector<std::string> names;
  if (trimmed(text).empty()) return names;
  for (std::string_view rest = text;;) {
    const auto comma = rest.find(',');
    const auto name = trimmed(rest.substr(0, comma));
    if (name.empty()) return make_error("{}: an empty entry in '{}' (give a,b, or '' to clear the list)", option, text);
    names.emplace_back(name);
    if (comma == std::string_view::npos) return names;
    rest.remove_prefix(comma + 1);
  }
}

v1::TenantSettings apply_edit(v1::TenantSettings settings, std::string_view name, const TenantEdit& edit, std::int64_t now_ms) {
  settings.set_name(std::string(name));
  auto& limits = *settings.mutable_limits();
  if (edit.max_pending_jobs) limits.set_max_pending_jobs(*edit.max_pending_jobs);
  if (edit.max_submissions_per_second) limits.set_max_submissions_per_second(*edit.max_submissions_per_second);
  if (edit.max_running_jobs) limits.set_max_running_jobs(*edit.max_running_jobs);
  if (edit.allowed_queues) {
    settings.clear_allowed_queues();
    for (const auto& queue : *edit.allowed_queues) settings.add_allowed_queues(queue);
  }
  if (edit.description) settings.set_description(*edit.description);
  const auto replace = [](const std::optional<std::vector<std::string>>& given, auto* field) {
    if (!given) return;
    field->Clear();
    for (const auto& entry : *given) field->Add(std::string(entry));
  };
  replace(edit.allowed_kafka_topics, settings.mutable_allowed_kafka_topics());
  replace(edit.allowed_programs, settings.mutable_allowed_programs());
  replace(edit.allowed_env_names, settings.mutable_allowed_env_names());
  replace(edit.allowed_http_targets, settings.mutable_allowed_http_targets());
  if (edit.admin_max_pending_jobs) settings.mutable_admin_ceilings()->set_max_pending_jobs(*edit.admin_max_pending_jobs);
  if (edit.admin_max_submissions_per_second)
    settings.mutable_admin_ceilings()->set_max_submissions_per_second(*edit.admin_max_submissions_per_second);
  if (edit.admin_max_running_jobs) settings.mutable_admin_ceilings()->set_max_running_jobs(*edit.admin_max_running_jobs);
  if (settings.created_ms() == 0) settings.set_created_ms(now_ms);
  settings.set_updated_ms(now_ms);
  return settings;
}

std::string tenant_table(const std::map<std::string, v1::TenantSettings, std::less<>>& tenants) {
  constexpr auto kRow = "{:<40} {:>12} {:>10} {:>11}  {:<20} {}\n";
  std::string out = fmt::format(kRow, "TENANT", "MAX PENDING", "MAX RATE/S", "MAX RUNNING", "QUEUES", "DESCRIPTION");
  for (const auto& [name, settings] : tenants) {
    const auto& limits = settings.limits();
    out += fmt::format(kRow, name, limits.max_pending_jobs() == 0 ? "-" : std::to_string(limits.max_pending_jobs()),
                       limits.max_submissions_per_second() == 0 ? "-" : fmt::format("{:g}", limits.max_submissions_per_second()),
                       limits.max_running_jobs() == 0 ? "-" : std::to_string(limits.max_running_jobs()),
                       queues_of(settings, "all"), one_line(settings.description(), 60));
  }
  return out;
}

namespace {

// "admin may set: ..." when the operators set any admin ceiling; nothing otherwise.
std::string ceilings_line(const v1::TenantSettings& settings) {
  const auto& ceilings = settings.admin_ceilings();
  if (ceilings.max_pending_jobs() == 0 && ceilings.max_submissions_per_second() == 0 && ceilings.max_running_jobs() == 0)
    return {};
  const auto ceiling = [](auto value) { return value == 0 ? std::string("-") : fmt::format("{}", value); };
  return fmt::format("admin may set up to: max pending {}, max rate {}/s, max running {}\n", ceiling(ceilings.max_pending_jobs()),
                     ceiling(ceilings.max_submissions_per_second()), ceiling(ceilings.max_running_jobs()));
}

std::string list_or(const google::protobuf::RepeatedPtrField<std::string>& list, std::string_view none) {
  if (list.empty()) return std::string(none);
  return fmt::format("{}", fmt::join(list, ","));
}

// What the tenant's jobs may run; an empty list says what applies instead.
std::string allowlist_lines(const v1::TenantSettings& settings) {
  const bool is_default = is_default_tenant(settings.name());
  return fmt::format(
      "kafka topics: {}\n"
      "programs: {}\n"
      "env names: {}\n"
      "http targets: {}\n",
      list_or(settings.allowed_kafka_topics(), is_default ? "any the workers allow (jobs.kafka_topics)" : "none"),
      list_or(settings.allowed_programs(), "the workers' exec.programs"),
      list_or(settings.allowed_env_names(), "the workers' exec.env"),
      list_or(settings.allowed_http_targets(), "any the workers' http rules allow"));
}

}  // namespace

std::string describe_tenant(const v1::TenantSettings& settings) {
  const auto& limits = settings.limits();
  const auto limit = [](auto value) { return value == 0 ? std::string("none") : fmt::format("{}", value); };
  return fmt::format(
      "tenant: {}\n"
      "description: {}\n"
      "max pending jobs: {}\n"
      "max submissions per second: {}\n"
      "max running jobs per worker: {}\n"
      "allowed queues: {}\n"
      "{}"
      "{}"
      "kafka output topic: {}\n"
      "sealing keys: {}\n"
      "created: {}\n"
      "updated: {}\n",
      settings.name(), one_line(settings.description(), 200), limit(limits.max_pending_jobs()),
      limits.max_submissions_per_second() == 0 ? std::string("none") : fmt::format("{:g}", limits.max_submissions_per_second()),
      limit(limits.max_running_jobs()), queues_of(settings, "all (every queue of the deployment)"), ceilings_line(settings),
      allowlist_lines(settings), settings.kafka_output() ? "on (<prefix>out." + settings.name() + ")" : std::string("off"),
      settings.sealing_keys().empty() ? std::string("none")
                                      : fmt::format("{} (newest version {})", settings.sealing_keys().size(),
                                                    settings.sealing_keys(settings.sealing_keys_size() - 1).version()),
      rfc3339_ms(settings.created_ms()), rfc3339_ms(settings.updated_ms()));
}

std::string tenant_patch_body(const TenantEdit& edit) {
  nlohmann::json patch = nlohmann::json::object();
  if (edit.description) patch["description"] = *edit.description;
  if (edit.allowed_queues) patch["allowed_queues"] = *edit.allowed_queues;
  if (edit.max_pending_jobs) patch["limits"]["max_pending_jobs"] = *edit.max_pending_jobs;
  if (edit.max_submissions_per_second) patch["limits"]["max_submissions_per_second"] = *edit.max_submissions_per_second;
  if (edit.max_running_jobs) patch["limits"]["max_running_jobs"] = *edit.max_running_jobs;
  if (edit.admin_max_pending_jobs) patch["admin_ceilings"]["max_pending_jobs"] = *edit.admin_max_pending_jobs;
  if (edit.admin_max_submissions_per_second)
    patch["admin_ceilings"]["max_submissions_per_second"] = *edit.admin_max_submissions_per_second;
  if (edit.admin_max_running_jobs) patch["admin_ceilings"]["max_running_jobs"] = *edit.admin_max_running_jobs;
  return patch.dump();
}

std::vector<KeyOnPartition> live_schedules_of(const std::vector<Read>& records, std::string_view tenant) {
  std::map<std::string, const Read*> latest;
  for (const auto& record : records) {
    if (record.key.empty() || split_scoped_key(record.key).tenant != tenant) continue;
    latest[record.key] = &record;
  }
  std::vector<KeyOnPartition> live;
  for (const auto& [key, record] : latest) {
    if (!record->tombstone && !record->value.empty()) live.push_back({record->partition, key});
  }
  return live;
}

std::vector<std::string> bare_schedules_naming(const std::vector<Read>& records, std::string_view tenant) {
  std::map<std::string, const Read*> latest;
  for (const auto& record : records) {
    if (!record.key.empty() && is_default_tenant(split_scoped_key(record.key).tenant)) latest[record.key] = &record;
  }
  std::vector<std::string> keys;
  for (const auto& [key, record] : latest) {
    v1::Schedule schedule;
    if (record->tombstone || record->value.empty() || !decode_message(record->value, record->content_type, schedule)) continue;
    if (schedule.tenant() == tenant) keys.push_back(key);
  }
  return keys;
}

}  // namespace kcron::cli
