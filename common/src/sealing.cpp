#include "kcron/sealing.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <optional>
#include <ranges>
#include <sstream>

namespace kcron {
namespace {

constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

std::string data_key_aad(std::string_view tenant, std::uint32_t version) {
  std::string aad = "kcron-data-key/v1";
  aad.push_back('\0');
  aad += tenant;
  aad.push_back('\0');
  aad += std::to_string(version);
  return aad;
}

std::string task_aad(std::string_view tenant, const SealingOrigin& origin) {
  std::string aad = "kcron-sealed/v1";
  for (const auto part : {tenant, std::string_view(origin.kind), std::string_view(origin.id)}) {
    aad.push_back('\0');
    aad += part;
  }
  return aad;
}

std::string random_bytes(std::size_t count) {
  std::string bytes(count, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(count)) != 1) return {};
  return bytes;
}

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// AES-256-GCM: ciphertext with the tag appended.
Result<std::string> gcm_seal(std::string_view key, std::string_view nonce, std::string_view aad, std::string_view plain) {
  CipherContext context(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* n = reinterpret_cast<const unsigned char*>(nonce.data());
  int length = 0;
  std::string out(plain.size() + kTagBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (!context || EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, k, n) != 1 ||
      EVP_EncryptUpdate(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(context.get(), o, &length, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1) {
    return make_error("AES-256-GCM sealing failed");
  }
  int final_length = 0;
  if (EVP_EncryptFinal_ex(context.get(), o + length, &final_length) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), o + plain.size()) != 1) {
    return make_error("AES-256-GCM sealing failed");
  }
  return out;
}

// The plain text, or nullopt when the tag does not authenticate.
std::optional<std::string> gcm_open(std::string_view key, std::string_view nonce, std::string_view aad, std::string_view sealed) {
  if (key.size() != kSealingKeyBytes || nonce.size() != kNonceBytes || sealed.size() < kTagBytes) return std::nullopt;
  CipherContext context(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  const auto body = sealed.substr(0, sealed.size() - kTagBytes);
  std::string tag(sealed.substr(body.size()));
  std::string out(body.size(), '\0');
  int length = 0;
  int final_length = 0;
  if (!context ||
      EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                         reinterpret_cast<const unsigned char*>(nonce.data())) != 1 ||
      EVP_DecryptUpdate(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(context.get(), reinterpret_cast<unsigned char*>(out.data()), &length,
                        reinterpret_cast<const unsigned char*>(body.data()), static_cast<int>(body.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag.data()) != 1 ||
      EVP_DecryptFinal_ex(context.get(), reinterpret_cast<unsigned char*>(out.data()) + length, &final_length) != 1) {
    return std::nullopt;
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  std::string hex;
  for (const auto byte : bytes) hex += fmt::format("{:02x}", static_cast<unsigned char>(byte));
  return hex;
}

}  // namespace

std::string new_key_hex() {
  return to_hex(random_bytes(kSealingKeyBytes));
}

Result<std::string> read_master_key(const std::string& path) {
  std::ifstream file(path);
  if (!file) return make_error("sealing master key {}: cannot read it", path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  std::string text = buffer.str();
  text.erase(std::remove_if(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c) != 0; }), text.end());
  if (text.size() != 2 * kSealingKeyBytes ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c) != 0; })) {
    return make_error("sealing master key {}: expected 64 hex digits (kcron sealing init-master-key makes one)", path);
  }
  std::string key;
  for (std::size_t at = 0; at < text.size(); at += 2)
    key.push_back(static_cast<char>(std::stoi(text.substr(at, 2), nullptr, 16)));
  return key;
}

Result<v1::SealingKey> new_sealing_key(std::string_view master_key, std::string_view tenant, std::uint32_t version,
                                       std::int64_t now_ms, std::string* data_key) {
  if (master_key.size() != kSealingKeyBytes) return make_error("the sealing master key must be 32 bytes");
  const auto key = random_bytes(kSealingKeyBytes);
  const auto nonce = random_bytes(kNonceBytes);
  if (key.empty() || nonce.empty()) return make_error("no random bytes for a data key");
  auto wrapped = gcm_seal(master_key, nonce, data_key_aad(tenant, version), key);
  if (!wrapped) return wrapped.error();
  v1::SealingKey sealing;
  sealing.set_version(version);
  sealing.set_nonce(nonce);
  sealing.set_wrapped_key(*wrapped);
  sealing.set_created_ms(now_ms);
  if (data_key != nullptr) *data_key = key;
  return sealing;
}

Result<std::string> unwrap_sealing_key(std::string_view master_key, std::string_view tenant, const v1::SealingKey& key) {
  auto plain = gcm_open(master_key, key.nonce(), data_key_aad(tenant, key.version()), key.wrapped_key());
  if (!plain || plain->size() != kSealingKeyBytes) {
    return make_error(
        "data key version {} of tenant '{}' does not open with this master key (another deployment's key, or "
        "the record was altered)",
        key.version(), tenant);
  }
  return *plain;
}

Result<Keyring> keyring_of(std::string_view master_key, std::string_view tenant, const v1::TenantSettings& settings) {
  Keyring keyring{std::string(tenant), {}};
  for (const auto& key : settings.sealing_keys()) {
    auto plain = unwrap_sealing_key(master_key, tenant, key);
    if (!plain) return plain.error();
    keyring.keys[key.version()] = std::move(*plain);
  }
  return keyring;
}

SealingOrigin sealing_origin_of(const v1::Job& job) {
  if (job.has_schedule_run() && !job.schedule_run().schedule_id().empty()) return {"schedule", job.schedule_run().schedule_id()};
  return {"job", job.id()};
}

Status seal_job(v1::Job& job, const Keyring& keyring, const SealingOrigin& origin) {
  if (keyring.keys.empty()) {
    return make_error("tenant '{}' has no sealing key (kcron sealing add-key {} --master-key FILE makes one)", keyring.tenant,
                      keyring.tenant);
  }
  v1::SealedContent content;
  switch (job.task_case()) {
    case v1::Job::kNoop:
      *content.mutable_noop() = job.noop();
      break;
    case v1::Job::kSleep:
      *content.mutable_sleep() = job.sleep();
      break;
    case v1::Job::kExec:
      *content.mutable_exec() = job.exec();
      break;
    case v1::Job::kHttp:
      *content.mutable_http() = job.http();
      break;
    case v1::Job::kHandler:
      *content.mutable_handler() = job.handler();
      break;
    case v1::Job::kSealed:
      return make_error("job '{}' is sealed already", job.id());
    case v1::Job::kKafka:
      return make_error("a kafka task cannot be sealed: its record is produced with the job's result, from the job as stored");
    case v1::Job::TASK_NOT_SET:
      return make_error("job '{}' has no task to seal", job.id());
  }
  content.set_payload(job.payload());
  const auto version = keyring.newest();
  const auto nonce = random_bytes(kNonceBytes);
  if (nonce.empty()) return make_error("no random bytes for a nonce");
  auto ciphertext = gcm_seal(keyring.keys.at(version), nonce, task_aad(keyring.tenant, origin), content.SerializeAsString());
  if (!ciphertext) return ciphertext.error();
  job.clear_payload();
  auto* sealed = job.mutable_sealed();
  sealed->set_key_version(version);
  sealed->set_nonce(nonce);
  sealed->set_ciphertext(std::move(*ciphertext));
  return Status::success();
}

Status open_job(v1::Job& job, const Keyring& keyring, const SealingOrigin& origin) {
  if (!job.has_sealed()) return Status::success();
  const auto& sealed = job.sealed();
  const auto key = keyring.keys.find(sealed.key_version());
  if (key == keyring.keys.end()) {
    return make_error("the sealed task of job '{}' names data key version {}, which tenant '{}' does not have", job.id(),
                      sealed.key_version(), keyring.tenant);
  }
  auto plain = gcm_open(key->second, sealed.nonce(), task_aad(keyring.tenant, origin), sealed.ciphertext());
  v1::SealedContent content;
  if (!plain || !content.ParseFromString(*plain)) {
    return make_error(
        "the sealed task of job '{}' does not open for tenant '{}' and {} '{}': it was altered, or sealed for another "
        "job, schedule or tenant",
        job.id(), keyring.tenant, origin.kind, origin.id);
  }
  switch (content.task_case()) {
    case v1::SealedContent::kNoop:
      *job.mutable_noop() = content.noop();
      break;
    case v1::SealedContent::kSleep:
      *job.mutable_sleep() = content.sleep();
      break;
    case v1::SealedContent::kExec:
      *job.mutable_exec() = content.exec();
      break;
    case v1::SealedContent::kHttp:
      *job.mutable_http() = content.http();
      break;
    case v1::SealedContent::kHandler:
      *job.mutable_handler() = content.handler();
      break;
    case v1::SealedContent::TASK_NOT_SET:
      return make_error("the sealed task of job '{}' holds no task", job.id());
  }
  job.set_payload(content.payload());
  return Status::success();
}

std::vector<std::string> sealed_strings(const v1::Job& opened, std::size_t minimum) {
  std::vector<std::string> out;
  const auto add = [&](const std::string& text) {
    if (text.size() >= minimum) out.push_back(text);
  };
  for (const auto& argument : opened.exec().argv()) add(argument);
  for (const auto& [name, value] : opened.exec().env()) {
    add(name);
    add(value);
  }
  add(opened.exec().cwd());
  // The URL whole and in the parts errors quote: scheme://host[:port], host[:port], host, path, query.
  const auto& url = opened.http().url();
  add(url);
  if (const auto scheme_end = url.find("://"); scheme_end != std::string::npos) {
    const auto authority_start = scheme_end + 3;
    const auto authority_end = std::min(url.find_first_of("/?#", authority_start), url.size());
    const auto authority = url.substr(authority_start, authority_end - authority_start);
    add(url.substr(0, authority_end));
    add(authority);
    const auto at = authority.rfind('@');
    const auto host_port = at == std::string::npos ? authority : authority.substr(at + 1);
    add(host_port);
    if (host_port.starts_with('[')) {
      add(host_port.substr(1, host_port.find(']') - 1));
    } else if (const auto colon = host_port.rfind(':'); colon != std::string::npos) {
      add(host_port.substr(0, colon));
    }
    const auto rest = url.substr(authority_end);
    add(rest);
    if (const auto query = rest.find('?'); query != std::string::npos) {
      add(rest.substr(0, query));
      add(rest.substr(query + 1));
    }
  }
  for (const auto& [name, value] : opened.http().headers()) {
    add(name);
    add(value);
  }
  add(opened.http().body());
  add(opened.handler().name());
  for (const auto& [name, value] : opened.handler().args()) {
    add(name);
    add(value);
  }
  add(opened.payload());
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.size() != b.size() ? a.size() > b.size() : a < b; });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

constexpr std::size_t kEdgeMinimum = 4;
constexpr std::string_view kMarker = "[sealed]";

// A secret cut by a bounded capture survives as a prefix at the end of the text (stdout's head)
// or as a suffix at the start of a tail (stderr's, quoted after "stderr: "): those are redacted too.
void redact_edges(std::string& text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.size() <= kEdgeMinimum) continue;
    for (std::size_t length = std::min(secret.size() - 1, text.size()); length >= kEdgeMinimum; --length) {
      if (text.compare(text.size() - length, length, secret, 0, length) == 0) {
        text.replace(text.size() - length, length, kMarker);
        break;
      }
    }
  }
  std::vector<std::size_t> starts = {0};
  for (auto at = text.find("stderr: "); at != std::string::npos; at = text.find("stderr: ", at + 1)) starts.push_back(at + 8);
  for (const auto start : std::ranges::reverse_view(starts)) {
    for (const auto& secret : secrets) {
      if (secret.size() <= kEdgeMinimum || start >= text.size()) continue;
      for (std::size_t length = std::min(secret.size() - 1, text.size() - start); length >= kEdgeMinimum; --length) {
        if (text.compare(start, length, secret, secret.size() - length, length) == 0) {
          text.replace(start, length, kMarker);
          break;
        }
      }
    }
  }
}

}  // namespace

std::string redact(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + kMarker.size())) {
      text.replace(at, secret.size(), kMarker);
    }
  }
  redact_edges(text, secrets);
  return text;
}

}  // namespace kcron
