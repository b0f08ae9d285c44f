#include "auth/base64url.h"

#include <array>
#include <cstdint>

namespace kcron::auth {

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::uint8_t kInvalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> table{};
  table.fill(kInvalid);
  for (std::size_t index = 0; index < kAlphabet.size(); ++index)
    table[static_cast<unsigned char>(kAlphabet[index])] = static_cast<std::uint8_t>(index);
  return table;
}

constexpr std::array<std::uint8_t, 256> kDecodeTable = make_decode_table();

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string text;
  text.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t offset = 0;
  for (; offset + 3 <= bytes.size(); offset += 3) {
    const std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[offset])) << 16U |
                                static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[offset + 1])) << 8U |
                                static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[offset + 2]));
    text += kAlphabet[(group >> 18U) & 0x3fU];
    text += kAlphabet[(group >> 12U) & 0x3fU];
    text += kAlphabet[(group >> 6U) & 0x3fU];
    text += kAlphabet[group & 0x3fU];
  }
  const std::size_t rest = bytes.size() - offset;
  if (rest == 1) {
    const std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[offset])) << 16U;
    text += kAlphabet[(group >> 18U) & 0x3fU];
    text += kAlphabet[(group >> 12U) & 0x3fU];
  } else if (rest == 2) {
    const std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[offset])) << 16U |
                                static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[offset + 1])) << 8U;
    text += kAlphabet[(group >> 18U) & 0x3fU];
    text += kAlphabet[(group >> 12U) & 0x3fU];
    text += kAlphabet[(group >> 6U) & 0x3fU];
  }
  return text;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string bytes;
  bytes.reserve(text.size() * 3 / 4);
  std::uint32_t buffer = 0;
  unsigned buffered_bits = 0;
  for (const char character : text) {
    const std::uint8_t value = kDecodeTable[static_cast<unsigned char>(character)];
    if (value == kInvalid) return std::nullopt;
    buffer = (buffer << 6U) | value;
    buffered_bits += 6;
    if (buffered_bits >= 8) {
      buffered_bits -= 8;
      bytes += static_cast<char>((buffer >> buffered_bits) & 0xffU);
    }
  }
  // The bits left over (2 or 4) are padding of the last character: a canonical encoding has zeros.
  if ((buffer & ((1U << buffered_bits) - 1U)) != 0) return std::nullopt;
  return bytes;
}

}  // namespace kcron::auth
