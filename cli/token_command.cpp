#include "token_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

#include "auth/jwt.h"
#include "auth/text.h"

namespace kcron::cli {

namespace {

constexpr std::size_t kMaxKeyFileBytes = 1 << 20;
constexpr std::chrono::seconds kMaxTtl = std::chrono::hours(24 * 366);

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return make_error("cannot read {}: {}", path, std::strerror(errno));
  std::string text;
  text.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  if (file.bad()) return make_error("cannot read {}", path);
  if (text.size() > kMaxKeyFileBytes) return make_error("{} is larger than {} bytes: not a key file", path, kMaxKeyFileBytes);
  return text;
}

bool file_exists(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0;
}

Status write_all(int descriptor, std::string_view text, const std::string& path) {
  while (!text.empty()) {
    const ssize_t written = ::write(descriptor, text.data(), text.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return make_error("cannot write {}: {}", path, std::strerror(errno));
    text.remove_prefix(static_cast<std::size_t>(written));
  }
  return Status::success();
}

// Creates `path` with mode 0600 (whatever the umask) and writes `text`; refuses an existing file.
Status write_private(const std::string& path, std::string_view text) {
  const int descriptor = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR);
  if (descriptor < 0) {
    if (errno == EEXIST) return make_error("{} exists: kcron does not overwrite a private key (move it away first)", path);
    return make_error("cannot create {}: {}", path, std::strerror(errno));
  }
  Status status = ::fchmod(descriptor, S_IRUSR | S_IWUSR) == 0
                      ? write_all(descriptor, text, path)
                      : Status(make_error("cannot chmod {}: {}", path, std::strerror(errno)));
  if (::close(descriptor) != 0 && status) status = make_error("cannot write {}: {}", path, std::strerror(errno));
  return status;
}

// Replaces `path` with `text` through a temporary file and a rename, so readers see the old
// document or the new one, never half of one.
Status replace_file(const std::string& path, std::string_view text) {
  const std::string temporary = path + ".tmp";
  const int descriptor =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
  if (descriptor < 0) return make_error("cannot create {}: {}", temporary, std::strerror(errno));
  Status status = write_all(descriptor, text, temporary);
  if (::close(descriptor) != 0 && status) status = make_error("cannot write {}: {}", temporary, std::strerror(errno));
  if (status && std::rename(temporary.c_str(), path.c_str()) != 0)
    status = make_error("cannot replace {}: {}", path, std::strerror(errno));
  if (!status) ::unlink(temporary.c_str());
  return status;
}

}  // namespace

Result<std::chrono::seconds> parse_ttl(std::string_view text) {
  const auto refuse = [&] { return make_error("--ttl '{}' is not a duration like 30s, 15m, 1h, 7d or 1h30m", text); };
  if (text.empty()) return refuse();
  std::chrono::seconds total{0};
  std::size_t position = 0;
  while (position < text.size()) {
    std::int64_t count = 0;
    const std::size_t digits_start = position;
    while (position < text.size() && text[position] >= '0' && text[position] <= '9') {
      if (count > kMaxTtl.count()) return make_error("--ttl '{}' is longer than 366 days", text);
      count = count * 10 + (text[position] - '0');
      ++position;
    }
    if (position == digits_start || position == text.size()) return refuse();
    switch (text[position]) {
      case 's':
        total += std::chrono::seconds(count);
        break;
      case 'm':
        total += std::chrono::minutes(count);
        break;
      case 'h':
        total += std::chrono::hours(count);
        break;
      case 'd':
        total += std::chrono::hours(24 * count);
        break;
      default:
        return refuse();
    }
    ++position;
    if (total > kMaxTtl) return make_error("--ttl '{}' is longer than 366 days", text);
  }
  if (total <= std::chrono::seconds(0)) return make_error("--ttl '{}' is not positive", text);
  return total;
}

const std::vector<std::string_view>& api_roles() {
  static const std::vector<std::string_view> roles = {"viewer", "member", "operator", "admin", "system"};
  return roles;
}

TokenCommands::TokenCommands(CLI::App& app) {
  token_ = app.add_subcommand("token", "signing keys and bearer tokens for kcron-api (no broker needed)");
  token_->require_subcommand(1);

  keygen_ =
      token_->add_subcommand("keygen", "make a signing key pair: the private key as PEM (mode 0600), the public key in a JWKS");
  keygen_->add_option("--alg", alg_, "ES256, RS256 (2048 bits) or EdDSA (Ed25519)")->required();
  keygen_->add_option("--kid", kid_, "the key id tokens name (default: the key's RFC 7638 thumbprint)");
  keygen_->add_option("--private", private_file_, "where to write the private key (must not exist)")->required();
  keygen_->add_option("--jwks", jwks_file_, "the JWKS to write, or to add the public key to when it exists")->required();

  issue_ = token_->add_subcommand("issue", "print a signed token for kcron-api on stdout");
  issue_->add_option("--tenant", tenant_, "the tenant the token acts in")->required();
  issue_->add_option("--role", roles_, "a role it grants: viewer, member, operator, admin or system (repeatable)")->required();
  issue_->add_option("--sub", subject_, "the subject (who the token speaks for)")->capture_default_str();
  issue_->add_option("--ttl", ttl_, "how long it is valid: 30s, 15m, 1h, 7d")->capture_default_str();
  issue_->add_option("--key", key_file_, "the private key PEM (or, with --alg HS256, a file holding the raw secret)")->required();
  issue_->add_option("--alg", alg_, "RS256, ES256, EdDSA or HS256 (default: from the PEM)");
  issue_->add_option("--kid", kid_, "the key id in the header (default: the key's thumbprint, as keygen names it; HS256: none)");
  issue_->add_option("--iss", issuer_, "the issuer claim (iss)");
  issue_->add_option("--aud", audience_, "the audience claim (aud)");

  verify_ = token_->add_subcommand("verify", "check a token against a JWKS as kcron-api would, and print its claims");
  verify_->add_option("token", token_text_, "the token ('-' reads stdin)")->required();
  verify_->add_option("--jwks", jwks_file_, "the JWKS file");
  verify_->add_option("--secret", secret_file_, "a file holding the raw HS256 secret (development only)");
  verify_->add_option("--iss", issuer_, "the issuer the token must name");
  verify_->add_option("--aud", audience_, "the audience the token must name");
}

bool TokenCommands::parsed() const {
  return token_->parsed();
}

int TokenCommands::run(std::ostream& out, std::ostream& err) const {
  if (keygen_->parsed()) return keygen(out, err);
  if (issue_->parsed()) return issue(out, err);
  return verify(out, err);
}

int TokenCommands::keygen(std::ostream& out, std::ostream& err) const {
  if (alg_ != auth::kEs256 && alg_ != auth::kRs256 && alg_ != auth::kEdDsa)
    return fail(err, fmt::format("--alg '{}' is not one of ES256, RS256, EdDSA", alg_));
  if (file_exists(private_file_))
    return fail(err, fmt::format("{} exists: kcron does not overwrite a private key (move it away first)", private_file_));
  auto generated = auth::generate_key(alg_, kid_);
  if (!generated) return fail(err, generated.error().message());
  std::string jwks = generated->jwks;
  const bool adding = file_exists(jwks_file_);
  if (adding) {
    auto existing = read_file(jwks_file_);
    if (!existing) return fail(err, existing.error().message());
    auto merged = auth::merge_jwks(*existing, jwks);
    if (!merged) return fail(err, merged.error().within(jwks_file_).message());
    jwks = std::move(*merged);
  }
  if (auto written = write_private(private_file_, generated->private_pem); !written) return fail(err, written.error().message());
  if (auto written = replace_file(jwks_file_, jwks + "\n"); !written)
    return fail(err, fmt::format("{} (the private key is in {})", written.error().message(), private_file_));
  out << fmt::format("key '{}' ({}): private key in {} (mode 0600), public key {} {}\n", generated->kid, alg_, private_file_,
                     adding ? "added to" : "in", jwks_file_);
  return 0;
}

int TokenCommands::issue(std::ostream& out, std::ostream& err) const {
  for (const auto& role : roles_) {
    if (std::find(api_roles().begin(), api_roles().end(), role) == api_roles().end())
      return fail(err, fmt::format("--role '{}' is not one of {}", role, fmt::join(api_roles(), ", ")));
  }
  auto ttl = parse_ttl(ttl_);
  if (!ttl) return fail(err, ttl.error().message());
  auto key_text = read_file(key_file_);
  if (!key_text) return fail(err, key_text.error().message());
  auto key = auth::load_signing_key(*key_text, alg_, kid_);
  if (!key) return fail(err, key.error().within(key_file_).message());
  if (kid_.empty() && key->alg != auth::kHs256) {
    auto thumbprint = auth::jwk_thumbprint(*key);
    if (!thumbprint) return fail(err, thumbprint.error().message());
    key->kid = *thumbprint;
  }
  const auth::TokenRequest request{subject_, tenant_, roles_, std::chrono::system_clock::now(), *ttl, issuer_, audience_};
  auto token = auth::sign_token(request, *key);
  if (!token) return fail(err, token.error().message());
  out << *token << "\n";
  return 0;
}

int TokenCommands::verify(std::ostream& out, std::ostream& err) const {
  auth::VerifierConfig config;
  if (jwks_file_.empty() && secret_file_.empty()) return fail(err, "token verify needs --jwks FILE or --secret FILE");
  if (!jwks_file_.empty()) {
    auto jwks = read_file(jwks_file_);
    if (!jwks) return fail(err, jwks.error().message());
    config.jwks = std::move(*jwks);
  }
  if (!secret_file_.empty()) {
    auto secret = read_file(secret_file_);
    if (!secret) return fail(err, secret.error().message());
    config.hs256_secret = std::move(*secret);
    config.allow_hs256 = true;
  }
  config.issuer = issuer_;
  config.audience = audience_;
  auto verifier = auth::JwtVerifier::create(config);
  if (!verifier) return fail(err, verifier.error().message());
  std::string token = token_text_;
  if (token == "-") token.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  auto claims = verifier->verify(token, std::chrono::system_clock::now());
  if (!claims) return fail(err, claims.error().message());
  out << fmt::format("subject: {}\ntenant: {}\nroles: {}\nexpires: {}\nkey: {}\n", claims->subject, claims->tenant,
                     fmt::join(claims->roles, ", "), auth::format_instant(claims->expires_at),
                     claims->key_id.empty() ? "(no kid)" : claims->key_id);
  return 0;
}

}  // namespace kcron::cli
