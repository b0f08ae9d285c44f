// The S3 store's edge against a local HTTP server standing in for S3: the request it sends (path
// style, escaped key, x-amz-content-sha256, a SigV4 Authorization), S3 errors turned into messages
// with the status and error code and never the secret, and listing across pages. The signature
// itself is checked against a real s3proxy by tests/integration/objects_test.cpp.
#include "objects/s3_store.h"

#include <httplib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <thread>

using namespace kcron;
using namespace kcron::worker;
using namespace std::chrono_literals;

namespace {

struct Seen {
  std::string method;
  std::string path;
  std::string sha256;
  std::string authorization;
  std::string body;
};

class FakeS3 {
 public:
  FakeS3() {
    server_.Put(R"(/b/.*)", [this](const httplib::Request& request, httplib::Response& response) {
      const int count = record(request);
      if (request.path.find("flaky") != std::string::npos && count <= 2) {
        response.status = 500;
        response.set_content("<Error><Code>InternalError</Code><Message>Try again.</Message></Error>", "application/xml");
        return;
      }
      if (request.path.find("hung") != std::string::npos) {
        // A store that takes the bytes and never answers (until the test ends).
        const auto until = std::chrono::steady_clock::now() + 20s;
        while (!closing_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
        response.status = 200;
        return;
      }
      if (request.path.find("denied") != std::string::npos) {
        response.status = 403;
        response.set_content("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", "application/xml");
        return;
      }
      if (request.path.find("busy") != std::string::npos) {
        response.status = 503;
        response.set_content(
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code><Message>Please reduce your request "
            "rate.</Message></Error>",
            "application/xml");
        return;
      }
      response.status = 200;
    });
    server_.Get("/b/big", [](const httplib::Request& /*request*/, httplib::Response& response) {
      response.set_content(std::string(200000, 'z'), "application/octet-stream");
    });
    server_.Get("/b/missing", [](const httplib::Request& /*request*/, httplib::Response& response) {
      response.status = 404;
      response.set_content("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
                           "application/xml");
    });
    server_.Get("/b", [this](const httplib::Request& request, httplib::Response& response) {
      record(request);
      const auto query = request.target.substr(request.target.find('?') + 1);
      if (!query.starts_with(request.has_param("continuation-token") ? "continuation-token=" : "list-type=2&prefix=")) {
        response.status = 403;  // the canonical query of a signature is sorted
        return;
      }
      if (!request.has_param("continuation-token")) {
        response.set_content(
            "<ListBucketResult><Contents><Key>t/</Key></Contents><Contents><Key>t/j/0/a/stdout</Key>"
            "<LastModified>2026-12-07T22:00:01.250Z</LastModified><Size>12</Size></Contents>"
            "<IsTruncated>true</IsTruncated><NextContinuationToken>next&amp;1</NextContinuationToken></ListBucketResult>",
            "application/xml");
      } else if (request.get_param_value("continuation-token") == "next&1") {
        response.set_content(
            "<ListBucketResult><Contents><Key>t/j&amp;k/0/b/stderr</Key><Size>5</Size></Contents>"
            "<IsTruncated>false</IsTruncated></ListBucketResult>",
            "application/xml");
      } else {
        response.status = 400;
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!server_.is_running() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  }
  FakeS3(const FakeS3&) = delete;
  FakeS3& operator=(const FakeS3&) = delete;
  ~FakeS3() {
    closing_ = true;
    server_.stop();
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int count(const std::string& method_and_path) const {
    const std::lock_guard lock(mutex_);
    const auto found = counts_.find(method_and_path);
    return found == counts_.end() ? 0 : found->second;
  }
  Seen last() const {
    const std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  // How often this method and path came, this one included.
  int record(const httplib::Request& request) {
    const std::lock_guard lock(mutex_);
    seen_ = {request.method, request.target, request.get_header_value("x-amz-content-sha256"),
             request.get_header_value("Authorization"), request.body};
    return ++counts_[request.method + " " + request.path];
  }
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  Seen seen_;
  std::map<std::string, int> counts_;
  std::atomic<bool> closing_{false};
};

S3Store store_for(const FakeS3& server) {
  ObjectSettings settings;
  settings.endpoint = server.endpoint() + "/";
  settings.bucket = "b";
  settings.region = "eu-west-3";
  settings.total_timeout = 5000ms;
  settings.retry_backoff = 10ms;
  return S3Store(settings, Credentials{"AKIDKCRON", "very-secret-key-4711"});
}

}  // namespace

TEST_CASE("a PUT is path-style with the key escaped once more, signed with SigV4 and its payload's sha256") {
  FakeS3 server;
  auto store = store_for(server);
  const std::string key = object_key("acme", "flow/node a", 2, "0123456789abcdef0123456789abcdef", "stdout");
  auto stored = store.put(key, "hello", {});
  REQUIRE(stored);
  CHECK(stored->uri() == "s3://b/acme/flow%2Fnode%20a/2/0123456789abcdef0123456789abcdef/stdout");
  CHECK(stored->size() == 5);
  CHECK(stored->sha256() == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  const auto seen = server.last();
  CHECK(seen.method == "PUT");
  CHECK(seen.path == "/b/acme/flow%252Fnode%2520a/2/0123456789abcdef0123456789abcdef/stdout");
  CHECK(seen.body == "hello");
  CHECK(seen.sha256 == stored->sha256());
  CHECK_THAT(seen.authorization, Catch::StartsWith("AWS4-HMAC-SHA256 Credential=AKIDKCRON/") &&
                                     Catch::Contains("/eu-west-3/s3/aws4_request") && Catch::Contains("Signature="));
  CHECK_THAT(seen.authorization, !Catch::Contains("very-secret-key-4711"));
}

TEST_CASE("a key with dot segments is sent as it is, never resolved by libcurl") {
  FakeS3 server;
  auto store = store_for(server);
  const std::string token = "0123456789abcdef0123456789abcdef";
  for (const auto& [id, path] :
       std::vector<std::pair<std::string, std::string>>{{".", "/b/t/%252E/1/" + token + "/stdout"},
                                                        {"..", "/b/t/%252E%252E/1/" + token + "/stdout"},
                                                        {"a/../b", "/b/t/a%252F%252E%252E%252Fb/1/" + token + "/stdout"}}) {
    INFO(id);
    REQUIRE(store.put(object_key("t", id, 1, token, "stdout"), "x", {}));
    CHECK(server.last().path == path);
  }
  // A key listed from the bucket (the sweep) with a literal dot segment keeps it (CURLOPT_PATH_AS_IS).
  REQUIRE(store.put("t/../x", "x", {}));
  CHECK(server.last().path == "/b/t/../x");
}

TEST_CASE("a PUT answered 5xx is tried again, at most 3 times, and a 4xx is not") {
  FakeS3 server;
  auto store = store_for(server);
  auto stored = store.put("t/flaky/0/x/stdout", "bytes", {});
  INFO((stored ? "" : stored.error().message()));
  REQUIRE(stored);
  CHECK(server.count("PUT /b/t/flaky/0/x/stdout") == 3);
  REQUIRE_FALSE(store.put("t/busy/0/x/stdout", "bytes", {}));
  CHECK(server.count("PUT /b/t/busy/0/x/stdout") == 3);
  auto denied = store.put("t/denied/0/x/stdout", "bytes", {});
  REQUIRE_FALSE(denied);
  CHECK(denied.error().message() == "PUT s3://b/t/denied/0/x/stdout answered 403 AccessDenied: Access Denied");
  CHECK(server.count("PUT /b/t/denied/0/x/stdout") == 1);
}

TEST_CASE("an upload to a hung store is abandoned when its stop check says so, or once it stalls") {
  FakeS3 server;
  ObjectSettings settings;
  settings.endpoint = server.endpoint();
  settings.bucket = "b";
  settings.retry_backoff = 10ms;
  S3Store store(settings, Credentials{"AKIDKCRON", "very-secret-key-4711"});
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    stop = true;
  });
  auto began = std::chrono::steady_clock::now();
  auto stopped = store.put("t/hung/0/x/stdout", std::string(100000, 'x'), [&] { return stop.load(); });
  stopper.join();
  REQUIRE_FALSE(stopped);
  CHECK_THAT(stopped.error().message(), Catch::Contains("stopped, the worker let go of the attempt"));
  CHECK(std::chrono::steady_clock::now() - began < 5s);
  CHECK(server.count("PUT /b/t/hung/0/x/stdout") == 1);  // no further try once stopped

  settings.stall_timeout = 1000ms;
  settings.put_tries = 1;
  S3Store stalling(settings, Credentials{"AKIDKCRON", "very-secret-key-4711"});
  began = std::chrono::steady_clock::now();
  auto stalled = stalling.put("t/hung/1/x/stdout", "bytes", {});
  REQUIRE_FALSE(stalled);
  CHECK_THAT(stalled.error().message(), Catch::Contains("PUT s3://b/t/hung/1/x/stdout: Timeout was reached"));
  CHECK(std::chrono::steady_clock::now() - began < 5s);
}

TEST_CASE("an S3 error names the request, the status and S3's code and message, never the secret") {
  FakeS3 server;
  auto store = store_for(server);
  auto refused = store.put("t/busy/0/x/stdout", "bytes", {});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message() ==
        "PUT s3://b/t/busy/0/x/stdout answered 503 SlowDown: Please reduce your request rate. (tried 3 times)");
  auto missing = store.get("s3://b/nothing");
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message(), Catch::StartsWith("GET s3://b/nothing answered 404"));
  CHECK_THAT(missing.error().message(), !Catch::Contains("very-secret-key-4711"));
  CHECK_FALSE(store.get("http://b/k"));
}

TEST_CASE("a store that does not answer is an error naming the endpoint") {
  ObjectSettings settings;
  settings.endpoint = "http://127.0.0.1:1";
  settings.connect_timeout = 2000ms;
  settings.retry_backoff = 10ms;
  S3Store store(settings, Credentials{"AKIDKCRON", "very-secret-key-4711"});
  auto failed = store.put("t/j/0/x/stdout", "bytes", {});
  REQUIRE_FALSE(failed);
  CHECK_THAT(failed.error().message(), Catch::StartsWith("PUT s3://kcron/t/j/0/x/stdout: ") &&
                                           Catch::Contains("http://127.0.0.1:1") && Catch::EndsWith("(tried 3 times)"));
  CHECK_THAT(failed.error().message(), !Catch::Contains("very-secret-key-4711"));
}

TEST_CASE("a listing follows continuation tokens, unescapes keys and skips directory placeholders") {
  FakeS3 server;
  auto store = store_for(server);
  auto keys = store.list("t/");
  INFO((keys ? "" : keys.error().message()));
  REQUIRE(keys);
  REQUIRE(keys->size() == 2);
  CHECK(keys->at(0).key == "t/j/0/a/stdout");
  CHECK(keys->at(0).size == 12);
  CHECK(keys->at(0).modified_ms == 1796680801250);  // 2026-12-07T22:00:01.250Z
  CHECK(keys->at(1).key == "t/j&k/0/b/stderr");
  CHECK(keys->at(1).size == 5);
  CHECK(keys->at(1).modified_ms == 0);  // not said: never taken for old
  // The last page's query, its parameters sorted as SigV4's canonical query is.
  CHECK(server.last().path == "/b?continuation-token=next%261&list-type=2&prefix=t%2F");
}

TEST_CASE("get_to hands a 200's body to the sink in chunks and an error's body never") {
  FakeS3 server;
  auto store = store_for(server);
  std::string received;
  std::size_t chunks = 0;
  auto read = store.get_to("s3://b/big", [&](std::string_view chunk) {
    received.append(chunk);
    ++chunks;
    return true;
  });
  INFO((read ? "" : read.error().message()));
  REQUIRE(read);
  CHECK(received == std::string(200000, 'z'));
  CHECK(chunks > 1);
  received.clear();
  auto missing = store.get_to("s3://b/missing", [&](std::string_view chunk) {
    received.append(chunk);
    return true;
  });
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message() == "GET s3://b/missing answered 404 NoSuchKey: The specified key does not exist.");
  CHECK(received.empty());
  auto stopped = store.get_to("s3://b/big", [](std::string_view /*chunk*/) { return false; });
  REQUIRE_FALSE(stopped);
  CHECK_THAT(stopped.error().message(), Catch::Contains("stopped by its reader"));
  auto head = store.head("s3://b/big");
  INFO((head ? "" : head.error().message()));
  REQUIRE(head);
  CHECK(head->size == 200000);
  CHECK(head->key == "big");
  auto head_missing = store.head("s3://b/missing");
  REQUIRE_FALSE(head_missing);
  CHECK_THAT(head_missing.error().message(), Catch::StartsWith("HEAD s3://b/missing answered 404"));
}

TEST_CASE("sha256_hex and run tokens") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const auto first = new_run_token();
  CHECK(is_run_token(first));
  CHECK(new_run_token() != first);
}

TEST_CASE("object settings come from objects.* keys and a wrong one is named") {
  auto load = [](const std::vector<std::string>& overrides) {
    auto config = Config::load(object_config_keys(), "", overrides, {});
    REQUIRE(config);
    return object_settings_from(*config);
  };
  auto defaults = load({});
  REQUIRE(defaults);
  CHECK_FALSE(defaults->enabled());
  CHECK(defaults->threshold_bytes == 65536);
  CHECK(defaults->bucket == "kcron");
  auto set = load({"objects.endpoint=http://127.0.0.1:9300", "objects.threshold_bytes=10", "objects.bucket=my-bucket"});
  REQUIRE(set);
  CHECK(set->enabled());
  CHECK(set->threshold_bytes == 10);
  for (const auto& [override, key] :
       std::vector<std::pair<std::string, std::string>>{{"objects.endpoint=ftp://x", "objects.endpoint"},
                                                        {"objects.bucket=Upper_Case", "objects.bucket"},
                                                        {"objects.region=a:b", "objects.region"},
                                                        {"objects.threshold_bytes=-1", "objects.threshold_bytes"},
                                                        {"objects.max_bytes=0", "objects.max_bytes"},
                                                        {"objects.timeout_ms=lots", "objects.timeout_ms"},
                                                        {"objects.stall_ms=10", "objects.stall_ms"}}) {
    INFO(override);
    auto bad = load({override});
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message(), Catch::Contains(key));
  }
  for (const auto* endpoint : {"objects.endpoint=http://user:hunter2@127.0.0.1:9300", "objects.endpoint=http://@host:1",
                               "objects.endpoint=http://host:1/a@b"}) {
    INFO(endpoint);
    auto bad = load({endpoint});
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message(), Catch::Contains("objects.endpoint: holds '@'"));
    CHECK_THAT(bad.error().message(), !Catch::Contains("hunter2"));
  }
  ObjectSettings no_credentials;
  no_credentials.endpoint = "http://127.0.0.1:9300";
  CHECK_THAT(make_s3_store(no_credentials).error().message(), Catch::Contains("objects.credentials_file is not set"));
  no_credentials.credentials_file = "/nonexistent/kcron-credentials";
  CHECK_THAT(make_s3_store(no_credentials).error().message(), Catch::Contains("cannot read /nonexistent/kcron-credentials"));
}
