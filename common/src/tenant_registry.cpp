#include "kcron/tenant_registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "kcron/codec.h"
#include "kcron/tenant.h"

namespace kcron {
namespace {

constexpr double kShareSlack = 1.25;
constexpr double kMaxRate = 1e9;

}  // namespace

Status validate_tenant_settings(std::string_view tenant, const v1::TenantSettings& settings) {
  if (auto valid = validate_tenant_name(tenant); !valid) return valid;
  if (!settings.name().empty() && settings.name() != tenant) {
    return make_error("tenant settings name '{}' differ from the record key '{}'", settings.name(), tenant);
  }
  const double rate = settings.limits().max_submissions_per_second();
  if (!std::isfinite(rate) || rate < 0 || rate > kMaxRate) {
    return make_error("tenant '{}': max_submissions_per_second {} is not a number from 0 to {}", tenant, rate, kMaxRate);
  }
  const double ceiling = settings.admin_ceilings().max_submissions_per_second();
  if (!std::isfinite(ceiling) || ceiling < 0 || ceiling > kMaxRate) {
    return make_error("tenant '{}': admin_ceilings.max_submissions_per_second {} is not a number from 0 to {}", tenant, ceiling,
                      kMaxRate);
  }
  for (const auto& queue : settings.allowed_queues()) {
    if (queue.empty()) return make_error("tenant '{}': an allowed queue name is empty", tenant);
  }
  return validate_tenant_allowlists(tenant, settings);
}

Status validate_tenant_allowlists(std::string_view tenant, const v1::TenantSettings& settings) {
  const auto too_many = [&](std::string_view field, int count) {
    return make_error("tenant '{}': {} has {} entries, at most {}", tenant, field, count, kMaxAllowlistEntries);
  };
  // Entries are echoed in messages only when they are short and printable.
  const auto shown = [](std::string_view entry) {
    const bool printable = entry.size() <= 80 && std::all_of(entry.begin(), entry.end(), [](char c) {
                             return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
                           });
    return printable ? fmt::format("'{}'", entry) : fmt::format("an entry of {} bytes", entry.size());
  };
  if (settings.allowed_kafka_topics_size() > static_cast<int>(kMaxAllowlistEntries))
    return too_many("allowed_kafka_topics", settings.allowed_kafka_topics_size());
  for (const auto& topic : settings.allowed_kafka_topics()) {
    if (!is_valid_kafka_topic_name(topic)) {
      return make_error("tenant '{}': allowed_kafka_topics: {} is not a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-')",
                        tenant, shown(topic));
    }
    if (topic.starts_with("kcron.") || topic.starts_with("__")) {
      return make_error(
          "tenant '{}': allowed_kafka_topics: '{}' is an internal topic (kcron.* or __*); kafka jobs never write those", tenant,
          topic);
    }
  }
  if (settings.allowed_programs_size() > static_cast<int>(kMaxAllowlistEntries))
    return too_many("allowed_programs", settings.allowed_programs_size());
  for (const auto& program : settings.allowed_programs()) {
    const bool clean = std::none_of(program.begin(), program.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (!program.starts_with('/') || program.size() > kMaxProgramPathBytes || !clean) {
      return make_error("tenant '{}': allowed_programs: {} is not an absolute path (at most {} bytes, no control characters)",
                        tenant, shown(program), kMaxProgramPathBytes);
    }
  }
  if (settings.allowed_env_names_size() > static_cast<int>(kMaxAllowlistEntries))
    return too_many("allowed_env_names", settings.allowed_env_names_size());
  for (const auto& name : settings.allowed_env_names()) {
    if (!is_valid_env_name(name)) {
      return make_error(
          "tenant '{}': allowed_env_names: {} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)", tenant,
          shown(name));
    }
  }
  if (settings.allowed_http_targets_size() > static_cast<int>(kMaxAllowlistEntries))
    return too_many("allowed_http_targets", settings.allowed_http_targets_size());
  for (const auto& rule : settings.allowed_http_targets()) {
    if (auto valid = validate_http_target_rule(rule); !valid) {
      return make_error("tenant '{}': allowed_http_targets: {}: {}", tenant, shown(rule), valid.error().message());
    }
  }
  return Status::success();
}

bool is_valid_kafka_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

bool is_valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || (name.front() >= '0' && name.front() <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

namespace {

struct HttpTargetRule {
  bool wildcard = false;   // `*.suffix`: hosts ending in `.suffix`
  std::string_view host;   // lower case, without brackets
  std::uint16_t port = 0;  // 0: any port
};

Result<HttpTargetRule> parse_http_target_rule(std::string_view rule) {
  HttpTargetRule parsed;
  if (rule.empty() || rule.size() > 255) return make_error("a target is 1-255 characters");
  if (rule.starts_with("*.")) {
    parsed.wildcard = true;
    rule.remove_prefix(2);
  }
  std::string_view port_text;
  if (rule.starts_with('[')) {
    if (parsed.wildcard) return make_error("'*.' goes with host names, not addresses");
    const auto close = rule.find(']');
    if (close == std::string_view::npos) return make_error("'[' without ']'");
    parsed.host = rule.substr(1, close - 1);
    const auto rest = rule.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return make_error("only ':port' may follow ']'");
    if (!rest.empty()) port_text = rest.substr(1);
    if (parsed.host.empty() || !std::all_of(parsed.host.begin(), parsed.host.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.';
        })) {
      return make_error("an IPv6 address in brackets holds 0-9, a-f, ':' and '.' (lower case)");
    }
  } else {
    const auto colon = rule.find(':');
    parsed.host = rule.substr(0, colon);
    if (colon != std::string_view::npos) port_text = rule.substr(colon + 1);
    if (parsed.host.empty() || parsed.host.front() == '.' || parsed.host.back() == '.' ||
        parsed.host.find("..") != std::string_view::npos || !std::all_of(parsed.host.begin(), parsed.host.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        })) {
      return make_error(
          "write a host name in lower case (a-z, 0-9, '-', '.'), '*.suffix', an IPv4 address or [IPv6], optionally with ':port' "
          "(no scheme, path or user)");
    }
  }
  if (port_text.data() != nullptr) {
    unsigned value = 0;
    const auto [end, code] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (port_text.empty() || code != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535) {
      return make_error("the port is a number from 1 to 65535");
    }
    parsed.port = static_cast<std::uint16_t>(value);
  }
  return parsed;
}

}  // namespace

Status validate_http_target_rule(std::string_view rule) {
  auto parsed = parse_http_target_rule(rule);
  if (!parsed) return parsed.error();
  return Status::success();
}

bool http_target_matches(std::string_view rule, std::string_view host, std::uint16_t port) {
  auto parsed = parse_http_target_rule(rule);
  if (!parsed) return false;
  if (parsed->port != 0 && parsed->port != port) return false;
  if (!parsed->wildcard) return host == parsed->host;
  return host.size() > parsed->host.size() + 1 && host.ends_with(parsed->host) &&
         host[host.size() - parsed->host.size() - 1] == '.';
}

Status TenantRegistry::apply(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone) {
  if (tombstone) {
    erase(key);
    return Status::success();
  }
  v1::TenantSettings settings;
  if (auto decoded = decode_message(value, content_type, settings); !decoded) {
    return decoded.error().within(fmt::format("tenant record '{}'", key));
  }
  if (auto valid = validate_tenant_settings(key, settings); !valid) return valid;
  settings.set_name(std::string(key));
  put(settings);
  return Status::success();
}

void TenantRegistry::put(const v1::TenantSettings& settings) {
  tenants_[settings.name()] = settings;
  ++generation_;
}

void TenantRegistry::erase(std::string_view tenant) {
  if (auto found = tenants_.find(tenant); found != tenants_.end()) tenants_.erase(found);
  ++generation_;
}

const v1::TenantSettings* TenantRegistry::find(std::string_view tenant) const {
  const auto found = tenants_.find(tenant.empty() ? kDefaultTenant : tenant);
  return found == tenants_.end() ? nullptr : &found->second;
}

std::uint64_t partition_share(std::uint64_t limit, std::int32_t partitions) {
  if (limit == 0) return 0;
  const double share = std::ceil(static_cast<double>(limit) * kShareSlack / std::max(1, partitions));
  // A limit near 2^64 has a share past what uint64 holds: no practical limit, kept defined.
  if (share >= 18446744073709549568.0) return std::numeric_limits<std::uint64_t>::max();
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(share));
}

double partition_rate_share(double per_second, std::int32_t partitions) {
  if (per_second <= 0) return 0;
  return per_second * kShareSlack / std::max(1, partitions);
}

}  // namespace kcron
