// `kcron token keygen|issue|verify`: signing keys and bearer tokens for kcron-api
// (docs/api-auth.md), over kcron_auth. Local files only: no broker, no configuration.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/result.h"

namespace kcron::cli {

// A token lifetime: "30s", "15m", "1h", "7d", or a sum of them ("1h30m"); 1 s to 366 days.
Result<std::chrono::seconds> parse_ttl(std::string_view text);

// The roles kcron-api grants, least to most: what `token issue --role` accepts.
const std::vector<std::string_view>& api_roles();

// Registers `token keygen`, `token issue` and `token verify` on the app; the options bind to this
// object, so it stays where it was constructed.
class TokenCommands {
 public:
  explicit TokenCommands(CLI::App& app);
  TokenCommands(const TokenCommands&) = delete;
  TokenCommands& operator=(const TokenCommands&) = delete;

  bool parsed() const;
  // Prints the result to `out` and an error to `err`; returns the process exit code.
  int run(std::ostream& out, std::ostream& err) const;

 private:
  int keygen(std::ostream& out, std::ostream& err) const;
  int issue(std::ostream& out, std::ostream& err) const;
  int verify(std::ostream& out, std::ostream& err) const;

  CLI::App* token_ = nullptr;
  CLI::App* keygen_ = nullptr;
  CLI::App* issue_ = nullptr;
  CLI::App* verify_ = nullptr;
  std::string alg_;
  std::string kid_;
  std::string private_file_;
  std::string jwks_file_;
  std::string tenant_;
  std::vector<std::string> roles_;
  std::string subject_ = "kcron-cli";
  std::string ttl_ = "1h";
  std::string key_file_;
  std::string issuer_;
  std::string audience_;
  std::string token_text_;
  std::string secret_file_;
};

}  // namespace kcron::cli
