// Secrets by reference (docs/tenancy.md#secrets-by-reference): a job names a secret as the whole
// value `secret:NAME` of an exec env variable, of an http header, or of an http URL's query
// parameter (`?token=secret:NAME`); the worker puts the value in at run time, from the tenant's
// secrets (SecretResolver: a file <secrets.dir>/<tenant>/<NAME>, secrets/secret_dir.h). The job on
// the topics keeps the reference; the value is never in a result, error, log or dead letter:
// Redactor takes it out of what the job's run produced. Pure: the resolver is an interface.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron::worker {

inline constexpr std::string_view kSecretPrefix = "secret:";
inline constexpr std::size_t kMaxSecretNameBytes = 128;
inline constexpr std::size_t kMaxSecretBytes = std::size_t{64} * 1024;

// 1-128 of [A-Za-z0-9_.-], not "." or ".." and holding no "..".
bool is_valid_secret_name(std::string_view name);

// The NAME of a value that is a reference (starts with "secret:"); nullopt for any other value.
// An error when it is one but NAME is not a valid name (the message shows no more than the name's
// length: it may be a mistyped value).
Result<std::optional<std::string>> secret_reference(std::string_view value);

// Where secrets come from: the value of `name` for `tenant` ("default" for the default tenant),
// or an error naming the secret and the tenant only ("secret 'db-pass' of tenant 'acme' not
// found"), never the value. Thread-safe.
class SecretResolver {
 public:
  virtual ~SecretResolver() = default;
  virtual Result<std::string> resolve(std::string_view tenant, std::string_view name) const = 0;
};

// The values a job's secrets resolved to, and their names: apply() replaces every occurrence of a
// value (longest first, and its percent-encoded form when it went into a URL) with
// `[secret:NAME]`.
class Redactor {
 public:
  void add(std::string_view name, std::string value);
  bool empty() const { return secrets_.empty(); }
  std::string apply(std::string_view text) const;

 private:
  struct Secret {
    std::string name;
    std::string value;
  };
  std::vector<Secret> secrets_;
};

// A job's secrets resolved: the job to run (references replaced by values; never published) and
// the redactor for what the run produces.
struct ResolvedJob {
  v1::Job job;
  Redactor redactor;
};

// Whether a job refers to any secret (exec env values, http header values, http URL query values).
bool has_secret_references(const v1::Job& job);

// Replaces every reference in an exec job's env values, an http job's header values and URL
// query values (percent-encoded there: every byte but A-Z a-z 0-9 - . _ ~). `resolver` null:
// secrets are off on this worker (secrets.dir empty), and a job with a reference fails saying so.
// A secret value holding NUL (env) or a control character (header) is refused, naming the secret.
// Errors are final: the same job cannot resolve differently until the operator acts.
Result<ResolvedJob> resolve_secrets(const v1::Job& job, const SecretResolver* resolver);

// The http URL's query values that are references: (start, length) of each `secret:NAME` value
// and its name, in order. For tests and for resolve_secrets.
struct UrlReference {
  std::size_t offset = 0;
  std::size_t length = 0;
  std::string name;
};
Result<std::vector<UrlReference>> url_secret_references(std::string_view url);

// Percent-encodes every byte but the URL's unreserved characters.
std::string percent_encode(std::string_view value);

}  // namespace kcron::worker
