#include "auth/jwt.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "auth/base64url.h"
#include "auth/keys.h"
#include "auth/text.h"
#include "kcron/tenant.h"

namespace kcron::auth {

namespace {

using Json = nlohmann::json;
using detail::Algorithm;
using TimePoint = std::chrono::system_clock::time_point;

constexpr std::chrono::seconds kMaxLeeway = std::chrono::hours(24);
constexpr std::size_t kMaxKidBytes = 128;
// NumericDates kcron accepts: 1970 to 2255 (system_clock counts nanoseconds in an int64, which ends in 2262).
constexpr std::int64_t kMaxNumericDate = 9'000'000'000;

bool equals_ignoring_case(std::string_view left, std::string_view right) {
  return std::equal(left.begin(), left.end(), right.begin(), right.end(), [](char one, char other) {
    return std::tolower(static_cast<unsigned char>(one)) == std::tolower(static_cast<unsigned char>(other));
  });
}

// An algorithm name from a token as errors show it: bare when it looks like one ("HS512"), else quoted.
std::string shown_alg(std::string_view alg) {
  const bool plain = !alg.empty() && alg.size() <= 16 &&
                     std::all_of(alg.begin(), alg.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
  return plain ? std::string(alg) : quote_value(alg);
}

std::string seconds_text(std::chrono::seconds duration) {
  return fmt::format("{} s", duration.count());
}

// A kid kcron mints: 1-128 bytes of printable ASCII (it goes into JSON and error messages as it is).
Status validate_kid(std::string_view kid) {
  if (kid.size() > kMaxKidBytes) return make_error("kid of {} bytes is longer than {}", kid.size(), kMaxKidBytes);
  for (const char character : kid)
    if (character < 0x21 || character > 0x7e)
      return make_error("kid {} holds a character other than printable ASCII", quote_value(kid));
  return Status::success();
}

// A NumericDate claim (RFC 7519: seconds since the epoch, integer or not), when present.
Result<std::optional<TimePoint>> numeric_date(const Json& payload, const char* name) {
  const auto found = payload.find(name);
  if (found == payload.end()) return std::optional<TimePoint>{};
  std::int64_t seconds = -1;
  if (found->is_number_unsigned()) {
    const auto value = found->get<std::uint64_t>();
    seconds = value > static_cast<std::uint64_t>(kMaxNumericDate) ? kMaxNumericDate + 1 : static_cast<std::int64_t>(value);
  } else if (found->is_number_integer()) {
    seconds = found->get<std::int64_t>();
  } else if (found->is_number_float()) {
    const double value = std::floor(found->get<double>());
    if (std::isfinite(value) && value >= 0 && value <= static_cast<double>(kMaxNumericDate))
      seconds = static_cast<std::int64_t>(value);
  } else {
    return make_error("token claim {} is not a number of seconds since 1970 (a NumericDate)", name);
  }
  if (seconds < 0 || seconds > kMaxNumericDate) return make_error("token claim {} is outside the years 1970 to 2255", name);
  return std::optional<TimePoint>{TimePoint(std::chrono::seconds(seconds))};
}

Result<TimePoint> check_times(const Json& payload, TimePoint now, std::chrono::seconds leeway) {
  auto expires = numeric_date(payload, "exp");
  if (!expires) return expires.error();
  if (!expires->has_value()) return make_error("token has no exp claim (its expiry): kcron-api accepts only tokens that expire");
  const TimePoint exp = **expires;
  if (now > exp + leeway)
    return make_error("token expired at {} (now {}, leeway {})", format_instant(exp), format_instant(now), seconds_text(leeway));
  auto not_before = numeric_date(payload, "nbf");
  if (!not_before) return not_before.error();
  if (not_before->has_value() && now + leeway < **not_before)
    return make_error("token is not valid before {} (now {}, leeway {})", format_instant(**not_before), format_instant(now),
                      seconds_text(leeway));
  auto issued = numeric_date(payload, "iat");
  if (!issued) return issued.error();
  if (issued->has_value() && **issued > now + leeway)
    return make_error("token was issued in the future, at {} (now {}, leeway {}): check the issuer's clock",
                      format_instant(**issued), format_instant(now), seconds_text(leeway));
  return exp;
}

Status check_issuer_and_audience(const Json& payload, const detail::KeySet& keys) {
  if (!keys.issuer.empty()) {
    const auto iss = payload.find("iss");
    if (iss == payload.end()) return make_error("token has no iss claim; kcron-api expects issuer {}", quote_value(keys.issuer));
    if (!iss->is_string() || iss->get_ref<const std::string&>() != keys.issuer)
      return make_error("token issuer is not the expected {}", quote_value(keys.issuer));
  }
  if (!keys.audience.empty()) {
    const auto aud = payload.find("aud");
    if (aud == payload.end())
      return make_error("token has no aud claim; kcron-api expects audience {}", quote_value(keys.audience));
    bool found = aud->is_string() && aud->get_ref<const std::string&>() == keys.audience;
    if (aud->is_array())
      found = std::any_of(aud->begin(), aud->end(), [&](const Json& entry) {
        return entry.is_string() && entry.get_ref<const std::string&>() == keys.audience;
      });
    if (!found) return make_error("token audience does not include {}", quote_value(keys.audience));
  }
  return Status::success();
}

Result<TokenClaims> kcron_claims(const Json& payload) {
  TokenClaims claims;
  const auto sub = payload.find("sub");
  if (sub == payload.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty())
    return make_error("token has no sub claim (the subject, a non-empty string)");
  claims.subject = sub->get<std::string>();
  const auto tenant = payload.find("tenant");
  if (tenant == payload.end() || !tenant->is_string()) return make_error("token has no tenant claim (a tenant name string)");
  if (auto valid = validate_tenant_name(tenant->get_ref<const std::string&>()); !valid)
    return valid.error().within("token claim tenant");
  claims.tenant = tenant->get<std::string>();
  const auto roles = payload.find("roles");
  if (roles == payload.end()) return make_error("token has no roles claim (an array of role names)");
  if (!roles->is_array() || !std::all_of(roles->begin(), roles->end(), [](const Json& role) { return role.is_string(); }))
    return make_error("token claim roles is not an array of strings");
  for (const Json& role : *roles) claims.roles.push_back(role.get<std::string>());
  return claims;
}

// The part of `token` between dots, decoded; `what` names it in the error.
Result<std::string> decoded_part(std::string_view part, std::string_view what) {
  if (part.empty()) return make_error("token {} is empty", what);
  auto bytes = base64url_decode(part);
  if (!bytes) return make_error("token {} is not unpadded base64url", what);
  return std::move(*bytes);
}

std::shared_ptr<const detail::PrivateKey> share_private(detail::PrivateKey key) {
  return std::make_shared<const detail::PrivateKey>(std::move(key));
}

// What kind of key a PEM holds, as the algorithm it signs with.
Result<Algorithm> algorithm_of(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA") == 1) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits < 2048) return make_error("the PEM holds an RSA key of {} bits; kcron needs at least 2048", bits);
    return Algorithm::kRs256;
  }
  if (EVP_PKEY_is_a(key, "EC") == 1) {
    std::array<char, 64> group{};
    std::size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(), &length) != 1 ||
        (std::string_view(group.data()) != "prime256v1" && std::string_view(group.data()) != "P-256")) {
      ERR_clear_error();
      return make_error("the PEM holds an EC key on curve '{}'; kcron signs ES256 with P-256 only", group.data());
    }
    return Algorithm::kEs256;
  }
  if (EVP_PKEY_is_a(key, "ED25519") == 1) return Algorithm::kEdDsa;
  return make_error("the PEM holds a {} key; kcron signs with RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA)",
                    EVP_PKEY_get0_type_name(key) != nullptr ? EVP_PKEY_get0_type_name(key) : "unknown");
}

int refuse_password(char* /*buffer*/, int /*size*/, int /*writing*/, void* /*user*/) {
  return 0;
}

Result<std::string> pem_of(EVP_PKEY* key) {
  const ossl::Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return make_error("writing the private key as PEM failed: {}", ossl::take_error());
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  if (length <= 0 || data == nullptr) return make_error("writing the private key as PEM failed");
  return std::string(data, static_cast<std::size_t>(length));
}

// The JWKS document's "keys" array, or an error naming `what`.
Result<Json> jwks_document(std::string_view text, std::string_view what) {
  Json document = Json::parse(text, nullptr, false);
  if (document.is_discarded()) return make_error("{} is not valid JSON", what);
  if (!document.is_object() || !document.contains("keys") || !document["keys"].is_array())
    return make_error("{} is not a JSON object with a \"keys\" array", what);
  return document;
}

}  // namespace

JwtVerifier::JwtVerifier(std::shared_ptr<const detail::KeySet> keys) : keys_(std::move(keys)) {}

Result<JwtVerifier> JwtVerifier::create(const VerifierConfig& config) {
  auto keys = std::make_shared<detail::KeySet>();
  if (config.leeway < std::chrono::seconds(0) || config.leeway > kMaxLeeway)
    return make_error("leeway of {} is outside 0 to {}", seconds_text(config.leeway), seconds_text(kMaxLeeway));
  if (config.max_token_bytes == 0) return make_error("max_token_bytes is 0: no token could pass");
  keys->issuer = config.issuer;
  keys->audience = config.audience;
  keys->leeway = config.leeway;
  keys->max_token_bytes = config.max_token_bytes;
  keys->allow_hs256 = config.allow_hs256;
  if (!config.jwks.empty()) {
    auto parsed = detail::parse_jwks(config.jwks, config.allow_hs256);
    if (!parsed) return parsed.error();
    keys->keys = std::move(*parsed);
  }
  const bool with_secret = config.allow_hs256 && !config.hs256_secret.empty();
  if (with_secret) {
    if (config.hs256_secret.size() < kMinHs256SecretBytes)
      return make_error("the HS256 secret of {} bytes is too short (at least {})", config.hs256_secret.size(),
                        kMinHs256SecretBytes);
    if (!keys->keys.empty())
      return make_error(
          "the HS256 secret cannot be combined with a JWKS: it has no kid to tell it from the JWKS keys (put it in the "
          "JWKS as an oct key with a kid instead)");
    keys->keys.push_back({"", "the HS256 secret", Algorithm::kHs256, nullptr, config.hs256_secret});
  }
  if (keys->keys.empty())
    return make_error("no verification keys: the JWKS has none{}",
                      config.hs256_secret.empty() ? "" : " and the HS256 secret is ignored unless HS256 is allowed");
  if (keys->keys.size() > 1) {
    for (const auto& key : keys->keys)
      if (key.kid.empty())
        return make_error("{} has no kid: in a key set of {} keys each key needs one, for tokens to name it", key.label,
                          keys->keys.size());
  }
  return JwtVerifier(std::move(keys));
}

std::size_t JwtVerifier::key_count() const {
  return keys_->keys.size();
}

Result<TokenClaims> JwtVerifier::verify(std::string_view token, TimePoint now) const {
  const detail::KeySet& keys = *keys_;
  if (token.size() > keys.max_token_bytes)
    return make_error("token of {} bytes is longer than the {} accepted", token.size(), keys.max_token_bytes);
  const auto first_dot = token.find('.');
  const auto second_dot = first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos)
    return make_error("token is not a compact JWS (three base64url parts separated by '.')");
  auto header_text = decoded_part(token.substr(0, first_dot), "header");
  if (!header_text) return header_text.error();
  auto payload_text = decoded_part(token.substr(first_dot + 1, second_dot - first_dot - 1), "payload");
  if (!payload_text) return payload_text.error();
  const std::string_view signature_part = token.substr(second_dot + 1);
  if (signature_part.empty()) return make_error("token has no signature: unsigned tokens are refused");
  auto signature = decoded_part(signature_part, "signature");
  if (!signature) return signature.error();

  const Json header = Json::parse(*header_text, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return make_error("token header is not a JSON object");
  const auto alg_member = header.find("alg");
  if (alg_member == header.end() || !alg_member->is_string()) return make_error("token header has no alg (a string)");
  const auto& alg = alg_member->get_ref<const std::string&>();
  if (equals_ignoring_case(alg, "none")) return make_error("token algorithm none is refused: tokens must be signed");
  if (header.contains("crit")) return make_error("token header has crit: kcron-api supports no JWS extensions");
  if (const auto typ = header.find("typ"); typ != header.end()) {
    if (!typ->is_string() || !equals_ignoring_case(typ->get_ref<const std::string&>(), "JWT"))
      return make_error("token type (typ) is not JWT");
  }
  if (alg == kHs256 && !keys.allow_hs256)
    return make_error("token algorithm HS256 is refused: shared-secret tokens are allowed only in development");

  const detail::VerificationKey* key = nullptr;
  if (const auto kid = header.find("kid"); kid != header.end()) {
    if (!kid->is_string()) return make_error("token header kid is not a string");
    const auto& wanted = kid->get_ref<const std::string&>();
    const auto found = std::find_if(keys.keys.begin(), keys.keys.end(),
                                    [&](const detail::VerificationKey& candidate) { return candidate.kid == wanted; });
    if (found == keys.keys.end() || wanted.empty())
      return make_error("token key id (kid) {} is not one of the {} keys kcron-api trusts", quote_value(wanted),
                        keys.keys.size());
    key = &*found;
  } else {
    if (keys.keys.size() != 1)
      return make_error("token header has no kid, and kcron-api trusts {} keys: the token must name its key", keys.keys.size());
    key = &keys.keys.front();
  }
  if (alg != detail::algorithm_name(key->algorithm))
    return make_error("token algorithm {} does not match {} ({})", shown_alg(alg), key->label,
                      detail::algorithm_name(key->algorithm));
  const std::string_view signing_input = token.substr(0, second_dot);
  if (!detail::verify_signature(*key, signing_input, *signature))
    return make_error("token signature does not verify with {}", key->label);

  const Json payload = Json::parse(*payload_text, nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) return make_error("token payload is not a JSON object");
  auto expires_at = check_times(payload, now, keys.leeway);
  if (!expires_at) return expires_at.error();
  if (auto checked = check_issuer_and_audience(payload, keys); !checked) return checked.error();
  auto claims = kcron_claims(payload);
  if (!claims) return claims.error();
  claims->expires_at = *expires_at;
  claims->key_id = key->kid;
  return claims;
}

Result<SigningKey> load_signing_key(std::string_view pem_or_secret, std::string_view alg, std::string kid) {
  if (!kid.empty()) {
    if (auto valid = validate_kid(kid); !valid) return valid.error();
  }
  std::optional<Algorithm> wanted;
  if (!alg.empty()) {
    wanted = detail::algorithm_from_name(alg);
    if (!wanted) return make_error("algorithm {} is not one of RS256, ES256, EdDSA, HS256", quote_value(alg));
  }
  if (wanted == Algorithm::kHs256) {
    if (pem_or_secret.size() < kMinHs256SecretBytes)
      return make_error("an HS256 secret of {} bytes is too short (at least {})", pem_or_secret.size(), kMinHs256SecretBytes);
    return SigningKey{std::string(kHs256), std::move(kid),
                      share_private({Algorithm::kHs256, nullptr, std::string(pem_or_secret)})};
  }
  if (pem_or_secret.find("-----BEGIN") == std::string_view::npos)
    return make_error("the key is not a PEM private key (an HS256 secret needs the algorithm HS256)");
  if (pem_or_secret.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return make_error("the PEM is too large");
  const ossl::Bio bio(BIO_new_mem_buf(pem_or_secret.data(), static_cast<int>(pem_or_secret.size())));
  ossl::Pkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_password, nullptr) : nullptr);
  if (!key)
    return make_error("the PEM holds no private key kcron can read (encrypted keys are not supported): {}", ossl::take_error());
  auto algorithm = algorithm_of(key.get());
  if (!algorithm) return algorithm.error();
  if (wanted && *wanted != *algorithm)
    return make_error("the PEM holds a key that signs {}, not {}", detail::algorithm_name(*algorithm), alg);
  return SigningKey{std::string(detail::algorithm_name(*algorithm)), std::move(kid),
                    share_private({*algorithm, std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free), {}})};
}

Result<std::string> sign_compact(std::string_view header_json, std::string_view payload_json, const SigningKey& key) {
  if (!key.material) return make_error("the signing key is empty");
  std::string token = base64url_encode(header_json) + "." + base64url_encode(payload_json);
  auto signature = detail::sign(*key.material, token);
  if (!signature) return signature.error();
  return token + "." + base64url_encode(*signature);
}

Result<std::string> sign_token(const TokenRequest& request, const SigningKey& key) {
  if (request.subject.empty()) return make_error("the token needs a subject (sub)");
  if (auto valid = validate_tenant_name(request.tenant); !valid) return valid.error();
  if (request.ttl <= std::chrono::seconds(0)) return make_error("the token's lifetime must be positive");
  const auto issued = std::chrono::floor<std::chrono::seconds>(request.issued_at).time_since_epoch().count();
  Json header = {{"alg", key.alg}, {"typ", "JWT"}};
  if (!key.kid.empty()) header["kid"] = key.kid;
  Json payload = {{"sub", request.subject}, {"tenant", request.tenant},           {"roles", request.roles}, {"iat", issued},
                  {"nbf", issued},          {"exp", issued + request.ttl.count()}};
  if (!request.issuer.empty()) payload["iss"] = request.issuer;
  if (!request.audience.empty()) payload["aud"] = request.audience;
  try {
    return sign_compact(header.dump(), payload.dump(), key);
  } catch (const Json::exception&) {  // dump() throws on strings that are not UTF-8
    return make_error("the token's claims are not valid UTF-8");
  }
}

Result<GeneratedKey> generate_key(std::string_view alg, std::string kid) {
  if (!kid.empty()) {
    if (auto valid = validate_kid(kid); !valid) return valid.error();
  }
  const auto algorithm = detail::algorithm_from_name(alg);
  EVP_PKEY* raw = nullptr;
  if (algorithm == Algorithm::kRs256) {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048});
  } else if (algorithm == Algorithm::kEs256) {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  } else if (algorithm == Algorithm::kEdDsa) {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  } else {
    return make_error("algorithm {} is not one kcron generates keys for (RS256, ES256, EdDSA)", quote_value(alg));
  }
  if (raw == nullptr) return make_error("generating the {} key failed: {}", alg, ossl::take_error());
  const detail::PrivateKey key{*algorithm, std::shared_ptr<EVP_PKEY>(raw, EVP_PKEY_free), {}};
  auto pem = pem_of(key.key.get());
  if (!pem) return pem.error();
  auto members = detail::public_jwk_members(key);
  if (!members) return members.error();
  if (kid.empty()) {
    auto thumbprint = jwk_thumbprint(SigningKey{std::string(alg), "", share_private(key)});
    if (!thumbprint) return thumbprint.error();
    kid = std::move(*thumbprint);
  }
  Json jwk = Json::parse(*members);
  jwk["kid"] = kid;
  jwk["alg"] = std::string(alg);
  jwk["use"] = "sig";
  const Json jwks = {{"keys", Json::array({jwk})}};
  return GeneratedKey{std::move(kid), std::move(*pem), jwks.dump(2)};
}

Result<std::string> jwk_thumbprint(const SigningKey& key) {
  if (!key.material) return make_error("the signing key is empty");
  auto members = detail::public_jwk_members(*key.material);
  if (!members) return members.error();
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(members->data(), members->size(), digest.data(), &length, EVP_sha256(), nullptr) != 1)
    return make_error("hashing the public key failed: {}", ossl::take_error());
  return base64url_encode({reinterpret_cast<const char*>(digest.data()), length});
}

Result<std::string> merge_jwks(std::string_view jwks, std::string_view additions) {
  auto document = jwks_document(jwks, "the JWKS");
  if (!document) return document.error();
  auto added = jwks_document(additions, "the keys to add");
  if (!added) return added.error();
  Json& keys = (*document)["keys"];
  for (const Json& jwk : (*added)["keys"]) {
    const auto kid = jwk.is_object() ? jwk.find("kid") : jwk.end();
    if (kid != jwk.end() && kid->is_string()) {
      const bool taken = std::any_of(keys.begin(), keys.end(), [&](const Json& existing) {
        return existing.is_object() && existing.contains("kid") && existing["kid"] == *kid;
      });
      if (taken) return make_error("the JWKS already has a key with kid {}", quote_value(kid->get_ref<const std::string&>()));
    }
    keys.push_back(jwk);
  }
  if (keys.size() > 1) {
    for (const Json& jwk : keys)
      if (!jwk.is_object() || !jwk.contains("kid") || !jwk["kid"].is_string())
        return make_error("a key of the JWKS has no kid: in a key set of several keys each key needs one");
  }
  return document->dump(2);
}

}  // namespace kcron::auth
