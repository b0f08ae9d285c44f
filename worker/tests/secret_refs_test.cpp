#include "core/secret_refs.h"

#include <catch2/catch.hpp>
#include <map>
#include <vector>

using namespace kcron;
using namespace kcron::worker;

namespace {

// Secrets of tenants in memory, "tenant/NAME" -> value.
class MapResolver final : public SecretResolver {
 public:
  explicit MapResolver(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  Result<std::string> resolve(std::string_view tenant, std::string_view name) const override {
    const auto found = values_.find(std::string(tenant) + "/" + std::string(name));
    if (found == values_.end()) return make_error("secret '{}' of tenant '{}' not found", name, tenant);
    return found->second;
  }

 private:
  std::map<std::string, std::string> values_;
};

v1::Job exec_job(const std::string& tenant, const std::map<std::string, std::string>& env) {
  v1::Job job;
  job.set_id("j");
  job.set_tenant(tenant);
  job.mutable_exec()->add_argv("/bin/true");
  for (const auto& [name, value] : env) (*job.mutable_exec()->mutable_env())[name] = value;
  return job;
}

v1::Job http_job(const std::string& url, const std::map<std::string, std::string>& headers = {}) {
  v1::Job job;
  job.set_id("j");
  job.set_tenant("acme");
  job.mutable_http()->set_url(url);
  for (const auto& [name, value] : headers) (*job.mutable_http()->mutable_headers())[name] = value;
  return job;
}

}  // namespace

TEST_CASE("secret names are a small safe alphabet") {
  for (const std::string& good : std::vector<std::string>{"token", "db-pass", "a.b_c-1", "A", std::string(128, 'x')}) {
    INFO(good);
    CHECK(is_valid_secret_name(good));
  }
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", "a..b", "../x", "a/b", "/abs", "a b", "a\nb", "é", std::string(129, 'x'), "a$b"}) {
    INFO(bad);
    CHECK_FALSE(is_valid_secret_name(bad));
  }
}

TEST_CASE("a reference is the whole value secret:NAME") {
  CHECK(secret_reference("plain").value() == std::nullopt);
  CHECK(secret_reference("x secret:token").value() == std::nullopt);
  CHECK(secret_reference("Secret:token").value() == std::nullopt);
  CHECK(secret_reference("secret:token").value() == std::optional<std::string>("token"));
  const auto bad = secret_reference("secret:../etc/passwd");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message(), Catch::Contains("not a valid secret reference"));
  CHECK_FALSE(secret_reference("secret:"));
  const auto unprintable = secret_reference(std::string("secret:a\nb"));
  REQUIRE_FALSE(unprintable);
  CHECK_THAT(unprintable.error().message(), Catch::Contains("<3 bytes>"));
}

TEST_CASE("exec env references resolve from the job's tenant") {
  const MapResolver resolver({{"acme/token", "s3cr3t-value"}, {"default/token", "default-value"}, {"other/token", "theirs"}});
  auto resolved = resolve_secrets(exec_job("acme", {{"X", "secret:token"}, {"Y", "plain"}}), &resolver);
  REQUIRE(resolved);
  CHECK(resolved->job.exec().env().at("X") == "s3cr3t-value");
  CHECK(resolved->job.exec().env().at("Y") == "plain");
  auto fallback = resolve_secrets(exec_job("", {{"X", "secret:token"}}), &resolver);
  REQUIRE(fallback);
  CHECK(fallback->job.exec().env().at("X") == "default-value");
  // Missing: the error names the secret and the tenant, nothing else.
  const auto missing = resolve_secrets(exec_job("acme", {{"X", "secret:db-pass"}}), &resolver);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message() == "secret 'db-pass' of tenant 'acme' not found");
  // Secrets off.
  const auto off = resolve_secrets(exec_job("acme", {{"X", "secret:token"}}), nullptr);
  REQUIRE_FALSE(off);
  CHECK(off.error().message() == "secret 'token' of tenant 'acme': secrets are off on this worker (secrets.dir is empty)");
  // A bad name is refused before any lookup.
  const auto bad = resolve_secrets(exec_job("acme", {{"X", "secret:a/b"}}), &resolver);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message(), Catch::Contains("environment variable 'X'"));
  // A NUL in the value cannot be an env value; the message does not show it.
  const MapResolver nul(std::map<std::string, std::string>{{"acme/token", std::string("ab\0cd", 5)}});
  const auto refused = resolve_secrets(exec_job("acme", {{"X", "secret:token"}}), &nul);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message(), Catch::Contains("holds a NUL byte") && !Catch::Contains("ab"));
}

TEST_CASE("http header and query references resolve, URL values percent-encoded") {
  const MapResolver resolver({{"acme/api-key", "k&y=1 2"}, {"acme/bearer", "Bearer abc"}});
  const auto job =
      http_job("https://api.example.com/p?a=1&key=secret:api-key&b=secret:bearer#frag", {{"Authorization", "secret:bearer"}});
  CHECK(has_secret_references(job));
  auto resolved = resolve_secrets(job, &resolver);
  REQUIRE(resolved);
  CHECK(resolved->job.http().url() == "https://api.example.com/p?a=1&key=k%26y%3D1%202&b=Bearer%20abc#frag");
  CHECK(resolved->job.http().headers().at("Authorization") == "Bearer abc");
  // The published job keeps the references.
  CHECK(job.http().url().find("secret:api-key") != std::string::npos);
  // Only whole query values are references: not the path, not the fragment, not part of a value.
  CHECK_FALSE(has_secret_references(http_job("https://h/secret:x?a=xsecret:y#k=secret:z")));
  // A control character cannot go into a header.
  const MapResolver newline(std::map<std::string, std::string>{{"acme/bearer", "a\r\nInjected: 1"}});
  const auto refused = resolve_secrets(http_job("https://h/", {{"Authorization", "secret:bearer"}}), &newline);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message(),
             Catch::Contains("secret 'bearer' of tenant 'acme' holds CR, LF") && !Catch::Contains("Injected"));
}

TEST_CASE("url_secret_references finds whole query values only") {
  const auto references = url_secret_references("https://h/p?x=secret:a&y=secret:b&z=v&secret:c&w=#secret:d");
  REQUIRE(references);
  REQUIRE(references->size() == 2);
  CHECK((*references)[0].name == "a");
  CHECK((*references)[1].name == "b");
  CHECK_FALSE(url_secret_references("https://h/?x=secret:../a"));
  CHECK(url_secret_references("https://h/p")->empty());
}

TEST_CASE("the redactor takes values out of outputs and errors") {
  Redactor redactor;
  CHECK(redactor.empty());
  redactor.add("token", "s3cr3t value");
  redactor.add("short", "s3cr3t");
  redactor.add("empty", "");
  CHECK(redactor.apply("got s3cr3t value and s3cr3t and s3cr3t%20value") ==
        "got [secret:token] and [secret:short] and [secret:token]");
  CHECK(redactor.apply("nothing here") == "nothing here");
  // A value that holds its own replacement text is still replaced once, not forever.
  Redactor loop;
  loop.add("x", "[secret:x]");
  CHECK(loop.apply("a [secret:x] b") == "a [secret:x] b");
}

TEST_CASE("jobs without references stay as they are") {
  const auto job = exec_job("acme", {{"X", "plain"}});
  CHECK_FALSE(has_secret_references(job));
  auto resolved = resolve_secrets(job, nullptr);
  REQUIRE(resolved);
  CHECK(resolved->redactor.empty());
  CHECK(resolved->job.SerializeAsString() == job.SerializeAsString());
}
