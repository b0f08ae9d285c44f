// The pure half of `kcron tenant`: options applied to a tenant's settings, the `list` table and
// the `get` description, and which schedules a `delete` tombstones. No Kafka; the command itself
// (tenant_command.h) reads and writes the topics.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "inspect_command.h"
#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron::cli {

// What `tenant create` and `tenant set` were given; an absent field is left as it was.
struct TenantEdit {
  std::optional<std::uint64_t> max_pending_jobs;
  std::optional<double> max_submissions_per_second;
  std::optional<std::uint32_t> max_running_jobs;
  std::optional<std::vector<std::string>> allowed_queues;  // empty: every queue of the deployment
  std::optional<std::string> description;
  // How far the tenant's own admins may set each limit through kcron-api (0: only the operators).
  std::optional<std::uint64_t> admin_max_pending_jobs;
  std::optional<double> admin_max_submissions_per_second;
  std::optional<std::uint32_t> admin_max_running_jobs;
  // What the tenant's jobs may run (docs/tenancy.md#what-a-tenant-may-run); operators only, so
  // tenant_patch_body never carries them. Empty: cleared.
  std::optional<std::vector<std::string>> allowed_kafka_topics;
  std::optional<std::vector<std::string>> allowed_programs;
  std::optional<std::vector<std::string>> allowed_env_names;
  std::optional<std::vector<std::string>> allowed_http_targets;
  // Whether any of those four is set (kcron-api cannot change them).
  bool sets_allowlists() const { return allowed_kafka_topics || allowed_programs || allowed_env_names || allowed_http_targets; }
};

// The edit as kcron-api's PATCH /v1/tenant body: a JSON merge patch naming only what was given
// (the server decides what the caller's role may change).
std::string tenant_patch_body(const TenantEdit& edit);

// `--queues a,b` as a list: names trimmed of spaces; "" (or only spaces) is the empty list, every
// queue. An empty name between commas is an error.
Result<std::vector<std::string>> parse_queue_list(std::string_view text);
// The same for another list option (`option` names it in the error, e.g. "--programs").
Result<std::vector<std::string>> parse_name_list(std::string_view option, std::string_view text);

// `settings` named `name` with `edit` applied, updated_ms = now_ms, and created_ms = now_ms when
// it had none (a new tenant).
v1::TenantSettings apply_edit(v1::TenantSettings settings, std::string_view name, const TenantEdit& edit, std::int64_t now_ms);

// `tenant list`: a header line and one line per tenant in name order; a limit of 0 (none) shows as
// "-", no allowed queues as "all".
std::string tenant_table(const std::map<std::string, v1::TenantSettings, std::less<>>& tenants);
// `tenant get`: one "field: value" line each, limits of 0 as "none", times as RFC 3339 UTC.
std::string describe_tenant(const v1::TenantSettings& settings);

// A record key on the partition it lives on (a tombstone must go to the same partition).
struct KeyOnPartition {
  std::int32_t partition = 0;
  std::string key;
  bool operator==(const KeyOnPartition&) const = default;
};

// The schedules of `tenant` still in force on kcron.schedules, from its records (oldest first per
// partition, as read_to_end returns them): per key whose tenant (split_scoped_key) is `tenant`,
// the latest record, unless it is a tombstone. In key order.
std::vector<KeyOnPartition> live_schedules_of(const std::vector<Read>& records, std::string_view tenant);
// The schedules in force under a default-tenant key whose body names `tenant` (written by the
// release before tenants, docs/tenancy.md): `delete` leaves them and says so. In key order.
std::vector<std::string> bare_schedules_naming(const std::vector<Read>& records, std::string_view tenant);

}  // namespace kcron::cli
