// Large outputs in an S3-compatible store (docs/large-results.md), end to end on the real broker
// and a real s3proxy (scripts/s3proxy: Maven Central's jar, filesystem backend, SigV4 checked):
// a 5 MB exec output is stored before its result commits and `kcron result get` reads it back
// checked against the recorded sha256; a stopped store fails attempts retriably until it is back.
// Each test runs its own s3proxy (own port and data dir), so one can be stopped mid-run.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kcron.pb.h"
#include "objects/s3_store.h"
#include "support/api_keys.h"
#include "support/harness.h"
#include "support/ports.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kBucket = "kcron-it";

// One s3proxy of the test's own, stopped and wiped by the destructor.
class OwnS3 {
 public:
  // On a port free when it is made (never a fixed one: tests run in parallel).
  explicit OwnS3(std::string dir) : port_(free_local_port()), dir_(std::move(dir)) {}
  ~OwnS3() { run("wipe"); }
  OwnS3(const OwnS3&) = delete;
  OwnS3& operator=(const OwnS3&) = delete;

  int run(const std::string& command) const {
    const auto line = fmt::format("KCRON_S3_PORT={} KCRON_S3_DIR='{}' '{}/scripts/s3proxy' {} >>'{}/s3proxy-script.log' 2>&1",
                                  port_, dir_, source_dir(), command, std::filesystem::path(dir_).parent_path().string());
    const int status = std::system(line.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // Another free port: the one picked was taken before s3proxy bound it. Only while it is stopped.
  void repick_port() { port_ = free_local_port(); }
  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }
  std::string credentials() const { return dir_ + "/credentials"; }
  std::string blob(const std::string& key) const { return fmt::format("{}/blobs/{}/{}", dir_, kBucket, key); }
  worker::ObjectSettings settings() const {
    worker::ObjectSettings settings;
    settings.endpoint = endpoint();
    settings.bucket = kBucket;
    settings.credentials_file = credentials();
    return settings;
  }
  std::vector<std::string> worker_env() const {
    return {"KCRON_OBJECTS_ENDPOINT=" + endpoint(), std::string("KCRON_OBJECTS_BUCKET=") + kBucket,
            "KCRON_OBJECTS_CREDENTIALS_FILE=" + credentials()};
  }
  std::string cli_flags() const {
    return fmt::format("--set objects.endpoint={} --set objects.bucket={} --set objects.credentials_file='{}'", endpoint(),
                       kBucket, credentials());
  }

 private:
  int port_;
  std::string dir_;
};

// Starts the test's s3proxy with its bucket; false (after KCRON-SKIP) only when this machine cannot
// run it at all: no java, or neither mvn nor a cached jar (scripts/setup provides both).
bool start_store(OwnS3& store) {
  const bool has_java = std::system("command -v java >/dev/null 2>&1") == 0;
  const bool can_fetch = std::system("command -v mvn >/dev/null 2>&1") == 0 || store.run("fetch") == 0;
  if (!has_java || !can_fetch) {
    skip_scenario("s3proxy needs java and mvn (or a cached jar); run scripts/setup");
    return false;
  }
  const auto started = std::chrono::steady_clock::now();
  // The port was free when picked; should something take it before s3proxy binds it, pick another.
  int started_rc = store.run("start");
  for (int again = 0; started_rc != 0 && again < 2; ++again) {
    store.run("wipe");
    store.repick_port();
    started_rc = store.run("start");
  }
  REQUIRE(started_rc == 0);
  WARN(fmt::format("s3proxy started in {:.1f} s", seconds_since(started)));
  auto made = worker::make_s3_store(store.settings());
  REQUIRE(made);
  const auto bucket = (*made)->ensure_bucket();
  INFO((bucket ? "" : bucket.error().message()));
  REQUIRE(bucket);
  return true;
}

std::unique_ptr<Process> start(TestEnv& env, const std::string& program, const std::string& instance,
                               const std::vector<std::string>& extra = {}) {
  return start_program(env, program, instance, instance, extra);
}

std::vector<v1::Result> results_of(const std::vector<Record>& records, const std::string& job_id) {
  std::vector<v1::Result> results;
  for (const auto& record : records) {
    v1::Result result;
    if (record.key == job_id && result.ParseFromString(record.value)) results.push_back(result);
  }
  std::sort(results.begin(), results.end(), [](const auto& a, const auto& b) { return a.attempt() < b.attempt(); });
  return results;
}

std::vector<v1::Result> wait_for_results(const TestEnv& env, const std::string& job_id,
                                         const std::function<bool(const std::vector<v1::Result>&)>& until,
                                         std::chrono::seconds timeout) {
  return results_of(read_topics({env.prefix + "results"}, timeout,
                                [&](const std::vector<Record>& all) { return until(results_of(all, job_id)); }),
                    job_id);
}

std::string file_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

void submit(const TestEnv& env, const std::string& id, const std::string& json) {
  TestProducer producer;
  producer.send(env.prefix + "jobs", id, json, -1, {{"content-type", "application/json"}});
  producer.flush();
}

constexpr std::size_t kBigBytes = std::size_t{5} * 1024 * 1024;

// A kcron-api with the test's object store, its port read from its log.
std::pair<std::unique_ptr<Process>, int> start_api(TestEnv& env, const ApiKeys& keys, const OwnS3& store) {
  auto variables = store.worker_env();
  variables.emplace_back("KCRON_API_PORT=0");
  variables.emplace_back("KCRON_AUTH_JWKS_FILE=" + keys.jwks_path);
  auto process = start_program(env, "kcron-api", "api1", "api1", variables, false);
  REQUIRE(wait_for_log(*process, "event=api_listening", 60s));
  REQUIRE(wait_for_log(*process, "event=view_caught_up", 60s));
  const int port = api_port_from_log(env.state_root + "/api1.log");
  REQUIRE(port > 0);
  return {std::move(process), port};
}

httplib::Result api_get(int port, const std::string& path, const std::string& token, httplib::Headers headers = {}) {
  httplib::Client client("127.0.0.1", port);
  client.set_url_encode(false);
  client.set_read_timeout(30, 0);
  headers.emplace("Authorization", "Bearer " + token);
  return client.Get(path, headers);
}

}  // namespace

TEST_CASE("a 5 MB exec output lands in s3proxy and kcron result get reads it back with the recorded sha256", "[integration]") {
  const auto began = std::chrono::steady_clock::now();
  TestEnv env("objects-big");
  OwnS3 store(env.state_root + "/s3proxy");
  if (!start_store(store)) return;
  auto env_vars = store.worker_env();
  env_vars.emplace_back("KCRON_EXEC_PROGRAMS=/usr/bin/head");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", env_vars);
  // An id with characters a key must escape.
  const std::string id = "big one+%";
  submit(env, id, fmt::format(R"({{"id":"{}","exec":{{"argv":["/usr/bin/head","-c","{}","/dev/urandom"]}}}})", id, kBigBytes));

  const auto results = wait_for_results(
      env, id, [](const auto& found) { return !found.empty(); }, 60s);
  INFO(tail_file(worker->log_path()));
  REQUIRE(results.size() == 1);
  const auto& result = results[0];
  INFO(result.error());
  CHECK(result.state() == v1::SUCCEEDED);
  REQUIRE(result.objects_size() == 1);
  const auto& ref = result.objects(0);
  CHECK(ref.name() == "stdout");
  CHECK(ref.size() == kBigBytes);
  CHECK(ref.sha256().size() == 64);
  // The key: tenant, escaped job id, attempt, a 32-hex run token, the output's name.
  const std::string prefix = fmt::format("s3://{}/default/big%20one%2B%25/0/", kBucket);
  REQUIRE(ref.uri().starts_with(prefix));
  const std::string token = ref.uri().substr(prefix.size(), 32);
  CHECK(worker::is_run_token(token));
  CHECK(ref.uri() == prefix + token + "/stdout");
  // The inline head stays, bounded as before (exec.capture_bytes 64 KiB plus the truncation note).
  CHECK(result.output().size() >= 65536);
  CHECK(result.output().size() < 65536 + 200);
  // What s3proxy holds is the recorded object.
  const std::string key = fmt::format("default/big%20one%2B%25/0/{}/stdout", token);
  const auto stored = file_bytes(store.blob(key));
  CHECK(stored.size() == kBigBytes);
  CHECK(worker::sha256_hex(stored) == ref.sha256());
  CHECK(stored.substr(0, 65536) == result.output().substr(0, 65536));

  // The CLI reads it back, checked against the result.
  const std::string out = env.state_root + "/big.out";
  const auto cli = run_cli(env, fmt::format("{} result get '{}' --output '{}'", store.cli_flags(), id, out));
  INFO(cli.output);
  CHECK(cli.exit_code == 0);
  CHECK(worker::sha256_hex(file_bytes(out)) == ref.sha256());
  CHECK_THAT(cli.output, Catch::Contains("sha256 " + ref.sha256() + " checked"));
  const auto info = run_cli(env, fmt::format("result get '{}' --info", id));
  INFO(info.output);
  CHECK(info.exit_code == 0);
  CHECK_THAT(info.output, Catch::Contains(fmt::format("stdout {} {} {}", kBigBytes, ref.sha256(), ref.uri())));

  // The API streams it to the job's own tenant, with the recorded sha256; another tenant: 404.
  const auto keys = make_api_keys(env);
  auto [api, port] = start_api(env, keys, store);
  const std::string path = "/v1/jobs/big%20one%2B%25/outputs/stdout";
  const auto own = api_token(keys, "default", "viewer");
  auto streamed = api_get(port, path, own);
  for (const auto until = std::chrono::steady_clock::now() + 30s;
       streamed && streamed->status == 404 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(200ms);  // 404 until the view has the job's result
    streamed = api_get(port, path, own);
  }
  REQUIRE(streamed);
  INFO(streamed->body.substr(0, 300));
  CHECK(streamed->status == 200);
  CHECK(streamed->body.size() == kBigBytes);
  CHECK(worker::sha256_hex(streamed->body) == ref.sha256());
  CHECK(streamed->get_header_value("X-Kcron-Sha256") == ref.sha256());
  CHECK_THAT(streamed->get_header_value("Repr-Digest"), Catch::StartsWith("sha-256=:") && Catch::EndsWith("=:"));
  CHECK(streamed->get_header_value("Content-Type") == "application/octet-stream");
  CHECK(streamed->get_header_value("Content-Length") == std::to_string(kBigBytes));
  CHECK(streamed->get_header_value("X-Kcron-Attempt") == "0");
  CHECK(streamed->get_header_value("Accept-Ranges") == "none");
  const auto ranged = api_get(port, path, own, {{"Range", "bytes=0-9"}});  // whole outputs only
  REQUIRE(ranged);
  CHECK(ranged->status == 400);  // its body is cut to the range by cpp-httplib: only the status is checked
  const auto other = api_get(port, path, api_token(keys, "acme", "admin"));
  REQUIRE(other);
  CHECK(other->status == 404);
  CHECK_THAT(other->body, Catch::Contains("no job") && !Catch::Contains(ref.uri()));
  const auto unknown = api_get(port, "/v1/jobs/big%20one%2B%25/outputs/stderr", own);
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  const auto older = api_get(port, path + "?attempt=3", own);
  REQUIRE(older);
  CHECK(older->status == 404);
  CHECK_THAT(older->body, Catch::Contains("kcron result get --attempt 3"));

  // A wrong secret: s3proxy checks the signature; the error says so and never shows the secret.
  const std::string wrong = env.state_root + "/wrong-credentials";
  {
    std::ofstream(wrong) << "access_key_id=" << worker::parse_credentials(file_bytes(store.credentials()))->access_key_id
                         << "\nsecret_access_key=not-the-secret-4711\n";
  }
  const auto refused = run_cli(env, fmt::format("{} --set objects.credentials_file='{}' result get '{}' --output '{}.3'",
                                                store.cli_flags(), wrong, id, out));
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("answered 403 SignatureDoesNotMatch"));
  CHECK_THAT(refused.output, !Catch::Contains("not-the-secret-4711"));

  // An object changed behind the result's back is refused, naming both hashes.
  { std::ofstream(store.blob(key), std::ios::binary | std::ios::trunc) << std::string(kBigBytes, 'x'); }
  const auto tampered = run_cli(env, fmt::format("{} result get '{}' --output '{}.2'", store.cli_flags(), id, out));
  INFO(tampered.output);
  CHECK(tampered.exit_code == 1);
  CHECK_THAT(tampered.output, Catch::Contains("but the result recorded " + ref.sha256()));
  CHECK_THAT(tampered.output, Catch::Contains(worker::sha256_hex(std::string(kBigBytes, 'x'))));
  // Through the API the changed object (same size) is cut short before its last bytes.
  const auto cut = api_get(port, path, own);
  CHECK((!cut || cut->body.size() < kBigBytes));
  CHECK(wait_for_log(*api, "event=object_stream_failed", 10s));
  // The store down: 502 naming the request, never the secret.
  REQUIRE(store.run("stop") == 0);
  const auto down = api_get(port, path, own);
  REQUIRE(down);
  INFO(down->body);
  CHECK(down->status == 502);
  CHECK_THAT(down->body, Catch::Contains("the object store: HEAD " + ref.uri()));
  CHECK_THAT(down->body, !Catch::Contains(worker::parse_credentials(file_bytes(store.credentials()))->secret_access_key));
  WARN(fmt::format("objects 5 MB round trip: {:.1f} s", seconds_since(began)));
}

TEST_CASE("with s3proxy stopped a large output's attempt fails retriably and succeeds once it is back", "[integration]") {
  const auto began = std::chrono::steady_clock::now();
  TestEnv env("objects-outage");
  OwnS3 store(env.state_root + "/s3proxy");
  if (!start_store(store)) return;
  REQUIRE(store.run("stop") == 0);
  auto env_vars = store.worker_env();
  env_vars.emplace_back("KCRON_EXEC_PROGRAMS=/usr/bin/head");
  env_vars.emplace_back("KCRON_OBJECTS_TIMEOUT_MS=3000");
  auto dispatcher = start(env, "kcron-dispatcher", "d1");
  auto worker = start(env, "kcron-worker", "w1", env_vars);
  submit(env, "outage",
         R"({"id":"outage","exec":{"argv":["/usr/bin/head","-c","200000","/dev/zero"]},)"
         // Generous: attempts fail while s3proxy is down, and its JVM may take long to start on a
         // loaded 2-core machine (other tests, builds). 1 s, 2 s, 4 s, then every 5 s: 100 retries
         // cover over 8 minutes, far beyond s3proxy's own 60 s start bound.
         R"("retry":{"max_retries":100,"initial_backoff":"1s","multiplier":2,"max_backoff":"5s"}})");

  const auto failed = wait_for_results(
      env, "outage", [](const auto& found) { return !found.empty(); }, 60s);
  INFO(tail_file(worker->log_path()));
  REQUIRE(!failed.empty());
  CHECK(failed[0].state() == v1::FAILED);
  CHECK(failed[0].retriable());
  CHECK(failed[0].objects_size() == 0);
  CHECK_THAT(failed[0].error(), Catch::StartsWith("object store: its stdout (200000 bytes) could not be stored: PUT s3://"));
  CHECK_THAT(failed[0].error(), Catch::Contains("(it had succeeded)"));
  // The secret never shows.
  const auto secret = file_bytes(store.credentials());
  const auto secret_at = secret.find("secret_access_key=");
  REQUIRE(secret_at != std::string::npos);
  CHECK_THAT(failed[0].error(), !Catch::Contains(secret.substr(secret_at + 18, 40)));
  // The worker says so in its log, and never the secret.
  CHECK(count_in_log(worker->log_path(), "event=object_store endpoint=" + store.endpoint()) == 1);
  CHECK(count_in_log(worker->log_path(), "event=object_store_failed job=outage attempt=0") == 1);
  CHECK(count_in_log(worker->log_path(), secret.substr(secret_at + 18, 40)) == 0);

  REQUIRE(store.run("start") == 0);
  const auto results = wait_for_results(
      env, "outage", [](const auto& found) { return !found.empty() && found.back().state() == v1::SUCCEEDED; }, 120s);
  REQUIRE(!results.empty());
  const auto& last = results.back();
  INFO(last.error());
  CHECK(last.state() == v1::SUCCEEDED);
  CHECK(last.attempt() >= 1);
  REQUIRE(last.objects_size() == 1);
  CHECK(last.objects(0).size() == 200000);
  CHECK(last.objects(0).sha256() == worker::sha256_hex(std::string(200000, '\0')));
  CHECK_THAT(last.objects(0).uri(), Catch::StartsWith(fmt::format("s3://{}/default/outage/{}/", kBucket, last.attempt())));
  for (std::size_t i = 0; i + 1 < results.size(); ++i) {
    CHECK(results[i].state() == v1::FAILED);
    CHECK(results[i].retriable());
  }
  WARN(fmt::format("objects outage: {} failed attempt(s) before the store came back; {:.1f} s", results.size() - 1,
                   seconds_since(began)));
}
