// Sealed tasks (docs/security.md#sealed-payloads): a job's task and payload under AES-256-GCM with
// its tenant's data key, so that only a worker opens them: the dispatcher schedules a sealed job
// without reading it, and the topics, the changelog and the dispatcher's RocksDB hold ciphertext.
//
// Keys: each tenant has data keys (32 random bytes, versioned), kept in its registry record wrapped
// by the deployment's master key (a file of 64 hex digits, readable by the workers and the
// operators' CLI only). The newest version seals; every version opens, so rotation never strands a
// payload. Associated data binds the tenant and the origin, so a ciphertext moved elsewhere fails:
//   data key:   "kcron-data-key/v1" NUL tenant NUL version
//   sealed task: "kcron-sealed/v1" NUL tenant NUL origin kind NUL origin id
// with origin ("job", the job id) for a job sealed on its own and ("schedule", the schedule id) for
// a schedule's job template, whose runs the cron-producer mints. Errors never quote a task.
// OpenSSL's EVP (no Kafka, no I/O besides read_master_key).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron {

inline constexpr std::size_t kSealingKeyBytes = 32;

// The master key from a file: 64 hex digits (whitespace around them ignored). The error names the
// file, never its content.
Result<std::string> read_master_key(const std::string& path);
// 64 hex digits of a new random key (`kcron sealing init-master-key` writes a master key file).
std::string new_key_hex();

// A new data key for `tenant`, version `version`, wrapped by `master_key`; `data_key` gets the
// plain key when not null.
Result<v1::SealingKey> new_sealing_key(std::string_view master_key, std::string_view tenant, std::uint32_t version,
                                       std::int64_t now_ms, std::string* data_key = nullptr);
Result<std::string> unwrap_sealing_key(std::string_view master_key, std::string_view tenant, const v1::SealingKey& key);

// One tenant's plain data keys by version.
struct Keyring {
  std::string tenant;  // "default" or a name
  std::map<std::uint32_t, std::string> keys;
  std::uint32_t newest() const { return keys.empty() ? 0 : keys.rbegin()->first; }
};
// Every key of a tenant's settings, unwrapped.
Result<Keyring> keyring_of(std::string_view master_key, std::string_view tenant, const v1::TenantSettings& settings);

struct SealingOrigin {
  std::string kind;  // "job" or "schedule"
  std::string id;
};
// The origin a worker checks a job's sealed task against: its schedule when it is a schedule's
// run, else the job itself.
SealingOrigin sealing_origin_of(const v1::Job& job);

// Seals `job`'s task and payload in place (the job then holds `sealed` and no payload) with the
// keyring's newest key. Refused: no key, a job already sealed, no task, a kafka task (its record
// is produced from the job with the result, which must stay readable).
Status seal_job(v1::Job& job, const Keyring& keyring, const SealingOrigin& origin);
// Opens a sealed job in place (task and payload restored). The errors say which part failed (no
// such key version, a ciphertext that does not authenticate: altered, or moved from another job,
// schedule or tenant), never the content.
Status open_job(v1::Job& job, const Keyring& keyring, const SealingOrigin& origin);

// Every string of an opened job's task and payload a result must not repeat (argv, env values,
// the URL, header values, bodies, handler arguments, the payload), longest first; shorter than
// `minimum` bytes left out (they would blank ordinary words).
std::vector<std::string> sealed_strings(const v1::Job& opened, std::size_t minimum = 4);
// `text` with every occurrence of `secrets` replaced by "[sealed]".
std::string redact(std::string text, const std::vector<std::string>& secrets);

}  // namespace kcron
