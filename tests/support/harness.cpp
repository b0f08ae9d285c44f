#include "support/harness.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "kcron.pb.h"
#include "kcron/kafka_acls.h"
#include "kcron/priority.h"
#include "kcron/topics.h"

namespace kcron::testing {

namespace {

// KCRON_TEST_SECURE=1 (a CTest property of the `security` tier) picks the secured broker.
bool secure_selected() {
  const char* value = std::getenv("KCRON_TEST_SECURE");
  return value != nullptr && std::string_view(value) == "1";
}

std::string secure_env(const char* name) {
  if (!secure_selected()) return {};
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    std::printf("KCRON-SKIP: no secured broker: scripts/test starts one (scripts/kafka --secure start) and sets %s\n", name);
    std::fflush(stdout);
    FAIL("KCRON_TEST_SECURE=1 needs KCRON_TEST_SECURE_BROKERS and KCRON_TEST_SECURE_TLS");
  }
  return value;
}

}  // namespace

std::string brokers() {
  if (secure_selected()) return secure_env("KCRON_TEST_SECURE_BROKERS");
  const char* value = std::getenv("KCRON_TEST_BROKERS");
  return value != nullptr ? value : "127.0.0.1:9092";
}

std::string secure_tls_dir() {
  return secure_env("KCRON_TEST_SECURE_TLS");
}

kafka::Properties test_client_properties(const kafka::Properties& extra) {
  kafka::Properties properties = {{"bootstrap.servers", brokers()}};
  if (const auto tls = secure_tls_dir(); !tls.empty()) {
    properties["security.protocol"] = "SSL";
    properties["ssl.ca.location"] = tls + "/ca.pem";
    properties["ssl.certificate.location"] = tls + "/admin.pem";
    properties["ssl.key.location"] = tls + "/admin.key";
  }
  for (const auto& [key, value] : extra) properties[key] = value;
  return properties;
}

std::vector<std::string> tls_env(const std::string& certificate, const std::string& key) {
  const auto tls = secure_tls_dir();
  if (tls.empty()) return {};
  return {"KCRON_KAFKA_SECURITY_PROTOCOL=SSL", "KCRON_KAFKA_SSL_CA_LOCATION=" + tls + "/ca.pem",
          "KCRON_KAFKA_SSL_CERTIFICATE_LOCATION=" + certificate, "KCRON_KAFKA_SSL_KEY_LOCATION=" + key};
}

std::string program_path(const std::string& name) {
  return std::string(KCRON_BIN_DIR) + "/" + name;
}

std::vector<std::string> exec_topics(const std::string& prefix) {
  std::vector<std::string> topics;
  for (const auto* queue : {"default", "critical", "batch"}) {
    for (const auto band : kAllBands) topics.push_back(exec_topic(prefix, queue, band));
  }
  return topics;
}

void delete_topics(const std::vector<std::string>& topics) {
  auto deleted = kafka::delete_topics({{"bootstrap.servers", brokers()}}, topics, std::chrono::seconds(30));
  INFO((deleted ? std::string() : deleted.error().message()));
  REQUIRE(deleted.ok());
}

void delete_all_records(const std::string& topic) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [key, value] : test_client_properties()) REQUIRE(conf->set(key, value, error) == RdKafka::Conf::CONF_OK);
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), error));
  REQUIRE(producer != nullptr);
  RdKafka::Metadata* raw = nullptr;
  std::unique_ptr<RdKafka::Topic> handle(RdKafka::Topic::create(producer.get(), topic, nullptr, error));
  REQUIRE(producer->metadata(false, handle.get(), &raw, 10000) == RdKafka::ERR_NO_ERROR);
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  REQUIRE(metadata->topics()->size() == 1);
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(8);
  for (const auto* partition : *metadata->topics()->front()->partitions()) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    REQUIRE(producer->query_watermark_offsets(topic, partition->id(), &low, &high, 10000) == RdKafka::ERR_NO_ERROR);
    rd_kafka_topic_partition_list_add(offsets, topic.c_str(), partition->id())->offset = high;
  }
  rd_kafka_t* client = producer->c_ptr();
  rd_kafka_DeleteRecords_t* request = rd_kafka_DeleteRecords_new(offsets);
  rd_kafka_topic_partition_list_destroy(offsets);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
  rd_kafka_DeleteRecords(client, &request, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  std::string problems = event == nullptr ? "no answer in 30 s" : "";
  if (event != nullptr && rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR)
    problems = rd_kafka_event_error_string(event);
  if (event != nullptr && problems.empty()) {
    const auto* deleted = rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(event));
    for (int index = 0; deleted != nullptr && index < deleted->cnt; ++index) {
      if (deleted->elems[index].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        problems += fmt::format(" [{}]: {}", deleted->elems[index].partition, rd_kafka_err2str(deleted->elems[index].err));
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_DeleteRecords_destroy(request);
  rd_kafka_queue_destroy(queue);
  INFO("DeleteRecords on " << topic << ":" << problems);
  REQUIRE(problems.empty());
}

TestEnv::TestEnv(const std::string& name, int jobs, int exec, int replication_factor)
    : jobs_partitions(jobs), exec_partitions(exec) {
  std::random_device random;
  prefix = fmt::format("it-{}-{:x}.", name, random() & 0xffffffU);
  state_root = (std::filesystem::temp_directory_path() / ("kcron-" + prefix)).string();
  std::filesystem::create_directories(state_root);
  TopicLayout layout;
  layout.jobs_partitions = jobs;
  layout.exec_partitions = exec;
  layout.output_partitions = 2;
  layout.schedules_partitions = 2;
  const auto properties = test_client_properties();
  auto created =
      kafka::create_topics(properties, all_topics(TopicNames(prefix), layout), replication_factor, std::chrono::seconds(60));
  REQUIRE(created.ok());
  if (!secure_tls_dir().empty()) {
    // kcron's programs connect as User:kcron: its topic and group ACLs for this prefix (its
    // transactional ids under `it-` were granted when scripts/kafka started the broker).
    std::vector<AclEntry> entries;
    for (const auto& entry : kcron_acls(prefix, "User:kcron")) {
      if (entry.resource != AclResource::kTransactionalId) entries.push_back(entry);
    }
    auto granted = kafka::create_acls(properties, entries, std::chrono::seconds(30));
    INFO((granted.ok() ? std::string() : granted.error().message()));
    REQUIRE(granted.ok());
    // The broker applies new ACLs as it replays its metadata log: wait (bounded) until User:kcron
    // sees the test's topics, so a program started next does not find them "missing".
    const auto tls = secure_tls_dir();
    auto as_kcron = kafka::make_producer({{"bootstrap.servers", brokers()},
                                          {"security.protocol", "SSL"},
                                          {"ssl.ca.location", tls + "/ca.pem"},
                                          {"ssl.certificate.location", tls + "/kcron.pem"},
                                          {"ssl.key.location", tls + "/kcron.key"}},
                                         "");
    REQUIRE(as_kcron.ok());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool visible = false;
    while (!visible && std::chrono::steady_clock::now() < deadline) {
      auto counts = kafka::partition_counts(**as_kcron, std::chrono::seconds(5));
      visible = counts.ok() && counts->contains(TopicNames(prefix).jobs()) && counts->contains(TopicNames(prefix).tenants());
      if (!visible) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(visible);
  }
}

TestEnv::~TestEnv() {
  if (std::getenv("KCRON_TEST_KEEP_STATE") != nullptr) return;
  std::error_code ignored;
  std::filesystem::remove_all(state_root, ignored);
}

void create_tenant_input_topics(const TestEnv& env, const std::string& tenant, int partitions) {
  // As `kcron tenant create NAME --kafka` makes them (cli/kafka_access.cpp), without the ACLs.
  const std::vector<TopicSpec> topics = {
      {tenant_input_topic(env.prefix, tenant), partitions, {{"cleanup.policy", "delete"}, {"retention.ms", "604800000"}}},
      {tenant_schedules_topic(env.prefix, tenant), partitions, {{"cleanup.policy", "compact"}, {"min.compaction.lag.ms", "0"}}}};
  kafka::Properties properties = {{"bootstrap.servers", brokers()}};
  auto created = kafka::create_topics(properties, topics, 1, std::chrono::seconds(60));
  REQUIRE(created.ok());
}

std::vector<std::string> TestEnv::program_env(const std::string& instance_id) const {
  std::vector<std::string> env = {"KCRON_BROKERS=" + brokers(),
                                  "KCRON_TOPIC_PREFIX=" + prefix,
                                  "KCRON_INSTANCE_ID=" + instance_id,
                                  "KCRON_STATE_DIR=" + state_root + "/" + instance_id,
                                  "KCRON_HTTP_PORT=0",
                                  "KCRON_JOBS_PARTITIONS=" + std::to_string(jobs_partitions),
                                  "KCRON_EXEC_PARTITIONS=" + std::to_string(exec_partitions),
                                  "KCRON_LOG_LEVEL=info"};
  if (const auto tls = secure_tls_dir(); !tls.empty()) {
    for (auto& entry : tls_env(tls + "/kcron.pem", tls + "/kcron.key")) env.push_back(std::move(entry));
  }
  return env;
}

Process::Process(const std::string& program, const std::vector<std::string>& env, const std::string& log_path,
                 const std::string& netns)
    : log_path_(log_path) {
  std::vector<std::string> environment = env;
  for (const char* inherited : {"PATH", "HOME", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (const char* value = std::getenv(inherited)) environment.push_back(std::string(inherited) + "=" + value);
  }
  pid_ = fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    std::FILE* log = std::fopen(log_path.c_str(), "a");
    if (log != nullptr) {
      dup2(fileno(log), STDOUT_FILENO);
      dup2(fileno(log), STDERR_FILENO);
    }
    if (!netns.empty()) {
      // Same as `ip netns exec NAME`, without a wrapper process between us and the program.
      const std::string path = "/var/run/netns/" + netns;
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "cannot enter network namespace %s: %s\n", netns.c_str(), std::strerror(errno));
        _exit(126);
      }
      ::close(fd);
    }
    std::vector<char*> envp;
    for (auto& entry : environment) envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::string path = program;
    char* argv[] = {path.data(), nullptr};
    execve(path.c_str(), argv, envp.data());
    _exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0) kill_hard();
}

void Process::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int Process::terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill_hard();
  return -2;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return exit_code_;
}

struct TestProducer::Reports : RdKafka::DeliveryReportCb {
  std::mutex mutex;
  std::map<std::string, std::int32_t> partitions;
  std::string error;
  void dr_cb(RdKafka::Message& message) override {
    std::lock_guard lock(mutex);
    if (message.err() != RdKafka::ERR_NO_ERROR) error = message.errstr();
    if (message.key() != nullptr) partitions[*message.key()] = message.partition();
  }
};

TestProducer::TestProducer(const std::string& partitioner) : reports_(std::make_unique<Reports>()) {
  auto producer = kafka::make_producer(test_client_properties({{"partitioner", partitioner}}), "", reports_.get());
  REQUIRE(producer.ok());
  producer_ = std::move(*producer);
}

TestProducer::~TestProducer() {
  producer_.reset();
}

void TestProducer::send(const std::string& topic, const std::string& key, const std::string& value, std::int32_t partition,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
  OutRecord record{topic, partition, key, value, false, headers};
  auto status = kafka::produce(*producer_, record);
  REQUIRE(status.ok());
  producer_->poll(0);
}

void TestProducer::send_tombstone(const std::string& topic, const std::string& key, std::int32_t partition) {
  OutRecord record{topic, partition, key, "", true, {}};
  REQUIRE(kafka::produce(*producer_, record).ok());
  producer_->poll(0);
}

void TestProducer::poll() {
  producer_->poll(0);
}

void TestProducer::flush() {
  REQUIRE(producer_->flush(30000) == RdKafka::ERR_NO_ERROR);
  std::lock_guard lock(reports_->mutex);
  REQUIRE(reports_->error.empty());
}

std::int32_t TestProducer::partition_of(const std::string& key) const {
  std::lock_guard lock(reports_->mutex);
  const auto found = reports_->partitions.find(key);
  return found == reports_->partitions.end() ? -1 : found->second;
}

std::vector<Record> read_topics(const std::vector<std::string>& topics, std::chrono::milliseconds timeout,
                                const std::function<bool(const std::vector<Record>&)>& until) {
  auto consumer = kafka::make_consumer(test_client_properties({{"group.id", "kcron-test-reader"}}));
  REQUIRE(consumer.ok());
  auto counts = kafka::partition_counts(**consumer, std::chrono::seconds(10));
  REQUIRE(counts.ok());
  std::vector<RdKafka::TopicPartition*> assignment;
  for (const auto& topic : topics) {
    const auto found = counts->find(topic);
    REQUIRE(found != counts->end());
    for (std::int32_t partition = 0; partition < found->second; ++partition) {
      assignment.push_back(RdKafka::TopicPartition::create(topic, partition, RdKafka::Topic::OFFSET_BEGINNING));
    }
  }
  REQUIRE((*consumer)->assign(assignment) == RdKafka::ERR_NO_ERROR);
  RdKafka::TopicPartition::destroy(assignment);

  std::vector<Record> records;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto last_check = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> message((*consumer)->consume(100));
    if (message->err() == RdKafka::ERR_NO_ERROR) {
      Record record;
      record.topic = message->topic_name();
      record.partition = message->partition();
      record.offset = message->offset();
      if (message->key() != nullptr) record.key = *message->key();
      if (message->timestamp().type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE) {
        record.timestamp_ms = message->timestamp().timestamp;
      }
      if (message->payload() != nullptr) record.value.assign(static_cast<const char*>(message->payload()), message->len());
      if (auto* headers = message->headers()) {
        for (const auto& header : headers->get_all()) {
          record.headers[header.key()] = std::string(static_cast<const char*>(header.value()), header.value_size());
        }
      }
      records.push_back(std::move(record));
      continue;
    }
    if (until && std::chrono::steady_clock::now() - last_check > std::chrono::milliseconds(200)) {
      last_check = std::chrono::steady_clock::now();
      if (until(records)) break;
    }
  }
  (*consumer)->close();
  return records;
}

std::map<std::string, int> count_by_key(const std::vector<Record>& records) {
  std::map<std::string, int> counts;
  for (const auto& record : records) ++counts[record.key];
  return counts;
}

std::string tail_file(const std::string& path, std::size_t lines) {
  std::ifstream file(path);
  std::deque<std::string> kept;
  std::string line;
  while (std::getline(file, line)) {
    kept.push_back(line);
    if (kept.size() > lines) kept.pop_front();
  }
  std::string out;
  for (const auto& entry : kept) out += entry + "\n";
  return out;
}

}  // namespace kcron::testing

namespace kcron::testing {

bool wait_for_log(Process& process, const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (count_in_log(process.log_path(), needle) > 0) return true;
    if (!process.running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

int count_in_log(const std::string& path, const std::string& needle) {
  std::ifstream file(path);
  std::string line;
  int count = 0;
  while (std::getline(file, line)) count += line.find(needle) != std::string::npos ? 1 : 0;
  return count;
}

std::string submit_json(const std::string& id, const std::string& when_json) {
  return fmt::format(R"({{"id":"{}",{}"noop":{{}}}})", id, when_json.empty() ? "" : when_json + ",");
}

std::string delay_json(std::int64_t delay_ms) {
  return fmt::format(R"("delay":"{}.{:03}s")", delay_ms / 1000, delay_ms % 1000);
}

std::string Tally::line(const std::string& scenario) const {
  return fmt::format("{}: sent={} fired_once={} lost={} duplicated={}", scenario, sent, once, lost, duplicated);
}

Tally tally(const std::vector<Record>& exec, const std::string& id_prefix, int count) {
  const auto counts = count_by_key(exec);
  Tally result;
  result.sent = count;
  for (int index = 0; index < count; ++index) {
    const auto found = counts.find(fmt::format("{}{}", id_prefix, index));
    const int fired = found == counts.end() ? 0 : found->second;
    result.once += fired == 1 ? 1 : 0;
    result.lost += fired == 0 ? 1 : 0;
    result.duplicated += fired > 1 ? 1 : 0;
  }
  return result;
}

std::string report_fault(const std::string& scenario_name, int sent, int once, int lost, int duplicated, double recovery_s,
                         const std::string& detail) {
  // Under scripts/fault --stress the scenario ran with CPU and memory hogs beside it.
  const char* load = std::getenv("KCRON_FAULT_LOAD");
  const std::string scenario = load != nullptr && *load != '\0' ? scenario_name + "+stress" : scenario_name;
  if (const char* path = std::getenv("KCRON_FAULT_REPORT"); path != nullptr && *path != '\0') {
    std::string escaped;
    for (const char c : detail) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    std::ofstream out(path, std::ios::app);
    out << fmt::format(
               R"({{"scenario":"{}","sent":{},"fired_once":{},"lost":{},"duplicated":{},"recovery_s":{:.2f},"detail":"{}"}})",
               scenario, sent, once, lost, duplicated, recovery_s, escaped)
        << "\n";
  }
  return fmt::format("{}: sent={} fired_once={} lost={} duplicated={}{}{}", scenario, sent, once, lost, duplicated,
                     recovery_s >= 0 ? fmt::format(" recovery_s={:.1f}", recovery_s) : std::string(),
                     detail.empty() ? std::string() : " " + detail);
}

std::string report_fault(const std::string& scenario, const Tally& tally, double recovery_s, const std::string& detail) {
  return report_fault(scenario, tally.sent, tally.once, tally.lost, tally.duplicated, recovery_s, detail);
}

std::vector<Record> read_exec_until_all(const std::string& prefix, const std::string& id_prefix, int count,
                                        std::chrono::milliseconds timeout, std::chrono::milliseconds settle) {
  const auto first = read_topics(exec_topics(prefix), timeout,
                                 [&](const std::vector<Record>& records) { return tally(records, id_prefix, count).lost == 0; });
  std::this_thread::sleep_for(settle);
  return read_topics(exec_topics(prefix), std::chrono::seconds(10),
                     [&](const std::vector<Record>& records) { return records.size() >= first.size(); });
}

}  // namespace kcron::testing

namespace kcron::testing {

CliRun run_cli(const TestEnv& env, const std::string& arguments) {
  std::string identity;  // the CLI is the operator's: admin on the secured broker
  if (const auto tls = secure_tls_dir(); !tls.empty()) {
    for (const auto& entry : tls_env(tls + "/admin.pem", tls + "/admin.key")) identity += fmt::format("'{}' ", entry);
  }
  const auto command = fmt::format("env {}KCRON_BROKERS='{}' KCRON_TOPIC_PREFIX='{}' '{}' {} 2>&1", identity, brokers(),
                                   env.prefix, program_path("kcron"), arguments);
  CliRun run;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (const auto read = fread(buffer, 1, sizeof buffer, pipe)) run.output.append(buffer, read);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

int http_port_of(Process& process, std::chrono::milliseconds timeout) {
  REQUIRE(wait_for_log(process, "event=http_listening", timeout));
  std::ifstream file(process.log_path());
  std::string line;
  while (std::getline(file, line)) {
    const auto at = line.find("event=http_listening");
    if (at == std::string::npos) continue;
    const auto port = line.find("port=", at);
    if (port != std::string::npos) return std::stoi(line.substr(port + 5));
  }
  FAIL("no port in " << process.log_path());
  return -1;
}

double metric_value(const std::string& metrics, const std::string& series) {
  std::istringstream lines(metrics);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace kcron::testing

namespace kcron::testing {

void skip_scenario(const std::string& reason) {
  if (const char* required = std::getenv("KCRON_REQUIRE_PRIVILEGED"); required != nullptr && std::string(required) == "1") {
    FAIL("KCRON_REQUIRE_PRIVILEGED=1 but the scenario cannot run: " << reason);
  }
  std::printf("KCRON-SKIP: %s\n", reason.c_str());
  std::fflush(stdout);
  WARN("SKIP: " << reason);
}

std::string source_dir() {
  return KCRON_SOURCE_DIR;
}

int fault_jobs(int ci_default) {
  const char* text = std::getenv("KCRON_FAULT_JOBS");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : ci_default;
}

int fault_schedules(int ci_default, int seconds) {
  const char* text = std::getenv("KCRON_FAULT_JOBS");
  if (text == nullptr || std::atoi(text) <= 0) return ci_default;
  return std::max(ci_default, (std::atoi(text) + seconds - 1) / seconds);
}

std::unique_ptr<Process> start_program(const TestEnv& env, const std::string& program, const std::string& instance,
                                       const std::string& log_name, const std::vector<std::string>& extra, bool wait_assigned) {
  auto vars = env.program_env(instance);
  vars.insert(vars.end(), extra.begin(), extra.end());
  auto process = std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}.log", env.state_root, log_name));
  if (wait_assigned) {
    INFO(tail_file(process->log_path()));
    REQUIRE(wait_for_log(*process, "event=assigned", std::chrono::seconds(60)));
  }
  return process;
}

Tally read_succeeded_until_all(const std::string& prefix, const std::string& id_prefix, int count,
                               std::chrono::milliseconds timeout, std::chrono::milliseconds settle) {
  const auto ours = [&](const std::vector<Record>& records) {
    auto succeeded = succeeded_results(records);
    std::erase_if(succeeded, [&](const auto& entry) { return !entry.first.starts_with(id_prefix); });
    return succeeded;
  };
  read_topics({prefix + "results"}, timeout,
              [&](const std::vector<Record>& records) { return ours(records).size() >= static_cast<std::size_t>(count); });
  std::this_thread::sleep_for(settle);
  const auto succeeded = ours(read_topics({prefix + "results"}, std::chrono::seconds(10)));
  Tally result;
  result.sent = count;
  for (const auto& [id, times] : succeeded) (times.size() == 1 ? result.once : result.duplicated) += 1;
  result.lost = count - static_cast<int>(succeeded.size());
  return result;
}

void submit_every_second_schedules(TestProducer& producer, const std::string& prefix, int count) {
  for (int index = 0; index < count; ++index) {
    const auto id = fmt::format("tick-{}", index);
    producer.send(prefix + "schedules", id,
                  fmt::format(R"({{"id":"{}","expression":"*/1 * * * * *","misfire":"FIRE_ALL","catchup_window":"120s",)"
                              R"("job_template":{{"noop":{{}}}}}})",
                              id),
                  -1, {{"content-type", "application/json"}});
  }
  producer.flush();
}

TickTally tally_ticks(const std::string& prefix, std::chrono::milliseconds timeout) {
  std::map<std::string, std::map<std::int64_t, int>> emitted;  // schedule -> nominal second -> times
  for (const auto& record : read_topics({prefix + "jobs"}, timeout)) {
    v1::Command command;
    if (!command.ParseFromString(record.value) || !command.has_submit() || !command.submit().has_schedule_run()) continue;
    const auto& run = command.submit().schedule_run();
    ++emitted[run.schedule_id()][run.nominal_instant().seconds()];
  }
  TickTally result;
  result.schedules = static_cast<int>(emitted.size());
  result.shortest_span_s = emitted.empty() ? 0 : std::numeric_limits<std::int64_t>::max();
  for (const auto& [schedule, seconds] : emitted) {
    for (auto second_of = seconds.begin()->first; second_of <= seconds.rbegin()->first; ++second_of) {
      const auto found = seconds.find(second_of);
      ++result.ticks;
      result.missing += found == seconds.end() ? 1 : 0;
      result.doubled += found != seconds.end() && found->second > 1 ? 1 : 0;
    }
    result.shortest_span_s = std::min(result.shortest_span_s, seconds.rbegin()->first - seconds.begin()->first);
  }
  return result;
}

BrokersOverride::BrokersOverride(const std::string& bootstrap) {
  if (const char* value = std::getenv("KCRON_TEST_BROKERS")) {
    previous_ = value;
    had_previous_ = true;
  }
  ::setenv("KCRON_TEST_BROKERS", bootstrap.c_str(), 1);
}

BrokersOverride::~BrokersOverride() {
  if (had_previous_) {
    ::setenv("KCRON_TEST_BROKERS", previous_.c_str(), 1);
  } else {
    ::unsetenv("KCRON_TEST_BROKERS");
  }
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::map<std::string, std::vector<std::int64_t>> succeeded_results(const std::vector<Record>& records) {
  std::map<std::string, std::vector<std::int64_t>> succeeded;
  for (const auto& record : records) {
    v1::Result result;
    if (result.ParseFromString(record.value) && result.state() == v1::SUCCEEDED) {
      succeeded[record.key].push_back(record.timestamp_ms);  // the scoped key: tenants may share ids
    }
  }
  return succeeded;
}

std::string fatal_reason(const std::string& log_path) {
  std::ifstream file(log_path);
  std::string line;
  std::string reason;
  while (std::getline(file, line)) {
    if (line.find("event=fatal") == std::string::npos) continue;
    const auto at = line.find("error=");
    reason = at == std::string::npos ? line : line.substr(at);
  }
  return reason.substr(0, 120);
}

std::string fatal_line(const std::string& log_path) {
  std::ifstream file(log_path);
  std::string line;
  std::string fatal;
  while (std::getline(file, line)) {
    if (line.find("event=fatal") != std::string::npos) fatal = line;
  }
  return fatal;
}

std::string heal_events(const std::string& log_path) {
  return fmt::format("rejoin={} recover={} rewind={}", count_in_log(log_path, "event=rejoin "),
                     count_in_log(log_path, "event=recover "), count_in_log(log_path, "event=rewind "));
}

OwnBroker::OwnBroker(int port, std::string dir, int nodes, std::string host)
    : port_(port), dir_(std::move(dir)), nodes_(nodes), host_(std::move(host)) {
  started_ = run(fmt::format("start --brokers {}", nodes)) == 0;
}

OwnBroker::~OwnBroker() {
  (void)run("wipe");
  if (std::getenv("KCRON_TEST_KEEP_STATE") == nullptr) {
    std::error_code ignored;
    std::filesystem::remove(log(), ignored);
  }
}

int OwnBroker::run(const std::string& arguments) const {
  const auto command =
      fmt::format("KCRON_BROKER_PORT={} KCRON_BROKER_HOST={} KCRON_BROKER_DIR='{}' '{}/scripts/kafka' {} >>'{}' 2>&1 </dev/null",
                  port_, host_, dir_, source_dir(), arguments, log());
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::map<std::int32_t, std::int32_t> OwnBroker::leaders(const std::string& topic) const {
  std::map<std::int32_t, std::int32_t> result;
  auto producer = kafka::make_producer({{"bootstrap.servers", bootstrap()}}, "");
  REQUIRE(producer.ok());
  RdKafka::Metadata* raw = nullptr;
  if ((*producer)->metadata(true, nullptr, &raw, 10000) != RdKafka::ERR_NO_ERROR) return result;
  const std::unique_ptr<RdKafka::Metadata> metadata(raw);
  for (const auto* described : *metadata->topics()) {
    if (described->topic() != topic) continue;
    for (const auto* partition : *described->partitions()) result[partition->id()] = partition->leader();
  }
  return result;
}

std::string OwnBroker::bootstrap() const {
  std::string servers;
  for (int node = 1; node <= nodes_; ++node) servers += fmt::format("{}{}:{}", node > 1 ? "," : "", host_, port_of(node));
  return servers;
}

}  // namespace kcron::testing
