// kafka::commit_transaction against librdkafka's in-process mock cluster (rdkafka_mock.h): each
// class of broker error is injected and the outcome the loops act on is checked. No broker needed.
//
// What librdkafka 2.0.2 (Debian 12) makes of the injections, found by experiment (the names
// mislead in places):
//  - Fatal, kFenced: PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE and
//    TRANSACTIONAL_ID_AUTHORIZATION_FAILED on EndTxn; INVALID_PRODUCER_EPOCH on TxnOffsetCommit and
//    on Produce; PRODUCER_FENCED, INVALID_PRODUCER_EPOCH and INVALID_TXN_STATE on
//    AddPartitionsToTxn; INVALID_TXN_STATE and TRANSACTIONAL_ID_AUTHORIZATION_FAILED on
//    AddOffsetsToTxn; OUT_OF_ORDER_SEQUENCE_NUMBER on Produce. With the delivery reports awaited, a
//    fatal error of AddPartitionsToTxn or Produce comes back from the abort that the failed
//    delivery starts.
//  - Abortable although named like a fence: PRODUCER_FENCED on Produce, AddOffsetsToTxn and
//    TxnOffsetCommit. Abortable too: UNKNOWN_PRODUCER_ID on AddPartitionsToTxn, Produce and EndTxn;
//    REQUEST_TIMED_OUT on EndTxn (an abort, not an unknown outcome); OPERATION_NOT_ATTEMPTED and
//    TOPIC_AUTHORIZATION_FAILED on AddPartitionsToTxn (awaited, both show as purge reports only;
//    not awaited, the latter comes back from send_offsets as a refusal); GROUP_AUTHORIZATION_FAILED
//    on AddOffsetsToTxn; UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID and
//    GROUP_AUTHORIZATION_FAILED on TxnOffsetCommit. Even COORDINATOR_LOAD_IN_PROGRESS or
//    UNKNOWN_TOPIC_OR_PART on TxnOffsetCommit fail the transaction (abortable, after about a
//    second) rather than being retried to success.
//  - Retried inside librdkafka, so they commit: a few COORDINATOR_LOAD_IN_PROGRESS on
//    AddOffsetsToTxn or EndTxn, CONCURRENT_TRANSACTIONS on AddPartitionsToTxn, NOT_ENOUGH_REPLICAS
//    on Produce, a dropped connection on EndTxn. Pushed more often than fits in the call's timeout
//    (COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS), or an answer delayed
//    past it (an RTT), the call returns a retriable "timed out, retry call to resume": from
//    send_offsets an abort, from commit kUnknown. Calling again resumes the same request, so a retry
//    commits once the delayed answer comes.
//  - A record refused for what it is (MSG_SIZE_TOO_LARGE, INVALID_RECORD,
//    TOPIC_AUTHORIZATION_FAILED on Produce) leaves the partition's sequence numbers one ahead of
//    the broker's: the next transaction writing to that partition aborts too, not refused, with
//    OUT_OF_ORDER_SEQUENCE_NUMBER ("skipped sequence numbers", seen as purge reports), and the
//    epoch bump of that abort lets the one after commit. The Kafka 4.1 broker of the integration
//    tier does the same for a record over the topic's max.message.bytes. After
//    TOPIC_AUTHORIZATION_FAILED on Produce, produce() itself refuses the topic from then on.
//  - The mock keeps no offsets from TxnOffsetCommit (OffsetFetch answers none), writes no
//    transaction markers (read_committed reads aborted records too) and gives a second producer
//    of a transactional.id a new producer id instead of fencing the first. So these tests check
//    outcomes, that committed records are readable and that the producer goes on; that aborted
//    records stay hidden and offsets commit is for the integration tier.
#include "kcron/transaction.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kcron/fault_points.h"
#include "kcron/kafka.h"

namespace {

using kcron::OutRecord;
using kcron::kafka::commit_transaction;
using kcron::kafka::DeliveryReports;
using kcron::kafka::PartitionList;
using kcron::kafka::Properties;
using kcron::kafka::TransactionOptions;
using kcron::kafka::TransactionOutcome;
using kcron::kafka::TransactionResult;
using Millis = std::chrono::milliseconds;

// Kafka protocol request keys (rdkafka_protocol.h is not installed).
constexpr std::int16_t kProduce = 0;
constexpr std::int16_t kAddPartitionsToTxn = 24;
constexpr std::int16_t kAddOffsetsToTxn = 25;
constexpr std::int16_t kEndTxn = 26;
constexpr std::int16_t kTxnOffsetCommit = 28;

const std::string kTransactionalId = "txn-test";
const std::string kGroup = "group-test";
constexpr std::int32_t kBrokers = 3;

// Three mock brokers; "out" has partition 0 led by broker 1 and partition 1 by broker 2. One
// cluster serves every test of the process: 2.0.2's mock thread misses the wake-up of every
// admin call after its first (topic and leader changes wait for its 1 s poll), while error
// injection takes a lock and is immediate. Each Session clears the cluster-wide injections it
// left, and writes keys of its own.
class MockCluster {
 public:
  MockCluster() {
    char error[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", error, sizeof error);
    owner_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    REQUIRE(owner_ != nullptr);
    cluster_ = rd_kafka_mock_cluster_new(owner_, kBrokers);
    REQUIRE(cluster_ != nullptr);
    REQUIRE(rd_kafka_mock_topic_create(cluster_, "out", 2, kBrokers) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_partition_set_leader(cluster_, "out", 0, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
    REQUIRE(rd_kafka_mock_partition_set_leader(cluster_, "out", 1, 2) == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(owner_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  static MockCluster& shared() {
    static MockCluster cluster;
    return cluster;
  }

  rd_kafka_mock_cluster_t* get() { return cluster_; }
  Properties client(const std::string& client_id) const {
    return {{"bootstrap.servers", rd_kafka_mock_cluster_bootstraps(cluster_)}, {"client.id", client_id}};
  }

 private:
  rd_kafka_t* owner_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

// An error (or a delay) the mock answers a request with.
struct Injection {
  std::string name;
  std::function<void(rd_kafka_mock_cluster_t*)> apply;
};

Injection fail(std::string name, std::int16_t api, rd_kafka_resp_err_t code, std::size_t times = 1) {
  return {std::move(name), [=](rd_kafka_mock_cluster_t* cluster) {
            const std::vector<rd_kafka_resp_err_t> codes(times, code);
            rd_kafka_mock_push_request_errors_array(cluster, api, codes.size(), codes.data());
          }};
}

// Delays the coordinator's next answer to `api`. Pushed on every broker: only the transaction
// coordinator receives EndTxn and AddOffsetsToTxn (the others keep theirs unused).
Injection delay(std::string name, std::int16_t api, int rtt_ms) {
  return {std::move(name), [=](rd_kafka_mock_cluster_t* cluster) {
            for (std::int32_t broker = 1; broker <= kBrokers; ++broker) {
              REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(cluster, broker, api, 1, RD_KAFKA_RESP_ERR_NO_ERROR, rtt_ms) ==
                      RD_KAFKA_RESP_ERR_NO_ERROR);
            }
          }};
}

// A transactional producer with its delivery reports, and a consumer of `kGroup` whose group
// metadata goes with the offsets.
struct Session {
  MockCluster& cluster = MockCluster::shared();
  std::string prefix;                                            // of this session's record keys
  std::vector<std::pair<std::int32_t, std::int64_t>> delivered;  // partition, offset
  DeliveryReports deliveries{
      [this](RdKafka::Message& message) { delivered.emplace_back(message.partition(), message.offset()); }};
  Properties producer_properties;
  std::unique_ptr<RdKafka::Producer> producer;
  std::unique_ptr<RdKafka::Topic> out_topic;  // keeps the producer's metadata of "out"
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;

  explicit Session(const Properties& extra = {}) {
    static int sessions = 0;
    prefix = "s" + std::to_string(++sessions) + "-";
    spdlog::set_level(spdlog::level::off);
    producer_properties = cluster.client("producer");
    for (const auto& [name, value] : extra) producer_properties[name] = value;
    renew_producer();
    auto properties = cluster.client("consumer");
    properties["group.id"] = kGroup;
    auto made = kcron::kafka::make_consumer(properties);
    REQUIRE(made);
    consumer = std::move(*made);
  }
  ~Session() {
    for (const auto api : {kProduce, kAddPartitionsToTxn, kAddOffsetsToTxn, kEndTxn, kTxnOffsetCommit}) {
      rd_kafka_mock_clear_request_errors(cluster.get(), api);
    }
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // A new producer of the same transactional id, as a loop makes one after kFenced or kUnknown.
  void renew_producer() {
    out_topic.reset();
    producer.reset();
    auto made = kcron::kafka::make_transactional_producer(producer_properties, kTransactionalId, Millis(5000), &deliveries);
    REQUIRE(made);
    producer = std::move(*made);
    // Learn the topic now: the first produce to an unknown topic waits a second for its metadata.
    std::string error;
    out_topic.reset(RdKafka::Topic::create(producer.get(), "out", nullptr, error));
    RdKafka::Metadata* metadata = nullptr;
    REQUIRE(producer->metadata(false, out_topic.get(), &metadata, 5000) == RdKafka::ERR_NO_ERROR);
    delete metadata;
  }

  OutRecord record(std::int32_t partition, const std::string& key) const {
    return {"out", partition, prefix + key, "value of " + key, false, {}, 0};
  }
  // Records 0 and 2 go to out[0], record 1 alone to out[1].
  std::vector<OutRecord> three_records() const { return {record(0, "k0"), record(1, "k1"), record(0, "k2")}; }

  TransactionOptions options(bool awaited, Millis timeout = Millis(1000), int retries = 1) {
    TransactionOptions options;
    options.timeout = timeout;
    options.retries = retries;
    options.deliveries = awaited ? &deliveries : nullptr;
    return options;
  }

  TransactionResult run(const std::vector<OutRecord>& records, const TransactionOptions& options) {
    PartitionList offsets;
    offsets.items.push_back(RdKafka::TopicPartition::create("in", 0, 10));
    return commit_transaction(*producer, *consumer, records, offsets.items, options);
  }

  // This session's keys a read_committed consumer reads from "out", until it has `expected` of
  // them (or 3 s pass), without the prefix.
  std::vector<std::string> read_keys(std::size_t expected) {
    auto properties = cluster.client("reader");
    properties["group.id"] = "reader";
    auto made = kcron::kafka::make_consumer(properties);
    REQUIRE(made);
    auto& reader = **made;
    std::vector<RdKafka::TopicPartition*> partitions = {
        RdKafka::TopicPartition::create("out", 0, RdKafka::Topic::OFFSET_BEGINNING),
        RdKafka::TopicPartition::create("out", 1, RdKafka::Topic::OFFSET_BEGINNING)};
    const auto code = reader.assign(partitions);
    RdKafka::TopicPartition::destroy(partitions);
    REQUIRE(code == RdKafka::ERR_NO_ERROR);
    std::vector<std::string> keys;
    const auto deadline = std::chrono::steady_clock::now() + Millis(3000);
    while (keys.size() < expected && std::chrono::steady_clock::now() < deadline) {
      std::unique_ptr<RdKafka::Message> message(reader.consume(50));
      if (message->err() != RdKafka::ERR_NO_ERROR || message->key() == nullptr) continue;
      if (message->key()->rfind(prefix, 0) == 0) keys.push_back(message->key()->substr(prefix.size()));
    }
    reader.close();
    std::sort(keys.begin(), keys.end());
    return keys;
  }
};

std::string describe(const TransactionResult& result) {
  return std::string(kcron::kafka::outcome_name(result.outcome)) + (result.refused ? " refused" : "") + ": " + result.reason;
}

}  // namespace

TEST_CASE("a transaction commits its records and reports each delivery", "[transaction]") {
  Session session;
  const auto result = session.run(session.three_records(), session.options(true));
  INFO(describe(result));
  CHECK(result.outcome == TransactionOutcome::kCommitted);
  CHECK(result.reason.empty());
  CHECK_FALSE(result.refused);
  // Awaited deliveries are all in before the commit: two records on partition 0, one on 1.
  REQUIRE(session.delivered.size() == 3);
  std::sort(session.delivered.begin(), session.delivered.end());
  CHECK(session.delivered[0].first == 0);
  CHECK(session.delivered[1].first == 0);
  CHECK(session.delivered[1].second == session.delivered[0].second + 1);
  CHECK(session.delivered[2].first == 1);
  CHECK(session.delivered[2].second >= 0);
  CHECK(session.read_keys(3) == std::vector<std::string>{"k0", "k1", "k2"});
  // Without awaiting, it commits too (the commit flushes).
  CHECK(session.run({session.record(1, "k3")}, session.options(false)).outcome == TransactionOutcome::kCommitted);
  CHECK(session.read_keys(4) == std::vector<std::string>{"k0", "k1", "k2", "k3"});
}

TEST_CASE("awaited deliveries are all reported before the offsets are sent", "[transaction]") {
  const bool awaited = GENERATE(true, false);
  INFO((awaited ? "deliveries awaited" : "deliveries not awaited"));
  Session session;
  // out[0]'s records are answered after 500 ms, and sending the offsets then fails fatally: what
  // was reported by then is what was awaited before the offsets went.
  REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(session.cluster.get(), 1, kProduce, 1, RD_KAFKA_RESP_ERR_NO_ERROR, 500) ==
          RD_KAFKA_RESP_ERR_NO_ERROR);
  fail("AddOffsetsToTxn TRANSACTIONAL_ID_AUTHORIZATION_FAILED", kAddOffsetsToTxn,
       RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
      .apply(session.cluster.get());
  // A generous timeout: the await must end because every report came, not because time ran out.
  const auto result = session.run(session.three_records(), session.options(awaited, Millis(5000)));
  INFO(describe(result));
  CHECK(result.outcome == TransactionOutcome::kFenced);
  if (awaited) {
    CHECK(session.delivered.size() == 3);
  } else {
    CHECK(session.delivered.size() < 3);
  }
}

TEST_CASE("an abortable error aborts and the same producer commits the next transaction", "[transaction]") {
  const auto injection = GENERATE(values<Injection>({
      fail("AddPartitionsToTxn OPERATION_NOT_ATTEMPTED", kAddPartitionsToTxn, RD_KAFKA_RESP_ERR_OPERATION_NOT_ATTEMPTED),
      fail("Produce UNKNOWN_PRODUCER_ID", kProduce, RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID),
      fail("AddOffsetsToTxn GROUP_AUTHORIZATION_FAILED", kAddOffsetsToTxn, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED),
      fail("TxnOffsetCommit ILLEGAL_GENERATION", kTxnOffsetCommit, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION),
      fail("TxnOffsetCommit PRODUCER_FENCED", kTxnOffsetCommit, RD_KAFKA_RESP_ERR_PRODUCER_FENCED),
      fail("EndTxn UNKNOWN_PRODUCER_ID", kEndTxn, RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID),
      fail("EndTxn REQUEST_TIMED_OUT", kEndTxn, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT),
  }));
  const bool awaited = GENERATE(true, false);
  INFO(injection.name << (awaited ? ", deliveries awaited" : ", deliveries not awaited"));
  Session session;
  injection.apply(session.cluster.get());
  const auto result = session.run(session.three_records(), session.options(awaited));
  INFO(describe(result));
  CHECK(result.outcome == TransactionOutcome::kAborted);
  CHECK_FALSE(result.reason.empty());
  CHECK_FALSE(result.refused);
  // Awaited, a failed delivery aborts at once and gives its reason.
  if (awaited && injection.name.rfind("Produce", 0) == 0) CHECK_THAT(result.reason, Catch::StartsWith("delivery to out failed"));
  const auto next = session.run(session.three_records(), session.options(awaited));
  INFO("next: " << describe(next));
  CHECK(next.outcome == TransactionOutcome::kCommitted);
}

TEST_CASE("a fatal error is kFenced until a new producer takes over", "[transaction]") {
  const auto injection = GENERATE(values<Injection>({
      fail("EndTxn PRODUCER_FENCED", kEndTxn, RD_KAFKA_RESP_ERR_PRODUCER_FENCED),
      fail("EndTxn INVALID_PRODUCER_EPOCH", kEndTxn, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH),
      fail("EndTxn INVALID_TXN_STATE", kEndTxn, RD_KAFKA_RESP_ERR_INVALID_TXN_STATE),
      fail("AddOffsetsToTxn TRANSACTIONAL_ID_AUTHORIZATION_FAILED", kAddOffsetsToTxn,
           RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
      fail("TxnOffsetCommit INVALID_PRODUCER_EPOCH", kTxnOffsetCommit, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH),
      fail("AddPartitionsToTxn PRODUCER_FENCED", kAddPartitionsToTxn, RD_KAFKA_RESP_ERR_PRODUCER_FENCED),
      fail("Produce INVALID_PRODUCER_EPOCH", kProduce, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH),
  }));
  const bool awaited = GENERATE(true, false);
  INFO(injection.name << (awaited ? ", deliveries awaited" : ", deliveries not awaited"));
  Session session;
  injection.apply(session.cluster.get());
  const auto result = session.run(session.three_records(), session.options(awaited));
  INFO(describe(result));
  CHECK(result.outcome == TransactionOutcome::kFenced);
  CHECK_FALSE(result.reason.empty());
  const auto next = session.run(session.three_records(), session.options(awaited));
  INFO("next: " << describe(next));
  CHECK(next.outcome == TransactionOutcome::kFenced);
  // A fatal error that came back from the commit itself leaves the producer unable to begin.
  if (injection.name.rfind("EndTxn", 0) == 0) CHECK_THAT(next.reason, Catch::StartsWith("begin_transaction"));
  session.renew_producer();
  CHECK(session.run(session.three_records(), session.options(awaited)).outcome == TransactionOutcome::kCommitted);
}

TEST_CASE("a commit that outlasts its timeout is kUnknown and a new producer of the id commits again", "[transaction]") {
  const auto injection = GENERATE(values<Injection>({
      fail("EndTxn COORDINATOR_LOAD_IN_PROGRESS x100", kEndTxn, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, 100),
      fail("EndTxn NOT_COORDINATOR x100", kEndTxn, RD_KAFKA_RESP_ERR_NOT_COORDINATOR, 100),
      delay("EndTxn answered after 2 s", kEndTxn, 2000),
  }));
  INFO(injection.name);
  Session session;
  injection.apply(session.cluster.get());
  const auto started = std::chrono::steady_clock::now();
  const auto result = session.run(session.three_records(), session.options(true, Millis(300), 1));
  INFO(describe(result));
  CHECK(result.outcome == TransactionOutcome::kUnknown);
  CHECK_THAT(result.reason, Catch::StartsWith("commit_transaction"));
  // Bounded by the retries (two calls of 300 ms), not by librdkafka's retries of the 100 errors; a
  // wide margin for a loaded machine.
  CHECK(std::chrono::steady_clock::now() - started < Millis(4000));
  rd_kafka_mock_clear_request_errors(session.cluster.get(), kEndTxn);
  session.renew_producer();
  const auto next = session.run(session.three_records(), session.options(true));
  INFO("next: " << describe(next));
  CHECK(next.outcome == TransactionOutcome::kCommitted);
}

TEST_CASE("a commit that timed out is resumed by a retry", "[transaction]") {
  Session session;
  delay("EndTxn answered after 1 s", kEndTxn, 1000).apply(session.cluster.get());
  SECTION("with retries left it commits when the answer comes") {
    const auto result = session.run(session.three_records(), session.options(true, Millis(400), 3));
    INFO(describe(result));
    CHECK(result.outcome == TransactionOutcome::kCommitted);
  }
  SECTION("without retries the outcome is unknown") {
    const auto result = session.run(session.three_records(), session.options(true, Millis(400), 0));
    INFO(describe(result));
    CHECK(result.outcome == TransactionOutcome::kUnknown);
  }
}

TEST_CASE("a retriable send_offsets is retried and aborts once its retries are spent", "[transaction]") {
  Session session;
  delay("AddOffsetsToTxn answered after 1 s", kAddOffsetsToTxn, 1000).apply(session.cluster.get());
  SECTION("with retries left it commits when the answer comes") {
    const auto result = session.run(session.three_records(), session.options(true, Millis(400), 3));
    INFO(describe(result));
    CHECK(result.outcome == TransactionOutcome::kCommitted);
  }
  SECTION("without retries it aborts, and the producer commits the next transaction") {
    const auto result = session.run(session.three_records(), session.options(true, Millis(400), 0));
    INFO(describe(result));
    CHECK(result.outcome == TransactionOutcome::kAborted);
    CHECK_THAT(result.reason, Catch::StartsWith("send_offsets_to_transaction"));
    const auto next = session.run(session.three_records(), session.options(true));
    INFO("next: " << describe(next));
    CHECK(next.outcome == TransactionOutcome::kCommitted);
  }
}

TEST_CASE("a record the broker refuses aborts the transaction and is named by its index", "[transaction]") {
  const bool awaited = GENERATE(true, false);
  INFO((awaited ? "deliveries awaited" : "deliveries not awaited"));
  Session session;
  // Broker 2 leads out[1], where records[1] is alone in its producer batch.
  REQUIRE(rd_kafka_mock_broker_push_request_error_rtts(session.cluster.get(), 2, kProduce, 1,
                                                       RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);
  const auto result = session.run(session.three_records(), session.options(awaited));
  INFO(describe(result));
  CHECK(result.outcome == TransactionOutcome::kAborted);
  CHECK(result.refused);
  CHECK_THAT(result.reason, Catch::Contains("Message size too large"));
  if (awaited) {
    CHECK(result.refused_record == std::optional<std::size_t>(1));
  } else {
    CHECK_FALSE(result.refused_record);  // only a delivery report names the record
  }
  // Without it (out[1] still written), a transaction commits within two: the first may abort on
  // the sequence gap the refusal left, but never as a refusal of an innocent record.
  const std::vector<OutRecord> rest = {session.record(0, "k0"), session.record(1, "k3")};
  auto next = session.run(rest, session.options(awaited));
  INFO("next: " << describe(next));
  CHECK_FALSE(next.refused);
  if (next.outcome == TransactionOutcome::kAborted) next = session.run(rest, session.options(awaited));
  INFO("then: " << describe(next));
  CHECK(next.outcome == TransactionOutcome::kCommitted);
}

TEST_CASE("a record over message.max.bytes is refused before it is sent", "[transaction]") {
  const bool awaited = GENERATE(true, false);
  INFO((awaited ? "deliveries awaited" : "deliveries not awaited"));
  Session session(Properties{{"message.max.bytes", "1000"}});
  auto records = session.three_records();
  records[2].value = std::string(1500, 'x');
  const auto result = session.run(records, session.options(awaited));
  INFO(describe(result));
  CHECK(result.outcome == TransactionOutcome::kAborted);
  CHECK(result.refused);
  CHECK(result.refused_record == std::optional<std::size_t>(2));
  CHECK_THAT(result.reason, Catch::Contains("produce to out"));
  records.pop_back();
  const auto next = session.run(records, session.options(awaited));
  INFO("next: " << describe(next));
  CHECK(next.outcome == TransactionOutcome::kCommitted);
}

TEST_CASE("the fault points answer kUnknown before the commit and after it", "[transaction]") {
  ::setenv("KCRON_FAULT_POINTS", "txn-test.after_offsets:unknown,txn-test.after_commit:unknown", 1);
  kcron::fault::init_from_environment();
  ::unsetenv("KCRON_FAULT_POINTS");
  Session session;
  auto options = session.options(true);
  options.program = "txn-test";
  const auto not_sent = session.run(session.three_records(), options);
  INFO(describe(not_sent));
  CHECK(not_sent.outcome == TransactionOutcome::kUnknown);
  CHECK_THAT(not_sent.reason, Catch::Contains("(not sent)"));
  session.renew_producer();  // as a loop does on kUnknown; its init_transactions ends the open one
  const auto committed = session.run(session.three_records(), options);
  INFO(describe(committed));
  CHECK(committed.outcome == TransactionOutcome::kUnknown);
  CHECK_THAT(committed.reason, Catch::Contains("(committed)"));
  session.renew_producer();
  CHECK(session.run(session.three_records(), options).outcome == TransactionOutcome::kCommitted);  // each point fires once
}
