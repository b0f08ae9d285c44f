// The `security` tier: the secured broker (scripts/kafka --secure: TLS, mTLS, SASL/PLAIN, the
// StandardAuthorizer with allow.everyone.if.no.acl.found=false), selected with KCRON_TEST_SECURE=1
// (tests/CMakeLists.txt). The test's own clients are User:admin, kcron's programs User:kcron, and
// each Kafka-native tenant the principal of the certificate `kcron tenant create NAME --kafka`
// issued it. Every denial is checked from what the broker answers a real client.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "kcron.pb.h"
#include "kcron/kafka.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

// librdkafka properties of a tenant's files (client.properties as `kcron tenant create` wrote it).
kafka::Properties tenant_client(const std::string& dir) {
  kafka::Properties properties;
  std::ifstream file(dir + "/client.properties");
  REQUIRE(file.good());
  for (std::string line; std::getline(file, line);) {
    if (line.empty() || line.front() == '#') continue;
    const auto equals = line.find('=');
    if (equals != std::string::npos) properties[line.substr(0, equals)] = line.substr(equals + 1);
  }
  REQUIRE(properties.contains("ssl.certificate.location"));
  return properties;
}

// What the broker answers one record produced to `topic` (flushed): its error's name, NO_ERROR if written.
std::string produce_answer(const kafka::Properties& client, const std::string& topic, const std::string& key,
                           const std::string& value) {
  struct Reports : RdKafka::DeliveryReportCb {
    RdKafka::ErrorCode code = RdKafka::ERR__TIMED_OUT;
    void dr_cb(RdKafka::Message& message) override { code = message.err(); }
  } reports;
  auto properties = client;
  properties["message.timeout.ms"] = "8000";
  auto producer = kafka::make_producer(properties, "", &reports);
  REQUIRE(producer.ok());
  const auto code = (*producer)->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                                         const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0, nullptr);
  if (code != RdKafka::ERR_NO_ERROR) return RdKafka::err2str(code);
  (*producer)->flush(12000);
  return reports.code == RdKafka::ERR_NO_ERROR ? "NO_ERROR" : rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(reports.code));
}

// What the broker answers a consumer of `group` subscribed to `topic`: the first error's name
// (the group's ACL is checked when it looks up its coordinator, the topic's when it fetches), or
// NO_ERROR once a record or the end of a partition was read.
std::string consume_answer(const kafka::Properties& client, const std::string& topic, const std::string& group) {
  auto properties = client;
  properties["group.id"] = group;
  properties["enable.partition.eof"] = "true";
  auto consumer = kafka::make_consumer(properties);
  REQUIRE(consumer.ok());
  REQUIRE((*consumer)->subscribe({topic}) == RdKafka::ERR_NO_ERROR);
  std::string answer = "TIMED_OUT";
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> message((*consumer)->consume(500));
    if (message->err() == RdKafka::ERR__TIMED_OUT) continue;
    answer = message->err() == RdKafka::ERR__PARTITION_EOF || message->err() == RdKafka::ERR_NO_ERROR
                 ? "NO_ERROR"
                 : rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(message->err()));
    break;
  }
  kafka::discard_consumer(*consumer);
  return answer;
}

// init_transactions with `transactional_id`: the error's name, NO_ERROR if allowed.
std::string transactions_answer(const kafka::Properties& client, const std::string& transactional_id) {
  auto producer = kafka::make_producer(client, transactional_id);
  REQUIRE(producer.ok());
  std::unique_ptr<RdKafka::Error> error((*producer)->init_transactions(15000));
  return error ? error->name() : "NO_ERROR";
}

// This binary's tests always run on the secured broker (as under CTest), also when started by hand.
void use_secured_broker() {
  ::setenv("KCRON_TEST_SECURE", "1", 1);
  REQUIRE_FALSE(secure_tls_dir().empty());
}

void create_tenant(const TestEnv& env, const std::string& name) {
  const auto run = run_cli(env, fmt::format("tenant create {} --kafka --kafka-output --ca-dir '{}' --cert-out '{}/{}'", name,
                                            secure_tls_dir(), env.state_root, name));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output,
             Catch::Contains(fmt::format("ALLOW User:tenant.{} WRITE on TOPIC {}in.{} (LITERAL)", name, env.prefix, name)));
  CHECK_THAT(run.output, Catch::Contains(fmt::format("certificate CN=tenant.{}", name)));
}

}  // namespace

TEST_CASE("a Kafka-native tenant may write its own input topics and nothing else of kcron or of another tenant", "[security]") {
  use_secured_broker();
  TestEnv env("sec-acl", 2, 1);
  for (const auto* name : {"a", "ab", "b"}) create_tenant(env, name);
  const auto a = tenant_client(env.state_root + "/a");
  const auto p = env.prefix;

  CHECK(produce_answer(a, p + "in.a", "j1", R"({"id":"j1","noop":{}})") == "NO_ERROR");
  CHECK(produce_answer(a, p + "in.a.schedules", "s1", R"({"id":"s1","expression":"* * * * *","job_template":{"noop":{}}})") ==
        "NO_ERROR");
  // kcron's own topics: only kcron's principal may write or read them.
  CHECK(produce_answer(a, p + "jobs", "j1", R"({"id":"j1","tenant":"b","noop":{}})") == "TOPIC_AUTHORIZATION_FAILED");
  CHECK(produce_answer(a, p + "schedules", "b~s1", "x") == "TOPIC_AUTHORIZATION_FAILED");
  CHECK(consume_answer(a, p + "results", "tenant.a.reader") == "TOPIC_AUTHORIZATION_FAILED");
  CHECK(consume_answer(a, p + "status", "tenant.a.reader") == "TOPIC_AUTHORIZATION_FAILED");
  // Another tenant's topics, the one whose name extends a's included (LITERAL ACLs).
  CHECK(produce_answer(a, p + "in.ab", "j1", "x") == "TOPIC_AUTHORIZATION_FAILED");
  CHECK(produce_answer(a, p + "in.b", "j1", "x") == "TOPIC_AUTHORIZATION_FAILED");
  CHECK(produce_answer(a, p + "in.ab.schedules", "s1", "x") == "TOPIC_AUTHORIZATION_FAILED");
  // Groups: B's (and AB's) are refused before the topic is looked at; a's own gets as far as the
  // topic, which it may not read.
  CHECK(consume_answer(a, p + "in.a", "tenant.b.reader") == "GROUP_AUTHORIZATION_FAILED");
  CHECK(consume_answer(a, p + "in.a", "tenant.ab.reader") == "GROUP_AUTHORIZATION_FAILED");
  CHECK(consume_answer(a, p + "in.a", p + "dispatcher") == "GROUP_AUTHORIZATION_FAILED");
  CHECK(consume_answer(a, p + "in.a", "tenant.a.reader") == "TOPIC_AUTHORIZATION_FAILED");
  // Transactional ids: B's and kcron's are refused.
  CHECK(transactions_answer(a, "tenant.b.tx1") == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
  CHECK(transactions_answer(a, p + "dispatcher-d1") == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
  // Output topics: its own readable with its own group; B's and AB's not.
  CHECK(consume_answer(a, p + "out.a", "tenant.a.reader") == "NO_ERROR");
  CHECK(consume_answer(a, p + "out.b", "tenant.a.reader") == "TOPIC_AUTHORIZATION_FAILED");
  CHECK(consume_answer(a, p + "out.ab", "tenant.a.reader") == "TOPIC_AUTHORIZATION_FAILED");
  CHECK(produce_answer(a, p + "out.a", "x", "forged") == "TOPIC_AUTHORIZATION_FAILED");

  // Nobody reaches the cluster without credentials: not the mTLS listener without a certificate,
  // not the controller listener (TLS with client certificates, only the broker's own is a super user).
  const auto listener = brokers();
  const auto controller = fmt::format("127.0.0.1:{}", std::stoi(listener.substr(listener.rfind(':') + 1)) + 1);
  const std::vector<kafka::Properties> anonymous = {
      {{"bootstrap.servers", listener}, {"security.protocol", "SSL"}, {"ssl.ca.location", secure_tls_dir() + "/ca.pem"}},
      {{"bootstrap.servers", controller}, {"security.protocol", "plaintext"}},
      {{"bootstrap.servers", controller}, {"security.protocol", "SSL"}, {"ssl.ca.location", secure_tls_dir() + "/ca.pem"}},
      // A tenant's certificate on the controller listener: authenticated, but no super user.
      [&] {
        auto props = a;
        props["bootstrap.servers"] = controller;
        return props;
      }(),
  };
  for (const auto& client : anonymous) {
    INFO("client of " << client.at("bootstrap.servers") << " over " << client.at("security.protocol"));
    auto producer = kafka::make_producer(client, "");
    REQUIRE(producer.ok());
    auto counts = kafka::partition_counts(**producer, 3s);
    if (counts.ok()) {
      CHECK(counts->empty());  // the controller answers no metadata of topics
    } else {
      CHECK_FALSE(counts.ok());
    }
  }

  // Deleting the tenant removes its ACLs and its input topics.
  const auto deleted = run_cli(env, "tenant delete a --yes");
  INFO(deleted.output);
  REQUIRE(deleted.exit_code == 0);
  CHECK_THAT(deleted.output, Catch::Contains("removed 8 ACL(s) of User:tenant.a"));
  CHECK_THAT(deleted.output, Catch::Contains("deleted topic " + p + "out.a"));
  CHECK_THAT(deleted.output, Catch::Contains("deleted topic " + p + "in.a"));
  CHECK(produce_answer(a, p + "in.a", "j2", "x") != "NO_ERROR");
  // b keeps its own.
  CHECK(produce_answer(tenant_client(env.state_root + "/b"), p + "in.b", "j1", R"({"id":"j1","noop":{}})") == "NO_ERROR");
}

TEST_CASE("kcron's programs run jobs over mTLS, and a bad certificate or password stops them with the cause", "[security]") {
  use_secured_broker();
  TestEnv env("sec-tls", 2, 1);
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  TestProducer producer;
  producer.send(env.prefix + "jobs", "tls-1", submit_json("tls-1", ""), -1, {{"content-type", "application/json"}});
  producer.flush();
  const auto succeeded = read_succeeded_until_all(env.prefix, "tls-", 1, 60s, 0s);
  CHECK(succeeded.once == 1);

  const auto tls = secure_tls_dir();
  struct Case {
    std::string name;
    std::vector<std::string> env;
    std::string cause;
  };
  const std::vector<Case> cases = {
      {"expired", tls_env(tls + "/expired.pem", tls + "/expired.key"), "expired on"},
      {"untrusted", tls_env(tls + "/untrusted.pem", tls + "/untrusted.key"), "the broker refused this client's certificate"},
      {"password",
       {"KCRON_BROKERS=" + std::string(std::getenv("KCRON_TEST_SECURE_SASL") ? std::getenv("KCRON_TEST_SECURE_SASL") : ""),
        "KCRON_KAFKA_SECURITY_PROTOCOL=SASL_SSL", "KCRON_KAFKA_SASL_MECHANISMS=PLAIN", "KCRON_KAFKA_SASL_USERNAME=admin",
        "KCRON_KAFKA_SASL_PASSWORD=not-the-password", "KCRON_KAFKA_SSL_CA_LOCATION=" + tls + "/ca.pem",
        "KCRON_KAFKA_SSL_CERTIFICATE_LOCATION=", "KCRON_KAFKA_SSL_KEY_LOCATION="},
       "the broker refused the SASL username or password"},
  };
  for (const auto& [name, identity, cause] : cases) {
    INFO("case " << name);
    auto refused = start_program(env, "kcron-dispatcher", "bad-" + name, "bad-" + name, identity, false);
    // It gives up at its first start-up wait (30 s at most) and says why there: the fatal line itself
    // names the cause, not only a warning before it (librdkafka reports a repeated refusal once per
    // 30 s, so a wait that begins after the first refusals sees none of its own).
    const auto code = refused->wait_exit(60s);
    const auto log = tail_file(refused->log_path(), 60);
    INFO(log);
    REQUIRE(code.has_value());
    CHECK(*code != 0);
    const auto fatal = fatal_line(refused->log_path());
    CHECK_THAT(fatal, Catch::Contains(cause));
    CHECK(count_in_log(refused->log_path(), "not-the-password") == 0);
  }
  CHECK(dispatcher->terminate() == 0);
  CHECK(worker->terminate() == 0);
}

namespace {

// Every topic of the prefix, every record's key, value and headers, as bytes.
std::string every_topic_bytes(const std::string& prefix) {
  auto producer = kafka::make_producer(test_client_properties(), "");
  REQUIRE(producer.ok());
  auto counts = kafka::partition_counts(**producer, 15s);
  REQUIRE(counts.ok());
  std::vector<std::string> topics;
  for (const auto& [topic, partitions] : *counts) {
    if (topic.starts_with(prefix)) topics.push_back(topic);
  }
  REQUIRE(topics.size() >= 10);
  std::string bytes;
  for (const auto& record : read_topics(topics, 10s)) {
    bytes.append(record.topic).append("\n").append(record.key).append("\n").append(record.value).append("\n");
    for (const auto& [name, value] : record.headers) bytes.append(name).append("=").append(value).append("\n");
  }
  return bytes;
}

// What a shell command prints (stdout and stderr).
std::string command_output(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (const auto read = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, read);
  pclose(pipe);
  return output;
}

}  // namespace

TEST_CASE("a sealed job runs, and its canary is nowhere on the topics, in the dispatcher's RocksDB files or its WAL",
          "[security]") {
  use_secured_broker();
  TestEnv env("sec-seal", 2, 1);
  const std::string canary = fmt::format("CANARY-{:x}-sealed", std::random_device()());
  const auto master = env.state_root + "/master.key";
  for (const auto& arguments : {fmt::format("sealing init-master-key '{}'", master), std::string("tenant create a"),
                                fmt::format("sealing add-key a --master-key '{}'", master)}) {
    const auto run = run_cli(env, arguments);
    INFO(arguments << ": " << run.output);
    REQUIRE(run.exit_code == 0);
  }
  const std::vector<std::string> worker_env = {"KCRON_SEALING_MASTER_KEY_FILE=" + master, "KCRON_EXEC_PROGRAMS=/bin/sh",
                                               "KCRON_EXEC_ENV=CANARY_ENV", "KCRON_HEARTBEAT_INTERVAL_MS=500"};
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1", {"KCRON_HEARTBEAT_INTERVAL_MS=500"});
  auto worker = start_program(env, "kcron-worker", "w1", "w1", worker_env);

  // The CLI seals only once every dispatcher and worker says it can schedule and open sealed tasks
  // (their heartbeats): it refuses until then, so it is retried for a bounded while.
  const auto submit = [&](const std::string& json) {
    CliRun run;
    for (int attempt = 0; attempt < 60; ++attempt) {
      run = run_cli(env, fmt::format("--tenant a submit '{}' --seal --master-key '{}'", json, master));
      if (run.exit_code == 0) break;
      std::this_thread::sleep_for(500ms);
    }
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
  };
  std::string canary_base64;  // the payload is bytes: JSON carries them as base64
  {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::uint32_t bits = 0;
    int count = 0;
    for (const char c : canary) {
      bits = (bits << 8U) | static_cast<unsigned char>(c);
      count += 8;
      while (count >= 6) {
        count -= 6;
        canary_base64.push_back(kAlphabet[(bits >> static_cast<unsigned>(count)) & 63U]);
      }
    }
    if (count > 0) canary_base64.push_back(kAlphabet[(bits << static_cast<unsigned>(6 - count)) & 63U]);
    while (canary_base64.size() % 4 != 0) canary_base64.push_back('=');
  }
  // Due in 10 s: it waits in the dispatcher's RocksDB (and its WAL) sealed. Its argv, an env
  // value and its payload hold the canary.
  submit(fmt::format(
      R"({{"id":"s1","delay":"10s","exec":{{"argv":["/bin/sh","-c","exit 0 # {}"],"env":{{"CANARY_ENV":"{}"}}}},"payload":"{}"}})",
      canary, canary, canary_base64));
  // A program not on the worker's allowlist: its refusal would name it, and is redacted.
  submit(fmt::format(R"({{"id":"s2","exec":{{"argv":["/usr/bin/{}"]}}}})", canary));
  std::this_thread::sleep_for(2s);
  // The dispatcher holds s1 now: its store files, memtable flushed or not, and the WAL.
  const auto state = env.state_root + "/d1";
  const auto raw_files = command_output(fmt::format("cat '{}'/* 2>/dev/null", state));
  const auto wal =
      command_output(fmt::format("for f in '{}'/*.log; do ldb dump_wal --walfile=\"$f\" --print_value; done", state));
  const auto sst = command_output(fmt::format("sst_dump --file='{}' --command=scan", state));
  // ldb and sst_dump print values as hex (0x…) or as text: the canary is looked for in both forms.
  std::string canary_hex;
  for (const auto c : canary) canary_hex += fmt::format("{:02X}", static_cast<unsigned char>(c));
  CHECK(raw_files.find(canary) == std::string::npos);
  CHECK(wal.find("PUT(") != std::string::npos);  // the WAL was read and holds writes
  CHECK(wal.find(canary) == std::string::npos);
  CHECK(wal.find(canary_hex) == std::string::npos);
  CHECK(sst.find(canary) == std::string::npos);
  CHECK(sst.find(canary_hex) == std::string::npos);

  const auto outcome = read_topics({env.prefix + "results"}, 60s, [&](const std::vector<Record>& records) {
    bool s1 = false;
    bool s2 = false;
    for (const auto& record : records) {
      v1::Result result;
      if (!result.ParseFromString(record.value)) continue;
      s1 = s1 || (result.job_id() == "s1" && result.state() == v1::SUCCEEDED);
      s2 = s2 || (result.job_id() == "s2" && result.state() != v1::SUCCEEDED);
    }
    return s1 && s2;
  });
  bool s1_succeeded = false;
  std::string s2_error;
  for (const auto& record : outcome) {
    v1::Result result;
    if (!result.ParseFromString(record.value)) continue;
    s1_succeeded = s1_succeeded || (result.job_id() == "s1" && result.state() == v1::SUCCEEDED);
    if (result.job_id() == "s2") s2_error = result.error();
  }
  CHECK(s1_succeeded);
  INFO("s2: " << s2_error);
  CHECK_THAT(s2_error, Catch::Contains("[sealed]"));
  CHECK_THAT(s2_error, Catch::Contains("exec.programs"));

  CHECK(dispatcher->terminate() == 0);
  CHECK(worker->terminate() == 0);
  const auto topics = every_topic_bytes(env.prefix);
  CHECK(topics.find(canary) == std::string::npos);
  // The dispatcher does not flush on stop: ldb opens the store (replaying its WAL) and compacts
  // every column family, so everything it held is in SST files, which sst_dump then reads.
  const auto compacted =
      command_output(fmt::format("cd '{0}' && for cf in $(ldb --db='{0}' list_column_families | sed -n 's/[{{}},]/ /gp'); do ldb "
                                 "--db='{0}' --column_family=$cf "
                                 "compact || exit 1; done",
                                 state));
  INFO("ldb compact: " << compacted);
  const auto sst_text = command_output(fmt::format("sst_dump --file='{}' --command=scan", state));
  const auto sst_hex = command_output(fmt::format("sst_dump --file='{}' --command=scan --output_hex", state));
  CHECK(sst_text.find("=>") != std::string::npos);    // the scan read entries
  CHECK(sst_text.find("a~s1") != std::string::npos);  // among them the sealed job's
  CHECK(sst_text.find(canary) == std::string::npos);
  CHECK(sst_hex.find(canary_hex) == std::string::npos);
  CHECK(command_output(fmt::format("cat '{}'/*.log '{}'/w1.log '{}'/d1.log 2>/dev/null", state, env.state_root, env.state_root))
            .find(canary) == std::string::npos);
}

TEST_CASE("tenant A's jobs cannot reach B's secret, the master key or kcron's keys, nor write kcron's or B's topics",
          "[security]") {
  use_secured_broker();
  TestEnv env("sec-walls", 2, 1);
  // B's secret, the sealing master key and kcron's client key: files the worker's user can read.
  const auto secrets = env.state_root + "/secrets";
  std::filesystem::create_directories(secrets + "/b");
  const std::string b_secret = fmt::format("b-secret-{:x}", std::random_device()());
  std::ofstream(secrets + "/b/token") << b_secret << "\n";
  const auto master = env.state_root + "/master.key";
  REQUIRE(run_cli(env, fmt::format("sealing init-master-key '{}'", master)).exit_code == 0);
  for (const auto* name : {"a", "b"}) REQUIRE(run_cli(env, fmt::format("tenant create {}", name)).exit_code == 0);
  REQUIRE(run_cli(env, "tenant set a --kafka-topics orders-a").exit_code == 0);

  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1",
                              {"KCRON_EXEC_PROGRAMS=/bin/sh", "KCRON_EXEC_SANDBOX=bwrap", "KCRON_SECRETS_DIR=" + secrets,
                               "KCRON_SEALING_MASTER_KEY_FILE=" + master});
  const auto tls = secure_tls_dir();
  const auto reader = fmt::format("for f in '{}/b/token' '{}' '{}/kcron.key' '{}/ca.key'; do cat \"$f\" 2>&1; done; ls / 2>&1",
                                  secrets, master, tls, tls);
  TestProducer producer;
  const auto submit = [&](const std::string& id, const std::string& task) {
    producer.send(env.prefix + "jobs", "a~" + id, fmt::format(R"({{"id":"{}","tenant":"a",{}}})", id, task), -1,
                  {{"content-type", "application/json"}});
  };
  std::string quoted = "\"";
  for (const char c : reader) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  submit("reads", fmt::format(R"("exec":{{"argv":["/bin/sh","-c",{}]}})", quoted));
  submit("to-jobs", fmt::format(R"("kafka":{{"topic":"{}jobs","key":"x","value":"eA=="}})", env.prefix));
  submit("to-b", fmt::format(R"("kafka":{{"topic":"{}in.b","key":"x","value":"eA=="}})", env.prefix));
  submit("to-other", R"("kafka":{"topic":"orders-b","key":"x","value":"eA=="})");
  producer.flush();

  std::map<std::string, v1::Result> last;
  read_topics({env.prefix + "results"}, 60s, [&](const std::vector<Record>& records) {
    last.clear();
    for (const auto& record : records) {
      v1::Result result;
      if (result.ParseFromString(record.value) && result.state() != v1::RUNNING) last[result.job_id()] = result;
    }
    return last.size() >= 4;
  });
  REQUIRE(last.size() == 4);
  const auto& reads = last.at("reads");
  INFO("reads: " << reads.output() << " / " << reads.error());
  CHECK(reads.output().find(b_secret) == std::string::npos);
  CHECK(reads.output().find("BEGIN") == std::string::npos);  // no PEM key
  CHECK_THAT(reads.output(), Catch::Contains("No such file or directory"));
  for (const auto* id : {"to-jobs", "to-b"}) {
    INFO(id << ": " << last.at(id).error());
    CHECK(last.at(id).state() == v1::FAILED);
    CHECK_FALSE(last.at(id).retriable());  // refused for good: DEAD, never retried
    CHECK_THAT(last.at(id).error(), Catch::Contains("kcron's own topics"));
  }
  INFO("to-other: " << last.at("to-other").error());
  CHECK(last.at("to-other").state() == v1::FAILED);
  CHECK_FALSE(last.at("to-other").retriable());
  CHECK_THAT(last.at("to-other").error(), Catch::Contains("allowed_kafka_topics"));
  // Nothing of A's kafka jobs (key "x") reached kcron's jobs topic.
  for (const auto& record : read_topics({env.prefix + "jobs"}, 5s)) CHECK(record.key != "x");
  CHECK(dispatcher->terminate() == 0);
  CHECK(worker->terminate() == 0);
}

TEST_CASE("a password tenant (SASL/PLAIN over TLS) writes its input topic and nothing of kcron's", "[security]") {
  use_secured_broker();
  TestEnv env("sec-sasl", 2, 1);
  // scripts/kafka --secure start adds the SASL user tenant.sasl-demo (static JAAS: users need a restart).
  std::ifstream users(secure_tls_dir() + "/sasl-users");
  std::string name;
  std::string password;
  while (users >> name >> password && name != "tenant.sasl-demo") {
  }
  REQUIRE(name == "tenant.sasl-demo");
  const auto created = run_cli(env, "tenant create sasl-demo --kafka");
  INFO(created.output);
  REQUIRE(created.exit_code == 0);
  CHECK_THAT(created.output, Catch::Contains("no certificate issued (no --ca-dir)"));
  const char* sasl = std::getenv("KCRON_TEST_SECURE_SASL");
  REQUIRE(sasl != nullptr);
  const kafka::Properties client = {{"bootstrap.servers", sasl},  {"security.protocol", "SASL_SSL"},
                                    {"sasl.mechanisms", "PLAIN"}, {"sasl.username", name},
                                    {"sasl.password", password},  {"ssl.ca.location", secure_tls_dir() + "/ca.pem"}};
  CHECK(produce_answer(client, env.prefix + "in.sasl-demo", "j1", R"({"id":"j1","noop":{}})") == "NO_ERROR");
  CHECK(produce_answer(client, env.prefix + "jobs", "j1", R"({"id":"j1","noop":{}})") == "TOPIC_AUTHORIZATION_FAILED");
  auto wrong = client;
  wrong["sasl.password"] = "not-" + password;
  wrong["message.timeout.ms"] = "4000";
  CHECK(produce_answer(wrong, env.prefix + "in.sasl-demo", "j2", "x") != "NO_ERROR");
}

TEST_CASE("a job a tenant writes to its input topic naming another tenant runs as the writer's, seen on its own output topic",
          "[security]") {
  use_secured_broker();
  TestEnv env("sec-relay", 2, 1);
  for (const auto* name : {"a", "b"}) create_tenant(env, name);
  const auto a = tenant_client(env.state_root + "/a");
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1");
  auto worker = start_program(env, "kcron-worker", "w1", "w1");
  auto relay = start_program(env, "kcron-relay", "r1", "relay");
  // Tenant a, with its own certificate, names tenant b in the body: the relay stamps a.
  REQUIRE(produce_answer(a, env.prefix + "in.a", "forged", R"({"id":"forged","tenant":"b","noop":{}})") == "NO_ERROR");
  // It cannot write the shared jobs topic at all.
  CHECK(produce_answer(a, env.prefix + "jobs", "b~forged2", R"({"id":"forged2","tenant":"b","noop":{}})") ==
        "TOPIC_AUTHORIZATION_FAILED");

  // A reads its outcome on its own output topic, with its own certificate and group.
  auto reader_properties = a;
  reader_properties["group.id"] = "tenant.a.outcomes";
  reader_properties["enable.partition.eof"] = "false";
  auto reader = kafka::make_consumer(reader_properties);
  REQUIRE(reader.ok());
  REQUIRE((*reader)->subscribe({env.prefix + "out.a"}) == RdKafka::ERR_NO_ERROR);
  std::vector<std::string> keys;
  bool succeeded = false;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!succeeded && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> message((*reader)->consume(500));
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    keys.emplace_back(static_cast<const char*>(message->key_pointer()), message->key_len());
    v1::Result result;
    if (message->topic_name() == env.prefix + "out.a" &&
        result.ParseFromArray(message->payload(), static_cast<int>(message->len())) && result.job_id() == "forged" &&
        result.state() == v1::SUCCEEDED) {
      succeeded = true;
    }
  }
  kafka::discard_consumer(*reader);
  CHECK(succeeded);
  for (const auto& key : keys) CHECK(key == "a~forged");
  // On the shared topics the job is a's, and b has nothing.
  const auto shared = read_topics({env.prefix + "results", env.prefix + "status"}, 5s);
  int as_a = 0;
  for (const auto& record : shared) {
    CHECK(record.key != "b~forged");
    as_a += record.key == "a~forged" ? 1 : 0;
  }
  CHECK(as_a >= 2);
  CHECK(read_topics({env.prefix + "out.b"}, 3s).empty());
  CHECK(relay->terminate() == 0);
  CHECK(worker->terminate() == 0);
  CHECK(dispatcher->terminate() == 0);
}
