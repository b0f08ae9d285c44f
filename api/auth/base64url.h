// Base64url without padding (RFC 7515 section 2, RFC 4648 section 5), as JWS and JWK use it.
// Decoding is strict: only [A-Za-z0-9_-], no '=', no length of 4n+1, and the unused low bits of
// the last character must be zero, so each byte string has exactly one accepted spelling. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kcron::auth {

std::string base64url_encode(std::string_view bytes);

// The bytes `text` spells, or nothing when it is not canonical unpadded base64url.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace kcron::auth
