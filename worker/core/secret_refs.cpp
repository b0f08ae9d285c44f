#include "core/secret_refs.h"

#include <fmt/format.h>

#include <algorithm>

namespace kcron::worker {
namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

// A named secret's value, resolved: an error names the secret and the tenant, never the value.
Result<std::string> fetch(const SecretResolver* resolver, std::string_view tenant, const std::string& name) {
  if (resolver == nullptr) {
    return make_error("secret '{}' of tenant '{}': secrets are off on this worker (secrets.dir is empty)", name, tenant);
  }
  return resolver->resolve(tenant, name);
}

void replace_all(std::string& text, std::string_view value, std::string_view replacement) {
  if (value.empty()) return;
  std::size_t at = 0;
  while ((at = text.find(value, at)) != std::string::npos) {
    text.replace(at, value.size(), replacement);
    at += replacement.size();
  }
}

}  // namespace

bool is_valid_secret_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxSecretNameBytes) return false;
  if (name.find("..") != std::string_view::npos || name == ".") return false;
  return std::all_of(name.begin(), name.end(), name_char);
}

Result<std::optional<std::string>> secret_reference(std::string_view value) {
  if (!value.starts_with(kSecretPrefix)) return std::optional<std::string>();
  const auto name = value.substr(kSecretPrefix.size());
  if (!is_valid_secret_name(name)) {
    const bool printable = name.size() <= kMaxSecretNameBytes && std::all_of(name.begin(), name.end(), [](char c) {
                             return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
                           });
    return make_error("'secret:{}' is not a valid secret reference: a name is 1-{} of A-Z a-z 0-9 _ . - without '..'",
                      printable ? std::string(name) : fmt::format("<{} bytes>", name.size()), kMaxSecretNameBytes);
  }
  return std::optional<std::string>(std::string(name));
}

void Redactor::add(std::string_view name, std::string value) {
  if (value.empty()) return;
  const std::string encoded = percent_encode(value);
  secrets_.push_back({std::string(name), std::move(value)});
  if (encoded != secrets_.back().value) secrets_.push_back({std::string(name), encoded});
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const Secret& left, const Secret& right) { return left.value.size() > right.value.size(); });
}

std::string Redactor::apply(std::string_view text) const {
  std::string out(text);
  for (const auto& secret : secrets_) replace_all(out, secret.value, fmt::format("[secret:{}]", secret.name));
  return out;
}

std::string percent_encode(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (unreserved(c)) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

Result<std::vector<UrlReference>> url_secret_references(std::string_view url) {
  std::vector<UrlReference> references;
  const auto question = url.find('?');
  if (question == std::string_view::npos) return references;
  const auto fragment = url.find('#', question);
  const std::size_t end = fragment == std::string_view::npos ? url.size() : fragment;
  std::size_t start = question + 1;
  while (start <= end) {
    auto amp = url.find('&', start);
    if (amp == std::string_view::npos || amp > end) amp = end;
    const auto pair = url.substr(start, amp - start);
    const auto equals = pair.find('=');
    if (equals != std::string_view::npos) {
      const auto value = pair.substr(equals + 1);
      auto reference = secret_reference(value);
      if (!reference) return reference.error().within("url query");
      if (*reference) references.push_back({start + equals + 1, value.size(), **reference});
    }
    start = amp + 1;
  }
  return references;
}

bool has_secret_references(const v1::Job& job) {
  if (job.has_exec()) {
    return std::any_of(job.exec().env().begin(), job.exec().env().end(),
                       [](const auto& entry) { return entry.second.starts_with(kSecretPrefix); });
  }
  if (job.has_http()) {
    const bool header = std::any_of(job.http().headers().begin(), job.http().headers().end(),
                                    [](const auto& entry) { return entry.second.starts_with(kSecretPrefix); });
    if (header) return true;
    auto references = url_secret_references(job.http().url());
    return !references || !references->empty();
  }
  return false;
}

Result<ResolvedJob> resolve_secrets(const v1::Job& job, const SecretResolver* resolver) {
  ResolvedJob resolved{job, {}};
  const std::string tenant = job.tenant().empty() ? std::string("default") : job.tenant();
  if (job.has_exec()) {
    auto& env = *resolved.job.mutable_exec()->mutable_env();
    for (auto& [variable, value] : env) {
      auto reference = secret_reference(value);
      if (!reference) return reference.error().within(fmt::format("environment variable '{}'", variable));
      if (!*reference) continue;
      auto secret = fetch(resolver, tenant, **reference);
      if (!secret) return secret.error();
      if (secret->find('\0') != std::string::npos) {
        return make_error("secret '{}' of tenant '{}' holds a NUL byte; it cannot be an environment value", **reference, tenant);
      }
      resolved.redactor.add(**reference, *secret);
      value = std::move(*secret);
    }
  }
  if (job.has_http()) {
    auto& headers = *resolved.job.mutable_http()->mutable_headers();
    for (auto& [header, value] : headers) {
      auto reference = secret_reference(value);
      if (!reference) return reference.error().within(fmt::format("header {}", header));
      if (!*reference) continue;
      auto secret = fetch(resolver, tenant, **reference);
      if (!secret) return secret.error();
      const bool clean = std::none_of(secret->begin(), secret->end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return (byte < 0x20 && c != '\t') || byte == 0x7f;
      });
      if (!clean) {
        return make_error("secret '{}' of tenant '{}' holds CR, LF or another control character; it cannot be a header value",
                          **reference, tenant);
      }
      resolved.redactor.add(**reference, *secret);
      value = std::move(*secret);
    }
    auto references = url_secret_references(job.http().url());
    if (!references) return references.error();
    if (!references->empty()) {
      const std::string& url = job.http().url();
      std::string out;
      std::size_t copied = 0;
      for (const auto& reference : *references) {
        auto secret = fetch(resolver, tenant, reference.name);
        if (!secret) return secret.error();
        out.append(url, copied, reference.offset - copied);
        out += percent_encode(*secret);
        copied = reference.offset + reference.length;
        resolved.redactor.add(reference.name, std::move(*secret));
      }
      out.append(url, copied);
      resolved.job.mutable_http()->set_url(std::move(out));
    }
  }
  return resolved;
}

}  // namespace kcron::worker
