#include "auth/keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>

#include <array>
#include <nlohmann/json.hpp>
#include <set>

#include "auth/base64url.h"
#include "auth/text.h"

namespace kcron::auth {

namespace ossl {

std::string take_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  std::array<char, 256> text{};
  ERR_error_string_n(code, text.data(), text.size());
  return text.data();
}

std::string bignum_bytes(const BIGNUM* number, std::size_t width) {
  const auto size = static_cast<std::size_t>(BN_num_bytes(number));
  const std::size_t length = width > size ? width : size;
  std::string bytes(length, '\0');
  BN_bn2binpad(number, reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(length));
  return bytes;
}

}  // namespace ossl

namespace detail {

namespace {

using Json = nlohmann::json;

constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;
constexpr std::size_t kP256CoordinateBytes = 32;
constexpr std::size_t kEd25519KeyBytes = 32;
constexpr std::size_t kEs256SignatureBytes = 64;
constexpr std::size_t kHs256SignatureBytes = 32;

const unsigned char* bytes_of(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

std::shared_ptr<EVP_PKEY> share(EVP_PKEY* key) {
  return {key, EVP_PKEY_free};
}

// The string member `name` of `object`, or nothing when it is absent; an error when it is not a string.
Result<std::optional<std::string>> optional_string(const Json& object, const char* name, std::string_view label) {
  const auto found = object.find(name);
  if (found == object.end()) return std::optional<std::string>{};
  if (!found->is_string()) return make_error("{}: {} is not a string", label, name);
  return std::optional<std::string>{found->get<std::string>()};
}

// The bytes of the base64url member `name` (required).
Result<std::string> required_bytes(const Json& object, const char* name, std::string_view label) {
  auto text = optional_string(object, name, label);
  if (!text) return text.error();
  if (!text->has_value()) return make_error("{}: the member \"{}\" is missing", label, name);
  auto bytes = base64url_decode(**text);
  if (!bytes || bytes->empty()) return make_error("{}: \"{}\" is not unpadded base64url", label, name);
  return std::move(*bytes);
}

Result<ossl::Pkey> key_from_params(const char* type, const OSSL_PARAM* params, std::string_view label) {
  const ossl::PkeyCtx context(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!context || EVP_PKEY_fromdata_init(context.get()) != 1 ||
      EVP_PKEY_fromdata(context.get(), &raw, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) != 1) {
    return make_error("{}: not a valid {} public key ({})", label, type, ossl::take_error());
  }
  ossl::Pkey key(raw);
  const ossl::PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1)
    return make_error("{}: not a valid {} public key ({})", label, type, ossl::take_error());
  return key;
}

Result<ossl::Pkey> rsa_public_key(const Json& jwk, std::string_view label) {
  auto modulus = required_bytes(jwk, "n", label);
  if (!modulus) return modulus.error();
  auto exponent = required_bytes(jwk, "e", label);
  if (!exponent) return exponent.error();
  const ossl::Bn n(BN_bin2bn(bytes_of(*modulus), static_cast<int>(modulus->size()), nullptr));
  const ossl::Bn e(BN_bin2bn(bytes_of(*exponent), static_cast<int>(exponent->size()), nullptr));
  const int bits = n ? BN_num_bits(n.get()) : 0;
  if (bits < kMinRsaBits || bits > kMaxRsaBits)
    return make_error("{}: an RSA key of {} bits is refused (kcron accepts {} to {} bits)", label, bits, kMinRsaBits,
                      kMaxRsaBits);
  const ossl::ParamBld builder(OSSL_PARAM_BLD_new());
  if (!builder || !e || OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return make_error("{}: {}", label, ossl::take_error());
  }
  const ossl::Params params(OSSL_PARAM_BLD_to_param(builder.get()));
  if (!params) return make_error("{}: {}", label, ossl::take_error());
  return key_from_params("RSA", params.get(), label);
}

Result<ossl::Pkey> p256_public_key(const Json& jwk, std::string_view label) {
  auto x = required_bytes(jwk, "x", label);
  if (!x) return x.error();
  auto y = required_bytes(jwk, "y", label);
  if (!y) return y.error();
  if (x->size() != kP256CoordinateBytes || y->size() != kP256CoordinateBytes)
    return make_error("{}: a P-256 key's x and y are {} bytes each, not {} and {}", label, kP256CoordinateBytes, x->size(),
                      y->size());
  const std::string point = std::string(1, '\x04') + *x + *y;  // SEC 1 uncompressed point
  const ossl::ParamBld builder(OSSL_PARAM_BLD_new());
  if (!builder || OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    return make_error("{}: {}", label, ossl::take_error());
  }
  const ossl::Params params(OSSL_PARAM_BLD_to_param(builder.get()));
  if (!params) return make_error("{}: {}", label, ossl::take_error());
  return key_from_params("EC", params.get(), label);
}

Result<ossl::Pkey> ed25519_public_key(const Json& jwk, std::string_view label) {
  auto x = required_bytes(jwk, "x", label);
  if (!x) return x.error();
  if (x->size() != kEd25519KeyBytes)
    return make_error("{}: an Ed25519 key's x is {} bytes, not {}", label, kEd25519KeyBytes, x->size());
  ossl::Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes_of(*x), x->size()));
  if (!key) return make_error("{}: not a valid Ed25519 public key ({})", label, ossl::take_error());
  return key;
}

// One JWK as a verification key, pinned to the one algorithm its kty (and crv) allows.
Result<VerificationKey> parse_jwk(const Json& jwk, std::size_t position, bool allow_hs256) {
  VerificationKey key;
  std::string label = fmt::format("key {} of the key set", position);
  if (!jwk.is_object()) return make_error("{} is not a JSON object", label);
  auto kid = optional_string(jwk, "kid", label);
  if (!kid) return kid.error();
  if (kid->has_value()) {
    if ((*kid)->empty()) return make_error("{}: kid is empty", label);
    key.kid = **kid;
    label = fmt::format("key {}", quote_value(key.kid));
  } else {
    label += " (no kid)";
  }
  key.label = label;
  auto kty = optional_string(jwk, "kty", label);
  if (!kty) return kty.error();
  if (!kty->has_value()) return make_error("{}: the member \"kty\" is missing", label);
  auto use = optional_string(jwk, "use", label);
  if (!use) return use.error();
  if (use->has_value() && **use != "sig") return make_error("{}: use is {}, not \"sig\"", label, quote_value(**use));
  auto alg = optional_string(jwk, "alg", label);
  if (!alg) return alg.error();
  auto crv = optional_string(jwk, "crv", label);
  if (!crv) return crv.error();

  const std::string& type = **kty;
  if (type != "oct" && jwk.contains("d"))
    return make_error("{} holds private key material (\"d\"): publish only the public key", label);
  if (type == "RSA") {
    auto public_key = rsa_public_key(jwk, label);
    if (!public_key) return public_key.error();
    key.algorithm = Algorithm::kRs256;
    key.public_key = share(public_key->release());
  } else if (type == "EC") {
    if (!crv->has_value() || **crv != "P-256")
      return make_error("{}: EC curve {} is not supported (kcron verifies ES256 with P-256)", label,
                        crv->has_value() ? quote_value(**crv) : "(none)");
    auto public_key = p256_public_key(jwk, label);
    if (!public_key) return public_key.error();
    key.algorithm = Algorithm::kEs256;
    key.public_key = share(public_key->release());
  } else if (type == "OKP") {
    if (!crv->has_value() || **crv != "Ed25519")
      return make_error("{}: OKP curve {} is not supported (kcron verifies EdDSA with Ed25519)", label,
                        crv->has_value() ? quote_value(**crv) : "(none)");
    auto public_key = ed25519_public_key(jwk, label);
    if (!public_key) return public_key.error();
    key.algorithm = Algorithm::kEdDsa;
    key.public_key = share(public_key->release());
  } else if (type == "oct") {
    if (!allow_hs256)
      return make_error("{} is a shared secret (kty \"oct\", HS256), refused unless HS256 is allowed (development only)", label);
    auto secret = required_bytes(jwk, "k", label);
    if (!secret) return secret.error();
    if (secret->size() < kMinHs256SecretBytes)
      return make_error("{}: an HS256 secret of {} bytes is too short (at least {})", label, secret->size(),
                        kMinHs256SecretBytes);
    key.algorithm = Algorithm::kHs256;
    key.secret = std::move(*secret);
  } else {
    return make_error("{}: kty {} is not supported (RSA, EC P-256, OKP Ed25519, and oct when HS256 is allowed)", label,
                      quote_value(type));
  }
  if (alg->has_value() && **alg != algorithm_name(key.algorithm))
    return make_error("{}: alg {} does not fit a {} key, which verifies {} only", label, quote_value(**alg), type,
                      algorithm_name(key.algorithm));
  return key;
}

bool digest_verify(EVP_PKEY* key, const EVP_MD* digest, std::string_view signing_input, std::string_view signature) {
  const ossl::MdCtx context(EVP_MD_CTX_new());
  const bool valid =
      context && EVP_DigestVerifyInit(context.get(), nullptr, digest, nullptr, key) == 1 &&
      EVP_DigestVerify(context.get(), bytes_of(signature), signature.size(), bytes_of(signing_input), signing_input.size()) == 1;
  ERR_clear_error();
  return valid;
}

Result<std::string> digest_sign(EVP_PKEY* key, const EVP_MD* digest, std::string_view signing_input) {
  const ossl::MdCtx context(EVP_MD_CTX_new());
  std::size_t length = 0;
  if (!context || EVP_DigestSignInit(context.get(), nullptr, digest, nullptr, key) != 1 ||
      EVP_DigestSign(context.get(), nullptr, &length, bytes_of(signing_input), signing_input.size()) != 1) {
    return make_error("signing failed: {}", ossl::take_error());
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length, bytes_of(signing_input),
                     signing_input.size()) != 1) {
    return make_error("signing failed: {}", ossl::take_error());
  }
  signature.resize(length);
  return signature;
}

std::string hmac_sha256(std::string_view secret, std::string_view input) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), bytes_of(input), input.size(), mac.data(), &length) ==
      nullptr) {
    ERR_clear_error();
    return {};
  }
  return {reinterpret_cast<const char*>(mac.data()), length};
}

// A JWS ES256 signature (r||s, 32 bytes each) as the DER ECDSA-Sig-Value EVP verifies.
std::optional<std::string> es256_to_der(std::string_view signature) {
  constexpr int kHalf = static_cast<int>(kP256CoordinateBytes);
  ossl::Bn r(BN_bin2bn(bytes_of(signature.substr(0, kP256CoordinateBytes)), kHalf, nullptr));
  ossl::Bn s(BN_bin2bn(bytes_of(signature.substr(kP256CoordinateBytes)), kHalf, nullptr));
  const ossl::EcdsaSig value(ECDSA_SIG_new());
  if (!r || !s || !value || ECDSA_SIG_set0(value.get(), r.get(), s.get()) != 1) return std::nullopt;
  (void)r.release();  // owned by value now
  (void)s.release();
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(value.get(), &der);
  if (length <= 0) return std::nullopt;
  std::string bytes(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return bytes;
}

}  // namespace

std::string_view algorithm_name(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kRs256:
      return kRs256;
    case Algorithm::kEs256:
      return kEs256;
    case Algorithm::kEdDsa:
      return kEdDsa;
    case Algorithm::kHs256:
      return kHs256;
  }
  return "?";
}

std::optional<Algorithm> algorithm_from_name(std::string_view name) {
  for (const auto algorithm : {Algorithm::kRs256, Algorithm::kEs256, Algorithm::kEdDsa, Algorithm::kHs256})
    if (algorithm_name(algorithm) == name) return algorithm;
  return std::nullopt;
}

Result<std::vector<VerificationKey>> parse_jwks(std::string_view jwks, bool allow_hs256) {
  const Json document = Json::parse(jwks, nullptr, false);
  if (document.is_discarded()) return make_error("the JWKS is not valid JSON");
  const auto keys = document.is_object() ? document.find("keys") : document.end();
  if (keys == document.end() || !keys->is_array()) return make_error("the JWKS is not a JSON object with a \"keys\" array");
  std::vector<VerificationKey> parsed;
  std::set<std::string, std::less<>> kids;
  std::size_t position = 0;
  for (const Json& jwk : *keys) {
    auto key = parse_jwk(jwk, ++position, allow_hs256);
    if (!key) return key.error();
    if (!key->kid.empty() && !kids.insert(key->kid).second)
      return make_error("{} appears twice in the JWKS: each kid names one key", key->label);
    parsed.push_back(std::move(*key));
  }
  return parsed;
}

bool verify_signature(const VerificationKey& key, std::string_view signing_input, std::string_view signature) {
  switch (key.algorithm) {
    case Algorithm::kRs256:
      return digest_verify(key.public_key.get(), EVP_sha256(), signing_input, signature);
    case Algorithm::kEs256: {
      if (signature.size() != kEs256SignatureBytes) return false;
      const auto der = es256_to_der(signature);
      return der && digest_verify(key.public_key.get(), EVP_sha256(), signing_input, *der);
    }
    case Algorithm::kEdDsa:
      return digest_verify(key.public_key.get(), nullptr, signing_input, signature);
    case Algorithm::kHs256: {
      if (signature.size() != kHs256SignatureBytes) return false;
      const std::string expected = hmac_sha256(key.secret, signing_input);
      return expected.size() == kHs256SignatureBytes &&
             CRYPTO_memcmp(expected.data(), signature.data(), kHs256SignatureBytes) == 0;
    }
  }
  return false;
}

Result<std::string> sign(const PrivateKey& key, std::string_view signing_input) {
  switch (key.algorithm) {
    case Algorithm::kRs256:
      return digest_sign(key.key.get(), EVP_sha256(), signing_input);
    case Algorithm::kEs256: {
      auto der = digest_sign(key.key.get(), EVP_sha256(), signing_input);
      if (!der) return der.error();
      const auto* cursor = bytes_of(*der);
      const ossl::EcdsaSig value(d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der->size())));
      if (!value) return make_error("signing failed: {}", ossl::take_error());
      return ossl::bignum_bytes(ECDSA_SIG_get0_r(value.get()), kP256CoordinateBytes) +
             ossl::bignum_bytes(ECDSA_SIG_get0_s(value.get()), kP256CoordinateBytes);
    }
    case Algorithm::kEdDsa:
      return digest_sign(key.key.get(), nullptr, signing_input);
    case Algorithm::kHs256: {
      std::string mac = hmac_sha256(key.secret, signing_input);
      if (mac.empty()) return make_error("signing failed: HMAC-SHA-256 is not available");
      return mac;
    }
  }
  return make_error("signing failed: unknown algorithm");
}

Result<std::string> public_jwk_members(const PrivateKey& key) {
  Json jwk;
  switch (key.algorithm) {
    case Algorithm::kRs256: {
      BIGNUM* n = nullptr;
      BIGNUM* e = nullptr;
      if (EVP_PKEY_get_bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
          EVP_PKEY_get_bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        BN_free(n);
        return make_error("the RSA key's public half: {}", ossl::take_error());
      }
      const ossl::Bn modulus(n);
      const ossl::Bn exponent(e);
      jwk = {{"kty", "RSA"},
             {"n", base64url_encode(ossl::bignum_bytes(modulus.get(), 0))},
             {"e", base64url_encode(ossl::bignum_bytes(exponent.get(), 0))}};
      break;
    }
    case Algorithm::kEs256: {
      BIGNUM* x = nullptr;
      BIGNUM* y = nullptr;
      if (EVP_PKEY_get_bn_param(key.key.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
          EVP_PKEY_get_bn_param(key.key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
        BN_free(x);
        return make_error("the EC key's public half: {}", ossl::take_error());
      }
      const ossl::Bn x_owner(x);
      const ossl::Bn y_owner(y);
      jwk = {{"kty", "EC"},
             {"crv", "P-256"},
             {"x", base64url_encode(ossl::bignum_bytes(x_owner.get(), kP256CoordinateBytes))},
             {"y", base64url_encode(ossl::bignum_bytes(y_owner.get(), kP256CoordinateBytes))}};
      break;
    }
    case Algorithm::kEdDsa: {
      std::array<unsigned char, kEd25519KeyBytes> raw{};
      std::size_t length = raw.size();
      if (EVP_PKEY_get_raw_public_key(key.key.get(), raw.data(), &length) != 1 || length != raw.size())
        return make_error("the Ed25519 key's public half: {}", ossl::take_error());
      jwk = {
          {"kty", "OKP"}, {"crv", "Ed25519"}, {"x", base64url_encode({reinterpret_cast<const char*>(raw.data()), raw.size()})}};
      break;
    }
    case Algorithm::kHs256:
      return make_error("an HS256 secret has no public half to publish");
  }
  return jwk.dump();  // nlohmann::json orders members by name, as RFC 7638 wants
}

}  // namespace detail

}  // namespace kcron::auth
