#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "objects/object_store.h"

namespace kcron::worker {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.remove_suffix(1);
  return text;
}

bool unreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' || c == '~';
}

// A profile name for a message: bounded, printable.
std::string printable_name(std::string_view name) {
  std::string out;
  for (const char c : name.substr(0, 64)) out += (c > ' ' && c < 127) ? c : '?';
  return out;
}

}  // namespace

Result<Credentials> parse_credentials(std::string_view text) {
  Credentials credentials;
  std::size_t line_number = 0;
  bool in_default = true;  // lines before any [profile] line are kcron's own format
  bool has_default = false;
  std::string other_profile;
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_number;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return make_error("credentials file line {}: expected [PROFILE]", line_number);
      const auto profile = trim(line.substr(1, line.size() - 2));
      in_default = profile == "default";
      has_default = has_default || in_default;
      if (!in_default && other_profile.empty()) other_profile = printable_name(profile);
      continue;
    }
    if (!in_default) continue;  // another AWS profile: only [default] is read
    const auto equals = line.find('=');
    if (equals == std::string_view::npos) return make_error("credentials file line {}: expected NAME=VALUE", line_number);
    const auto name = trim(line.substr(0, equals));
    const auto value = std::string(trim(line.substr(equals + 1)));
    if (name == "access_key_id" || name == "aws_access_key_id") {
      credentials.access_key_id = value;
    } else if (name == "secret_access_key" || name == "aws_secret_access_key") {
      credentials.secret_access_key = value;
    } else {
      return make_error("credentials file line {}: unknown name '{}' (expected access_key_id or secret_access_key)", line_number,
                        name.substr(0, 64));
    }
  }
  if (!has_default && !other_profile.empty() && credentials.access_key_id.empty() && credentials.secret_access_key.empty()) {
    return make_error("credentials file has no [default] profile (it has [{}]); kcron reads only [default]", other_profile);
  }
  if (credentials.access_key_id.empty()) return make_error("credentials file has no access_key_id");
  if (credentials.secret_access_key.empty()) return make_error("credentials file has no secret_access_key");
  const auto printable = [](const std::string& value) {
    return std::all_of(value.begin(), value.end(), [](char c) { return c > ' ' && c < 127 && c != ':'; });
  };
  if (!printable(credentials.access_key_id) || !printable(credentials.secret_access_key)) {
    return make_error("credentials file: a key holds a space, ':' or a non-printable character");
  }
  return credentials;
}

std::string url_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (unreserved(c)) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::string key_part_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (unreserved(c) && c != '.') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::string object_key(std::string_view tenant, std::string_view job_id, std::uint32_t attempt, std::string_view run_token,
                       std::string_view name) {
  return fmt::format("{}/{}/{}/{}/{}", tenant.empty() ? "default" : key_part_escape(tenant), key_part_escape(job_id), attempt,
                     key_part_escape(run_token), key_part_escape(name));
}

std::string object_uri(std::string_view bucket, std::string_view key) {
  return fmt::format("s3://{}/{}", bucket, key);
}

Result<ObjectLocation> parse_object_uri(std::string_view uri) {
  constexpr std::string_view kScheme = "s3://";
  if (!uri.starts_with(kScheme)) return make_error("'{}' is not an s3:// URI", uri.substr(0, 200));
  const auto rest = uri.substr(kScheme.size());
  const auto slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 == rest.size()) {
    return make_error("'{}' has no bucket and key (s3://BUCKET/KEY)", uri.substr(0, 200));
  }
  return ObjectLocation{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

bool should_store(const ObjectSettings& settings, std::size_t size) {
  return settings.enabled() && size > settings.threshold_bytes;
}

Status check_inline_limit(const ObjectSettings& settings, std::string_view inline_setting, std::size_t inline_bytes) {
  if (!settings.enabled() || settings.threshold_bytes <= inline_bytes) return Status::success();
  return make_error(
      "objects.threshold_bytes ({}) is over {} ({}): an output of {} to {} bytes would be cut to {} bytes in the result and "
      "not stored; set objects.threshold_bytes to at most {}, or raise {}",
      settings.threshold_bytes, inline_setting, inline_bytes, inline_bytes + 1, settings.threshold_bytes, inline_bytes,
      inline_bytes, inline_setting);
}

bool is_run_token(std::string_view token) {
  return token.size() == 32 &&
         std::all_of(token.begin(), token.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

SweepPlan plan_sweep(const std::vector<ObjectInfo>& objects, const std::set<std::string>& referenced_keys, std::int64_t now_ms,
                     std::chrono::milliseconds grace) {
  SweepPlan plan;
  for (const auto& object : objects) {
    if (!is_output_key(object.key)) {
      plan.foreign.push_back(object);  // another program's object in a shared bucket: never kcron's to delete
    } else if (referenced_keys.contains(object.key)) {
      plan.referenced.push_back(object);
    } else if (object.modified_ms <= 0 || now_ms - object.modified_ms < grace.count()) {
      plan.young.push_back(object);  // an unknown age is never taken for an old one
    } else {
      plan.remove.push_back(object);
    }
  }
  return plan;
}

bool is_output_key(std::string_view key) {
  std::vector<std::string_view> parts;
  for (std::size_t from = 0;;) {
    const auto slash = key.find('/', from);
    parts.push_back(key.substr(from, slash == std::string_view::npos ? std::string_view::npos : slash - from));
    if (slash == std::string_view::npos) break;
    from = slash + 1;
  }
  if (parts.size() != 5 || parts[0].empty() || parts[1].empty() || parts[2].empty()) return false;
  if (!std::all_of(parts[2].begin(), parts[2].end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  if (parts[3].size() != 32 ||
      !std::all_of(parts[3].begin(), parts[3].end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
    return false;
  }
  return parts[4] == "stdout" || parts[4] == "stderr" || parts[4] == "body";
}

Result<std::chrono::milliseconds> parse_grace(std::string_view text) {
  const auto unit = text.empty() ? '?' : text.back();
  const auto digits = text.substr(0, text.empty() ? 0 : text.size() - 1);
  std::int64_t count = 0;
  const auto read = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  const bool number = !digits.empty() && read.ec == std::errc() && read.ptr == digits.data() + digits.size() && count >= 0 &&
                      count < std::int64_t{1} << 32;
  std::int64_t unit_ms = 0;
  switch (unit) {
    case 's':
      unit_ms = 1000;
      break;
    case 'm':
      unit_ms = std::int64_t{60} * 1000;
      break;
    case 'h':
      unit_ms = std::int64_t{3600} * 1000;
      break;
    case 'd':
      unit_ms = std::int64_t{86400} * 1000;
      break;
    default:
      break;
  }
  if (!number || unit_ms == 0) {
    return make_error("'{}' is not a duration: a whole number and s, m, h or d (e.g. 24h)", text);
  }
  return std::chrono::milliseconds(count * unit_ms);
}

}  // namespace kcron::worker
