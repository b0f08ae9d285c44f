#include "secrets/secret_dir.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

using namespace kcron;
using namespace kcron::worker;
namespace fs = std::filesystem;

namespace {

struct SecretsFolder {
  SecretsFolder() : root(fs::temp_directory_path() / ("kcron-secrets-" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    fs::create_directories(root / "acme");
    fs::create_directories(root / "default");
    fs::create_directories(root / "other");
  }
  ~SecretsFolder() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  void write(const std::string& relative, const std::string& value) const {
    std::ofstream(root / relative, std::ios::binary) << value;
  }
  fs::path root;
};

std::string message(const Result<std::string>& result) {
  return result ? std::string() : result.error().message();
}

}  // namespace

TEST_CASE("a secret is read from the tenant's folder at each use") {
  const SecretsFolder folder;
  const SecretDirectory secrets(folder.root.string());
  folder.write("acme/token", "first\n");
  folder.write("default/token", "plain\r\n");
  CHECK(secrets.resolve("acme", "token").value() == "first");
  CHECK(secrets.resolve("", "token").value() == "plain");
  CHECK(secrets.resolve("default", "token").value() == "plain");
  // Rotation: the next read sees the new file; only one trailing newline goes.
  folder.write("acme/token", "second\n\n");
  CHECK(secrets.resolve("acme", "token").value() == "second\n");
  CHECK(message(secrets.resolve("acme", "missing")) == "secret 'missing' of tenant 'acme' not found");
  CHECK_THAT(message(secrets.resolve("nobody", "token")), Catch::Contains("secret 'token' of tenant 'nobody' not found"));
  CHECK_FALSE(secrets.resolve("acme", "../default/token"));
  CHECK_FALSE(secrets.resolve("../etc", "passwd"));
}

TEST_CASE("symbolic links, folders, empty and large secrets are refused without their contents") {
  const SecretsFolder folder;
  const SecretDirectory secrets(folder.root.string());
  folder.write("other/token", "theirs");
  fs::create_symlink(folder.root / "other" / "token", folder.root / "acme" / "stolen");
  fs::create_symlink("/etc/hostname", folder.root / "acme" / "host");
  fs::create_directory_symlink(folder.root / "other", folder.root / "evil");
  fs::create_directory(folder.root / "acme" / "folder");
  CHECK(message(secrets.resolve("acme", "stolen")) ==
        "secret 'stolen' of tenant 'acme' is a symbolic link; secrets must be regular files");
  CHECK_FALSE(secrets.resolve("acme", "host"));
  CHECK_THAT(message(secrets.resolve("evil", "token")), Catch::Contains("symbolic links are refused"));
  CHECK_THAT(message(secrets.resolve("acme", "folder")),
             Catch::Contains("not a regular file") || Catch::Contains("cannot be read"));
  folder.write("acme/empty", "\n");
  CHECK(message(secrets.resolve("acme", "empty")) == "secret 'empty' of tenant 'acme' is empty");
  folder.write("acme/large", std::string(kMaxSecretBytes + 1, 'x'));
  CHECK_THAT(message(secrets.resolve("acme", "large")), Catch::Contains("is over 65536 bytes") && !Catch::Contains("xxxx"));
  folder.write("acme/exact", std::string(kMaxSecretBytes, 'y') + "\n");
  CHECK(secrets.resolve("acme", "exact").value().size() == kMaxSecretBytes);
  const SecretDirectory nowhere("/nonexistent-kcron-secrets");
  CHECK_THAT(message(nowhere.resolve("acme", "token")), Catch::Contains("cannot open secrets.dir"));
}
