// JWT bearer tokens of kcron-api: JwtVerifier checks a compact JWS against a JWKS (the algorithm is
// pinned by the key, never chosen by the token) and returns the kcron claims; sign_token and
// generate_key mint tokens and keys for tests, the demo and `kcron token`. Pure apart from OpenSSL
// (docs/api-auth.md): no clock of its own, no network, no files.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/result.h"

namespace kcron::auth {

// The algorithms kcron signs and verifies (JWS "alg" values). Each key kind verifies exactly one.
inline constexpr std::string_view kRs256 = "RS256";  // RSA (2048 to 8192 bits), PKCS #1 v1.5, SHA-256
inline constexpr std::string_view kEs256 = "ES256";  // EC P-256, ECDSA with SHA-256
inline constexpr std::string_view kEdDsa = "EdDSA";  // OKP Ed25519
inline constexpr std::string_view kHs256 = "HS256";  // oct: HMAC-SHA-256, development only
inline constexpr std::size_t kMinHs256SecretBytes = 32;

struct VerifierConfig {
  std::string jwks{};          // JWKS document text (may be empty if only an HS256 secret is given)
  std::string hs256_secret{};  // raw secret bytes (at least 32); used only when allow_hs256
  bool allow_hs256 = false;    // development only: refuse HS256 tokens (and oct keys in a JWKS) unless true
  std::string issuer{};        // when non-empty, `iss` must equal it
  std::string audience{};      // when non-empty, `aud` (string or array) must contain it
  std::chrono::seconds leeway{30};
  std::size_t max_token_bytes = 8192;
};

struct TokenClaims {
  std::string subject;                               // sub (required, non-empty)
  std::string tenant;                                // tenant (required, a valid tenant name)
  std::vector<std::string> roles;                    // roles (required array of strings, may be empty)
  std::chrono::system_clock::time_point expires_at;  // exp (required)
  std::string key_id;                                // kid of the key that verified it ("" for a key without one)
};

namespace detail {
struct KeySet;
struct PrivateKey;
}  // namespace detail

// Verifies tokens against a fixed key set. Immutable after create(): verify() is const and safe to
// call from any number of threads at once; copies share the keys.
class JwtVerifier {
 public:
  // Parses the keys of `config`; an error names the key at fault (by kid, or by position when it
  // has none). A key set with several keys needs a distinct kid on each; an empty one is an error.
  static Result<JwtVerifier> create(const VerifierConfig& config);

  // The claims of `token` when it is a well-formed compact JWS, signed by one of the keys with that
  // key's algorithm, and valid at `now` (exp, nbf, iat with the leeway; iss, aud when configured).
  // Errors say what a user can act on and never hold key material or the token.
  Result<TokenClaims> verify(std::string_view token, std::chrono::system_clock::time_point now) const;

  std::size_t key_count() const;

 private:
  explicit JwtVerifier(std::shared_ptr<const detail::KeySet> keys);
  std::shared_ptr<const detail::KeySet> keys_;
};

// A private key (or an HS256 secret) with the algorithm it signs with and the kid tokens name.
struct SigningKey {
  std::string alg;  // "RS256", "ES256", "EdDSA" or "HS256"
  std::string kid;  // "" puts no kid in the header
  std::shared_ptr<const detail::PrivateKey> material;
};

// A PEM private key (PKCS #8 or traditional) for RS256, ES256 or EdDSA, or the raw bytes of an
// HS256 secret. An empty `alg` takes it from the PEM's key type (RSA: RS256, P-256: ES256,
// Ed25519: EdDSA); a key of another type than `alg` names is an error.
Result<SigningKey> load_signing_key(std::string_view pem_or_secret, std::string_view alg, std::string kid);

struct TokenRequest {
  std::string subject;
  std::string tenant;
  std::vector<std::string> roles;
  std::chrono::system_clock::time_point issued_at;  // iat and nbf; exp is issued_at + ttl
  std::chrono::seconds ttl{3600};
  std::string issuer;    // iss, left out when empty
  std::string audience;  // aud, left out when empty
};

// A token with header {"alg", "typ":"JWT", "kid" when the key has one} and the claims of `request`.
Result<std::string> sign_token(const TokenRequest& request, const SigningKey& key);

// header.payload.signature of any header and payload JSON text, signed with `key` as they are (the
// header's alg is not checked against the key): for tests and the fuzzer, which need tokens that
// are validly signed yet wrong in every other way.
Result<std::string> sign_compact(std::string_view header_json, std::string_view payload_json, const SigningKey& key);

struct GeneratedKey {
  std::string kid;          // as given, or the thumbprint
  std::string private_pem;  // PKCS #8
  std::string jwks;         // {"keys":[public JWK with kty, crv or n/e, kid, alg, use:"sig"]}
};

// A new key pair for RS256 (2048 bits), ES256 or EdDSA. An empty `kid` becomes the key's RFC 7638
// thumbprint, which jwk_thumbprint gives for the private key too.
Result<GeneratedKey> generate_key(std::string_view alg, std::string kid);

// The RFC 7638 SHA-256 thumbprint (base64url) of the public half of an RS256, ES256 or EdDSA key.
Result<std::string> jwk_thumbprint(const SigningKey& key);

// `jwks` with the keys of `additions` appended; refuses a kid both already hold, a key without kid
// when the result would hold several keys, and documents that are not {"keys":[...]}.
Result<std::string> merge_jwks(std::string_view jwks, std::string_view additions);

}  // namespace kcron::auth
