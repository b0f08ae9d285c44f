#include "sealing_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>

#include "kcron/clock.h"
#include "kcron/tenant.h"
#include "kcron/upgrade_gate.h"
#include "tenant_command.h"
#include "upgrade_check.h"

namespace kcron::cli {
namespace {

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

std::string to_hex(std::string_view bytes) {
  std::string hex;
  for (const auto byte : bytes) hex += fmt::format("{:02x}", static_cast<unsigned char>(byte));
  return hex;
}

}  // namespace

SealingCommands::SealingCommands(CLI::App& app) {
  auto* sealing = app.add_subcommand("sealing", "sealed tasks: the master key and each tenant's data keys (docs/security.md)");
  sealing->require_subcommand(1);
  init_ = sealing->add_subcommand("init-master-key", "write a new master key (64 hex digits) to FILE, which must not exist");
  init_->add_option("file", file_)->required();
  add_ =
      sealing->add_subcommand("add-key", "give TENANT a new data key (its first, or the next version: old payloads still open)");
  export_ = sealing->add_subcommand("export-key",
                                    "print TENANT's newest data key (hex) and version, for the tenant's own sealing client");
  for (auto* command : {add_, export_}) {
    command->add_option("tenant", tenant_, "tenant name ('default' for the default tenant)")->required();
    command->add_option("--master-key", master_key_file_, "the master key file")
        ->required()
        ->envname("KCRON_SEALING_MASTER_KEY_FILE");
  }
}

bool SealingCommands::parsed() const {
  return init_->parsed() || add_->parsed() || export_->parsed();
}

int SealingCommands::run(const Config& config, std::ostream& out, std::ostream& err) const {
  if (init_->parsed()) {
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fail(err, fmt::format("cannot create {}: {}", file_, std::strerror(errno)));
    const auto text = new_key_hex() + "\n";
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!written) return fail(err, fmt::format("cannot write {}", file_));
    out << "wrote a new sealing master key to " << file_ << " (keep it where only the workers and the operators read it)\n";
    return 0;
  }
  const std::string tenant(tenant_or_default(tenant_));
  if (auto valid = validate_tenant_name(tenant); !valid) return fail(err, valid.error().message());
  auto master = read_master_key(master_key_file_);
  if (!master) return fail(err, master.error().message());
  auto registry = read_tenant_registry(config, err);
  if (!registry) return fail(err, registry.error().message());
  const auto* found = registry->find(tenant);
  if (export_->parsed()) {
    if (found == nullptr) return fail(err, fmt::format("no such tenant '{}'", tenant));
    auto keyring = keyring_of(*master, tenant, *found);
    if (!keyring) return fail(err, keyring.error().message());
    if (keyring->keys.empty())
      return fail(err, fmt::format("tenant '{}' has no sealing key (kcron sealing add-key {})", tenant, tenant));
    out << fmt::format("version {}\nkey {}\n", keyring->newest(), to_hex(keyring->keys.at(keyring->newest())));
    return 0;
  }
  v1::TenantSettings settings;
  if (found != nullptr) {
    settings = *found;
  } else if (is_default_tenant(tenant)) {
    settings.set_name(std::string(tenant));  // the default tenant may have no record yet
  } else {
    return fail(err, fmt::format("no such tenant '{}' (kcron tenant create {} makes it)", tenant, tenant));
  }
  std::uint32_t version = 1;
  for (const auto& key : settings.sealing_keys()) version = std::max(version, key.version() + 1);
  const auto now = to_epoch_ms(SystemClock().now());
  auto key = new_sealing_key(*master, tenant, version, now);
  if (!key) return fail(err, key.error().message());
  *settings.add_sealing_keys() = *key;
  settings.set_updated_ms(now);
  if (auto written = write_tenant_settings(config, settings); !written) return fail(err, written.error().message());
  out << fmt::format("tenant {} seals with data key version {} from now on{}\n", tenant, version,
                     version > 1 ? "; payloads sealed with the earlier versions still open" : "");
  return 0;
}

Status seal_for_tenant(const Config& config, const std::string& master_key_file, const std::string& tenant, v1::Job& job,
                       const SealingOrigin& origin, std::ostream& err) {
  if (master_key_file.empty()) return make_error("--seal needs --master-key FILE (or KCRON_SEALING_MASTER_KEY_FILE)");
  auto master = read_master_key(master_key_file);
  if (!master) return master.error();
  auto registry = read_tenant_registry(config, err);
  if (!registry) return registry.error();
  const auto* settings = registry->find(tenant);
  if (settings == nullptr || settings->sealing_keys().empty()) {
    return make_error("tenant '{}' has no sealing key (kcron sealing add-key {} --master-key FILE makes one)", tenant, tenant);
  }
  auto keyring = keyring_of(*master, tenant, *settings);
  if (!keyring) return keyring.error();
  if (auto open = check_upgrade(config, tenant, feature::kSealed); !open) return open.error();
  return seal_job(job, *keyring, origin);
}

}  // namespace kcron::cli
