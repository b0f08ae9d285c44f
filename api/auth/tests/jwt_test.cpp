// The verifier's rules, one spec each, run for every algorithm family where the rule applies;
// minting, key generation and JWKS merging. Time is injected (kNow), never read or slept.
#include "auth/jwt.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "auth/base64url.h"
#include "auth/openssl_handles.h"

namespace {

using kcron::auth::base64url_decode;
using kcron::auth::base64url_encode;
using kcron::auth::GeneratedKey;
using kcron::auth::JwtVerifier;
using kcron::auth::SigningKey;
using kcron::auth::VerifierConfig;
using Json = nlohmann::json;
using namespace std::chrono_literals;
using TimePoint = std::chrono::system_clock::time_point;

const TimePoint kNow{std::chrono::seconds(1796551200)};  // 2026-12-06T10:00:00Z
const std::string kSecret(40, 's');

std::int64_t epoch_seconds(TimePoint instant) {
  return std::chrono::duration_cast<std::chrono::seconds>(instant.time_since_epoch()).count();
}

// A key pair per (alg, kid), generated once per test run (RSA generation is slow).
struct TestKey {
  std::string jwks;  // the public JWKS ({"keys":[...]}); for HS256 an oct key
  SigningKey signing;
};

const TestKey& test_key(const std::string& alg, const std::string& kid = "k1") {
  static std::map<std::string, TestKey> keys;
  const std::string name = alg + "/" + kid;
  if (auto found = keys.find(name); found != keys.end()) return found->second;
  TestKey key;
  if (alg == "HS256") {
    const std::string secret = kSecret + kid;
    key.jwks = Json{{"keys", {{{"kty", "oct"}, {"kid", kid}, {"k", base64url_encode(secret)}}}}}.dump();
    auto signing = kcron::auth::load_signing_key(secret, alg, kid);
    REQUIRE(signing);
    key.signing = *signing;
  } else {
    auto generated = kcron::auth::generate_key(alg, kid);
    REQUIRE(generated);
    key.jwks = generated->jwks;
    auto signing = kcron::auth::load_signing_key(generated->private_pem, alg, kid);
    REQUIRE(signing);
    key.signing = *signing;
  }
  return keys.emplace(name, std::move(key)).first->second;
}

JwtVerifier verifier_for(const std::string& jwks, VerifierConfig config = {}) {
  config.jwks = jwks;
  config.allow_hs256 = config.allow_hs256 || jwks.find("\"oct\"") != std::string::npos;
  auto verifier = JwtVerifier::create(config);
  INFO((verifier ? std::string() : verifier.error().message()));
  REQUIRE(verifier);
  return *verifier;
}

Json good_claims() {
  const auto now = epoch_seconds(kNow);
  return {{"sub", "alice"},  {"tenant", "acme"}, {"roles", {"member", "viewer"}},
          {"iat", now - 60}, {"nbf", now - 60},  {"exp", now + 3600}};
}

Json header_for(const SigningKey& key) {
  Json header = {{"alg", key.alg}, {"typ", "JWT"}};
  if (!key.kid.empty()) header["kid"] = key.kid;
  return header;
}

std::string signed_token(const SigningKey& key, const Json& header, const Json& claims) {
  auto token = kcron::auth::sign_compact(header.dump(), claims.dump(), key);
  REQUIRE(token);
  return *token;
}

std::string signed_token(const SigningKey& key, const Json& claims = good_claims()) {
  return signed_token(key, header_for(key), claims);
}

// The error of a verification that must fail.
std::string refusal(const JwtVerifier& verifier, std::string_view token, TimePoint now = kNow) {
  auto claims = verifier.verify(token, now);
  REQUIRE_FALSE(claims);
  return claims.error().message();
}

std::string create_error(const VerifierConfig& config) {
  auto verifier = JwtVerifier::create(config);
  REQUIRE_FALSE(verifier);
  return verifier.error().message();
}

// An RSA key pair of `bits` as a public JWK (generate_key makes only 2048-bit keys).
std::string rsa_jwk(unsigned bits, const std::string& kid) {
  const kcron::auth::ossl::Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{bits}));
  REQUIRE(key);
  BIGNUM* n = nullptr;
  BIGNUM* e = nullptr;
  REQUIRE(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n) == 1);
  REQUIRE(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e) == 1);
  const kcron::auth::ossl::Bn modulus(n);
  const kcron::auth::ossl::Bn exponent(e);
  return Json{{"kty", "RSA"},
              {"kid", kid},
              {"n", base64url_encode(kcron::auth::ossl::bignum_bytes(modulus.get(), 0))},
              {"e", base64url_encode(kcron::auth::ossl::bignum_bytes(exponent.get(), 0))}}
      .dump();
}

std::string part(std::string_view token, int index) {
  std::size_t start = 0;
  for (int skipped = 0; skipped < index; ++skipped) start = token.find('.', start) + 1;
  const auto end = token.find('.', start);
  return std::string(token.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
}

}  // namespace

TEST_CASE("a token signed with each algorithm verifies and yields its claims") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks, {.issuer = "https://id.example", .audience = "kcron-api"});
  kcron::auth::TokenRequest request{"alice", "acme", {"operator", "viewer"}, kNow - 10s, 1h, "https://id.example", "kcron-api"};
  auto token = kcron::auth::sign_token(request, key.signing);
  REQUIRE(token);
  auto claims = verifier.verify(*token, kNow);
  INFO((claims ? "" : claims.error().message()));
  REQUIRE(claims);
  CHECK(claims->subject == "alice");
  CHECK(claims->tenant == "acme");
  CHECK(claims->roles == std::vector<std::string>{"operator", "viewer"});
  CHECK(claims->expires_at == kNow - 10s + 1h);
  CHECK(claims->key_id == "k1");
  CHECK(verifier.key_count() == 1);
}

TEST_CASE("sign_token writes alg, typ and kid in the header and iat, nbf, exp in the claims") {
  const TestKey& key = test_key("ES256");
  kcron::auth::TokenRequest request{"alice", "acme", {"viewer"}, kNow, 15min, "", ""};
  auto token = kcron::auth::sign_token(request, key.signing);
  REQUIRE(token);
  const Json header = Json::parse(*base64url_decode(part(*token, 0)));
  const Json claims = Json::parse(*base64url_decode(part(*token, 1)));
  CHECK(header == Json{{"alg", "ES256"}, {"typ", "JWT"}, {"kid", "k1"}});
  CHECK(claims["iat"] == epoch_seconds(kNow));
  CHECK(claims["nbf"] == epoch_seconds(kNow));
  CHECK(claims["exp"] == epoch_seconds(kNow) + 900);
  CHECK_FALSE(claims.contains("iss"));
  CHECK_FALSE(claims.contains("aud"));
}

TEST_CASE("sign_token refuses an empty subject, an invalid tenant and a lifetime that is not positive") {
  const TestKey& key = test_key("ES256");
  kcron::auth::TokenRequest request{"", "acme", {"viewer"}, kNow, 1h, "", ""};
  CHECK_FALSE(kcron::auth::sign_token(request, key.signing));
  request.subject = "alice";
  request.tenant = "Acme";
  CHECK_FALSE(kcron::auth::sign_token(request, key.signing));
  request.tenant = "acme";
  request.ttl = 0s;
  CHECK_FALSE(kcron::auth::sign_token(request, key.signing));
}

TEST_CASE("a token that is not three base64url parts is refused") {
  const auto verifier = verifier_for(test_key("ES256").jwks);
  const std::string token = signed_token(test_key("ES256").signing);
  const std::string shape = "token is not a compact JWS (three base64url parts separated by '.')";
  CHECK(refusal(verifier, "") == shape);
  CHECK(refusal(verifier, "abc") == shape);
  CHECK(refusal(verifier, part(token, 0) + "." + part(token, 1)) == shape);
  CHECK(refusal(verifier, token + ".") == shape);
  CHECK(refusal(verifier, token + ".abc") == shape);
  CHECK(refusal(verifier, "." + part(token, 1) + "." + part(token, 2)) == "token header is empty");
  CHECK(refusal(verifier, part(token, 0) + "." + part(token, 1) + ".=" + part(token, 2)) ==
        "token signature is not unpadded base64url");
  CHECK(refusal(verifier, part(token, 0) + "==." + part(token, 1) + "." + part(token, 2)) ==
        "token header is not unpadded base64url");
  CHECK(refusal(verifier, part(token, 0) + ".+" + part(token, 1) + "." + part(token, 2)) ==
        "token payload is not unpadded base64url");
  CHECK(refusal(verifier, " " + token) == "token header is not unpadded base64url");
}

TEST_CASE("a header or payload that is not a JSON object is refused") {
  const TestKey& key = test_key("ES256");
  const auto verifier = verifier_for(key.jwks);
  auto not_json = kcron::auth::sign_compact("{\"alg\":", good_claims().dump(), key.signing);
  REQUIRE(not_json);
  CHECK(refusal(verifier, *not_json) == "token header is not a JSON object");
  auto array = kcron::auth::sign_compact(header_for(key.signing).dump(), "[1,2]", key.signing);
  REQUIRE(array);
  CHECK(refusal(verifier, *array) == "token payload is not a JSON object");
  CHECK(refusal(verifier, signed_token(key.signing, Json{{"typ", "JWT"}}, good_claims())) ==
        "token header has no alg (a string)");
}

TEST_CASE("alg none is refused, with or without a signature") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  const std::string unsigned_token =
      base64url_encode(R"({"alg":"none","kid":"k1"})") + "." + base64url_encode(good_claims().dump());
  CHECK(refusal(verifier, unsigned_token + ".") == "token has no signature: unsigned tokens are refused");
  const std::string with_signature = signed_token(key.signing, {{"alg", "none"}, {"kid", "k1"}}, good_claims());
  CHECK(refusal(verifier, with_signature) == "token algorithm none is refused: tokens must be signed");
  const std::string upper = signed_token(key.signing, {{"alg", "NONE"}, {"kid", "k1"}}, good_claims());
  CHECK(refusal(verifier, upper) == "token algorithm none is refused: tokens must be signed");
}

TEST_CASE("a token whose alg is not its key's is refused: the key pins the algorithm") {
  const std::string key_alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const std::string token_alg = GENERATE("RS256", "ES256", "EdDSA", "HS256", "RS512", "PS256", "ES384");
  if (key_alg == token_alg) return;
  const TestKey& key = test_key(key_alg);
  const auto verifier = verifier_for(key.jwks, {.allow_hs256 = true});
  // Validly signed by the key itself, so only the alg mismatch can refuse it.
  const std::string token = signed_token(key.signing, {{"alg", token_alg}, {"kid", "k1"}}, good_claims());
  CHECK(refusal(verifier, token) == "token algorithm " + token_alg + " does not match key 'k1' (" + key_alg + ")");
}

TEST_CASE("an HS256 token signed with an asymmetric key's public JWKS as the secret is refused") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA");
  const TestKey& key = test_key(alg);
  // The classic confusion: a verifier that took the alg from the token would HMAC with the public key.
  auto forged_key = kcron::auth::load_signing_key(key.jwks, "HS256", "k1");
  REQUIRE(forged_key);
  const std::string forged = signed_token(*forged_key);
  CHECK(refusal(verifier_for(key.jwks, {.allow_hs256 = true}), forged) ==
        "token algorithm HS256 does not match key 'k1' (" + alg + ")");
  CHECK(refusal(verifier_for(key.jwks), forged) ==
        "token algorithm HS256 is refused: shared-secret tokens are allowed only in development");
}

TEST_CASE("HS256 tokens and oct keys are refused unless HS256 is allowed") {
  VerifierConfig config;
  config.jwks = test_key("HS256", "dev").jwks;
  CHECK(create_error(config) ==
        "key 'dev' is a shared secret (kty \"oct\", HS256), refused unless HS256 is allowed (development only)");
  config.jwks.clear();
  config.hs256_secret = kSecret;
  CHECK(create_error(config) ==
        "no verification keys: the JWKS has none and the HS256 secret is ignored unless HS256 is allowed");
  config.allow_hs256 = true;
  auto verifier = JwtVerifier::create(config);
  REQUIRE(verifier);
  auto key = kcron::auth::load_signing_key(kSecret, "HS256", "");
  REQUIRE(key);
  auto claims = verifier->verify(signed_token(*key), kNow);
  REQUIRE(claims);
  CHECK(claims->key_id.empty());
  auto other = kcron::auth::load_signing_key(kSecret + "x", "HS256", "");
  REQUIRE(other);
  CHECK(refusal(*verifier, signed_token(*other)) == "token signature does not verify with the HS256 secret");
}

TEST_CASE("an HS256 secret shorter than 32 bytes is refused") {
  CHECK(create_error({.hs256_secret = "short", .allow_hs256 = true}) == "the HS256 secret of 5 bytes is too short (at least 32)");
  const std::string jwks = Json{{"keys", {{{"kty", "oct"}, {"kid", "k"}, {"k", base64url_encode("short")}}}}}.dump();
  CHECK(create_error({.jwks = jwks, .allow_hs256 = true}) == "key 'k': an HS256 secret of 5 bytes is too short (at least 32)");
  CHECK_FALSE(kcron::auth::load_signing_key("short", "HS256", ""));
}

TEST_CASE("the HS256 secret cannot be combined with a JWKS") {
  CHECK(create_error({.jwks = test_key("ES256").jwks, .hs256_secret = kSecret, .allow_hs256 = true})
            .find("the HS256 secret cannot be combined with a JWKS") == 0);
}

TEST_CASE("a header with crit is refused") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  Json header = header_for(key.signing);
  header["crit"] = {"exp"};
  CHECK(refusal(verifier_for(key.jwks), signed_token(key.signing, header, good_claims())) ==
        "token header has crit: kcron-api supports no JWS extensions");
}

TEST_CASE("typ, when present, must be JWT in any case") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  Json header = header_for(key.signing);
  header["typ"] = "jwt";
  CHECK(verifier.verify(signed_token(key.signing, header, good_claims()), kNow));
  header.erase("typ");
  CHECK(verifier.verify(signed_token(key.signing, header, good_claims()), kNow));
  header["typ"] = "at+jwt";
  CHECK(refusal(verifier, signed_token(key.signing, header, good_claims())) == "token type (typ) is not JWT");
  header["typ"] = 1;
  CHECK(refusal(verifier, signed_token(key.signing, header, good_claims())) == "token type (typ) is not JWT");
}

TEST_CASE("an unknown kid is refused") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  Json header = header_for(key.signing);
  header["kid"] = "k9";
  CHECK(refusal(verifier, signed_token(key.signing, header, good_claims())) ==
        "token key id (kid) 'k9' is not one of the 1 keys kcron-api trusts");
  header["kid"] = "";
  CHECK(refusal(verifier, signed_token(key.signing, header, good_claims())) ==
        "token key id (kid) '' is not one of the 1 keys kcron-api trusts");
  header["kid"] = 7;
  CHECK(refusal(verifier, signed_token(key.signing, header, good_claims())) == "token header kid is not a string");
}

TEST_CASE("a token without kid is verified by the only key, and refused when there are several") {
  const TestKey& one = test_key("EdDSA", "k1");
  const TestKey& two = test_key("EdDSA", "k2");
  Json header = {{"alg", "EdDSA"}};
  CHECK(verifier_for(one.jwks).verify(signed_token(one.signing, header, good_claims()), kNow));
  auto merged = kcron::auth::merge_jwks(one.jwks, two.jwks);
  REQUIRE(merged);
  CHECK(refusal(verifier_for(*merged), signed_token(one.signing, header, good_claims())) ==
        "token header has no kid, and kcron-api trusts 2 keys: the token must name its key");
}

TEST_CASE("a bad signature, a tampered header or a tampered payload is refused") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  const std::string token = signed_token(key.signing);
  REQUIRE(verifier.verify(token, kNow));
  const std::string failure = "token signature does not verify with key 'k1'";

  std::string signature = *base64url_decode(part(token, 2));
  signature[signature.size() / 2] = static_cast<char>(signature[signature.size() / 2] ^ 0x01);
  CHECK(refusal(verifier, part(token, 0) + "." + part(token, 1) + "." + base64url_encode(signature)) == failure);
  CHECK(refusal(verifier, part(token, 0) + "." + part(token, 1) + "." + base64url_encode(signature.substr(1))) == failure);
  CHECK(refusal(verifier, part(token, 0) + "." + part(token, 1) + "." + base64url_encode(signature + "x")) == failure);

  Json claims = good_claims();
  claims["roles"] = {"admin"};
  CHECK(refusal(verifier, part(token, 0) + "." + base64url_encode(claims.dump()) + "." + part(token, 2)) == failure);
  Json header = header_for(key.signing);
  header["x"] = 1;
  CHECK(refusal(verifier, base64url_encode(header.dump()) + "." + part(token, 1) + "." + part(token, 2)) == failure);

  // Another key of the same kind, published under the same kid.
  const TestKey& impostor = test_key(alg, "k1-impostor");
  SigningKey forged = impostor.signing;
  forged.kid = "k1";
  CHECK(refusal(verifier, signed_token(forged)) == failure);
}

TEST_CASE("an ES256 signature in DER form instead of raw r||s is refused") {
  const TestKey& key = test_key("ES256");
  const std::string token = signed_token(key.signing);
  const std::string raw = *base64url_decode(part(token, 2));
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  const kcron::auth::ossl::EcdsaSig value(ECDSA_SIG_new());
  REQUIRE(ECDSA_SIG_set0(value.get(), BN_bin2bn(bytes, 32, nullptr), BN_bin2bn(bytes + 32, 32, nullptr)) == 1);
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(value.get(), &der);
  REQUIRE(length > 0);
  const std::string der_signature(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  CHECK(refusal(verifier_for(key.jwks), part(token, 0) + "." + part(token, 1) + "." + base64url_encode(der_signature)) ==
        "token signature does not verify with key 'k1'");
}

TEST_CASE("exp is required, and a token is refused once now is past exp plus the leeway") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  Json claims = good_claims();
  claims["exp"] = epoch_seconds(kNow);
  const std::string token = signed_token(key.signing, claims);
  CHECK(verifier.verify(token, kNow + 30s));
  CHECK(refusal(verifier, token, kNow + 31s) == "token expired at 2026-12-06T10:00:00Z (now 2026-12-06T10:00:31Z, leeway 30 s)");
  CHECK(refusal(verifier, token, kNow + 5min) == "token expired at 2026-12-06T10:00:00Z (now 2026-12-06T10:05:00Z, leeway 30 s)");
  claims.erase("exp");
  CHECK(refusal(verifier, signed_token(key.signing, claims)) ==
        "token has no exp claim (its expiry): kcron-api accepts only tokens that expire");
}

TEST_CASE("the leeway is configurable, zero included") {
  const TestKey& key = test_key("ES256");
  Json claims = good_claims();
  claims["exp"] = epoch_seconds(kNow);
  const std::string token = signed_token(key.signing, claims);
  const auto strict = verifier_for(key.jwks, {.leeway = 0s});
  CHECK(strict.verify(token, kNow));
  CHECK(refusal(strict, token, kNow + 1s) == "token expired at 2026-12-06T10:00:00Z (now 2026-12-06T10:00:01Z, leeway 0 s)");
  CHECK(create_error({.jwks = key.jwks, .leeway = -1s}) == "leeway of -1 s is outside 0 to 86400 s");
}

TEST_CASE("nbf later than now plus the leeway is refused") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  Json claims = good_claims();
  claims["nbf"] = epoch_seconds(kNow) + 60;
  claims.erase("iat");
  const std::string token = signed_token(key.signing, claims);
  CHECK(verifier.verify(token, kNow + 30s));
  CHECK(refusal(verifier, token, kNow + 29s) ==
        "token is not valid before 2026-12-06T10:01:00Z (now 2026-12-06T10:00:29Z, leeway 30 s)");
}

TEST_CASE("iat later than now plus the leeway is refused") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  Json claims = good_claims();
  claims["iat"] = epoch_seconds(kNow) + 31;
  claims.erase("nbf");
  CHECK(refusal(verifier, signed_token(key.signing, claims)) ==
        "token was issued in the future, at 2026-12-06T10:00:31Z (now 2026-12-06T10:00:00Z, leeway 30 s): check the issuer's "
        "clock");
  claims["iat"] = epoch_seconds(kNow) + 30;
  CHECK(verifier.verify(signed_token(key.signing, claims), kNow));
}

TEST_CASE("exp, nbf and iat must be NumericDates between 1970 and 2255") {
  const TestKey& key = test_key("ES256");
  const auto verifier = verifier_for(key.jwks);
  for (const char* name : {"exp", "nbf", "iat"}) {
    Json claims = good_claims();
    claims[name] = "2026-12-06T10:00:00Z";
    CHECK(refusal(verifier, signed_token(key.signing, claims)) ==
          fmt::format("token claim {} is not a number of seconds since 1970 (a NumericDate)", name));
    claims[name] = -1;
    CHECK(refusal(verifier, signed_token(key.signing, claims)) ==
          fmt::format("token claim {} is outside the years 1970 to 2255", name));
    claims[name] = 1e300;
    CHECK(refusal(verifier, signed_token(key.signing, claims)) ==
          fmt::format("token claim {} is outside the years 1970 to 2255", name));
    claims[name] = std::numeric_limits<std::uint64_t>::max();
    CHECK(refusal(verifier, signed_token(key.signing, claims)) ==
          fmt::format("token claim {} is outside the years 1970 to 2255", name));
  }
  Json claims = good_claims();
  claims["exp"] = static_cast<double>(epoch_seconds(kNow)) + 100.5;  // fractional seconds are allowed
  auto verified = verifier.verify(signed_token(key.signing, claims), kNow);
  REQUIRE(verified);
  CHECK(verified->expires_at == kNow + 100s);
}

TEST_CASE("iss must equal the configured issuer") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks, {.issuer = "https://id.example"});
  Json claims = good_claims();
  CHECK(refusal(verifier, signed_token(key.signing, claims)) ==
        "token has no iss claim; kcron-api expects issuer 'https://id.example'");
  claims["iss"] = "https://evil.example";
  CHECK(refusal(verifier, signed_token(key.signing, claims)) == "token issuer is not the expected 'https://id.example'");
  claims["iss"] = {"https://id.example"};
  CHECK(refusal(verifier, signed_token(key.signing, claims)) == "token issuer is not the expected 'https://id.example'");
  claims["iss"] = "https://id.example";
  CHECK(verifier.verify(signed_token(key.signing, claims), kNow));
  // No issuer configured: any iss is fine.
  CHECK(verifier_for(key.jwks).verify(signed_token(key.signing, claims), kNow));
}

TEST_CASE("aud must contain the configured audience, as a string or in an array") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks, {.audience = "kcron-api"});
  Json claims = good_claims();
  CHECK(refusal(verifier, signed_token(key.signing, claims)) == "token has no aud claim; kcron-api expects audience 'kcron-api'");
  claims["aud"] = "other-api";
  CHECK(refusal(verifier, signed_token(key.signing, claims)) == "token audience does not include 'kcron-api'");
  claims["aud"] = {"other-api", 7};
  CHECK(refusal(verifier, signed_token(key.signing, claims)) == "token audience does not include 'kcron-api'");
  claims["aud"] = "kcron-api";
  CHECK(verifier.verify(signed_token(key.signing, claims), kNow));
  claims["aud"] = {"other-api", "kcron-api"};
  CHECK(verifier.verify(signed_token(key.signing, claims), kNow));
}

TEST_CASE("sub, tenant and roles are required with their types") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA", "HS256");
  const TestKey& key = test_key(alg);
  const auto verifier = verifier_for(key.jwks);
  const auto refused_with = [&](const char* name, const Json& value) {
    Json claims = good_claims();
    if (value.is_discarded())
      claims.erase(name);
    else
      claims[name] = value;
    return refusal(verifier, signed_token(key.signing, claims));
  };
  const Json absent = Json::value_t::discarded;
  const std::string no_sub = "token has no sub claim (the subject, a non-empty string)";
  CHECK(refused_with("sub", absent) == no_sub);
  CHECK(refused_with("sub", "") == no_sub);
  CHECK(refused_with("sub", 42) == no_sub);
  CHECK(refused_with("tenant", absent) == "token has no tenant claim (a tenant name string)");
  CHECK(refused_with("tenant", Json::array()) == "token has no tenant claim (a tenant name string)");
  CHECK(refused_with("tenant", "Acme") ==
        "token claim tenant: tenant name \"Acme\" has \"A\": only a-z, 0-9 and '-' are allowed");
  CHECK(refused_with("tenant", "") == "token claim tenant: tenant name is empty");
  CHECK(refused_with("roles", absent) == "token has no roles claim (an array of role names)");
  CHECK(refused_with("roles", "admin") == "token claim roles is not an array of strings");
  CHECK(refused_with("roles", {"admin", 1}) == "token claim roles is not an array of strings");
  Json claims = good_claims();
  claims["roles"] = Json::array();
  auto no_roles = verifier.verify(signed_token(key.signing, claims), kNow);
  REQUIRE(no_roles);  // the API decides what a token without roles may do (nothing)
  CHECK(no_roles->roles.empty());
}

TEST_CASE("a token longer than max_token_bytes is refused before any parsing") {
  const TestKey& key = test_key("ES256");
  const auto verifier = verifier_for(key.jwks, {.max_token_bytes = 300});
  CHECK(refusal(verifier, std::string(301, '.')) == "token of 301 bytes is longer than the 300 accepted");
  CHECK(refusal(verifier, std::string(300, '.')) == "token is not a compact JWS (three base64url parts separated by '.')");
  Json claims = good_claims();
  claims["pad"] = std::string(400, 'x');
  const std::string token = signed_token(key.signing, claims);
  CHECK(refusal(verifier, token) == fmt::format("token of {} bytes is longer than the 300 accepted", token.size()));
  CHECK(verifier_for(key.jwks).verify(token, kNow));
}

TEST_CASE("RSA keys under 2048 bits are refused when the key set is loaded") {
  const std::string small = R"({"keys":[)" + rsa_jwk(1024, "old") + "]}";
  CHECK(create_error({.jwks = small}) == "key 'old': an RSA key of 1024 bits is refused (kcron accepts 2048 to 8192 bits)");
  const std::string enough = R"({"keys":[)" + rsa_jwk(2048, "new") + "]}";
  CHECK(JwtVerifier::create({.jwks = enough}));
}

TEST_CASE("key rotation: with two keys in the JWKS, the kid selects the key that verifies") {
  const std::string old_alg = GENERATE("RS256", "ES256", "EdDSA");
  const TestKey& old_key = test_key(old_alg, "2026-01");
  const TestKey& new_key = test_key("ES256", "2026-06");
  auto merged = kcron::auth::merge_jwks(old_key.jwks, new_key.jwks);
  REQUIRE(merged);
  const auto verifier = verifier_for(*merged);
  CHECK(verifier.key_count() == 2);
  auto from_old = verifier.verify(signed_token(old_key.signing), kNow);
  REQUIRE(from_old);
  CHECK(from_old->key_id == "2026-01");
  auto from_new = verifier.verify(signed_token(new_key.signing), kNow);
  REQUIRE(from_new);
  CHECK(from_new->key_id == "2026-06");
  // Signed by the new key but naming the old one: the old key decides, and refuses.
  SigningKey misnamed = new_key.signing;
  misnamed.kid = "2026-01";
  const std::string refused = refusal(verifier, signed_token(misnamed));
  if (old_alg == "ES256")
    CHECK(refused == "token signature does not verify with key '2026-01'");
  else
    CHECK(refused == "token algorithm ES256 does not match key '2026-01' (" + old_alg + ")");
  // After rotation the old key is gone from the JWKS, and so are its tokens.
  CHECK(refusal(verifier_for(new_key.jwks), signed_token(old_key.signing)) ==
        "token key id (kid) '2026-01' is not one of the 1 keys kcron-api trusts");
}

TEST_CASE("a JWKS with a malformed key names the key in the error") {
  const Json good = Json::parse(test_key("ES256", "good").jwks)["keys"][0];
  const auto with_key = [&](const Json& bad) { return Json{{"keys", {good, bad}}}.dump(); };
  Json bad = Json::parse(test_key("ES256", "broken").jwks)["keys"][0];
  bad["x"] = base64url_encode(std::string(32, '\x01'));  // not a point on P-256
  CHECK(create_error({.jwks = with_key(bad)}).find("key 'broken': not a valid EC public key") == 0);
  bad["x"] = "not base64url!";
  CHECK(create_error({.jwks = with_key(bad)}) == "key 'broken': \"x\" is not unpadded base64url");
  bad["x"] = base64url_encode(std::string(31, '\x01'));
  CHECK(create_error({.jwks = with_key(bad)}) == "key 'broken': a P-256 key's x and y are 32 bytes each, not 31 and 32");
  bad.erase("x");
  CHECK(create_error({.jwks = with_key(bad)}) == "key 'broken': the member \"x\" is missing");
  bad = Json::parse(test_key("ES256", "broken").jwks)["keys"][0];
  bad["crv"] = "P-384";
  CHECK(create_error({.jwks = with_key(bad)}) ==
        "key 'broken': EC curve 'P-384' is not supported (kcron verifies ES256 with P-256)");
  bad["crv"] = "P-256";
  bad["alg"] = "RS256";
  CHECK(create_error({.jwks = with_key(bad)}) == "key 'broken': alg 'RS256' does not fit a EC key, which verifies ES256 only");
  bad["alg"] = "ES256";
  bad["use"] = "enc";
  CHECK(create_error({.jwks = with_key(bad)}) == "key 'broken': use is 'enc', not \"sig\"");
  bad.erase("use");
  bad["d"] = "secret";
  CHECK(create_error({.jwks = with_key(bad)}) == "key 'broken' holds private key material (\"d\"): publish only the public key");
  CHECK(create_error({.jwks = with_key({{"kty", "RSA"}, {"kid", "r"}, {"e", "AQAB"}})}) ==
        "key 'r': the member \"n\" is missing");
  CHECK(create_error({.jwks = with_key({{"kty", "XYZ"}, {"kid", "x"}})}) ==
        "key 'x': kty 'XYZ' is not supported (RSA, EC P-256, OKP Ed25519, and oct when HS256 is allowed)");
  CHECK(create_error({.jwks = with_key({{"kid", "x"}})}) == "key 'x': the member \"kty\" is missing");
  CHECK(create_error({.jwks = with_key({{"kty", "OKP"}, {"crv", "X25519"}, {"kid", "x"}})}) ==
        "key 'x': OKP curve 'X25519' is not supported (kcron verifies EdDSA with Ed25519)");
  CHECK(create_error({.jwks = with_key(7)}) == "key 2 of the key set is not a JSON object");
  CHECK(create_error({.jwks = with_key(good)}) == "key 'good' appears twice in the JWKS: each kid names one key");
  Json no_kid = good;
  no_kid.erase("kid");
  CHECK(create_error({.jwks = with_key(no_kid)}) ==
        "key 2 of the key set (no kid) has no kid: in a key set of 2 keys each key needs one, for tokens to name it");
}

TEST_CASE("create refuses a JWKS that is not a key set, and an empty one") {
  CHECK(create_error({.jwks = "{"}) == "the JWKS is not valid JSON");
  CHECK(create_error({.jwks = "[]"}) == "the JWKS is not a JSON object with a \"keys\" array");
  CHECK(create_error({.jwks = R"({"keys":{}})"}) == "the JWKS is not a JSON object with a \"keys\" array");
  CHECK(create_error({.jwks = R"({"keys":[]})"}) == "no verification keys: the JWKS has none");
  CHECK(create_error({}) == "no verification keys: the JWKS has none");
}

TEST_CASE("errors never show key material or the token") {
  const TestKey& hs = test_key("HS256");
  const TestKey& rs = test_key("RS256");
  const auto verifier = verifier_for(hs.jwks);
  Json claims = good_claims();
  claims["sub"] = "";
  const std::string token = signed_token(hs.signing, claims);
  std::vector<std::string> errors = {refusal(verifier, token), refusal(verifier, token, kNow + 48h),
                                     refusal(verifier, token.substr(0, token.size() - 2))};
  Json bad = Json::parse(rs.jwks)["keys"][0];
  bad["e"] = "AA";  // an exponent of zero
  errors.push_back(create_error({.jwks = Json{{"keys", {bad}}}.dump()}));
  for (const auto& error : errors) {
    INFO(error);
    CHECK(error.find(part(token, 1)) == std::string::npos);
    CHECK(error.find(part(token, 2).substr(0, 10)) == std::string::npos);
    CHECK(error.find(kSecret) == std::string::npos);
    CHECK(error.find(bad["n"].get<std::string>().substr(0, 16)) == std::string::npos);
  }
}

TEST_CASE("a hostile kid or alg is shown bounded and printable") {
  const TestKey& key = test_key("ES256");
  const auto verifier = verifier_for(key.jwks);
  const std::string error =
      refusal(verifier, signed_token(key.signing, {{"alg", "ES256"}, {"kid", std::string(500, 'k') + "\n"}}, good_claims()));
  CHECK(error == "token key id (kid) '" + std::string(64, 'k') + "...' is not one of the 1 keys kcron-api trusts");
  CHECK(refusal(verifier, signed_token(key.signing, {{"alg", "ES\n256"}, {"kid", "k1"}}, good_claims())) ==
        "token algorithm 'ES\\x0a256' does not match key 'k1' (ES256)");
}

TEST_CASE("verify may run on many threads at once") {
  const TestKey& es = test_key("ES256", "t1");
  const TestKey& rs = test_key("RS256", "t2");
  auto merged = kcron::auth::merge_jwks(es.jwks, rs.jwks);
  REQUIRE(merged);
  const auto verifier = verifier_for(*merged);
  const std::vector<std::string> tokens = {signed_token(es.signing), signed_token(rs.signing)};
  std::atomic<int> verified{0};
  std::vector<std::thread> threads;
  for (int thread = 0; thread < 4; ++thread) {
    threads.emplace_back([&, thread] {
      for (int round = 0; round < 25; ++round)
        if (verifier.verify(tokens[static_cast<std::size_t>((thread + round) % 2)], kNow)) ++verified;
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(verified == 100);
}

TEST_CASE("load_signing_key takes the algorithm from the PEM and refuses a mismatch") {
  const TestKey& es = test_key("ES256");
  auto generated = kcron::auth::generate_key("EdDSA", "ed");
  REQUIRE(generated);
  auto detected = kcron::auth::load_signing_key(generated->private_pem, "", "ed");
  REQUIRE(detected);
  CHECK(detected->alg == "EdDSA");
  auto mismatch = kcron::auth::load_signing_key(generated->private_pem, "ES256", "ed");
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error().message() == "the PEM holds a key that signs EdDSA, not ES256");
  auto not_pem = kcron::auth::load_signing_key(es.jwks, "", "");
  REQUIRE_FALSE(not_pem);
  CHECK(not_pem.error().message() == "the key is not a PEM private key (an HS256 secret needs the algorithm HS256)");
  auto unknown = kcron::auth::load_signing_key(generated->private_pem, "PS256", "");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message() == "algorithm 'PS256' is not one of RS256, ES256, EdDSA, HS256");
  CHECK_FALSE(kcron::auth::load_signing_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "", ""));
}

TEST_CASE("Ed25519 signing and thumbprints match RFC 8037's example") {
  // RFC 8037 appendix A.1 (the key), A.3 (its thumbprint) and A.4 (a signature).
  const std::string seed = *base64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
  const kcron::auth::ossl::Pkey pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size()));
  REQUIRE(pkey);
  const kcron::auth::ossl::Bio bio(BIO_new(BIO_s_mem()));
  REQUIRE(PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  auto key = kcron::auth::load_signing_key(std::string(data, static_cast<std::size_t>(length)), "EdDSA", "");
  REQUIRE(key);
  auto thumbprint = kcron::auth::jwk_thumbprint(*key);
  REQUIRE(thumbprint);
  CHECK(*thumbprint == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  auto signed_example = kcron::auth::sign_compact(R"({"alg":"EdDSA"})", "Example of Ed25519 signing", *key);
  REQUIRE(signed_example);
  CHECK(*signed_example ==
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg");
}

TEST_CASE("generate_key names the key by its thumbprint when no kid is given") {
  const std::string alg = GENERATE("RS256", "ES256", "EdDSA");
  auto generated = kcron::auth::generate_key(alg, "");
  REQUIRE(generated);
  const Json jwk = Json::parse(generated->jwks)["keys"][0];
  CHECK(jwk["alg"] == alg);
  CHECK(jwk["use"] == "sig");
  CHECK_FALSE(jwk.contains("d"));
  auto key = kcron::auth::load_signing_key(generated->private_pem, "", "");
  REQUIRE(key);
  auto thumbprint = kcron::auth::jwk_thumbprint(*key);
  REQUIRE(thumbprint);
  CHECK(jwk["kid"] == *thumbprint);
  CHECK(generated->kid == *thumbprint);
  CHECK(generated->private_pem.find("-----BEGIN PRIVATE KEY-----") == 0);
  CHECK_FALSE(kcron::auth::generate_key("HS256", ""));
  CHECK_FALSE(kcron::auth::generate_key(alg, "bad kid"));
}

TEST_CASE("merge_jwks appends keys and refuses a kid that is already there") {
  const TestKey& one = test_key("ES256", "m1");
  const TestKey& two = test_key("EdDSA", "m2");
  auto merged = kcron::auth::merge_jwks(one.jwks, two.jwks);
  REQUIRE(merged);
  const Json keys = Json::parse(*merged)["keys"];
  REQUIRE(keys.size() == 2);
  CHECK(keys[0]["kid"] == "m1");
  CHECK(keys[1]["kid"] == "m2");
  auto again = kcron::auth::merge_jwks(*merged, two.jwks);
  REQUIRE_FALSE(again);
  CHECK(again.error().message() == "the JWKS already has a key with kid 'm2'");
  Json no_kid = Json::parse(two.jwks);
  no_kid["keys"][0].erase("kid");
  CHECK_FALSE(kcron::auth::merge_jwks(one.jwks, no_kid.dump()));
  CHECK_FALSE(kcron::auth::merge_jwks("[]", two.jwks));
}
