// Integration-test support: a fresh topic prefix per test on the real broker, kcron programs as
// child processes (killed with SIGKILL or stopped with SIGTERM), a producer that can route like a
// non-Java client, and a read_committed reader that collects what a topic holds.
// Every wait here is bounded in time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kcron/kafka.h"

namespace kcron::testing {

std::string brokers();  // KCRON_TEST_BROKERS, default 127.0.0.1:9092

// The secured broker (scripts/kafka --secure), chosen by KCRON_TEST_SECURE=1 (the `security`
// tier's CTest property): KCRON_TEST_SECURE_BROKERS is its mTLS listener, KCRON_TEST_SECURE_TLS its
// certificate dir (without them such a test prints KCRON-SKIP and stops). Then brokers() is the
// mTLS listener, the test's own clients (readers, producers, the CLI)
// connect as User:admin and the programs as User:kcron, whose ACLs each TestEnv writes for its
// prefix. Empty: the plaintext broker.
std::string secure_tls_dir();
// The test's own client properties: bootstrap.servers and, on the secured broker, admin's TLS.
kafka::Properties test_client_properties(const kafka::Properties& extra = {});
// KCRON_KAFKA_* variables of an mTLS identity (`kcron`, `admin`, a tenant's files) for programs.
std::vector<std::string> tls_env(const std::string& certificate, const std::string& key);

// A test's own namespace on the broker: prefix, topics (small partition counts), state dirs.
struct TestEnv {
  // Topics are created on brokers() with `replication_factor` replicas.
  explicit TestEnv(const std::string& name, int jobs_partitions = 4, int exec_partitions = 2, int replication_factor = 1);
  ~TestEnv();
  TestEnv(const TestEnv&) = delete;
  TestEnv& operator=(const TestEnv&) = delete;

  std::string prefix;
  std::string state_root;
  int jobs_partitions;
  int exec_partitions;
  // Environment for a kcron program of this test.
  std::vector<std::string> program_env(const std::string& instance_id) const;
};

// A Kafka-native tenant's input topics for kcron-relay (docs/relay.md), as `kcron tenant create
// NAME --kafka` makes them without the ACLs: `<prefix>in.<tenant>` (delete) and
// `<prefix>in.<tenant>.schedules` (compacted), `partitions` each.
void create_tenant_input_topics(const TestEnv& env, const std::string& tenant, int partitions = 2);

class Process {
 public:
  // `netns`: the name of a network namespace (ip netns) the program runs in; empty: this one.
  Process(const std::string& program, const std::vector<std::string>& env, const std::string& log_path,
          const std::string& netns = "");
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  void kill_hard();                                                             // SIGKILL and reap
  int terminate(std::chrono::milliseconds timeout = std::chrono::seconds(30));  // SIGTERM, wait; exit code
  bool running();
  // Waits (bounded) for the process to exit by itself; its exit code (128 + signal when killed
  // by one), or nullopt if it still runs after `timeout`. Also answers after running() reaped it.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;  // set when the process was reaped after exiting by itself
  std::string log_path_;
};

struct Record {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  std::int64_t timestamp_ms = -1;  // the record's timestamp (CreateTime: when its producer produced it); -1 if none
};

// Produces (non-transactionally) and flushes. `partitioner` is a librdkafka partitioner name.
class TestProducer {
 public:
  explicit TestProducer(const std::string& partitioner = "murmur2_random");
  ~TestProducer();
  TestProducer(const TestProducer&) = delete;
  TestProducer& operator=(const TestProducer&) = delete;
  void send(const std::string& topic, const std::string& key, const std::string& value, std::int32_t partition = -1,
            const std::vector<std::pair<std::string, std::string>>& headers = {});
  // A null value (a delete on a compacted topic).
  void send_tombstone(const std::string& topic, const std::string& key, std::int32_t partition);
  void flush();
  void poll();  // serve delivery reports and send what is queued, without waiting
  // The partition librdkafka chose for the last record with this key (from the delivery report).
  std::int32_t partition_of(const std::string& key) const;

 private:
  struct Reports;
  std::unique_ptr<Reports> reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
};

// Reads every committed record of the topics, until `until` returns true or the timeout passes.
std::vector<Record> read_topics(const std::vector<std::string>& topics, std::chrono::milliseconds timeout,
                                const std::function<bool(const std::vector<Record>&)>& until = nullptr);

// Deletes every record now on the topic (Kafka's DeleteRecords up to each partition's end), as
// retention would: the topic's cleanup.policy must include delete. Fails the test otherwise.
void delete_all_records(const std::string& topic);

// Deletes the topics (Kafka's DeleteTopics); fails the test when one is not deleted.
void delete_topics(const std::vector<std::string>& topics);

// Exec topics (all queues and bands) of a prefix.
std::vector<std::string> exec_topics(const std::string& prefix);

std::map<std::string, int> count_by_key(const std::vector<Record>& records);

// Waits (bounded) until the process's log contains `needle`; false if it exits first.
bool wait_for_log(Process& process, const std::string& needle, std::chrono::milliseconds timeout);
int count_in_log(const std::string& path, const std::string& needle);

// A one-line JSON submit of a noop job; `when_json` like "\"delay\":\"3s\"" or empty.
std::string submit_json(const std::string& id, const std::string& when_json);
std::string delay_json(std::int64_t delay_ms);

// Exactly-once tally of committed exec records for ids prefix-0 .. prefix-(count-1).
struct Tally {
  int sent = 0;
  int once = 0;
  int lost = 0;
  int duplicated = 0;
  std::string line(const std::string& scenario) const;
};
Tally tally(const std::vector<Record>& exec, const std::string& id_prefix, int count);

// One fault scenario's outcome: appended as a JSON line to $KCRON_FAULT_REPORT when set (the
// scripts/fault runner prints them as a table) and returned as a one-line summary for WARN.
// `recovery_s` < 0 means not measured; `detail` is free text (key=value pairs).
std::string report_fault(const std::string& scenario, int sent, int once, int lost, int duplicated, double recovery_s,
                         const std::string& detail = "");
std::string report_fault(const std::string& scenario, const Tally& tally, double recovery_s, const std::string& detail = "");
// Reads the exec topics until every id has fired or the timeout passes, then once more after
// `settle` so late duplicates show.
std::vector<Record> read_exec_until_all(const std::string& prefix, const std::string& id_prefix, int count,
                                        std::chrono::milliseconds timeout,
                                        std::chrono::milliseconds settle = std::chrono::seconds(2));

std::string program_path(const std::string& name);

// Runs the `kcron` CLI on the test's prefix and broker; stdout and stderr together.
struct CliRun {
  int exit_code = -1;
  std::string output;
};
CliRun run_cli(const TestEnv& env, const std::string& arguments);

// The /metrics port a program logged (`event=http_listening ... port=N`), waiting for it.
int http_port_of(Process& process, std::chrono::milliseconds timeout = std::chrono::seconds(30));
// One Prometheus sample's value from a /metrics body (exact series, e.g. `name{label="x"}`); -1 if absent.
double metric_value(const std::string& metrics, const std::string& series);
std::string tail_file(const std::string& path, std::size_t lines = 40);

// Scenarios that need what the machine may not grant (root for mount, libfaketime, a broker of
// their own): `skip_scenario` prints `KCRON-SKIP: <reason>` (CTest marks the test skipped via
// SKIP_REGULAR_EXPRESSION, see tests/CMakeLists.txt); with KCRON_REQUIRE_PRIVILEGED=1 it fails
// instead, so a CI that has the privileges cannot silently skip.
void skip_scenario(const std::string& reason);

// The size of a fault scenario: KCRON_FAULT_JOBS when set (scripts/fault --large sets 100000),
// else the scenario's CI size.
int fault_jobs(int ci_default);
// Every-second schedules for a cron scenario that runs about `seconds` of ticks: enough for
// KCRON_FAULT_JOBS ticks when set, else the CI count.
int fault_schedules(int ci_default, int seconds);

// Starts a kcron program of the test (log <state_root>/<log_name>.log, env of `instance` plus
// `extra`) and, unless `wait_assigned` is false, waits (60 s) for its first assignment.
std::unique_ptr<Process> start_program(const TestEnv& env, const std::string& program, const std::string& instance,
                                       const std::string& log_name, const std::vector<std::string>& extra = {},
                                       bool wait_assigned = true);

// Exactly-once tally of SUCCEEDED results (by job id, those starting with `id_prefix`) on the
// results topic: reads until `count` ids succeeded or `timeout`, then again after `settle` so late duplicates show. lost = ids
// without one; duplicated = ids with more than one.
Tally read_succeeded_until_all(const std::string& prefix, const std::string& id_prefix, int count,
                               std::chrono::milliseconds timeout, std::chrono::milliseconds settle = std::chrono::seconds(3));

// `count` schedules tick-0.. firing every second (FIRE_ALL, noop jobs) on <prefix>schedules.
void submit_every_second_schedules(TestProducer& producer, const std::string& prefix, int count);
// Every tick each schedule emitted to <prefix>jobs (read_committed), from its first to its last
// emitted second: `ticks` seconds in all, `missing` of them never emitted, `doubled` emitted twice.
struct TickTally {
  int schedules = 0;
  int ticks = 0;
  int missing = 0;
  int doubled = 0;
  std::int64_t shortest_span_s = 0;  // first to last emitted second, of the schedule with the fewest
  int once() const { return ticks - missing - doubled; }
};
TickTally tally_ticks(const std::string& prefix, std::chrono::milliseconds timeout);

// Points brokers() (KCRON_TEST_BROKERS) at a broker of the test's own for the test's lifetime;
// each CTest entry is its own process, so no other test sees it.
struct BrokersOverride {
  explicit BrokersOverride(const std::string& bootstrap);
  ~BrokersOverride();
  BrokersOverride(const BrokersOverride&) = delete;
  BrokersOverride& operator=(const BrokersOverride&) = delete;

 private:
  std::string previous_;
  bool had_previous_ = false;
};

double seconds_since(std::chrono::steady_clock::time_point start);
std::int64_t wall_ms();  // the system clock, ms since the epoch

// Job key (the job id, `<tenant>~<id>` for a non-default tenant) -> timestamps of its SUCCEEDED
// results on the results topic.
std::map<std::string, std::vector<std::int64_t>> succeeded_results(const std::vector<Record>& records);

// The `error="…"` of the last `event=fatal` line of a program's log (at most 120 characters), else "".
std::string fatal_reason(const std::string& log_path);
// The whole last `event=fatal` line of a program's log (empty when there is none).
std::string fatal_line(const std::string& log_path);
// How often a program healed itself in place, from its log: rejoins, recoveries and rewinds (the
// vocabulary of kafka::LoopCounters; every program logs them alike).
std::string heal_events(const std::string& log_path);

// The source tree (scripts/kafka lives in it).
std::string source_dir();

// A Kafka cluster of the test's own (scripts/kafka with its own port and data dir), for scenarios
// that stop, kill and restart brokers. The destructor stops every node and deletes the data dir.
class OwnBroker {
 public:
  // `port` is node 1's client port; node N uses port + 2(N-1) (and the next port for its controller).
  // `host`: the IPv4 address its client listeners bind and advertise (KCRON_BROKER_HOST).
  OwnBroker(int port, std::string dir, int nodes, std::string host = "127.0.0.1");
  ~OwnBroker();
  OwnBroker(const OwnBroker&) = delete;
  OwnBroker& operator=(const OwnBroker&) = delete;
  // Runs `scripts/kafka <arguments>` for this cluster; its exit code. Output goes to log().
  int run(const std::string& arguments) const;
  bool started() const { return started_; }
  std::string bootstrap() const;
  std::string log() const { return dir_ + ".log"; }
  int nodes() const { return nodes_; }
  int port_of(int node) const { return port_ + 2 * (node - 1); }
  // Partition -> leader (broker id = scripts/kafka node number) of `topic`, internal topics included,
  // from the cluster's metadata; empty if it has no such topic.
  std::map<std::int32_t, std::int32_t> leaders(const std::string& topic) const;

 private:
  int port_;
  std::string dir_;
  int nodes_;
  std::string host_;
  bool started_ = false;
};

}  // namespace kcron::testing
