#include "secrets/secret_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "kcron/tenant.h"

namespace kcron::worker {
namespace {

class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string describe(int error_number) {
  const char* text = ::strerrordesc_np(error_number);
  return text != nullptr ? std::string(text) : "error " + std::to_string(error_number);
}

}  // namespace

Result<std::string> SecretDirectory::resolve(std::string_view tenant_in, std::string_view name) const {
  const std::string tenant(tenant_in.empty() ? kDefaultTenant : tenant_in);
  const std::string secret(name);
  if (!is_valid_secret_name(name)) return make_error("secret of tenant '{}': not a valid secret name", tenant);
  if (!is_default_tenant(tenant) && !validate_tenant_name(tenant)) {
    return make_error("secret '{}': tenant '{}' is not a valid tenant name", secret, tenant);
  }
  const Descriptor root(::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) {
    return make_error("secret '{}' of tenant '{}': cannot open secrets.dir {}: {}", secret, tenant, directory_, describe(errno));
  }
  const Descriptor folder(::openat(root.get(), tenant.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (folder.get() < 0) {
    const int error = errno;
    if (error == ENOENT)
      return make_error("secret '{}' of tenant '{}' not found (no directory {}/{})", secret, tenant, directory_, tenant);
    if (error == ELOOP || error == ENOTDIR) {
      return make_error("secret '{}' of tenant '{}': {}/{} is not a directory (symbolic links are refused)", secret, tenant,
                        directory_, tenant);
    }
    return make_error("secret '{}' of tenant '{}': cannot open {}/{}: {}", secret, tenant, directory_, tenant, describe(error));
  }
  const Descriptor file(::openat(folder.get(), secret.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (file.get() < 0) {
    const int error = errno;
    if (error == ENOENT) return make_error("secret '{}' of tenant '{}' not found", secret, tenant);
    if (error == ELOOP)
      return make_error("secret '{}' of tenant '{}' is a symbolic link; secrets must be regular files", secret, tenant);
    return make_error("secret '{}' of tenant '{}' cannot be read: {}", secret, tenant, describe(error));
  }
  struct stat info {};
  if (::fstat(file.get(), &info) != 0) {
    return make_error("secret '{}' of tenant '{}' cannot be read: {}", secret, tenant, describe(errno));
  }
  if (!S_ISREG(info.st_mode)) return make_error("secret '{}' of tenant '{}' is not a regular file", secret, tenant);
  if (static_cast<std::size_t>(info.st_size) > kMaxSecretBytes + 2) {
    return make_error("secret '{}' of tenant '{}' is over {} bytes", secret, tenant, kMaxSecretBytes);
  }
  std::string value;
  std::array<char, 8192> buffer{};
  while (true) {
    const auto count = ::read(file.get(), buffer.data(), buffer.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return make_error("secret '{}' of tenant '{}' cannot be read: {}", secret, tenant, describe(errno));
    if (count == 0) break;
    value.append(buffer.data(), static_cast<std::size_t>(count));
    if (value.size() > kMaxSecretBytes + 2)
      return make_error("secret '{}' of tenant '{}' is over {} bytes", secret, tenant, kMaxSecretBytes);
  }
  if (value.ends_with('\n')) {
    value.pop_back();
    if (value.ends_with('\r')) value.pop_back();
  }
  if (value.size() > kMaxSecretBytes)
    return make_error("secret '{}' of tenant '{}' is over {} bytes", secret, tenant, kMaxSecretBytes);
  if (value.empty()) return make_error("secret '{}' of tenant '{}' is empty", secret, tenant);
  return value;
}

}  // namespace kcron::worker
