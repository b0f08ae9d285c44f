// Large outputs (docs/large-results.md): the pure parts of objects/ without a network, the slot's
// store_large_outputs against a fake store, and the ObjectRef on the published Result.
#include <catch2/catch.hpp>
#include <map>

#include "core/outcome_policy.h"
#include "kcron/codec.h"
#include "objects/object_store.h"
#include "objects/store_outputs.h"

using namespace kcron;
using namespace kcron::worker;

namespace {

class FakeStore : public ObjectStore {
 public:
  Result<v1::ObjectRef> put(const std::string& key, std::string_view bytes, const StopCheck& /*stopped*/) override {
    if (!failure.empty()) return Error(failure);
    objects[key] = std::string(bytes);
    v1::ObjectRef ref;
    ref.set_uri(object_uri("b", key));
    ref.set_size(bytes.size());
    ref.set_sha256("sha-of-" + std::to_string(bytes.size()));
    return ref;
  }
  Result<std::string> get(const std::string& uri) override { return Error("not here: " + uri); }
  Result<ObjectInfo> head(const std::string& uri) override { return Error("not here: " + uri); }
  Status get_to(const std::string& uri, const ObjectSink& /*sink*/) override { return Error("not here: " + uri); }
  Result<std::vector<ObjectInfo>> list(const std::string& /*prefix*/) override { return std::vector<ObjectInfo>{}; }
  Status remove(const std::string& /*key*/) override { return Status::success(); }

  std::map<std::string, std::string> objects;
  std::string failure;
};

const std::string kToken = "0123456789abcdef0123456789abcdef";

ObjectSettings enabled_settings() {
  ObjectSettings settings;
  settings.endpoint = "http://127.0.0.1:1";
  settings.threshold_bytes = 10;
  return settings;
}

Attempt attempt_with_stdout(const std::string& text) {
  Attempt attempt;
  attempt.execution.mutable_job()->set_id("flow/node a");
  attempt.execution.mutable_job()->set_tenant("acme");
  attempt.execution.mutable_job()->set_attempt(3);
  attempt.outcome.output = text.substr(0, 4);
  attempt.outcome.whole_outputs.emplace_back("stdout", text);
  return attempt;
}

}  // namespace

TEST_CASE("object keys are tenant, escaped job id, attempt, run token and name") {
  CHECK(object_key("acme", "flow/node a", 3, kToken, "stdout") == "acme/flow%2Fnode%20a/3/" + kToken + "/stdout");
  CHECK(object_key("", "j1", 1, kToken, "stderr") == "default/j1/1/" + kToken + "/stderr");
  // A job id that looks like more path segments stays one segment.
  CHECK(object_key("t", "x/1/" + kToken + "/stdout", 1, kToken, "stdout") ==
        "t/x%2F1%2F" + kToken + "%2Fstdout/1/" + kToken + "/stdout");
  CHECK(url_escape("a-b_c.d~e%/+") == "a-b_c.d~e%25%2F%2B");
  CHECK(key_part_escape("a-b_c.d~e%/+") == "a-b_c%2Ed~e%25%2F%2B");
}

TEST_CASE("dot segments in a job id or tenant never leave the tenant's prefix") {
  CHECK(object_key("t", ".", 1, kToken, "stdout") == "t/%2E/1/" + kToken + "/stdout");
  CHECK(object_key("t", "..", 1, kToken, "stdout") == "t/%2E%2E/1/" + kToken + "/stdout");
  CHECK(object_key("t", "a/../b", 1, kToken, "stdout") == "t/a%2F%2E%2E%2Fb/1/" + kToken + "/stdout");
  CHECK(object_key("..", "j", 1, kToken, "stdout") == "%2E%2E/j/1/" + kToken + "/stdout");
  for (const std::string id : {".", "..", "a/../b", "../..", "./x"}) {
    INFO(id);
    const auto key = object_key("t", id, 1, kToken, "stdout");
    CHECK(key.starts_with("t/"));
    CHECK(key.find("/./") == std::string::npos);
    CHECK(key.find("/../") == std::string::npos);
  }
}

TEST_CASE("a different run token gives a different key for the same attempt") {
  CHECK(object_key("t", "j", 1, kToken, "stdout") != object_key("t", "j", 1, "fedcba9876543210fedcba9876543210", "stdout"));
  CHECK(is_run_token(kToken));
  CHECK_FALSE(is_run_token("0123"));
  CHECK_FALSE(is_run_token("0123456789ABCDEF0123456789ABCDEF"));
}

TEST_CASE("s3 URIs are built and parsed") {
  CHECK(object_uri("kcron", "a/b") == "s3://kcron/a/b");
  auto parsed = parse_object_uri("s3://kcron/a/b%2Fc");
  REQUIRE(parsed);
  CHECK(parsed->bucket == "kcron");
  CHECK(parsed->key == "a/b%2Fc");
  CHECK_FALSE(parse_object_uri("http://kcron/a"));
  CHECK_FALSE(parse_object_uri("s3://kcron"));
  CHECK_FALSE(parse_object_uri("s3:///key"));
  CHECK_FALSE(parse_object_uri("s3://kcron/"));
}

TEST_CASE("only an output over the threshold goes to an enabled store") {
  ObjectSettings settings;
  settings.threshold_bytes = 10;
  CHECK_FALSE(should_store(settings, 100));  // no endpoint: off
  settings.endpoint = "http://127.0.0.1:9300";
  CHECK_FALSE(should_store(settings, 10));
  CHECK(should_store(settings, 11));
}

TEST_CASE("of a credentials file with several profiles only default is read") {
  auto several = parse_credentials(
      "[ci]\naws_access_key_id=CI\naws_secret_access_key=ci-secret\n[default]\naws_access_key_id=A\n"
      "aws_secret_access_key=B\n[prod]\naws_access_key_id=P\naws_secret_access_key=prod-secret\nregion=x\n");
  REQUIRE(several);
  CHECK(several->access_key_id == "A");
  CHECK(several->secret_access_key == "B");
  auto no_default = parse_credentials("[ci]\naws_access_key_id=CI\naws_secret_access_key=ci-secret\n");
  REQUIRE_FALSE(no_default);
  CHECK(no_default.error().message() == "credentials file has no [default] profile (it has [ci]); kcron reads only [default]");
  auto broken = parse_credentials("[default\naccess_key_id=A\n");
  REQUIRE_FALSE(broken);
  CHECK(broken.error().message() == "credentials file line 1: expected [PROFILE]");
}

TEST_CASE("credentials files are parsed and their values never quoted in errors") {
  auto parsed = parse_credentials("# kcron\naccess_key_id=AKID\n\nsecret_access_key = s3cr3t\n");
  REQUIRE(parsed);
  CHECK(parsed->access_key_id == "AKID");
  CHECK(parsed->secret_access_key == "s3cr3t");
  auto aws = parse_credentials("[default]\naws_access_key_id=A\naws_secret_access_key=B\n");
  REQUIRE(aws);
  CHECK(aws->secret_access_key == "B");
  auto missing = parse_credentials("access_key_id=AKID\n");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message() == "credentials file has no secret_access_key");
  auto bad = parse_credentials("access_key_id=AKID\nsecret_access_key=top secret\n");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("top secret") == std::string::npos);
  auto garbage = parse_credentials("secret_access_key\n");
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().message() == "credentials file line 1: expected NAME=VALUE");
}

TEST_CASE("a large stdout is stored under the execution's key and referenced by the outcome") {
  FakeStore store;
  auto attempt = attempt_with_stdout(std::string(100, 'x'));
  CHECK(store_large_outputs(attempt, store, enabled_settings(), kToken));
  const std::string key = "acme/flow%2Fnode%20a/3/" + kToken + "/stdout";
  REQUIRE(store.objects.contains(key));
  CHECK(store.objects[key] == std::string(100, 'x'));
  REQUIRE(attempt.outcome.objects.size() == 1);
  CHECK(attempt.outcome.objects[0].name() == "stdout");
  CHECK(attempt.outcome.objects[0].uri() == "s3://b/" + key);
  CHECK(attempt.outcome.objects[0].size() == 100);
  CHECK(attempt.outcome.objects[0].original_size() == 0);  // stored whole
  CHECK(attempt.outcome.whole_outputs.empty());
  CHECK(attempt.outcome.state == v1::SUCCEEDED);
  CHECK(attempt.outcome.output == "xxxx");  // the inline head stays
}

TEST_CASE("an output cut at objects.max_bytes is stored with the size it had") {
  FakeStore store;
  auto attempt = attempt_with_stdout("");
  attempt.outcome.whole_outputs.clear();
  attempt.outcome.whole_outputs.emplace_back("stdout", std::string(100, 'x'), 250);
  CHECK(store_large_outputs(attempt, store, enabled_settings(), kToken));
  REQUIRE(attempt.outcome.objects.size() == 1);
  CHECK(attempt.outcome.objects[0].size() == 100);
  CHECK(attempt.outcome.objects[0].original_size() == 250);
}

TEST_CASE("an output under the threshold or a disabled store stores nothing") {
  FakeStore store;
  auto small = attempt_with_stdout("short");
  CHECK(store_large_outputs(small, store, enabled_settings(), kToken));
  CHECK(store.objects.empty());
  CHECK(small.outcome.objects.empty());
  CHECK(small.outcome.whole_outputs.empty());
  auto off = attempt_with_stdout(std::string(100, 'x'));
  CHECK(store_large_outputs(off, store, ObjectSettings{}, kToken));
  CHECK(store.objects.empty());
  CHECK(off.outcome.whole_outputs.empty());
}

TEST_CASE("a store that fails turns the attempt into a retriable failure that says why") {
  FakeStore store;
  store.failure = "PUT s3://b/k answered 503 SlowDown: Please reduce your request rate.";
  auto attempt = attempt_with_stdout(std::string(100, 'x'));
  const auto stored = store_large_outputs(attempt, store, enabled_settings(), kToken);
  REQUIRE_FALSE(stored);
  CHECK(stored.error().message() == store.failure);
  CHECK(attempt.outcome.state == v1::FAILED);
  CHECK(attempt.outcome.retriable);
  CHECK(attempt.outcome.error ==
        "object store: its stdout (100 bytes) could not be stored: PUT s3://b/k answered 503 SlowDown: Please reduce your "
        "request rate. (it had succeeded)");
  CHECK(attempt.outcome.objects.empty());
  CHECK(attempt.outcome.output == "xxxx");
}

TEST_CASE("a store that fails leaves an attempt that already failed in its state, with a note") {
  FakeStore store;
  store.failure = "PUT s3://b/k answered 503 SlowDown: Please reduce your request rate.";
  auto attempt = attempt_with_stdout(std::string(100, 'x'));
  attempt.outcome.state = v1::FAILED;
  attempt.outcome.retriable = false;
  attempt.outcome.error = "exit status 2";
  REQUIRE_FALSE(store_large_outputs(attempt, store, enabled_settings(), kToken));
  CHECK(attempt.outcome.state == v1::FAILED);
  CHECK_FALSE(attempt.outcome.retriable);
  CHECK(attempt.outcome.error ==
        "exit status 2 (object store: its stdout (100 bytes) could not be stored: PUT s3://b/k answered 503 SlowDown: "
        "Please reduce your request rate.)");
  CHECK(attempt.outcome.objects.empty());

  auto cancelled = attempt_with_stdout(std::string(100, 'x'));
  cancelled.outcome.state = v1::CANCELLED;
  REQUIRE_FALSE(store_large_outputs(cancelled, store, enabled_settings(), kToken));
  CHECK(cancelled.outcome.state == v1::CANCELLED);
  CHECK_THAT(cancelled.outcome.error, Catch::StartsWith("object store: its stdout (100 bytes) could not be stored"));
}

TEST_CASE("the published result carries the outcome's object refs and its inline head") {
  OutcomeSettings settings;
  settings.names = TopicNames("t.");
  const OutcomePolicy policy(settings);
  FakeStore store;
  auto attempt = attempt_with_stdout(std::string(100, 'x'));
  attempt.execution.mutable_job()->mutable_exec()->add_argv("/bin/echo");
  CHECK(store_large_outputs(attempt, store, enabled_settings(), kToken));
  attempt.verdict = policy.decide(attempt.execution.job(), attempt.outcome, 0.5);
  const auto records = policy.records(attempt);
  const auto result_record =
      std::find_if(records.begin(), records.end(), [](const OutRecord& record) { return record.topic == "t.results"; });
  REQUIRE(result_record != records.end());
  v1::Result result;
  REQUIRE(result.ParseFromString(result_record->value));
  CHECK(result.output() == "xxxx");
  REQUIRE(result.objects_size() == 1);
  CHECK(result.objects(0).size() == 100);
  CHECK(result.objects(0).name() == "stdout");
}

TEST_CASE("an attempt handed back at shutdown stores nothing") {
  FakeStore store;
  auto attempt = attempt_with_stdout(std::string(100, 'x'));
  attempt.control = std::make_shared<AttemptControl>();
  attempt.control->request(StopReason::kShutdown);
  CHECK(store_large_outputs(attempt, store, enabled_settings(), kToken));
  CHECK(store.objects.empty());
  CHECK(attempt.outcome.objects.empty());
  CHECK(attempt.outcome.whole_outputs.empty());
}

TEST_CASE("the sweep deletes only objects no committed result names and older than the grace") {
  using namespace std::chrono_literals;
  const std::int64_t now = 1'000'000'000;
  const std::int64_t hour = 3600'000;
  const auto key = [](std::string_view job, int attempt, char token) {
    return fmt::format("t/{}/{}/{}/stdout", job, attempt, std::string(32, token));
  };
  const std::vector<ObjectInfo> objects = {
      {key("j", 0, 'a'), 10, now - 48 * hour},  // referenced, old: kept
      {key("j", 0, 'b'), 10, now - 48 * hour},  // an orphan, old: deleted
      {key("j", 1, 'c'), 10, now - hour},       // an orphan within the grace: kept (its commit may be in flight)
      {key("j", 1, 'd'), 10, 0},                // age unknown: kept
      {key("j", 2, 'e'), 10, now - 24 * hour},  // exactly the grace: deleted
  };
  const std::set<std::string> referenced = {key("j", 0, 'a'), key("other", 0, 'z')};
  const auto plan = plan_sweep(objects, referenced, now, 24h);
  auto keys = [](const std::vector<ObjectInfo>& list) {
    std::vector<std::string> out;
    for (const auto& object : list) out.push_back(object.key);
    return out;
  };
  CHECK(keys(plan.remove) == std::vector<std::string>{key("j", 0, 'b'), key("j", 2, 'e')});
  CHECK(keys(plan.referenced) == std::vector<std::string>{key("j", 0, 'a')});
  CHECK(keys(plan.young) == std::vector<std::string>{key("j", 1, 'c'), key("j", 1, 'd')});
  // No grace: every unreferenced object of a known age goes.
  CHECK(plan_sweep(objects, referenced, now, 0ms).remove.size() == 3);
  CHECK(plan_sweep({}, referenced, now, 0ms).remove.empty());
  // Another program's objects in a shared bucket are never kcron's to delete.
  const auto shared = plan_sweep({{"backups/2026-12-01.tar", 10, now - 48 * hour}, {key("j", 0, 'b') + "/x", 1, now - 48 * hour}},
                                 referenced, now, 0ms);
  CHECK(shared.remove.empty());
  CHECK(shared.foreign.size() == 2);
}

TEST_CASE("an output key has the layout the worker writes") {
  CHECK(is_output_key("acme/job%2F1/0/0123456789abcdef0123456789abcdef/stdout"));
  CHECK(is_output_key("default/%2E%2E/12/0123456789abcdef0123456789abcdef/body"));
  CHECK_FALSE(is_output_key("acme/job/0/0123456789abcdef0123456789abcdef/other"));
  CHECK_FALSE(is_output_key("acme/job/x/0123456789abcdef0123456789abcdef/stdout"));
  CHECK_FALSE(is_output_key("acme/job/0/0123456789ABCDEF0123456789abcdef/stdout"));
  CHECK_FALSE(is_output_key("acme/job/0/short/stdout"));
  CHECK_FALSE(is_output_key("acme//0/0123456789abcdef0123456789abcdef/stdout"));
  CHECK_FALSE(is_output_key("a/b/acme/job/0/0123456789abcdef0123456789abcdef/stdout"));
}

TEST_CASE("sweep grace periods are a number and a unit") {
  using namespace std::chrono_literals;
  CHECK(*parse_grace("24h") == 24h);
  CHECK(*parse_grace("90m") == 90min);
  CHECK(*parse_grace("0s") == 0ms);
  CHECK(*parse_grace("7d") == 7 * 24h);
  for (const auto* bad : {"", "h", "24", "-1h", "1.5h", "24 h", "1w"}) {
    auto parsed = parse_grace(bad);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error().message(), Catch::Contains("is not a duration"));
  }
}

TEST_CASE("a threshold over an inline limit is refused at start, naming both settings", "[objects]") {
  ObjectSettings settings;
  settings.threshold_bytes = 100000;
  CHECK(check_inline_limit(settings, "exec.capture_bytes", 65536));  // no endpoint: the store is off
  settings.endpoint = "http://127.0.0.1:1";
  CHECK(check_inline_limit(settings, "exec.capture_bytes", 100000));
  CHECK(check_inline_limit(settings, "exec.capture_bytes", 200000));
  const auto refused = check_inline_limit(settings, "http.max_body_bytes", 65536);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message(), Catch::Contains("objects.threshold_bytes (100000) is over http.max_body_bytes (65536)"));
  CHECK_THAT(refused.error().message(), Catch::Contains("65537 to 100000 bytes"));
}
