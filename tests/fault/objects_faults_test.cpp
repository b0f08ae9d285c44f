// Large outputs under a crash (docs/large-results.md), on the real broker and a real s3proxy: a
// worker SIGKILLed after its upload and before its result transaction (fault point
// worker.after_object_put) leaves an object no committed result names; the restarted worker runs
// the attempt again under a new run token. Every committed result then points at an object that
// exists with the recorded size and sha256, and the dead execution's object is exactly what
// `kcron objects sweep` collects.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "kcron.pb.h"
#include "objects/s3_store.h"
#include "support/harness.h"
#include "support/ports.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* kBucket = "kcron-fault";

int s3proxy(int port, const std::string& dir, const std::string& command) {
  const auto line = fmt::format("KCRON_S3_PORT={} KCRON_S3_DIR='{}' '{}/scripts/s3proxy' {} >>'{}/s3proxy-script.log' 2>&1", port,
                                dir, source_dir(), command, std::filesystem::path(dir).parent_path().string());
  const int status = std::system(line.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::size_t count_occurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

}  // namespace

TEST_CASE("worker killed after its upload, before its commit: committed results point at their objects, the orphan is swept",
          "[fault]") {
  const auto began = std::chrono::steady_clock::now();
  TestEnv env("objects-crash");
  int port = free_local_port();  // never a fixed one: tests run in parallel
  const std::string dir = env.state_root + "/s3proxy";
  struct Wipe {
    int port;
    std::string dir;
    ~Wipe() { s3proxy(port, dir, "wipe"); }
  } wipe{port, dir};
  const bool has_java = std::system("command -v java >/dev/null 2>&1") == 0;
  if (!has_java || (std::system("command -v mvn >/dev/null 2>&1") != 0 && s3proxy(port, dir, "fetch") != 0)) {
    skip_scenario("s3proxy needs java and mvn (or a cached jar); run scripts/setup");
    return;
  }
  int started_rc = s3proxy(port, dir, "start");
  for (int again = 0; started_rc != 0 && again < 2; ++again) {  // the free port was taken meanwhile
    s3proxy(port, dir, "wipe");
    port = free_local_port();
    wipe.port = port;
    started_rc = s3proxy(port, dir, "start");
  }
  REQUIRE(started_rc == 0);
  worker::ObjectSettings settings;
  settings.endpoint = fmt::format("http://127.0.0.1:{}", port);
  settings.bucket = kBucket;
  settings.credentials_file = dir + "/credentials";
  auto store = worker::make_s3_store(settings);
  REQUIRE(store);
  REQUIRE((*store)->ensure_bucket());

  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1", {});
  auto start_worker = [&](const std::string& spec, int run) {
    auto vars = env.program_env("w1");
    vars.emplace_back("KCRON_EXEC_PROGRAMS=/usr/bin/head");
    vars.emplace_back("KCRON_OBJECTS_ENDPOINT=" + settings.endpoint);
    vars.emplace_back(std::string("KCRON_OBJECTS_BUCKET=") + kBucket);
    vars.emplace_back("KCRON_OBJECTS_CREDENTIALS_FILE=" + settings.credentials_file);
    if (!spec.empty()) vars.push_back("KCRON_FAULT_POINTS=" + spec);
    return std::make_unique<Process>(program_path("kcron-worker"), vars, fmt::format("{}/worker-{}.log", env.state_root, run));
  };
  auto worker = start_worker("worker.after_object_put@1", 1);
  REQUIRE(wait_for_log(*worker, "event=assigned", 60s));
  // Random bytes: the two executions of the attempt store different objects.
  // One job: a worker killed with several uploads done would leave one orphan per execution.
  const std::vector<std::string> ids = {"crash-a"};
  {
    TestProducer producer;
    for (const auto& id : ids) {
      producer.send(env.prefix + "jobs", id,
                    fmt::format(R"({{"id":"{}","exec":{{"argv":["/usr/bin/head","-c","300000","/dev/urandom"]}}}})", id), -1,
                    {{"content-type", "application/json"}});
    }
    producer.flush();
  }
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (worker->running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  INFO(tail_file(worker->log_path()));
  REQUIRE_FALSE(worker->running());
  REQUIRE(count_in_log(worker->log_path(), "event=fault_point point=worker.after_object_put") == 1);
  const auto killed_at = std::chrono::steady_clock::now();
  worker = start_worker("", 2);

  // Every job ends with a committed result (read_committed); exactly one per attempt that ended.
  std::map<std::string, std::vector<v1::Result>> results;
  read_topics({env.prefix + "results"}, 60s, [&](const std::vector<Record>& records) {
    results.clear();
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value)) results[record.key].push_back(result);
    }
    return std::all_of(ids.begin(), ids.end(), [&](const auto& id) { return !results[id].empty(); });
  });
  INFO(tail_file(worker->log_path()));
  std::set<std::string> referenced;
  for (const auto& id : ids) {
    INFO(id);
    REQUIRE(results[id].size() == 1);
    const auto& result = results[id][0];
    CHECK(result.state() == v1::SUCCEEDED);
    CHECK(result.attempt() == 0);
    REQUIRE(result.objects_size() == 1);
    const auto& ref = result.objects(0);
    // The object it names exists with the recorded size and sha256.
    auto bytes = (*store)->get(ref.uri());
    INFO((bytes ? "" : bytes.error().message()));
    REQUIRE(bytes);
    CHECK(bytes->size() == ref.size());
    CHECK(ref.size() == 300000);
    CHECK(worker::sha256_hex(*bytes) == ref.sha256());
    referenced.insert(worker::parse_object_uri(ref.uri())->key);
  }
  const auto recovered_s = seconds_since(killed_at);

  // The bucket: the committed objects, and the killed execution's one (another run token).
  auto listed = (*store)->list("");
  REQUIRE(listed);
  std::vector<std::string> orphans;
  for (const auto& object : *listed) {
    if (!referenced.contains(object.key)) orphans.push_back(object.key);
  }
  REQUIRE(orphans.size() == 1);
  CHECK(listed->size() == referenced.size() + 1);
  CHECK_THAT(orphans[0], Catch::EndsWith("/stdout"));
  CHECK(orphans[0].starts_with("default/crash-a/0/"));  // the same attempt, another run token

  // The sweep's dry run lists exactly the orphan; the sweep then deletes it and only it.
  const auto flags = fmt::format("--set objects.endpoint={} --set objects.bucket={} --set objects.credentials_file='{}'",
                                 settings.endpoint, kBucket, settings.credentials_file);
  const auto dry = run_cli(env, flags + " objects sweep --older-than 0s --force --dry-run");
  INFO(dry.output);
  CHECK(dry.exit_code == 0);
  CHECK(count_occurrences(dry.output, "would delete ") == 1);
  CHECK_THAT(dry.output, Catch::Contains("1 named by a result, 0 not kcron's, 0 younger than 0s, 1 to delete"));
  CHECK_THAT(dry.output, Catch::Contains("would delete " + orphans[0] + " (300000 bytes"));
  for (const auto& key : referenced) CHECK_THAT(dry.output, Catch::Contains("keep " + key));
  const auto unforced = run_cli(env, flags + " objects sweep --older-than 0s --dry-run");  // under 1h needs --force
  CHECK(unforced.exit_code != 0);
  CHECK_THAT(unforced.output, Catch::Contains("is under 1h"));
  const auto graced = run_cli(env, flags + " objects sweep --dry-run");  // default grace 24h: nothing goes
  INFO(graced.output);
  CHECK(count_occurrences(graced.output, "would delete ") == 0);
  CHECK_THAT(graced.output, Catch::Contains("keep " + orphans[0]) && Catch::Contains("younger than 24h"));
  const auto swept = run_cli(env, flags + " objects sweep --older-than 0s --force");
  INFO(swept.output);
  CHECK(swept.exit_code == 0);
  CHECK_THAT(swept.output, Catch::Contains("deleted " + orphans[0]));
  auto after = (*store)->list("");
  REQUIRE(after);
  CHECK(after->size() == referenced.size());
  for (const auto& object : *after) CHECK(referenced.contains(object.key));
  WARN(fmt::format("objects crash: recovered in {:.1f} s, {:.1f} s in all", recovered_s, seconds_since(began)));
}
