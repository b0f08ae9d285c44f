#include "http/http_task.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "core/secret_refs.h"
#include "kcron/curl_handles.h"

namespace kcron::worker {
namespace {

constexpr long kPollIntervalMs = 50;  // how often a running transfer looks at `stop`
constexpr const char* kUserAgent = "kcron-worker";

struct AddrinfoFree {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
using curl::CurlString;
using curl::EasyHandle;
using curl::MultiHandle;
using curl::StringList;
using curl::UrlHandle;

// Keeps an easy handle in a multi handle; removes it before either is cleaned up.
class Attachment {
 public:
  Attachment(CURLM* multi, CURL* easy) : multi_(multi), easy_(easy), code_(curl_multi_add_handle(multi, easy)) {}
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;
  ~Attachment() {
    if (code_ == CURLM_OK) curl_multi_remove_handle(multi_, easy_);
  }
  CURLMcode code() const { return code_; }

 private:
  CURLM* multi_;
  CURL* easy_;
  CURLMcode code_;
};

// What the C callbacks of one transfer share with run_http; outlives the easy handle.
struct Transfer {
  std::size_t max_body_bytes = 0;
  HttpResponse response;
  std::vector<IpAddress> checked;    // the only addresses a socket may be opened to
  std::optional<IpAddress> refused;  // an address curl wanted that was not checked
  bool refused_unknown = false;      // curl wanted an address family kcron does not know
};

// The address in a socket address of `length` bytes (read by copy: callers' buffers may be unaligned).
std::optional<IpAddress> address_from(int family, const void* raw, std::size_t length) {
  if (family == AF_INET && length >= sizeof(sockaddr_in)) {
    sockaddr_in v4{};
    std::memcpy(&v4, raw, sizeof v4);
    std::array<std::uint8_t, 4> bytes{};
    std::memcpy(bytes.data(), &v4.sin_addr, bytes.size());
    return IpAddress::v4(bytes);
  }
  if (family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    sockaddr_in6 v6{};
    std::memcpy(&v6, raw, sizeof v6);
    std::array<std::uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), &v6.sin6_addr, bytes.size());
    return IpAddress::v6(bytes);
  }
  return std::nullopt;
}

// CURLOPT_WRITEFUNCTION: keeps the first max_body_bytes, counts and discards the rest.
std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto& transfer = *static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  auto& body = transfer.response.body;
  const std::size_t room = transfer.max_body_bytes > body.size() ? transfer.max_body_bytes - body.size() : 0;
  try {
    body.append(data, std::min(bytes, room));
  } catch (...) {
    return 0;  // out of memory: abort the transfer (CURLE_WRITE_ERROR)
  }
  transfer.response.body_bytes += bytes;
  return bytes;
}

// CURLOPT_OPENSOCKETFUNCTION: the last line of defence against DNS rebinding and URL-parser
// differences; a socket opens only to an address the policy checked. Close-on-exec, since exec
// jobs fork on other slots.
curl_socket_t on_open_socket(void* user, curlsocktype purpose, curl_sockaddr* address) noexcept {
  auto& transfer = *static_cast<Transfer*>(user);
  const auto target = address_from(address->family, &address->addr, address->addrlen);
  if (purpose != CURLSOCKTYPE_IPCXN || !target) {
    transfer.refused_unknown = true;
    return CURL_SOCKET_BAD;
  }
  if (std::find(transfer.checked.begin(), transfer.checked.end(), *target) == transfer.checked.end()) {
    transfer.refused = target;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// Sets options and remembers the first one libcurl refused.
class Options {
 public:
  explicit Options(CURL* easy) : easy_(easy) {}
  template <typename Value>
  void set(CURLoption option, Value value) {
    const CURLcode code = curl_easy_setopt(easy_, option, value);
    if (code != CURLE_OK && first_error_ == CURLE_OK) first_error_ = code;
  }
  CURLcode first_error() const { return first_error_; }

 private:
  CURL* easy_;
  CURLcode first_error_ = CURLE_OK;
};

// "GET https://hooks.example.com:443": how errors name the request, without path or query
// (they may hold tokens).
std::string describe_target(const HttpRequest& request) {
  const bool bracketed = request.url.literal && !request.url.literal->is_v4();
  return fmt::format("{} {}://{}{}{}:{}", request.method, request.url.scheme, bracketed ? "[" : "", request.url.host,
                     bracketed ? "]" : "", request.url.port);
}

std::string address_for_curl(const IpAddress& address) {
  return address.is_v4() ? address.to_string() : fmt::format("[{}]", address.to_string());
}

Result<std::vector<IpAddress>> resolve(const HttpUrl& url) {
  if (url.literal) return std::vector<IpAddress>{*url.literal};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int code = getaddrinfo(url.host.c_str(), nullptr, &hints, &found);
  const std::unique_ptr<addrinfo, AddrinfoFree> owned(found);
  if (code != 0) {
    return make_error("cannot resolve {}: {}", url.host, code == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(code));
  }
  std::vector<IpAddress> addresses;
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    const auto address = address_from(entry->ai_family, entry->ai_addr, entry->ai_addrlen);
    if (address && std::find(addresses.begin(), addresses.end(), *address) == addresses.end()) addresses.push_back(*address);
  }
  return addresses;
}

std::string strip_host(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (!host.empty() && host.back() == '.') host.pop_back();
  return host;
}

bool same_host(const HttpUrl& url, const std::string& curl_host) {
  if (url.literal) {
    const auto parsed = IpAddress::parse(curl_host);
    return parsed && *parsed == *url.literal;
  }
  if (curl_host.size() != url.host.size()) return false;
  return std::equal(curl_host.begin(), curl_host.end(), url.host.begin(),
                    [](char lhs, char rhs) { return (lhs >= 'A' && lhs <= 'Z' ? lhs - 'A' + 'a' : lhs) == rhs; });
}

// libcurl's own reading of the URL must name the host and port kcron checked; the transfer then
// uses that parsed URL (CURLOPT_CURLU), so nothing re-parses it differently.
Result<UrlHandle> parse_with_curl(const HttpRequest& request, std::string& curl_host) {
  UrlHandle url(curl_url());
  if (!url) return make_error("out of memory");
  const std::string text(request.url_text);
  if (const CURLUcode code = curl_url_set(url.get(), CURLUPART_URL, text.c_str(), 0); code != CURLUE_OK) {
    return make_error("url: libcurl cannot parse it ({})", curl_url_strerror(code));
  }
  char* host = nullptr;
  char* port = nullptr;
  const CURLUcode host_code = curl_url_get(url.get(), CURLUPART_HOST, &host, 0);
  const CurlString owned_host(host);
  const CURLUcode port_code = curl_url_get(url.get(), CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  const CurlString owned_port(port);
  if (host_code != CURLUE_OK || port_code != CURLUE_OK || host == nullptr || port == nullptr) {
    return make_error("url: libcurl finds no host or port in it");
  }
  curl_host = strip_host(host);
  if (!same_host(request.url, curl_host) || std::to_string(request.url.port) != port) {
    return make_error("url: kcron and libcurl read different targets in it; write it plainly (scheme://host:port/path)");
  }
  return url;
}

Outcome run_http(const HttpPolicy& policy, const AllowList& allow, const v1::Job& job, const std::atomic<bool>& stop) {
  auto request = http_request_from(policy, job);
  if (!request) return failed(request.error().message(), false);
  const std::string target = describe_target(*request);
  const auto stopped = [&] { return failed(fmt::format("{}: stopped before the response arrived", target), true); };
  if (stop.load()) return stopped();

  auto addresses = resolve(request->url);
  if (!addresses) return http_transport_failure(fmt::format("{}: {}", target, addresses.error().message()));
  if (auto status = check_http_targets(allow, request->url, *addresses); !status) return failed(status.error().message(), false);
  if (stop.load()) return stopped();

  std::string curl_host;
  auto url = parse_with_curl(*request, curl_host);
  if (!url) return failed(url.error().message(), false);

  // Everything curl points into is declared before the handles, so it is destroyed after them.
  Transfer transfer;
  transfer.max_body_bytes = std::max(policy.max_body_bytes, policy.whole_bytes);
  transfer.checked = *addresses;
  std::array<char, CURL_ERROR_SIZE> error_text{};
  StringList headers;
  StringList pinned;
  bool lists_ok = true;
  if (!request->url.literal) {
    std::string entry = fmt::format("{}:{}:", curl_host, request->url.port);
    // Appended piece by piece: `"," + std::string` trips GCC 12's -Wrestrict false positive at -O3.
    for (std::size_t index = 0; index < addresses->size(); ++index) {
      if (index > 0) entry += ',';
      entry += address_for_curl((*addresses)[index]);
    }
    lists_ok = pinned.append(entry);
  }
  bool has_content_type = false;
  for (const auto& [name, value] : request->headers) {
    // "Name;" is libcurl's way to send a header with an empty value ("Name:" would remove it).
    lists_ok = lists_ok && headers.append(value.empty() ? name + ";" : fmt::format("{}: {}", name, value));
    has_content_type = has_content_type || strcasecmp(name.c_str(), "content-type") == 0;
  }
  // Bodies are bytes: say so instead of libcurl's default application/x-www-form-urlencoded.
  if (!request->body.empty() && !has_content_type)
    lists_ok = lists_ok && headers.append("Content-Type: application/octet-stream");
  lists_ok = lists_ok && headers.append("Expect:");  // no 100-continue round trip
  if (!lists_ok) return failed(fmt::format("{}: out of memory", target), true);

  const EasyHandle easy(curl_easy_init());
  const MultiHandle multi(curl_multi_init());
  if (!easy || !multi) return failed(fmt::format("{}: libcurl could not start a transfer", target), true);

  Options options(easy.get());
  options.set(CURLOPT_CURLU, url->get());
  options.set(CURLOPT_PROTOCOLS_STR, "http,https");
  options.set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  options.set(CURLOPT_FOLLOWLOCATION, 0L);
  options.set(CURLOPT_PROXY, "");  // ignore http_proxy & co: a proxy would resolve the name itself
  options.set(CURLOPT_NOSIGNAL, 1L);
  options.set(CURLOPT_TIMEOUT_MS, static_cast<long>(request->timeout.count()));
  options.set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(policy.connect_timeout, request->timeout).count()));
  options.set(CURLOPT_USERAGENT, kUserAgent);
  options.set(CURLOPT_HTTPHEADER, headers.get());
  if (pinned.get() != nullptr) options.set(CURLOPT_RESOLVE, pinned.get());
  options.set(CURLOPT_OPENSOCKETFUNCTION, &on_open_socket);
  options.set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(&transfer));
  options.set(CURLOPT_WRITEFUNCTION, &on_body);
  options.set(CURLOPT_WRITEDATA, static_cast<void*>(&transfer));
  options.set(CURLOPT_ERRORBUFFER, error_text.data());
  if (request->method == "GET") {
    options.set(CURLOPT_HTTPGET, 1L);
  } else if (request->method == "HEAD") {
    options.set(CURLOPT_NOBODY, 1L);
  } else {
    if (request->method != "POST") options.set(CURLOPT_CUSTOMREQUEST, request->method.c_str());
    // POST, PUT and PATCH always carry a body (maybe empty, with Content-Length: 0).
    if (!request->body.empty() || request->method == "POST" || request->method == "PUT" || request->method == "PATCH") {
      options.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request->body.size()));
      options.set(CURLOPT_POSTFIELDS, request->body.data());
    }
  }
  if (options.first_error() != CURLE_OK) {
    return failed(fmt::format("{}: libcurl refused an option ({})", target, curl_easy_strerror(options.first_error())), false);
  }

  // A private multi handle drives the one easy handle so `stop` is looked at every 50 ms, not only
  // when libcurl's progress callback runs (about once a second on an idle connection).
  const Attachment attachment(multi.get(), easy.get());
  if (attachment.code() != CURLM_OK) return failed(fmt::format("{}: {}", target, curl_multi_strerror(attachment.code())), true);
  int running = 1;
  while (true) {
    if (const CURLMcode code = curl_multi_perform(multi.get(), &running); code != CURLM_OK) {
      return failed(fmt::format("{}: {}", target, curl_multi_strerror(code)), true);
    }
    if (running == 0) break;
    if (stop.load()) return stopped();
    if (const CURLMcode code = curl_multi_poll(multi.get(), nullptr, 0, kPollIntervalMs, nullptr); code != CURLM_OK) {
      return failed(fmt::format("{}: {}", target, curl_multi_strerror(code)), true);
    }
  }
  CURLcode result = CURLE_OK;
  int queued = 0;
  while (const CURLMsg* message = curl_multi_info_read(multi.get(), &queued)) {
    if (message->msg == CURLMSG_DONE && message->easy_handle == easy.get()) result = message->data.result;
  }

  if (transfer.refused || transfer.refused_unknown) {
    return failed(fmt::format("refused http target {}: libcurl tried to connect to {}, an address kcron did not check",
                              request->url.host, transfer.refused ? transfer.refused->to_string() : "an unknown address"),
                  false);
  }
  if (result == CURLE_OPERATION_TIMEDOUT) {
    // libcurl's text says which limit ran out: "Connection timed out after 5001 milliseconds".
    return http_transport_failure(error_text[0] != '\0'
                                      ? fmt::format("{}: timed out: {}", target, error_text.data())
                                      : fmt::format("{}: timed out after {} ms", target, request->timeout.count()));
  }
  if (result != CURLE_OK) {
    const std::string detail = error_text[0] != '\0' ? fmt::format(" ({})", error_text.data()) : "";
    return http_transport_failure(fmt::format("{}: {}{}", target, curl_easy_strerror(result), detail));
  }

  // Defence in depth: the connection went to a checked address.
  char* primary_ip = nullptr;
  if (curl_easy_getinfo(easy.get(), CURLINFO_PRIMARY_IP, &primary_ip) != CURLE_OK || primary_ip == nullptr) {
    return failed(fmt::format("{}: libcurl does not say which address it connected to", target), true);
  }
  const auto connected = IpAddress::parse(primary_ip);
  if (!connected || std::find(transfer.checked.begin(), transfer.checked.end(), *connected) == transfer.checked.end()) {
    return failed(
        fmt::format("refused http target {}: connected to {}, an address kcron did not check", request->url.host, primary_ip),
        false);
  }

  long status = 0;
  curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &status);
  transfer.response.status = static_cast<int>(status);
  char* location = nullptr;
  if (curl_easy_getinfo(easy.get(), CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location != nullptr) {
    transfer.response.location = location;
  }
  const auto& retry_statuses = job.http().retry_statuses();
  // The body as kept for the object store (up to whole_bytes); the outcome's inline output is its
  // first max_body_bytes, as without a store.
  std::string whole;
  if (transfer.response.body.size() > policy.max_body_bytes) {
    whole = transfer.response.body;
    transfer.response.body.resize(policy.max_body_bytes);
  }
  auto outcome = http_outcome(
      transfer.response, std::span<const std::uint32_t>(retry_statuses.data(), static_cast<std::size_t>(retry_statuses.size())));
  if (policy.whole_bytes > 0) {
    if (whole.empty()) whole = transfer.response.body;
    if (whole.size() > policy.whole_bytes) whole.resize(policy.whole_bytes);
    if (whole.size() > policy.whole_threshold)
      outcome.whole_outputs.emplace_back("body", std::move(whole), transfer.response.body_bytes);
  }
  return outcome;
}

}  // namespace

void http_global_init() {
  static std::once_flag once;
  static CURLcode code = CURLE_OK;
  std::call_once(once, [] { code = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (code != CURLE_OK) throw std::runtime_error(fmt::format("libcurl failed to start: {}", curl_easy_strerror(code)));
}

Handler make_http_executor(HttpPolicy policy, JobWalls walls) {
  http_global_init();
  auto allow = AllowList::parse(policy.allow);
  if (!allow) throw std::invalid_argument("http.allow: " + allow.error().message());
  return [policy = std::move(policy), allow = std::move(*allow), walls](const v1::Job& job, const std::atomic<bool>& stop) {
    Redactor redactor;
    try {
      if (walls.tenants != nullptr && job.has_http()) {
        // A URL that does not parse is refused by run_http, with the reason.
        if (auto url = parse_http_url(job.http().url()); url) {
          const auto lists = walls.tenants->find(job.tenant());
          if (auto status = check_http_for_tenant(walls.tenants->settings(), job.tenant(), lists.get(), url->host, url->port);
              !status) {
            return failed(status.error().message(), false);
          }
        }
      }
      if (!has_secret_references(job)) return run_http(policy, allow, job, stop);
      auto resolved = resolve_secrets(job, walls.secrets);
      if (!resolved) return failed(resolved.error().message(), false);
      redactor = std::move(resolved->redactor);
      auto outcome = run_http(policy, allow, resolved->job, stop);
      outcome.error = redactor.apply(outcome.error);
      outcome.output = redactor.apply(outcome.output);
      for (auto& kept : outcome.whole_outputs) kept.bytes = redactor.apply(kept.bytes);
      return outcome;
    } catch (const std::exception& error) {  // never let an exception leave the slot thread
      return failed(redactor.apply(fmt::format("http job failed: {}", error.what())), true);
    }
  };
}

}  // namespace kcron::worker
