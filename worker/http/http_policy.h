// What an http job may target and how its response becomes an Outcome: URL checks, the address
// classifier that keeps jobs off loopback, private, link-local (cloud metadata) and other internal
// addresses unless the worker's http.allow permits them, request checks and status classification.
// Pure: no libcurl, no sockets, no DNS; http_task.h is the libcurl edge that applies these rules.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/runner.h"
#include "kcron/config.h"
#include "kcron/result.h"

namespace kcron::worker {

struct HttpPolicy {
  // CIDRs (10.0.0.0/8, 127.0.0.1/32, ::1/128), single addresses, or exact host names that http
  // jobs may target even when they are private, loopback or link-local.
  std::vector<std::string> allow;
  std::chrono::milliseconds default_timeout{30000};  // when the job sets no timeout
  std::chrono::milliseconds connect_timeout{5000};
  std::size_t max_body_bytes = 65536;  // response bytes kept in Outcome::output
  // With an object store (docs/large-results.md): a body larger than whole_threshold is kept whole,
  // up to whole_bytes, in Outcome::whole_outputs as "body" (0: off).
  std::size_t whole_bytes = 0;
  std::size_t whole_threshold = 0;
  std::size_t max_request_body_bytes = 1 << 20;  // larger task bodies are refused
};

// An IPv4 or IPv6 address. IPv4 uses the first four bytes; the rest are zero.
class IpAddress {
 public:
  // Strict text forms only: a dotted quad, or RFC 4291 IPv6 text without brackets or zone id.
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::array<std::uint8_t, 4> bytes);
  static IpAddress v6(const std::array<std::uint8_t, 16>& bytes);

  bool is_v4() const { return is_v4_; }
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  // The IPv4 address an IPv6 address stands for: v4-mapped (::ffff:a.b.c.d), v4-compatible
  // (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16). Empty for IPv4 and other IPv6.
  std::optional<IpAddress> embedded_v4() const;
  std::string to_string() const;

  bool operator==(const IpAddress&) const = default;

 private:
  bool is_v4_ = true;
  std::array<std::uint8_t, 16> bytes_{};
};

// An address block such as 10.0.0.0/8 or fc00::/7. A bare address is a block of one.
struct Cidr {
  IpAddress network;
  int prefix_bits = 0;

  // Refuses bits set after the prefix (10.1.0.0/8) as the likely typo it is.
  static Result<Cidr> parse(std::string_view text);
  bool contains(const IpAddress& address) const;
};

// Why an address is not an ordinary public target.
enum class AddressKind {
  kPublic,
  kLoopback,
  kPrivate,
  kLinkLocal,
  kUnspecified,
  kCarrierGradeNat,
  kMulticast,
  kBroadcast,
  kReserved
};

// IPv6 forms embedding an IPv4 address are classified as that IPv4 address.
AddressKind classify_address(const IpAddress& address);
std::string_view describe(AddressKind kind);  // "loopback", "link-local", ...

// http.allow, parsed once: address blocks and exact host names (lower case, no trailing dot).
class AllowList {
 public:
  static Result<AllowList> parse(const std::vector<std::string>& entries);
  bool permits_host(std::string_view host) const;
  bool permits_address(const IpAddress& address) const;  // also matches an embedded IPv4

 private:
  std::vector<Cidr> networks_;
  std::vector<std::string> hosts_;
};

// The parts of a job's URL that decide where it connects.
struct HttpUrl {
  std::string scheme;                // "http" or "https"
  std::string host;                  // lower case, no brackets around IPv6, no trailing dot
  std::uint16_t port = 0;            // the explicit port, else 80 or 443
  std::optional<IpAddress> literal;  // set when the host is an IP address
};

// Only http and https, a host, no user:pass@, nothing a different URL parser could read as
// another host (backslashes, percent-encoded or non-ASCII hosts, numeric hosts that are not a
// dotted quad such as 2130706433 or 0x7f.1).
Result<HttpUrl> parse_http_url(std::string_view url);

// The check for one resolved address: Status::success() when the address is public, inside an
// allowed block, or the URL's host is an allowed name; otherwise "refused http target ...".
Status check_http_target(const AllowList& allow, const HttpUrl& url, const IpAddress& address);
// Every address a name resolves to must pass; one refused address refuses the target.
Status check_http_targets(const AllowList& allow, const HttpUrl& url, const std::vector<IpAddress>& addresses);

// A job's request, checked and with defaults applied. Views the job's strings: keep the job alive.
struct HttpRequest {
  std::string method;  // upper case; GET, or POST when the task has a body
  HttpUrl url;
  std::string_view url_text;
  // Task headers sorted by name, then kcron-job-id and kcron-attempt so receivers can dedupe.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view body;
  std::chrono::milliseconds timeout{0};  // the job's timeout, else the policy's default
};

// Refuses what cannot be sent as asked: bad URL, unsupported method, a header name or value with
// CR/LF, a header named kcron-*, a body over max_request_body_bytes. Errors are final (not
// retriable): running the same job again cannot succeed.
Result<HttpRequest> http_request_from(const HttpPolicy& policy, const v1::Job& job);

// What came back. `body` holds at most the policy's max_body_bytes of `body_bytes` received.
struct HttpResponse {
  int status = 0;
  std::string body;
  std::size_t body_bytes = 0;
  std::string location;  // of a 3xx, when it had one
};

// 2xx succeeded; 3xx failed for good (redirects are not followed); 4xx failed for good unless
// listed in retry_statuses; 5xx and anything else failed, retriable. The body (with a note when it
// was cut short) goes to output, the status to http_status.
Outcome http_outcome(const HttpResponse& response, std::span<const std::uint32_t> retry_statuses);
// No response (connection refused, reset, TLS, timeout): retriable.
Outcome http_transport_failure(std::string error);

// Worker settings for http jobs (http.allow, http.default_timeout_ms, ...). The dotted `http.`
// prefix keeps them apart from http_address/http_port, the worker's own metrics endpoint.
std::vector<ConfigKey> http_config_keys();
Result<HttpPolicy> http_policy_from(const Config& config);

}  // namespace kcron::worker
