#include "core/tenant_patch.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "kcron/tenant_registry.h"

namespace kcron::api {
namespace {

constexpr double kMaxRate = 1e9;
// 2^53: every whole number up to it is exact in a JSON number (and a double), and a deployment's
// pending-job limit has no use for more.
constexpr std::uint64_t kMaxPendingLimit = std::uint64_t{1} << 53;

// The settings with empty limit messages dropped, so that "no limits" has one encoding and a
// patch that sets nothing compares equal to the settings it started from.
v1::TenantSettings normalized(v1::TenantSettings settings) {
  if (settings.has_limits() && settings.limits().ByteSizeLong() == 0) settings.clear_limits();
  if (settings.has_admin_ceilings() && settings.admin_ceilings().ByteSizeLong() == 0) settings.clear_admin_ceilings();
  return settings;
}

TenantPatchOutcome refuse(int status, std::string field, std::string message) {
  TenantPatchOutcome outcome;
  outcome.status = status;
  outcome.field = std::move(field);
  outcome.message = std::move(message);
  return outcome;
}

// A whole number from 0 to `max`: a JSON number, or a decimal string (protobuf's JSON form of a
// 64-bit integer); null is 0.
std::optional<std::uint64_t> whole_number(const nlohmann::json& value, std::uint64_t max) {
  if (value.is_null()) return 0;
  if (value.is_number_unsigned()) {
    const auto number = value.get<std::uint64_t>();
    return number <= max ? std::optional(number) : std::nullopt;
  }
  if (value.is_number_integer()) return std::nullopt;  // negative
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    std::uint64_t number = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || number > max) return std::nullopt;
    return number;
  }
  return std::nullopt;
}

std::optional<double> rate(const nlohmann::json& value) {
  if (value.is_null()) return 0.0;
  if (!value.is_number()) return std::nullopt;
  const double number = value.get<double>();
  if (!std::isfinite(number) || number < 0 || number > kMaxRate) return std::nullopt;
  return number;
}

// Applies one `limits`-shaped member (limits or admin_ceilings) of the patch to `limits`.
std::optional<TenantPatchOutcome> apply_limits(const nlohmann::json& patch, std::string_view member, v1::TenantLimits& limits) {
  if (patch.is_null()) {
    limits.Clear();
    return std::nullopt;
  }
  if (!patch.is_object()) return refuse(400, std::string(member), "takes an object of limits, or null to clear them");
  for (const auto& [name, value] : patch.items()) {
    const auto field = fmt::format("{}.{}", member, name);
    if (name == "max_pending_jobs") {
      const auto number = whole_number(value, kMaxPendingLimit);
      if (!number) return refuse(400, field, fmt::format("takes a whole number up to {}, 0 for no limit", kMaxPendingLimit));
      limits.set_max_pending_jobs(*number);
    } else if (name == "max_running_jobs") {
      const auto number = whole_number(value, std::numeric_limits<std::uint32_t>::max());
      if (!number) return refuse(400, field, "takes a whole number up to 4294967295, 0 for no limit");
      limits.set_max_running_jobs(static_cast<std::uint32_t>(*number));
    } else if (name == "max_submissions_per_second") {
      const auto number = rate(value);
      if (!number) return refuse(400, field, fmt::format("takes a number from 0 (no limit) to {:.0f}", kMaxRate));
      limits.set_max_submissions_per_second(*number);
    } else {
      return refuse(400, field.substr(0, 80), "unknown limit (max_pending_jobs, max_submissions_per_second, max_running_jobs)");
    }
  }
  return std::nullopt;
}

// An admin may set `limit` to `value` only when its ceiling is set, and only to 1..ceiling.
template <typename T>
std::optional<TenantPatchOutcome> within_ceiling(std::string_view name, T before, T value, T ceiling) {
  if (value == before) return std::nullopt;
  const auto field = fmt::format("limits.{}", name);
  if (ceiling == T{}) {
    return refuse(403, field,
                  "kcron's operators have not let this tenant's admins set this limit (its admin ceiling is 0); ask them");
  }
  if (value == T{} || value > ceiling) {
    return refuse(
        403, field,
        fmt::format("an admin may set it from 1 to {} (the ceiling kcron's operators set); 0 would mean no limit", ceiling));
  }
  return std::nullopt;
}

bool has_control_characters(std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}

}  // namespace

TenantPatchOutcome apply_tenant_patch(const v1::TenantSettings& stored, std::string_view tenant, std::string_view patch,
                                      Role role, std::int64_t now_ms) {
  const v1::TenantSettings current = normalized(stored);
  const auto body = nlohmann::json::parse(patch, nullptr, false);
  if (body.is_discarded()) return refuse(400, "", "the body is not JSON");
  if (!body.is_object()) return refuse(400, "", "the body is a JSON object of the fields to change (a merge patch)");
  v1::TenantSettings next = current;
  for (const auto& [name, value] : body.items()) {
    if (name == "description") {
      if (value.is_null()) {
        next.clear_description();
        continue;
      }
      if (!value.is_string()) return refuse(400, name, "takes a string, or null to clear it");
      const auto& text = value.get_ref<const std::string&>();
      if (text.size() > kMaxTenantDescriptionBytes)
        return refuse(400, name, fmt::format("at most {} bytes", kMaxTenantDescriptionBytes));
      if (has_control_characters(text)) return refuse(400, name, "must not contain control characters");
      next.set_description(text);
    } else if (name == "limits") {
      if (auto refused = apply_limits(value, name, *next.mutable_limits())) return std::move(*refused);
    } else if (name == "admin_ceilings") {
      if (auto refused = apply_limits(value, name, *next.mutable_admin_ceilings())) return std::move(*refused);
    } else if (name == "allowed_queues") {
      next.clear_allowed_queues();
      if (value.is_null()) continue;
      if (!value.is_array()) return refuse(400, name, "takes a list of queue names ([] or null: every queue)");
      for (const auto& queue : value) {
        if (!queue.is_string() || queue.get_ref<const std::string&>().empty() ||
            queue.get_ref<const std::string&>().size() > 200 || has_control_characters(queue.get_ref<const std::string&>())) {
          return refuse(400, name, "each queue is a non-empty name of at most 200 characters");
        }
        next.add_allowed_queues(queue.get<std::string>());
      }
    } else if (name == "allowed_kafka_topics" || name == "allowed_programs" || name == "allowed_env_names" ||
               name == "allowed_http_targets") {
      // What a tenant may run is never changed with a token, not even system's: only on kcron.tenants.
      return refuse(403, name, "what a tenant may run is set by kcron's operators on kcron.tenants (kcron tenant set)");
    } else if (name == "name" || name == "created_ms" || name == "updated_ms") {
      return refuse(400, name, "kcron sets it; leave it out");
    } else {
      return refuse(400, name.substr(0, 80), "unknown field (description, limits, allowed_queues, admin_ceilings)");
    }
  }

  next = normalized(std::move(next));
  // Who may change what, from what actually changes: a patch that restates a value is no change.
  if (role < Role::kAdmin) return refuse(403, "", "changing tenant settings needs the admin role");
  const bool changed = next.SerializeAsString() != current.SerializeAsString();
  if (role < Role::kSystem && changed && current.name().empty()) {
    // A tenant without a record: kcron's operators create it (kcron tenant create, or system here),
    // so an admin cannot bring back the record of a tenant they deleted.
    return refuse(403, "", "this tenant has no settings record yet; kcron's operators create it (kcron tenant create)");
  }
  if (role < Role::kSystem) {
    if (next.allowed_queues().size() != current.allowed_queues().size() ||
        !std::equal(next.allowed_queues().begin(), next.allowed_queues().end(), current.allowed_queues().begin())) {
      return refuse(403, "allowed_queues", "which queues a tenant may use is set by kcron's operators (system scope)");
    }
    if (next.admin_ceilings().SerializeAsString() != current.admin_ceilings().SerializeAsString()) {
      return refuse(403, "admin_ceilings", "the admin ceilings are set by kcron's operators (system scope)");
    }
    const auto& ceilings = current.admin_ceilings();
    const auto& before = current.limits();
    const auto& after = next.limits();
    if (auto refused = within_ceiling("max_pending_jobs", before.max_pending_jobs(), after.max_pending_jobs(),
                                      ceilings.max_pending_jobs())) {
      return std::move(*refused);
    }
    if (auto refused = within_ceiling("max_submissions_per_second", before.max_submissions_per_second(),
                                      after.max_submissions_per_second(), ceilings.max_submissions_per_second())) {
      return std::move(*refused);
    }
    if (auto refused = within_ceiling("max_running_jobs", before.max_running_jobs(), after.max_running_jobs(),
                                      ceilings.max_running_jobs())) {
      return std::move(*refused);
    }
  }

  next.set_name(std::string(tenant));
  if (auto valid = validate_tenant_settings(tenant, next); !valid) return refuse(400, "", valid.error().message());
  TenantPatchOutcome outcome;
  outcome.status = 200;
  outcome.changed = changed;
  if (outcome.changed) {
    if (next.created_ms() == 0) next.set_created_ms(now_ms);
    next.set_updated_ms(now_ms);
  }
  outcome.settings = std::move(next);
  return outcome;
}

}  // namespace kcron::api
