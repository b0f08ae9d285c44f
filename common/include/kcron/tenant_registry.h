// The tenant registry as one program sees it: the compacted kcron.tenants topic (keyed by tenant
// name, a TenantSettings value, a tombstone deletes) folded into a map of tenant -> settings, with
// the per-partition shares of the limits the dispatcher enforces (docs/tenancy.md#limits). Fed by
// the tenant follower (tenant_follower.h) on the thread that owns it; pure, not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron {

// Settings a tenant may be given: a valid name (the key's), limits that are finite and not
// negative, allowed queues that are non-empty names. The message says which field is wrong.
Status validate_tenant_settings(std::string_view tenant, const v1::TenantSettings& settings);

// What a tenant may run (docs/tenancy.md#what-a-tenant-may-run), part of validate_tenant_settings:
// at most kMaxAllowlistEntries per list; allowed_kafka_topics valid topic names, none under
// `kcron.` or `__`; allowed_programs absolute paths; allowed_env_names [A-Za-z_][A-Za-z0-9_]*;
// allowed_http_targets rules as validate_http_target_rule takes them.
Status validate_tenant_allowlists(std::string_view tenant, const v1::TenantSettings& settings);
inline constexpr std::size_t kMaxAllowlistEntries = 256;
inline constexpr std::size_t kMaxProgramPathBytes = 1024;
bool is_valid_kafka_topic_name(std::string_view name);  // 1-249 of [A-Za-z0-9._-], not "." or ".."
bool is_valid_env_name(std::string_view name);          // [A-Za-z_][A-Za-z0-9_]*, at most 128

// An http target rule: `host` (exact, lower case), `*.suffix` (any host ending in `.suffix`, not
// `suffix` itself), an IPv4 address or `[IPv6]`, each optionally with `:port` (then only that port;
// without, any port). No scheme, path or user part.
Status validate_http_target_rule(std::string_view rule);
// Whether a URL's host (lower case, no brackets, no trailing dot) and port (explicit or the
// scheme's default) match `rule`; an invalid rule matches nothing.
bool http_target_matches(std::string_view rule, std::string_view host, std::uint16_t port);

class TenantRegistry {
 public:
  // One record of kcron.tenants. A value that does not decode or validate is refused with the
  // reason (the previous settings of that tenant stay); a tombstone forgets the tenant.
  Status apply(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone);
  // Sets or deletes directly (tests, and the CLI's view of what it read).
  void put(const v1::TenantSettings& settings);
  void erase(std::string_view tenant);

  // The settings of `tenant` ("default" or a name; an empty name is "default"); null: none.
  const v1::TenantSettings* find(std::string_view tenant) const;
  const std::map<std::string, v1::TenantSettings, std::less<>>& all() const { return tenants_; }
  // Changes with every applied record: a reader caches what it derived until this moves.
  std::uint64_t generation() const { return generation_; }

 private:
  std::map<std::string, v1::TenantSettings, std::less<>> tenants_;
  std::uint64_t generation_ = 0;
};

// A limit over the whole deployment, split over the `partitions` that enforce it: each holds
// ceil(limit * 1.25 / partitions), at least 1, so a tenant whose ids spread evenly can reach its
// limit before any partition refuses, and can exceed it by at most a quarter (docs/tenancy.md).
// 0 (no limit) stays 0.
std::uint64_t partition_share(std::uint64_t limit, std::int32_t partitions);
double partition_rate_share(double per_second, std::int32_t partitions);

}  // namespace kcron
