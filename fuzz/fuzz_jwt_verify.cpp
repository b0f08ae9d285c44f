// libFuzzer target: kcron-api's bearer token verifier (api/auth) holding an ES256 and an RS256 key.
// The first byte picks the input's use: even, the rest is a token as a client would send it; odd,
// the rest is "header JSON\npayload JSON", signed with the ES256 key, so the claim checks behind the
// signature are reached too. Every input is answered without a crash; a token that verifies must
// carry a non-empty subject, a valid tenant and the kid of the ES256 key (only it can sign here).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/jwt.h"
#include "kcron/tenant.h"

namespace {

// Test keys made for this target with `kcron token keygen`; they guard nothing.
constexpr std::string_view kJwks =
    R"({"keys":[{"alg":"ES256","crv":"P-256","kid":"fuzz-es","kty":"EC","use":"sig",)"
    R"("x":"HMwLcRpmdtCpABY38fXvmrHoHiPcyM0xu_9IUUK7IL8","y":"w6yOCkiYTvLKemS472B6VT8RSradgLdiuUPIO1CEZoM"},)"
    R"({"alg":"RS256","e":"AQAB","kid":"fuzz-rs","kty":"RSA","n":"hwSF6Aw3MTw5W3Py77QsnGJZxlSsuuqvfIgn2QwvvncPsic2B0ngZGnssE2)"
    R"(qqITUjae5vyrxvriaY7uKyJpOTvvBVYMkMmPw1nMiRjxZg-6mdkfeKjl7LV1LIxvd7k4Q85of29L6FR7aBGPIDCXn3nSWxGMWqRz78i36s9lUbP1LnQ)"
    R"(8pHfAW-OnY69EecSG9utVDK1-Fb4WhHZJ-T05OE9x6QcgyvHUATr861bDIWg7T_AAX8o5HZxUD6gr2lqYo83Ebqcyc0E1LL1Q0mWrTrmeFQuPtcV0KQ)"
    R"(GG34-F9A1jXfniy7SIDYK9Tqr9nZ55R9zo74hntR9djcWhZi4FOnw","use":"sig"}]})";
constexpr std::string_view kEs256Pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7GwHYmsomq/8cyQ/\n"
    "4S4lJ6rxgNJSqjiqmx0vg449hfChRANCAAQczAtxGmZ20KkAFjfx9e+asegeI9zI\n"
    "zTG7/0hRQrsgv8OsjgpImE7yynpkuO9gelU/EUq2nYC3YrlDyDtQhGaD\n"
    "-----END PRIVATE KEY-----\n";
const std::chrono::system_clock::time_point kNow{std::chrono::seconds(1796551200)};  // 2026-12-06T10:00:00Z

struct Fixture {
  kcron::auth::JwtVerifier verifier;
  kcron::auth::SigningKey signer;
};

const Fixture& fixture() {
  static const Fixture instance = [] {
    kcron::auth::VerifierConfig config;
    config.jwks = kJwks;
    config.issuer = "https://id.example";
    config.audience = "kcron-api";
    auto verifier = kcron::auth::JwtVerifier::create(config);
    auto signer = kcron::auth::load_signing_key(kEs256Pem, "ES256", "fuzz-es");
    if (!verifier || verifier->key_count() != 2 || !signer) std::abort();
    return Fixture{*verifier, *signer};
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Fixture& keys = fixture();
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token(rest);
  if ((data[0] & 1U) != 0) {
    const auto newline = rest.find('\n');
    if (newline == std::string_view::npos) return 0;
    auto signed_token = kcron::auth::sign_compact(rest.substr(0, newline), rest.substr(newline + 1), keys.signer);
    if (!signed_token) std::abort();  // signing any bytes must work
    token = std::move(*signed_token);
  }
  auto claims = keys.verifier.verify(token, kNow);
  if (!claims) {
    if (claims.error().message().empty()) std::abort();
    return 0;
  }
  if (claims->subject.empty() || !kcron::validate_tenant_name(claims->tenant) || claims->key_id != "fuzz-es") std::abort();
  return 0;
}
