#include "http/http_policy.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace kcron::worker {
namespace {

constexpr std::size_t kMaxOutputLimit = std::size_t{1} << 20;  // results travel through Kafka
constexpr std::size_t kMaxLocationShown = 512;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_digit);
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && to_lower(text.substr(0, prefix.size())) == prefix;
}

// Host names as DNS writes them: labels of letters, digits, '-' and '_' separated by dots, the last
// one not numeric (a numeric last label means an address, possibly in a form kcron refuses).
enum class HostForm { kName, kNumeric, kInvalid };

HostForm host_form(std::string_view host) {
  if (host.empty() || host.size() > 253) return HostForm::kInvalid;
  std::size_t label_start = 0;
  for (std::size_t index = 0; index <= host.size(); ++index) {
    if (index == host.size() || host[index] == '.') {
      if (index == label_start || index - label_start > 63) return HostForm::kInvalid;
      label_start = index + 1;
    } else if (!is_alnum(host[index]) && host[index] != '-' && host[index] != '_') {
      return HostForm::kInvalid;
    }
  }
  const auto last_dot = host.rfind('.');
  const auto last_label = last_dot == std::string_view::npos ? host : host.substr(last_dot + 1);
  if (all_digits(last_label) || starts_with_ignoring_case(last_label, "0x")) return HostForm::kNumeric;
  return HostForm::kName;
}

std::string_view strip_trailing_dot(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return host;
}

bool in_v4_block(const std::array<std::uint8_t, 16>& bytes, std::uint8_t first, std::uint8_t second, int prefix_bits) {
  const std::uint32_t address = (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                                (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
  const std::uint32_t network = (std::uint32_t{first} << 24) | (std::uint32_t{second} << 16);
  const std::uint32_t mask = prefix_bits == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix_bits);
  return (address & mask) == network;
}

AddressKind classify_v4(const std::array<std::uint8_t, 16>& bytes) {
  if (in_v4_block(bytes, 0, 0, 8)) return AddressKind::kUnspecified;
  if (in_v4_block(bytes, 10, 0, 8)) return AddressKind::kPrivate;
  if (in_v4_block(bytes, 100, 64, 10)) return AddressKind::kCarrierGradeNat;
  if (in_v4_block(bytes, 127, 0, 8)) return AddressKind::kLoopback;
  if (in_v4_block(bytes, 169, 254, 16)) return AddressKind::kLinkLocal;
  if (in_v4_block(bytes, 172, 16, 12)) return AddressKind::kPrivate;
  if (in_v4_block(bytes, 192, 168, 16)) return AddressKind::kPrivate;
  if (in_v4_block(bytes, 224, 0, 4)) return AddressKind::kMulticast;
  if (bytes[0] == 255 && bytes[1] == 255 && bytes[2] == 255 && bytes[3] == 255) return AddressKind::kBroadcast;
  if (in_v4_block(bytes, 240, 0, 4)) return AddressKind::kReserved;
  return AddressKind::kPublic;
}

bool zero_bytes(const std::array<std::uint8_t, 16>& bytes, std::size_t from, std::size_t to) {
  return std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(from), bytes.begin() + static_cast<std::ptrdiff_t>(to),
                     [](std::uint8_t byte) { return byte == 0; });
}

std::string redirect_hint(const std::string& location) {
  if (location.empty()) return "";
  if (location.size() <= kMaxLocationShown) return fmt::format(" (Location: {})", location);
  return fmt::format(" (Location: {}...)", location.substr(0, kMaxLocationShown));
}

bool host_bits_set(const IpAddress& address, int prefix_bits) {
  const int max_bits = address.is_v4() ? 32 : 128;
  for (int bit = prefix_bits; bit < max_bits; ++bit) {
    const unsigned byte = address.bytes()[static_cast<std::size_t>(bit / 8)];
    if (((byte >> static_cast<unsigned>(7 - bit % 8)) & 1U) != 0) return true;
  }
  return false;
}

bool is_token_char(char c) {
  return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool has_forbidden_value_char(std::string_view value) {
  return std::any_of(value.begin(), value.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return (byte < 0x20 && c != '\t') || byte == 0x7f;
  });
}

Result<std::string> method_for(const v1::HttpTask& task) {
  if (task.method().empty()) return std::string(task.body().empty() ? "GET" : "POST");
  std::string method(task.method());
  std::transform(method.begin(), method.end(), method.begin(), upper);
  static constexpr std::array<std::string_view, 7> kMethods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end()) {
    // The method is the task's own text; show it only when it is a plain word.
    const bool printable = std::all_of(method.begin(), method.end(), is_token_char) && method.size() <= 32;
    return make_error("method {}is not supported (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)",
                      printable ? fmt::format("'{}' ", method) : "");
  }
  if (method == "HEAD" && !task.body().empty()) return make_error("method HEAD cannot send a body");
  return method;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  const std::string terminated(text);
  if (terminated.find(':') == std::string::npos) {
    in_addr address{};
    if (inet_pton(AF_INET, terminated.c_str(), &address) != 1) return std::nullopt;
    std::array<std::uint8_t, 4> bytes{};
    std::memcpy(bytes.data(), &address, bytes.size());
    return v4(bytes);
  }
  in6_addr address{};
  if (inet_pton(AF_INET6, terminated.c_str(), &address) != 1) return std::nullopt;
  std::array<std::uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), &address, bytes.size());
  return v6(bytes);
}

IpAddress IpAddress::v4(std::array<std::uint8_t, 4> bytes) {
  IpAddress address;
  address.is_v4_ = true;
  std::copy(bytes.begin(), bytes.end(), address.bytes_.begin());
  return address;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) {
  IpAddress address;
  address.is_v4_ = false;
  address.bytes_ = bytes;
  return address;
}

std::optional<IpAddress> IpAddress::embedded_v4() const {
  if (is_v4_) return std::nullopt;
  const auto& b = bytes_;
  const auto tail = [&](std::size_t from) { return v4({b[from], b[from + 1], b[from + 2], b[from + 3]}); };
  if (zero_bytes(b, 0, 10) && b[10] == 0xff && b[11] == 0xff) return tail(12);  // ::ffff:a.b.c.d
  // ::a.b.c.d, but not :: (unspecified) and ::1 (loopback), which are IPv6 addresses of their own.
  if (zero_bytes(b, 0, 12) && !(zero_bytes(b, 12, 15) && b[15] <= 1)) return tail(12);
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero_bytes(b, 4, 12)) return tail(12);  // NAT64
  if (b[0] == 0x20 && b[1] == 0x02) return tail(2);                                                           // 6to4
  return std::nullopt;
}

std::string IpAddress::to_string() const {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (inet_ntop(is_v4_ ? AF_INET : AF_INET6, bytes_.data(), text.data(), text.size()) == nullptr) return "?";
  return text.data();
}

Result<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  const auto address_text = text.substr(0, slash);
  const auto address = IpAddress::parse(address_text);
  if (!address) return make_error("'{}' is not an IP address or address block (a.b.c.d/n, ipv6/n)", text);
  const int max_bits = address->is_v4() ? 32 : 128;
  int prefix_bits = max_bits;
  if (slash != std::string_view::npos) {
    const auto bits_text = text.substr(slash + 1);
    if (!all_digits(bits_text) || bits_text.size() > 3) return make_error("'{}': the prefix length must be a number", text);
    prefix_bits = std::stoi(std::string(bits_text));
    if (prefix_bits > max_bits) return make_error("'{}': the prefix length must be 0-{}", text, max_bits);
  }
  if (host_bits_set(*address, prefix_bits)) {
    return make_error("'{}' has bits set after the /{} prefix (did you mean the block's first address?)", text, prefix_bits);
  }
  return Cidr{*address, prefix_bits};
}

bool Cidr::contains(const IpAddress& address) const {
  if (address.is_v4() != network.is_v4()) return false;
  const auto& lhs = address.bytes();
  const auto& rhs = network.bytes();
  const auto whole_bytes = static_cast<std::size_t>(prefix_bits / 8);
  if (!std::equal(lhs.begin(), lhs.begin() + static_cast<std::ptrdiff_t>(whole_bytes), rhs.begin())) return false;
  const int rest_bits = prefix_bits % 8;
  if (rest_bits == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xffU << (8 - rest_bits));
  return (lhs[whole_bytes] & mask) == (rhs[whole_bytes] & mask);
}

AddressKind classify_address(const IpAddress& address) {
  const auto& b = address.bytes();
  if (address.is_v4()) return classify_v4(b);
  if (zero_bytes(b, 0, 16)) return AddressKind::kUnspecified;
  if (zero_bytes(b, 0, 15) && b[15] == 1) return AddressKind::kLoopback;
  if (const auto embedded = address.embedded_v4()) return classify_v4(embedded->bytes());
  if ((b[0] & 0xfe) == 0xfc) return AddressKind::kPrivate;                    // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressKind::kLinkLocal;  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return AddressKind::kPrivate;    // fec0::/10 site-local
  if (b[0] == 0xff) return AddressKind::kMulticast;                           // ff00::/8
  if (b[0] == 0x01 && zero_bytes(b, 1, 8)) return AddressKind::kReserved;     // 100::/64 discard
  return AddressKind::kPublic;
}

std::string_view describe(AddressKind kind) {
  switch (kind) {
    case AddressKind::kPublic:
      return "public";
    case AddressKind::kLoopback:
      return "loopback";
    case AddressKind::kPrivate:
      return "private";
    case AddressKind::kLinkLocal:
      return "link-local";
    case AddressKind::kUnspecified:
      return "unspecified";
    case AddressKind::kCarrierGradeNat:
      return "carrier-grade NAT";
    case AddressKind::kMulticast:
      return "multicast";
    case AddressKind::kBroadcast:
      return "broadcast";
    case AddressKind::kReserved:
      return "reserved";
  }
  return "unknown";
}

Result<AllowList> AllowList::parse(const std::vector<std::string>& entries) {
  AllowList allow;
  for (const auto& entry : entries) {
    if (entry.find('/') != std::string::npos || IpAddress::parse(entry)) {
      auto cidr = Cidr::parse(entry);
      if (!cidr) return cidr.error();
      allow.networks_.push_back(*cidr);
      continue;
    }
    const auto host = to_lower(strip_trailing_dot(entry));
    if (host_form(host) != HostForm::kName) {
      return make_error("'{}' is neither an address block (10.0.0.0/8), an address nor an exact host name", entry);
    }
    allow.hosts_.push_back(host);
  }
  return allow;
}

bool AllowList::permits_host(std::string_view host) const {
  const auto normalized = to_lower(strip_trailing_dot(host));
  return std::find(hosts_.begin(), hosts_.end(), normalized) != hosts_.end();
}

bool AllowList::permits_address(const IpAddress& address) const {
  const auto embedded = address.embedded_v4();
  return std::any_of(networks_.begin(), networks_.end(),
                     [&](const Cidr& network) { return network.contains(address) || (embedded && network.contains(*embedded)); });
}

Result<HttpUrl> parse_http_url(std::string_view url) {
  if (url.empty()) return make_error("url: empty");
  for (const char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) return make_error("url: spaces, control and non-ASCII characters must be percent-encoded");
  }
  const auto scheme_end = url.find("://");
  const auto colon = url.find(':');
  if (scheme_end == std::string_view::npos || colon != scheme_end) {
    const bool host_and_port = colon != std::string_view::npos && colon + 1 < url.size() && is_digit(url[colon + 1]);
    if (!host_and_port && colon != std::string_view::npos && colon > 0 && colon <= 16 &&
        std::all_of(url.begin(), url.begin() + static_cast<std::ptrdiff_t>(colon), is_alnum)) {
      return make_error("url: scheme '{}' is not allowed (only http and https)", to_lower(url.substr(0, colon)));
    }
    return make_error("url: expected http://host/... or https://host/...");
  }
  HttpUrl parsed;
  parsed.scheme = to_lower(url.substr(0, scheme_end));
  if (parsed.scheme != "http" && parsed.scheme != "https") {
    const bool printable = parsed.scheme.size() <= 16 && std::all_of(parsed.scheme.begin(), parsed.scheme.end(), is_alnum);
    return make_error("url: scheme {}is not allowed (only http and https)", printable ? fmt::format("'{}' ", parsed.scheme) : "");
  }

  const auto rest = url.substr(scheme_end + 3);
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) {
    return make_error("url: user information (user:password@) is not allowed; send credentials in a header");
  }
  if (authority.find('\\') != std::string_view::npos) return make_error("url: backslashes are not allowed in the host");

  std::string_view host;
  std::string_view port_part;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return make_error("url: '[' without ']' in the host");
    host = authority.substr(1, close - 1);
    port_part = authority.substr(close + 1);
    if (host.find('%') != std::string_view::npos) return make_error("url: IPv6 zone ids are not supported");
    const auto literal = IpAddress::parse(host);
    if (!literal || literal->is_v4()) return make_error("url: '[{}]' is not an IPv6 address", host);
    parsed.literal = literal;
    parsed.host = literal->to_string();
  } else {
    const auto port_colon = authority.find(':');
    host = strip_trailing_dot(authority.substr(0, port_colon));
    port_part = port_colon == std::string_view::npos ? std::string_view() : authority.substr(port_colon);
    if (host.empty()) return make_error("url: no host");
    if (host.find('%') != std::string_view::npos) return make_error("url: percent-encoded hosts are not supported");
    parsed.host = to_lower(host);
    switch (host_form(parsed.host)) {
      case HostForm::kName:
        break;
      case HostForm::kNumeric:
        parsed.literal = IpAddress::parse(parsed.host);
        if (!parsed.literal) {
          return make_error("url: host '{}' is not a dotted-quad IPv4 address (write a.b.c.d in decimal, without leading zeros)",
                            parsed.host);
        }
        break;
      case HostForm::kInvalid:
        return make_error("url: host '{}' is not a valid host name (IDN hosts need their xn-- form)", parsed.host);
    }
  }

  parsed.port = parsed.scheme == "https" ? 443 : 80;
  if (!port_part.empty()) {
    if (port_part.front() != ':') return make_error("url: unexpected text after the host");
    const auto digits = port_part.substr(1);
    if (!digits.empty()) {
      if (!all_digits(digits) || digits.size() > 5) return make_error("url: port '{}' is not a number", digits);
      const int port = std::stoi(std::string(digits));
      if (port < 1 || port > 65535) return make_error("url: port {} is outside 1-65535", port);
      parsed.port = static_cast<std::uint16_t>(port);
    }
  }
  return parsed;
}

Status check_http_target(const AllowList& allow, const HttpUrl& url, const IpAddress& address) {
  const auto kind = classify_address(address);
  if (kind == AddressKind::kPublic) return Status::success();
  if (allow.permits_address(address)) return Status::success();
  if (!url.literal && allow.permits_host(url.host)) return Status::success();
  if (url.literal) {
    return make_error("refused http target {} ({}): add it to http.allow to permit", address.to_string(), describe(kind));
  }
  return make_error("refused http target {} (resolves to {} address {}): add it to http.allow to permit", url.host,
                    describe(kind), address.to_string());
}

Status check_http_targets(const AllowList& allow, const HttpUrl& url, const std::vector<IpAddress>& addresses) {
  if (addresses.empty()) return make_error("http target {} resolved to no addresses", url.host);
  for (const auto& address : addresses) {
    if (auto status = check_http_target(allow, url, address); !status) return status;
  }
  return Status::success();
}

Result<HttpRequest> http_request_from(const HttpPolicy& policy, const v1::Job& job) {
  if (!job.has_http()) return make_error("job has no http task");
  const auto& task = job.http();
  HttpRequest request;
  auto url = parse_http_url(task.url());
  if (!url) return url.error();
  request.url = std::move(*url);
  request.url_text = task.url();

  auto method = method_for(task);
  if (!method) return method.error();
  request.method = std::move(*method);

  if (task.body().size() > policy.max_request_body_bytes) {
    return make_error("body: {} bytes is over the worker's limit of {} bytes", task.body().size(), policy.max_request_body_bytes);
  }
  request.body = task.body();

  for (const auto& [name, value] : task.headers()) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char)) {
      return make_error("header names may only hold letters, digits and !#$%&'*+-.^_`|~ (no spaces, colons, CR or LF)");
    }
    if (has_forbidden_value_char(value))
      return make_error("header {}: the value holds CR, LF or another control character", name);
    if (starts_with_ignoring_case(name, "kcron-")) return make_error("header {}: kcron-* headers are set by kcron", name);
    request.headers.emplace_back(name, value);
  }
  std::sort(request.headers.begin(), request.headers.end());
  if (has_forbidden_value_char(job.id())) return make_error("job id holds CR, LF or another control character");
  request.headers.emplace_back("kcron-job-id", job.id());
  request.headers.emplace_back("kcron-attempt", std::to_string(job.attempt()));

  const auto job_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::seconds(job.timeout().seconds()) +
                                                                                 std::chrono::nanoseconds(job.timeout().nanos()));
  request.timeout = job_timeout.count() > 0 ? job_timeout : policy.default_timeout;
  return request;
}

Outcome http_outcome(const HttpResponse& response, std::span<const std::uint32_t> retry_statuses) {
  const int status = response.status;
  Outcome outcome;
  if (status >= 200 && status <= 299) {
    outcome.state = v1::SUCCEEDED;
  } else if (status >= 300 && status <= 399) {
    outcome = failed(fmt::format("HTTP {}: redirects are not followed{}; point the job at the final URL", status,
                                 redirect_hint(response.location)),
                     false);
  } else if (status >= 400 && status <= 499) {
    const bool listed =
        std::find(retry_statuses.begin(), retry_statuses.end(), static_cast<std::uint32_t>(status)) != retry_statuses.end();
    outcome = listed ? failed(fmt::format("HTTP {}: client error in the task's retry_statuses", status), true)
                     : failed(fmt::format("HTTP {}: client error, not retried (list {} in the task's retry_statuses to retry it)",
                                          status, status),
                              false);
  } else if (status >= 500 && status <= 599) {
    outcome = failed(fmt::format("HTTP {}: server error", status), true);
  } else {
    outcome = failed(fmt::format("HTTP {}: unexpected status", status), true);
  }
  outcome.http_status = status;
  outcome.output = response.body;
  if (response.body_bytes > response.body.size()) {
    outcome.output +=
        fmt::format("\n[kcron: response body truncated to {} of {} bytes]", response.body.size(), response.body_bytes);
  }
  return outcome;
}

Outcome http_transport_failure(std::string error) {
  return failed(std::move(error), true);
}

std::vector<ConfigKey> http_config_keys() {
  return {
      {"http.allow", "",
       "http jobs: CIDRs (10.0.0.0/8, ::1/128) or exact host names they may target even when private, loopback or link-local"},
      {"http.default_timeout_ms", "30000", "http jobs: request timeout when the job sets none"},
      {"http.connect_timeout_ms", "5000", "http jobs: connect (TCP and TLS) timeout"},
      {"http.max_body_bytes", "65536", "http jobs: response bytes kept in the result's output (at most 1048576)"},
  };
}

Result<HttpPolicy> http_policy_from(const Config& config) {
  HttpPolicy policy;
  policy.allow = config.get_list("http.allow");
  if (auto allow = AllowList::parse(policy.allow); !allow) return allow.error().within("configuration http.allow");

  auto positive_ms = [&](const std::string& name) -> Result<std::chrono::milliseconds> {
    auto value = config.get_int(name);
    if (!value) return value.error();
    if (*value <= 0) return make_error("configuration {}: must be a positive number of milliseconds, not {}", name, *value);
    return std::chrono::milliseconds(*value);
  };
  auto default_timeout = positive_ms("http.default_timeout_ms");
  if (!default_timeout) return default_timeout.error();
  policy.default_timeout = *default_timeout;
  auto connect_timeout = positive_ms("http.connect_timeout_ms");
  if (!connect_timeout) return connect_timeout.error();
  policy.connect_timeout = *connect_timeout;

  auto max_body = config.get_int("http.max_body_bytes");
  if (!max_body) return max_body.error();
  if (*max_body < 0 || static_cast<std::uint64_t>(*max_body) > kMaxOutputLimit) {
    return make_error("configuration http.max_body_bytes: must be 0-{} (results travel through Kafka), not {}", kMaxOutputLimit,
                      *max_body);
  }
  policy.max_body_bytes = static_cast<std::size_t>(*max_body);
  return policy;
}

}  // namespace kcron::worker
