// The key material behind JwtVerifier and SigningKey: JWK parsing (with the algorithm each key is
// pinned to), public JWK export, and the four signature algorithms over OpenSSL EVP. Internal to
// kcron_auth (and its tests). Keys are immutable once built, so const use is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.h"
#include "auth/openssl_handles.h"
#include "kcron/result.h"

namespace kcron::auth::detail {

enum class Algorithm { kRs256, kEs256, kEdDsa, kHs256 };

std::string_view algorithm_name(Algorithm algorithm);
std::optional<Algorithm> algorithm_from_name(std::string_view name);

// A key a token can be verified with: a public key, or an HS256 secret.
struct VerificationKey {
  std::string kid;    // "" when the key has none (then it is the only key)
  std::string label;  // how errors name it: "key 'k1'", "key 2 of the key set (no kid)", "the HS256 secret"
  Algorithm algorithm = Algorithm::kEs256;
  std::shared_ptr<EVP_PKEY> public_key;  // null for HS256
  std::string secret;                    // HS256 only
};

struct KeySet {
  std::vector<VerificationKey> keys;
  std::string issuer;
  std::string audience;
  std::chrono::seconds leeway{30};
  std::size_t max_token_bytes = 8192;
  bool allow_hs256 = false;
};

struct PrivateKey {
  Algorithm algorithm = Algorithm::kEs256;
  std::shared_ptr<EVP_PKEY> key;  // null for HS256
  std::string secret;             // HS256 only
};

// The keys of a JWKS document ({"keys":[...]}), each pinned to its algorithm; oct keys only when
// `allow_hs256`. Errors name the key at fault.
Result<std::vector<VerificationKey>> parse_jwks(std::string_view jwks, bool allow_hs256);

// True when `signature` is `key`'s signature of `signing_input` (JWS encoding: raw r||s for ES256).
bool verify_signature(const VerificationKey& key, std::string_view signing_input, std::string_view signature);

// `key`'s signature of `signing_input`, JWS-encoded.
Result<std::string> sign(const PrivateKey& key, std::string_view signing_input);

// The public JWK members of an RS256, ES256 or EdDSA key (kty and crv/x/y, n/e or x), without kid,
// alg and use, as RFC 7638 orders them.
Result<std::string> public_jwk_members(const PrivateKey& key);

}  // namespace kcron::auth::detail
