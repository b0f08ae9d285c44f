// kcron-bench-relay: the physical ceiling kcron is measured against. One stage of a raw Kafka
// relay that moves one record per job through kcron's hops with none of its logic: run once as
// `--stage route` (jobs -> exec, where the dispatcher sits) and once as `--stage work` (exec ->
// results, where the worker sits), as two processes. Producer and consumer come from kcron's own
// adapters (same settings), records keep their bytes and key, carry kcron's three headers, and
// keep the submit instant as their timestamp so the collector can date them.
//   --mode txn    one transaction per batch (<= commit interval, <= max batch records), input
//                 offsets sent with send_offsets_to_transaction: the dispatcher's pattern;
//   --mode plain  no transactions; offsets committed asynchronously at the same interval.
// Runs on the main thread until SIGTERM, then commits what it has and leaves the group.
#include <spdlog/spdlog.h>

#include <iostream>
#include <map>

#include "kcron/codec.h"
#include "kcron/kafka.h"
#include "kcron/service.h"
#include "support/bench.h"
#include "support/flags.h"

namespace {

using SteadyClock = std::chrono::steady_clock;
using kcron::Status;

struct Settings {
  std::string brokers;
  std::string group_id;
  std::string transactional_id;  // empty: plain mode
  std::string input_topic;
  std::string output_topic;
  std::string record_type;  // kcron-type header of the output
  std::chrono::milliseconds commit_interval{100};
  std::size_t max_batch_records = 5000;
};

class RelayStage final : public RdKafka::RebalanceCb {
 public:
  explicit RelayStage(Settings settings) : settings_(std::move(settings)) {}
  ~RelayStage() override {
    if (consumer_) consumer_->close();
  }
  RelayStage(const RelayStage&) = delete;
  RelayStage& operator=(const RelayStage&) = delete;

  Status run() {
    if (auto status = start(); !status) return status;
    while (!kcron::stop_requested() && failure_) {
      if (auto status = relay_batch(); !status) return status;
    }
    if (!failure_) return failure_;
    consumer_->close();  // revokes: the rebalance callback commits the open batch
    consumer_.reset();
    spdlog::info("event=stopped relayed={} commits={}", relayed_, commits_);
    return failure_;
  }

  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
      (void)consumer->assign(partitions);
      spdlog::info("event=assigned count={}", partitions.size());
      return;
    }
    if (auto status = commit(); !status) failure_ = status;  // while the generation still accepts our offsets
    (void)consumer->unassign();
    spdlog::info("event=revoked count={}", partitions.size());
  }

 private:
  bool transactional() const { return !settings_.transactional_id.empty(); }

  Status start() {
    kcron::kafka::Properties client = {{"bootstrap.servers", settings_.brokers},
                                       {"client.id", "kcron-bench-relay-" + settings_.record_type}};
    auto producer = kcron::kafka::make_producer(client, settings_.transactional_id);
    if (!producer) return producer.error();
    producer_ = std::move(*producer);
    if (transactional()) {
      if (auto status = kcron::kafka::init_transactions(*producer_, std::chrono::seconds(30)); !status) return status;
    }
    auto properties = client;
    properties["group.id"] = settings_.group_id;
    auto consumer = kcron::kafka::make_consumer(properties, this);
    if (!consumer) return consumer.error();
    consumer_ = std::move(*consumer);
    if (const auto code = consumer_->subscribe({settings_.input_topic}); code != RdKafka::ERR_NO_ERROR) {
      return kcron::kafka::to_error(code, "subscribe to " + settings_.input_topic);
    }
    spdlog::info("event=started input={} output={} transactional={}", settings_.input_topic, settings_.output_topic,
                 transactional());
    return Status::success();
  }

  // Consumes for at most one commit interval (or max batch records), producing as it goes, then
  // commits the batch.
  Status relay_batch() {
    const auto deadline = SteadyClock::now() + settings_.commit_interval;
    std::size_t consumed = 0;
    while (consumed < settings_.max_batch_records && !kcron::stop_requested()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
      if (left <= 0) break;
      std::unique_ptr<RdKafka::Message> message(consumer_->consume(static_cast<int>(left)));
      if (message->err() == RdKafka::ERR__TIMED_OUT) break;
      if (message->err() == RdKafka::ERR__PARTITION_EOF) continue;
      if (message->err() != RdKafka::ERR_NO_ERROR) {
        if (message->err() == RdKafka::ERR__FATAL) return kcron::kafka::to_error(message->err(), "consumer");
        spdlog::warn("event=consume_error error=\"{}\"", message->errstr());
        continue;
      }
      if (transactional() && !in_transaction_) {
        if (auto error = std::unique_ptr<RdKafka::Error>(producer_->begin_transaction())) {
          return kcron::kafka::to_error(*error, "begin_transaction");
        }
        in_transaction_ = true;
      }
      const std::string key = message->key() != nullptr ? *message->key() : std::string();
      kcron::OutRecord record{settings_.output_topic,
                              -1,
                              key,
                              std::string(static_cast<const char*>(message->payload()), message->len()),
                              false,
                              {{std::string(kcron::header::kType), settings_.record_type},
                               {std::string(kcron::header::kJobId), key},
                               {std::string(kcron::header::kContentType), std::string(kcron::header::kProtobuf)}},
                              kcron::kafka::record_timestamp_ms(*message, kcron::bench::wall_ms())};
      if (auto status = kcron::kafka::produce(*producer_, record); !status) return status;
      producer_->poll(0);
      positions_[message->partition()] = message->offset() + 1;
      ++consumed;
      ++relayed_;
    }
    return commit();
  }

  Status commit() {
    if (positions_.empty()) return Status::success();
    std::vector<RdKafka::TopicPartition*> offsets;
    for (const auto& [partition, next] : positions_) {
      offsets.push_back(RdKafka::TopicPartition::create(settings_.input_topic, partition, next));
    }
    std::unique_ptr<RdKafka::Error> error;
    if (transactional()) {
      const int timeout_ms = 10000;
      std::unique_ptr<RdKafka::ConsumerGroupMetadata> group(consumer_->groupMetadata());
      error.reset(producer_->send_offsets_to_transaction(offsets, group.get(), timeout_ms));
      if (!error) error.reset(producer_->commit_transaction(timeout_ms));
      for (int attempt = 0; error && error->is_retriable() && attempt < 3; ++attempt) {
        error.reset(producer_->commit_transaction(timeout_ms));
      }
      in_transaction_ = false;
    } else {
      if (const auto code = consumer_->commitAsync(offsets); code != RdKafka::ERR_NO_ERROR) {
        spdlog::warn("event=commit_error error=\"{}\"", RdKafka::err2str(code));
      }
    }
    RdKafka::TopicPartition::destroy(offsets);
    positions_.clear();
    // The ceiling has no recovery path: a failed transaction fails the benchmark run loudly.
    if (error) return kcron::kafka::to_error(*error, "commit_transaction");
    ++commits_;
    return Status::success();
  }

  Settings settings_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::map<std::int32_t, std::int64_t> positions_;  // input partition -> next offset, this batch
  bool in_transaction_ = false;
  std::uint64_t relayed_ = 0;
  std::uint64_t commits_ = 0;
  Status failure_;
};

}  // namespace

int main(int argc, char** argv) {
  kcron::bench::Flags flags("kcron-bench-relay", "one stage of the raw Kafka relay (the benchmark's ceiling)");
  flags.text("brokers", "127.0.0.1:9092", "bootstrap servers")
      .text("prefix", "", "topic prefix of the run, e.g. bench-1-relay. (required)")
      .text("stage", "route", "route (jobs -> exec.default.normal) | work (exec.default.normal -> results)")
      .text("mode", "txn", "txn (transactions, like kcron) | plain (no transactions)")
      .text("instance-id", "1", "stable instance id: transactional.id suffix")
      .integer("commit-interval-ms", 100, "longest a batch stays open (the dispatcher's commit_interval_ms)")
      .integer("max-batch-records", 5000, "records per batch at most (the dispatcher's max_batch_records)")
      .text("log-level", "info", "log level");
  if (auto status = flags.parse(argc, argv); !status) {
    std::cerr << "kcron-bench-relay: " << status.error().message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  const std::string prefix = flags.get("prefix");
  const std::string stage = flags.get("stage");
  const std::string mode = flags.get("mode");
  if (prefix.empty() || (stage != "route" && stage != "work") || (mode != "txn" && mode != "plain") ||
      flags.get_int("commit-interval-ms") <= 0 || flags.get_int("max-batch-records") <= 0) {
    std::cerr << "kcron-bench-relay: needs --prefix, --stage route|work, --mode txn|plain and positive batch limits\n";
    return 2;
  }
  const std::string exec_topic = prefix + "exec.default.normal";
  Settings settings;
  settings.brokers = flags.get("brokers");
  settings.group_id = prefix + "relay-" + stage;
  if (mode == "txn") settings.transactional_id = prefix + "relay-" + stage + "-" + flags.get("instance-id");
  settings.input_topic = stage == "route" ? prefix + "jobs" : exec_topic;
  settings.output_topic = stage == "route" ? exec_topic : prefix + "results";
  settings.record_type = stage == "route" ? "execution" : "result";
  settings.commit_interval = std::chrono::milliseconds(flags.get_int("commit-interval-ms"));
  settings.max_batch_records = static_cast<std::size_t>(flags.get_int("max-batch-records"));

  kcron::init_logging("bench-relay-" + stage, flags.get("log-level"));
  kcron::install_stop_signals();
  RelayStage relay(settings);
  if (auto status = relay.run(); !status) {
    spdlog::error("event=fatal error=\"{}\"", status.error().message());
    return 1;
  }
  return 0;
}
