#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/secret_refs.h"
#include "core/tenant_walls.h"
#include "http/http_policy.h"
#include "http/http_task.h"

using namespace kcron;
using namespace kcron::worker;
using namespace std::chrono_literals;

namespace {

AddressKind kind_of(const char* text) {
  const auto address = IpAddress::parse(text);
  REQUIRE(address.has_value());
  return classify_address(*address);
}

IpAddress ip(const char* text) {
  const auto address = IpAddress::parse(text);
  REQUIRE(address.has_value());
  return *address;
}

HttpUrl url_of(const char* text) {
  auto url = parse_http_url(text);
  REQUIRE(url.ok());
  return *url;
}

std::string url_error(const char* text) {
  const auto url = parse_http_url(text);
  REQUIRE_FALSE(url.ok());
  return url.error().message();
}

AllowList allow_list(const std::vector<std::string>& entries) {
  auto allow = AllowList::parse(entries);
  REQUIRE(allow.ok());
  return *allow;
}

v1::Job http_job(const std::string& url) {
  v1::Job job;
  job.set_id("job-42");
  job.set_attempt(2);
  job.mutable_http()->set_url(url);
  return job;
}

HttpPolicy loopback_policy() {
  HttpPolicy policy;
  policy.allow = {"127.0.0.1/32"};
  return policy;
}

long elapsed_ms(std::chrono::steady_clock::time_point since) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since).count());
}

// What the test server saw of the last request to /echo.
struct Received {
  std::string method;
  std::string body;
  std::string job_id;
  std::string attempt;
  std::string custom;
  std::string content_type;
  std::string user_agent;
};

// A real HTTP server on 127.0.0.1 and a free port, serving fixed routes on its own thread.
// Destruction releases slow handlers, stops the server and joins the thread.
class TestServer {
 public:
  TestServer() {
    server_.Post("/echo", [this](const httplib::Request& request, httplib::Response& response) {
      count_hit();
      const std::lock_guard lock(mutex_);
      received_ = {request.method,
                   request.body,
                   request.get_header_value("kcron-job-id"),
                   request.get_header_value("kcron-attempt"),
                   request.get_header_value("x-custom"),
                   request.get_header_value("Content-Type"),
                   request.get_header_value("User-Agent")};
      response.set_content("ok", "text/plain");
    });
    server_.Get("/echo", [this](const httplib::Request&, httplib::Response& response) {
      count_hit();
      response.set_content("ok", "text/plain");
    });
    server_.Get(R"(/status/(\d+))", [this](const httplib::Request& request, httplib::Response& response) {
      count_hit();
      response.status = std::stoi(request.matches[1].str());
      if (response.status / 100 == 3) response.set_header("Location", "http://127.0.0.1:1/elsewhere");
      response.set_content("status body", "text/plain");
    });
    server_.Get("/slow", [this](const httplib::Request&, httplib::Response& response) {
      count_hit();
      const auto until = std::chrono::steady_clock::now() + 5s;
      while (!released_.load() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
      response.set_content("late", "text/plain");
    });
    server_.Get("/mirror", [this](const httplib::Request& request, httplib::Response& response) {
      count_hit();
      const std::lock_guard lock(mutex_);
      received_.custom = request.get_header_value("x-custom");
      received_.body = request.get_param_value("token");
      response.set_content("header=" + received_.custom + " query=" + received_.body, "text/plain");
    });
    server_.Get("/big", [this](const httplib::Request&, httplib::Response& response) {
      count_hit();
      response.set_content(std::string(1 << 20, 'x'), "application/octet-stream");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!server_.is_running() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer() {
    released_ = true;
    server_.stop();
    thread_.join();
  }

  std::string url(const std::string& path, const std::string& host = "127.0.0.1") const {
    return "http://" + host + ":" + std::to_string(port_) + path;
  }
  int hits() const { return hits_.load(); }
  Received received() const {
    const std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void count_hit() { ++hits_; }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> released_{false};
  std::atomic<int> hits_{0};
  mutable std::mutex mutex_;
  Received received_;
};

}  // namespace

// ---- the address classifier ----

TEST_CASE("IPv4 loopback, private, link-local, unspecified, CGNAT, multicast, broadcast and reserved addresses are refused") {
  CHECK(kind_of("127.0.0.1") == AddressKind::kLoopback);
  CHECK(kind_of("127.255.255.254") == AddressKind::kLoopback);
  CHECK(kind_of("10.1.2.3") == AddressKind::kPrivate);
  CHECK(kind_of("172.16.0.1") == AddressKind::kPrivate);
  CHECK(kind_of("172.31.255.255") == AddressKind::kPrivate);
  CHECK(kind_of("192.168.1.1") == AddressKind::kPrivate);
  CHECK(kind_of("169.254.169.254") == AddressKind::kLinkLocal);
  CHECK(kind_of("169.254.0.1") == AddressKind::kLinkLocal);
  CHECK(kind_of("0.0.0.0") == AddressKind::kUnspecified);
  CHECK(kind_of("0.1.2.3") == AddressKind::kUnspecified);
  CHECK(kind_of("100.64.0.1") == AddressKind::kCarrierGradeNat);
  CHECK(kind_of("100.100.100.200") == AddressKind::kCarrierGradeNat);  // Alibaba Cloud metadata
  CHECK(kind_of("100.127.255.255") == AddressKind::kCarrierGradeNat);
  CHECK(kind_of("224.0.0.1") == AddressKind::kMulticast);
  CHECK(kind_of("239.255.255.250") == AddressKind::kMulticast);
  CHECK(kind_of("255.255.255.255") == AddressKind::kBroadcast);
  CHECK(kind_of("240.0.0.1") == AddressKind::kReserved);
}

TEST_CASE("IPv4 addresses next to the refused blocks are public") {
  for (const char* text :
       {"8.8.8.8", "1.1.1.1", "11.0.0.1", "126.255.255.255", "128.0.0.1", "172.15.255.255", "172.32.0.1", "192.167.255.255",
        "192.169.0.1", "169.253.255.255", "169.255.0.1", "100.63.255.255", "100.128.0.1", "223.255.255.255"}) {
    INFO(text);
    CHECK(kind_of(text) == AddressKind::kPublic);
  }
}

TEST_CASE("IPv6 loopback, unspecified, unique-local, link-local, site-local and multicast addresses are refused") {
  CHECK(kind_of("::1") == AddressKind::kLoopback);
  CHECK(kind_of("::") == AddressKind::kUnspecified);
  CHECK(kind_of("fc00::1") == AddressKind::kPrivate);
  CHECK(kind_of("fd00:ec2::254") == AddressKind::kPrivate);  // AWS metadata over IPv6
  CHECK(kind_of("fe80::1") == AddressKind::kLinkLocal);
  CHECK(kind_of("febf:ffff::1") == AddressKind::kLinkLocal);
  CHECK(kind_of("fec0::1") == AddressKind::kPrivate);
  CHECK(kind_of("ff02::1") == AddressKind::kMulticast);
  CHECK(kind_of("100::1") == AddressKind::kReserved);
  CHECK(kind_of("2001:4860:4860::8888") == AddressKind::kPublic);
  CHECK(kind_of("2606:4700:4700::1111") == AddressKind::kPublic);
  CHECK(kind_of("fe00::1") == AddressKind::kPublic);
}

TEST_CASE("IPv6 forms that embed an IPv4 address are classified as that IPv4 address") {
  CHECK(kind_of("::ffff:127.0.0.1") == AddressKind::kLoopback);
  CHECK(kind_of("::ffff:7f00:1") == AddressKind::kLoopback);
  CHECK(kind_of("::ffff:169.254.169.254") == AddressKind::kLinkLocal);
  CHECK(kind_of("::ffff:10.0.0.1") == AddressKind::kPrivate);
  CHECK(kind_of("::ffff:8.8.8.8") == AddressKind::kPublic);
  CHECK(kind_of("::127.0.0.1") == AddressKind::kLoopback);         // v4-compatible
  CHECK(kind_of("64:ff9b::10.0.0.1") == AddressKind::kPrivate);    // NAT64
  CHECK(kind_of("2002:a9fe:a9fe::1") == AddressKind::kLinkLocal);  // 6to4 of 169.254.169.254
  CHECK(kind_of("2002:808:808::1") == AddressKind::kPublic);       // 6to4 of 8.8.8.8
  CHECK(ip("::ffff:127.0.0.1").embedded_v4() == IpAddress::parse("127.0.0.1"));
}

TEST_CASE("addresses parse only in strict text forms") {
  for (const char* text :
       {"127.1", "0x7f.0.0.1", "2130706433", "010.0.0.1", "1.2.3.256", "[::1]", "fe80::1%eth0", "", "localhost"}) {
    INFO(text);
    CHECK_FALSE(IpAddress::parse(text).has_value());
  }
  CHECK(ip("1.2.3.4").is_v4());
  CHECK(ip("1.2.3.4").to_string() == "1.2.3.4");
  CHECK(ip("2001:DB8::1").to_string() == "2001:db8::1");
}

// ---- the allowlist ----

TEST_CASE("an allowlisted address block lets a private target through, and only that block") {
  const auto allow = allow_list({"10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"});
  CHECK(check_http_target(allow, url_of("http://10.2.3.4/"), ip("10.2.3.4")).ok());
  CHECK(check_http_target(allow, url_of("http://127.0.0.1/"), ip("127.0.0.1")).ok());
  CHECK_FALSE(check_http_target(allow, url_of("http://127.0.0.2/"), ip("127.0.0.2")).ok());
  CHECK(check_http_target(allow, url_of("http://[::1]/"), ip("::1")).ok());
  CHECK(check_http_target(allow, url_of("http://[::ffff:127.0.0.1]/"), ip("::ffff:127.0.0.1")).ok());
  CHECK(check_http_target(allow, url_of("http://[fd12::1]/"), ip("fd12::1")).ok());
  CHECK_FALSE(check_http_target(allow, url_of("http://192.168.0.1/"), ip("192.168.0.1")).ok());
  CHECK_FALSE(check_http_target(allow, url_of("http://169.254.169.254/"), ip("169.254.169.254")).ok());
}

TEST_CASE("an allowlisted host name lets its private addresses through, and no other name") {
  const auto allow = allow_list({"Hooks.Internal."});
  CHECK(check_http_target(allow, url_of("http://hooks.internal/x"), ip("192.168.1.5")).ok());
  CHECK(check_http_target(allow, url_of("http://HOOKS.internal./x"), ip("192.168.1.5")).ok());
  const auto refused = check_http_target(allow, url_of("http://other.internal/x"), ip("192.168.1.5"));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message() ==
        "refused http target other.internal (resolves to private address 192.168.1.5): add it to http.allow to permit");
}

TEST_CASE("the refusal names the address, why it is refused and the setting that permits it") {
  const auto refused =
      check_http_target(allow_list({}), url_of("http://169.254.169.254/latest/meta-data"), ip("169.254.169.254"));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message() == "refused http target 169.254.169.254 (link-local): add it to http.allow to permit");
  CHECK(check_http_target(allow_list({}), url_of("http://example.com/"), ip("93.184.216.34")).ok());
}

TEST_CASE("one refused address among those a name resolves to refuses the name") {
  const auto allow = allow_list({});
  const auto url = url_of("https://hooks.example.com/");
  CHECK(check_http_targets(allow, url, {ip("93.184.216.34"), ip("2606:2800:220:1::1")}).ok());
  const auto mixed = check_http_targets(allow, url, {ip("93.184.216.34"), ip("10.0.0.7")});
  REQUIRE_FALSE(mixed.ok());
  CHECK_THAT(mixed.error().message(), Catch::Contains("10.0.0.7"));
  CHECK_FALSE(check_http_targets(allow, url, {}).ok());
}

TEST_CASE("allowlist entries must be address blocks, addresses or exact host names") {
  CHECK(AllowList::parse({"10.0.0.0/8", "10.0.0.1", "::1", "2001:db8::/32", "hooks.internal", "0.0.0.0/0"}).ok());
  for (const char* entry :
       {"10.0.0.0/33", "::/129", "10.0.0.0/x", "10.0.0.0/", "10.0.0/8", "*.internal", "not a host", "10.0.0"}) {
    INFO(entry);
    CHECK_FALSE(AllowList::parse({entry}).ok());
  }
  const auto typo = AllowList::parse({"10.1.0.0/8"});
  REQUIRE_FALSE(typo.ok());
  CHECK_THAT(typo.error().message(), Catch::Contains("bits set after the /8 prefix"));
}

// ---- URL checks ----

TEST_CASE("only http and https URLs are accepted") {
  CHECK_THAT(url_error("ftp://files.example.com/x"), Catch::Contains("scheme 'ftp' is not allowed"));
  CHECK_THAT(url_error("file:///etc/passwd"), Catch::Contains("scheme 'file' is not allowed"));
  CHECK_THAT(url_error("gopher://example.com/"), Catch::Contains("only http and https"));
  CHECK_THAT(url_error("javascript:alert(1)"), Catch::Contains("scheme 'javascript'"));
  CHECK_THAT(url_error("hooks.example.com:8080/x"), Catch::Contains("expected http://"));
  CHECK_THAT(url_error(""), Catch::Contains("empty"));
}

TEST_CASE("a URL needs a host and may not carry user information") {
  CHECK_THAT(url_error("http:///path"), Catch::Contains("no host"));
  CHECK_THAT(url_error("http://:80/"), Catch::Contains("no host"));
  const auto userinfo = url_error("https://admin:s3cret@hooks.example.com/");
  CHECK_THAT(userinfo, Catch::Contains("user information (user:password@) is not allowed"));
  CHECK_THAT(userinfo, !Catch::Contains("s3cret"));
  CHECK_THAT(url_error("http://evil.com@169.254.169.254/"), Catch::Contains("user information"));
}

TEST_CASE("a URL host another parser could read differently is refused") {
  CHECK_THAT(url_error("http://2130706433/"), Catch::Contains("dotted-quad"));
  CHECK_THAT(url_error("http://0x7f.1/"), Catch::Contains("dotted-quad"));
  CHECK_THAT(url_error("http://127.1/"), Catch::Contains("dotted-quad"));
  CHECK_THAT(url_error("http://0177.0.0.1/"), Catch::Contains("dotted-quad"));
  CHECK_THAT(url_error("http://a\\b.example.com/"), Catch::Contains("backslash"));
  CHECK_THAT(url_error("http://exa mple.com/"), Catch::Contains("percent-encoded"));
  CHECK_THAT(url_error("http://%31%32%37.0.0.1/"), Catch::Contains("percent-encoded hosts"));
  CHECK_THAT(url_error("http://[fe80::1%25eth0]/"), Catch::Contains("zone"));
  CHECK_THAT(url_error("http://[127.0.0.1]/"), Catch::Contains("not an IPv6 address"));
  CHECK_THAT(url_error("http://host:99999/"), Catch::Contains("port"));
  CHECK_THAT(url_error("http://host:8o/"), Catch::Contains("port"));
}

TEST_CASE("a URL's host is read in lower case with its port, default 80 or 443") {
  const auto named = url_of("HTTPS://Hooks.Example.COM./x?y#z");
  CHECK(named.scheme == "https");
  CHECK(named.host == "hooks.example.com");
  CHECK(named.port == 443);
  CHECK_FALSE(named.literal.has_value());

  const auto v6 = url_of("http://[::1]:8080/x");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 8080);
  CHECK(v6.literal == IpAddress::parse("::1"));

  const auto v4 = url_of("http://10.0.0.1");
  CHECK(v4.port == 80);
  CHECK(v4.literal == IpAddress::parse("10.0.0.1"));
}

// ---- the request ----

TEST_CASE("a request has the task's method, headers and body, plus kcron-job-id and kcron-attempt") {
  HttpPolicy policy;
  auto job = http_job("https://hooks.example.com/x");
  job.mutable_http()->mutable_headers()->insert({"X-Token", "abc"});
  auto get = http_request_from(policy, job);
  REQUIRE(get.ok());
  CHECK(get->method == "GET");
  CHECK(get->timeout == policy.default_timeout);
  CHECK(get->headers ==
        std::vector<std::pair<std::string, std::string>>{{"X-Token", "abc"}, {"kcron-job-id", "job-42"}, {"kcron-attempt", "2"}});

  job.mutable_http()->set_body("{}");
  job.mutable_timeout()->set_nanos(300'000'000);
  auto post = http_request_from(policy, job);
  REQUIRE(post.ok());
  CHECK(post->method == "POST");
  CHECK(post->body == "{}");
  CHECK(post->timeout == 300ms);

  job.mutable_http()->set_method("put");
  CHECK(http_request_from(policy, job)->method == "PUT");
}

TEST_CASE("a request that cannot be sent as asked is refused before anything is sent") {
  HttpPolicy policy;
  policy.max_request_body_bytes = 10;
  auto error_for = [&](const std::function<void(v1::Job&)>& change) {
    auto job = http_job("https://hooks.example.com/x");
    change(job);
    const auto request = http_request_from(policy, job);
    REQUIRE_FALSE(request.ok());
    return request.error().message();
  };
  CHECK_THAT(error_for([](v1::Job& job) {
               job.mutable_http()->mutable_headers()->insert({"X-Bad", "a\r\nHost: evil"});
             }),
             Catch::Contains("CR, LF"));
  CHECK_THAT(error_for([](v1::Job& job) {
               job.mutable_http()->mutable_headers()->insert({"X-Bad\r\nHost", "a"});
             }),
             Catch::Contains("header names"));
  CHECK_THAT(error_for([](v1::Job& job) {
               job.mutable_http()->mutable_headers()->insert({"kcron-job-id", "x"});
             }),
             Catch::Contains("set by kcron"));
  CHECK_THAT(error_for([](v1::Job& job) { job.mutable_http()->set_body(std::string(11, 'x')); }),
             Catch::Contains("over the worker's limit of 10 bytes"));
  CHECK_THAT(error_for([](v1::Job& job) { job.mutable_http()->set_method("TRACE"); }), Catch::Contains("not supported"));
  CHECK_THAT(error_for([](v1::Job& job) { job.mutable_http()->set_method("GET /x HTTP/1.1\r\n"); }),
             Catch::Contains("not supported"));
  CHECK_THAT(error_for([](v1::Job& job) { job.clear_http(); }), Catch::Contains("no http task"));
}

// ---- outcome by status ----

TEST_CASE("2xx succeeds, 3xx and unlisted 4xx fail for good, 5xx and listed 4xx fail and are retried") {
  const std::vector<std::uint32_t> none;
  const std::vector<std::uint32_t> retry_429 = {429};
  auto outcome_of = [](int status, const std::vector<std::uint32_t>& retry) {
    return http_outcome(HttpResponse{status, "body", 4, status == 301 ? "https://new.example.com/" : ""}, retry);
  };
  CHECK(outcome_of(200, none).state == v1::SUCCEEDED);
  CHECK(outcome_of(200, none).output == "body");
  CHECK(outcome_of(200, none).http_status == 200);
  CHECK(outcome_of(204, none).state == v1::SUCCEEDED);

  const auto moved = outcome_of(301, none);
  CHECK(moved.state == v1::FAILED);
  CHECK_FALSE(moved.retriable);
  CHECK_THAT(moved.error, Catch::Contains("redirects are not followed (Location: https://new.example.com/)"));

  const auto missing = outcome_of(404, none);
  CHECK(missing.state == v1::FAILED);
  CHECK_FALSE(missing.retriable);
  CHECK(missing.http_status == 404);
  CHECK(missing.output == "body");

  CHECK_FALSE(outcome_of(429, none).retriable);
  CHECK(outcome_of(429, retry_429).state == v1::FAILED);
  CHECK(outcome_of(429, retry_429).retriable);
  CHECK_FALSE(outcome_of(404, retry_429).retriable);

  const auto unavailable = outcome_of(503, none);
  CHECK(unavailable.state == v1::FAILED);
  CHECK(unavailable.retriable);
  CHECK(unavailable.http_status == 503);
}

TEST_CASE("a transport error fails the attempt, retriable, with no status") {
  const auto outcome = http_transport_failure("GET https://hooks.example.com:443: Couldn't connect to server");
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.retriable);
  CHECK(outcome.http_status == 0);
}

TEST_CASE("a body cut short says how much was received") {
  const auto outcome = http_outcome(HttpResponse{200, "abc", 10, ""}, {});
  CHECK(outcome.output == "abc\n[kcron: response body truncated to 3 of 10 bytes]");
}

// ---- configuration ----

TEST_CASE("http job settings come from http.* keys, and a wrong one is named") {
  auto load = [](const std::vector<std::string>& overrides) {
    auto config = Config::load(http_config_keys(), "", overrides, {});
    REQUIRE(config.ok());
    return http_policy_from(*config);
  };
  const auto defaults = load({});
  REQUIRE(defaults.ok());
  CHECK(defaults->allow.empty());
  CHECK(defaults->default_timeout == 30s);
  CHECK(defaults->connect_timeout == 5s);
  CHECK(defaults->max_body_bytes == 65536);

  const auto set = load({"http.allow=10.0.0.0/8, hooks.internal", "http.default_timeout_ms=1000", "http.max_body_bytes=10"});
  REQUIRE(set.ok());
  CHECK(set->allow == std::vector<std::string>{"10.0.0.0/8", "hooks.internal"});
  CHECK(set->default_timeout == 1s);
  CHECK(set->max_body_bytes == 10);

  for (const auto& [assignment, key] :
       std::vector<std::pair<std::string, std::string>>{{"http.allow=10.0.0.0/40", "http.allow"},
                                                        {"http.default_timeout_ms=0", "http.default_timeout_ms"},
                                                        {"http.connect_timeout_ms=soon", "http.connect_timeout_ms"},
                                                        {"http.max_body_bytes=-1", "http.max_body_bytes"},
                                                        {"http.max_body_bytes=99999999", "http.max_body_bytes"}}) {
    INFO(assignment);
    const auto policy = load({assignment});
    REQUIRE_FALSE(policy.ok());
    CHECK_THAT(policy.error().message(), Catch::Contains(key));
  }
  for (const auto& key : http_config_keys()) CHECK_THAT(key.help, Catch::StartsWith("http jobs: "));
}

// ---- against a real local server ----

TEST_CASE("a POST arrives with its body, its headers, kcron-job-id and kcron-attempt") {
  TestServer server;
  const auto executor = make_http_executor(loopback_policy());
  auto job = http_job(server.url("/echo"));
  job.mutable_http()->set_body(R"({"hello":"world"})");
  job.mutable_http()->mutable_headers()->insert({"X-Custom", "yes"});
  job.mutable_http()->mutable_headers()->insert({"Content-Type", "application/json"});
  const std::atomic<bool> stop{false};
  const auto outcome = executor(job, stop);
  INFO(outcome.error);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.http_status == 200);
  CHECK(outcome.output == "ok");
  const auto received = server.received();
  CHECK(received.method == "POST");
  CHECK(received.body == R"({"hello":"world"})");
  CHECK(received.job_id == "job-42");
  CHECK(received.attempt == "2");
  CHECK(received.custom == "yes");
  CHECK(received.content_type == "application/json");
  CHECK(received.user_agent == "kcron-worker");
}

TEST_CASE("a body without a Content-Type header is sent as application/octet-stream") {
  TestServer server;
  auto job = http_job(server.url("/echo"));
  job.mutable_http()->set_body("raw");
  const std::atomic<bool> stop{false};
  CHECK(make_http_executor(loopback_policy())(job, stop).state == v1::SUCCEEDED);
  CHECK(server.received().content_type == "application/octet-stream");
}

TEST_CASE("a 503 fails the attempt as retriable with its status") {
  TestServer server;
  const std::atomic<bool> stop{false};
  const auto outcome = make_http_executor(loopback_policy())(http_job(server.url("/status/503")), stop);
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.retriable);
  CHECK(outcome.http_status == 503);
  CHECK(outcome.output == "status body");
}

TEST_CASE("a 404 fails the attempt for good") {
  TestServer server;
  const std::atomic<bool> stop{false};
  const auto outcome = make_http_executor(loopback_policy())(http_job(server.url("/status/404")), stop);
  CHECK(outcome.state == v1::FAILED);
  CHECK_FALSE(outcome.retriable);
  CHECK(outcome.http_status == 404);
}

TEST_CASE("a 429 listed in retry_statuses is retried") {
  TestServer server;
  auto job = http_job(server.url("/status/429"));
  job.mutable_http()->add_retry_statuses(429);
  const std::atomic<bool> stop{false};
  const auto outcome = make_http_executor(loopback_policy())(job, stop);
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.retriable);
  CHECK(outcome.http_status == 429);
}

TEST_CASE("a redirect is not followed") {
  TestServer server;
  const std::atomic<bool> stop{false};
  const auto outcome = make_http_executor(loopback_policy())(http_job(server.url("/status/302")), stop);
  CHECK(outcome.state == v1::FAILED);
  CHECK_FALSE(outcome.retriable);
  CHECK(outcome.http_status == 302);
  CHECK_THAT(outcome.error, Catch::Contains("redirects are not followed (Location: http://127.0.0.1:1/elsewhere)"));
  CHECK(server.hits() == 1);
}

TEST_CASE("a slow server and a 300 ms job timeout fail the attempt as timed out, retriable") {
  TestServer server;
  auto job = http_job(server.url("/slow"));
  job.mutable_timeout()->set_nanos(300'000'000);
  const std::atomic<bool> stop{false};
  const auto started = std::chrono::steady_clock::now();
  const auto outcome = make_http_executor(loopback_policy())(job, stop);
  CHECK(elapsed_ms(started) < 2000);
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.retriable);
  CHECK_THAT(outcome.error, Catch::Contains("timed out"));
  CHECK(outcome.http_status == 0);
}

TEST_CASE("the stop flag ends a slow request promptly") {
  TestServer server;
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop = true;
  });
  const auto started = std::chrono::steady_clock::now();
  const auto outcome = make_http_executor(loopback_policy())(http_job(server.url("/slow")), stop);
  const auto took = elapsed_ms(started);
  stopper.join();
  CHECK(took < 600);
  CHECK(outcome.state == v1::FAILED);
  CHECK_THAT(outcome.error, Catch::Contains("stopped"));
}

TEST_CASE("a 1 MB response is cut to max_body_bytes") {
  TestServer server;
  auto policy = loopback_policy();
  policy.max_body_bytes = 1000;
  const std::atomic<bool> stop{false};
  const auto outcome = make_http_executor(policy)(http_job(server.url("/big")), stop);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output.substr(0, 1001) == std::string(1000, 'x') + "\n");
  CHECK_THAT(outcome.output, Catch::EndsWith("[kcron: response body truncated to 1000 of 1048576 bytes]"));
}

TEST_CASE("with an object store a body over its threshold is also kept whole, up to whole_bytes") {
  TestServer server;
  auto policy = loopback_policy();
  policy.max_body_bytes = 1000;
  policy.whole_bytes = 2 << 20;
  policy.whole_threshold = 5000;
  const std::atomic<bool> stop{false};
  const auto outcome = make_http_executor(policy)(http_job(server.url("/big")), stop);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output.substr(0, 1001) == std::string(1000, 'x') + "\n");
  CHECK_THAT(outcome.output, Catch::EndsWith("[kcron: response body truncated to 1000 of 1048576 bytes]"));
  REQUIRE(outcome.whole_outputs.size() == 1);
  CHECK(outcome.whole_outputs[0].name == "body");
  CHECK(outcome.whole_outputs[0].bytes == std::string(1048576, 'x'));

  policy.whole_bytes = 500000;
  const auto capped = make_http_executor(policy)(http_job(server.url("/big")), stop);
  REQUIRE(capped.whole_outputs.size() == 1);
  CHECK(capped.whole_outputs[0].bytes.size() == 500000);
  CHECK(capped.whole_outputs[0].total == 1048576);
  CHECK_THAT(capped.output, Catch::EndsWith("[kcron: response body truncated to 1000 of 1048576 bytes]"));

  const auto small = make_http_executor(policy)(http_job(server.url("/echo")), stop);
  CHECK(small.state == v1::SUCCEEDED);
  CHECK(small.whole_outputs.empty());
}

TEST_CASE("a loopback target is refused without http.allow and reached with 127.0.0.1/32") {
  TestServer server;
  const std::atomic<bool> stop{false};
  const auto refused = make_http_executor(HttpPolicy{})(http_job(server.url("/echo")), stop);
  CHECK(refused.state == v1::FAILED);
  CHECK_FALSE(refused.retriable);
  CHECK(refused.error == "refused http target 127.0.0.1 (loopback): add it to http.allow to permit");
  CHECK(server.hits() == 0);

  const auto allowed = make_http_executor(loopback_policy())(http_job(server.url("/echo")), stop);
  CHECK(allowed.state == v1::SUCCEEDED);
  CHECK(server.hits() == 1);
}

TEST_CASE("the cloud metadata address is refused without connecting") {
  const std::atomic<bool> stop{false};
  const auto started = std::chrono::steady_clock::now();
  const auto outcome = make_http_executor(HttpPolicy{})(http_job("http://169.254.169.254/latest/meta-data/"), stop);
  CHECK(elapsed_ms(started) < 100);
  CHECK(outcome.state == v1::FAILED);
  CHECK_FALSE(outcome.retriable);
  CHECK(outcome.error == "refused http target 169.254.169.254 (link-local): add it to http.allow to permit");
}

TEST_CASE("a name that resolves to loopback is refused, and reached when the name is allowed") {
  TestServer server;
  const std::atomic<bool> stop{false};
  const auto refused = make_http_executor(HttpPolicy{})(http_job(server.url("/echo", "localhost")), stop);
  CHECK(refused.state == v1::FAILED);
  CHECK_FALSE(refused.retriable);
  CHECK_THAT(refused.error, Catch::StartsWith("refused http target localhost (resolves to loopback address"));
  CHECK(server.hits() == 0);

  HttpPolicy by_name;
  by_name.allow = {"localhost"};
  const auto allowed = make_http_executor(by_name)(http_job(server.url("/echo", "LocalHost")), stop);
  INFO(allowed.error);
  CHECK(allowed.state == v1::SUCCEEDED);
  CHECK(server.hits() == 1);
}

TEST_CASE("a job with a bad URL or header fails for good without a request") {
  TestServer server;
  const std::atomic<bool> stop{false};
  const auto executor = make_http_executor(loopback_policy());
  const auto ftp = executor(http_job("ftp://127.0.0.1/file"), stop);
  CHECK(ftp.state == v1::FAILED);
  CHECK_FALSE(ftp.retriable);
  auto job = http_job(server.url("/echo"));
  job.mutable_http()->mutable_headers()->insert({"X-Bad", "a\nb"});
  CHECK_FALSE(executor(job, stop).retriable);
  CHECK(server.hits() == 0);
}

TEST_CASE("a connection refused fails the attempt, retriable") {
  std::string closed_url;
  {
    const TestServer gone;
    closed_url = gone.url("/echo");
  }
  const std::atomic<bool> stop{false};
  const auto started = std::chrono::steady_clock::now();
  const auto outcome = make_http_executor(loopback_policy())(http_job(closed_url), stop);
  CHECK(elapsed_ms(started) < 1000);
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.retriable);
  CHECK(outcome.http_status == 0);
  CHECK_THAT(outcome.error, Catch::StartsWith("GET http://127.0.0.1:"));
}

TEST_CASE("an invalid allowlist is a start-up error") {
  HttpPolicy policy;
  policy.allow = {"10.0.0.0/99"};
  CHECK_THROWS_AS(make_http_executor(policy), std::invalid_argument);
}

// ---- the tenant's targets and secrets by reference ----

namespace {

class OneSecret final : public SecretResolver {
 public:
  Result<std::string> resolve(std::string_view tenant, std::string_view name) const override {
    if (tenant == "acme" && name == "key") return std::string("p@ss w0rd&x=1");
    return make_error("secret '{}' of tenant '{}' not found", name, tenant);
  }
};

}  // namespace

TEST_CASE("a tenant's allowed_http_targets narrow the worker's rules") {
  TestServer server;
  const std::atomic<bool> stop{false};
  TenantWalls walls;
  std::map<std::string, v1::TenantSettings, std::less<>> tenants;
  tenants["acme"].add_allowed_http_targets("api.example.com");
  tenants["beta"].add_allowed_http_targets("127.0.0.1");
  walls.update(tenants, 1);
  const auto executor = make_http_executor(loopback_policy(), JobWalls{&walls, nullptr});
  auto job = http_job(server.url("/echo"));
  job.set_tenant("acme");
  const auto refused = executor(job, stop);
  CHECK(refused.state == v1::FAILED);
  CHECK_FALSE(refused.retriable);
  CHECK_THAT(refused.error, Catch::StartsWith("tenant 'acme' may not reach 127.0.0.1:") &&
                                Catch::Contains("allowed_http_targets (kcron tenant set acme --http-targets ...)"));
  CHECK(server.hits() == 0);
  job.set_tenant("beta");
  CHECK(executor(job, stop).state == v1::SUCCEEDED);
  // The tenant's list never widens the worker's: without http.allow, loopback stays refused.
  const auto narrow = make_http_executor(HttpPolicy{}, JobWalls{&walls, nullptr})(job, stop);
  CHECK_THAT(narrow.error, Catch::Contains("http.allow"));
  // A tenant without a list: the worker's rules alone.
  job.set_tenant("gamma");
  CHECK(executor(job, stop).state == v1::SUCCEEDED);
}

TEST_CASE("secret references in an http job's header and query are sent resolved and redacted from the outcome") {
  TestServer server;
  const std::atomic<bool> stop{false};
  const OneSecret secrets;
  const auto executor = make_http_executor(loopback_policy(), JobWalls{nullptr, &secrets});
  auto job = http_job(server.url("/mirror?token=secret:key&plain=1"));
  job.set_tenant("acme");
  (*job.mutable_http()->mutable_headers())["x-custom"] = "secret:key";
  const auto outcome = executor(job, stop);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(server.received().custom == "p@ss w0rd&x=1");
  CHECK(server.received().body == "p@ss w0rd&x=1");
  CHECK(outcome.output == "header=[secret:key] query=[secret:key]");
  const auto missing =
      make_http_executor(loopback_policy(), JobWalls{nullptr, &secrets})(http_job(server.url("/mirror?token=secret:nope")), stop);
  CHECK(missing.state == v1::FAILED);
  CHECK_FALSE(missing.retriable);
  CHECK(missing.error == "secret 'nope' of tenant 'default' not found");
  const auto off = make_http_executor(loopback_policy())(job, stop);
  CHECK_THAT(off.error, Catch::Contains("secrets are off on this worker (secrets.dir is empty)"));
  CHECK(server.hits() == 1);
}
