// The file edge of secrets by reference (core/secret_refs.h): the value of secret NAME of a tenant
// is the file <secrets.dir>/<tenant>/<NAME> ("default" for the default tenant), read when a job
// runs, so a rotated file applies to the next run without a restart. The tenant's directory and
// the file are opened with O_NOFOLLOW (a symbolic link is refused, so nothing outside the
// directory can be read through one), the file must be a regular file of at most 64 KiB, and one
// trailing newline ("\n" or "\r\n") is stripped. Errors name the secret and the tenant, never the
// value.
#pragma once

#include <string>
#include <string_view>

#include "core/secret_refs.h"
#include "kcron/config.h"

namespace kcron::worker {

class SecretDirectory final : public SecretResolver {
 public:
  explicit SecretDirectory(std::string directory) : directory_(std::move(directory)) {}
  Result<std::string> resolve(std::string_view tenant, std::string_view name) const override;

 private:
  std::string directory_;
};

}  // namespace kcron::worker
