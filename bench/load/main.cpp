// kcron-bench-load: the benchmark's load generator. Produces N submit Commands (Protobuf, the size
// of a typical kcron job, key = job id, murmur2 partitioner, batched by linger) to a jobs topic, at
// a target rate or as fast as the producer goes, due now, at instants spread at a rate, or all at
// one instant. Prints a one-line JSON summary: first and last send, last acknowledgement, rate.
// With --batch N the same jobs go as batch records (Command.batch) of up to N jobs, each written to
// the partition that owns its jobs (as `kcron submit --batch` does), so no dispatcher forwards them;
// --plan prints how many records that makes without producing anything.
#include <atomic>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "kcron.pb.h"
#include "kcron/codec.h"
#include "kcron/kafka.h"
#include "kcron/routing.h"
#include "kcron/service.h"
#include "kcron/tenant.h"
#include "support/bench.h"
#include "support/flags.h"

namespace {

using SteadyClock = std::chrono::steady_clock;

struct Options {
  std::string brokers = "127.0.0.1:9092";
  std::string topic;
  std::string id_prefix = "bench";
  std::int64_t count = 10000;
  double rate = 0;           // jobs per second; 0: as fast as possible
  std::string due = "now";   // now | spread | instant
  std::int64_t lead_ms = 0;  // spread: the first job is due this long after the start
  std::int64_t due_at_ms = 0;
  double due_rate = 0;  // spread: due instants per second (default: rate)
  std::size_t payload_bytes = 100;
  std::string label_key;  // when set, job i carries the label <key>=v<i % label_values>
  std::int64_t label_values = 10;
  std::string linger_ms = "5";
  std::string summary_path = "-";
  std::int64_t batch = 0;  // jobs per batch record; 0: a record per job
  bool plan = false;       // print the record count of the run and produce nothing
};

// Counts acknowledgements; librdkafka calls it from poll() on the producing thread.
class Acknowledgements final : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      ++acknowledged;
      last_ack_ms = kcron::bench::wall_ms();
    } else {
      if (failed == 0) first_error = message.errstr();
      ++failed;
    }
  }
  std::int64_t acknowledged = 0;
  std::int64_t failed = 0;
  std::int64_t last_ack_ms = 0;
  std::string first_error;
};

// A payload that compresses like text, not like a run of one byte.
std::string make_payload(std::size_t bytes, std::uint64_t seed) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string payload(bytes, ' ');
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (auto& character : payload) {
    state ^= state << 13U;
    state ^= state >> 7U;
    state ^= state << 17U;
    character = kHex[state & 0xFU];
  }
  return payload;
}

class JobFactory {
 public:
  JobFactory(const Options& options, std::int64_t start_ms) : options_(options), start_ms_(start_ms) {
    const double due_rate = options.due_rate > 0 ? options.due_rate : options.rate;
    spacing_ms_ = due_rate > 0 ? 1000.0 / due_rate : 0.0;
  }

  std::int64_t due_ms(std::int64_t index) const {
    if (options_.due == "instant") return options_.due_at_ms > 0 ? options_.due_at_ms : start_ms_ + options_.lead_ms;
    if (options_.due == "spread") {
      return start_ms_ + options_.lead_ms + static_cast<std::int64_t>(static_cast<double>(index) * spacing_ms_);
    }
    return 0;
  }

  std::string id(std::int64_t index) const { return fmt::format("{}-{:08}", options_.id_prefix, index); }

  void fill(std::int64_t index, kcron::v1::Job& job) const {
    job.set_id(id(index));
    job.mutable_noop();
    job.set_payload(make_payload(options_.payload_bytes, static_cast<std::uint64_t>(index)));
    if (options_.due != "now") job.set_run_at_ms(due_ms(index));
    if (!options_.label_key.empty())
      (*job.mutable_labels())[options_.label_key] = fmt::format("v{}", index % options_.label_values);
  }

  kcron::OutRecord record(std::int64_t index) const {
    kcron::v1::Command command;
    auto* job = command.mutable_submit();
    fill(index, *job);
    return {options_.topic,         -1,    job->id(),
            kcron::encode(command), false, {{"content-type", "application/x-protobuf"}, {"kcron-job-id", job->id()}}};
  }

 private:
  const Options& options_;
  std::int64_t start_ms_;
  double spacing_ms_ = 0;
};

// Batch mode: jobs gather per owner partition (the default tenant's routing key, as the CLI routes
// them); a partition's batch is written once it holds --batch jobs, the rest at the end.
class Batcher {
 public:
  Batcher(const Options& options, const JobFactory& factory, std::int32_t partitions)
      : options_(options), factory_(factory), partitions_(partitions) {}

  // Adds job `index`; returns the record to write when its partition's batch is full.
  std::optional<kcron::OutRecord> add(std::int64_t index) {
    const auto partition = owner(index);
    auto& batch = open_[partition];
    factory_.fill(index, *batch.add_jobs());
    if (batch.jobs_size() < options_.batch) return std::nullopt;
    return take(partition);
  }

  // The batches still open, as records.
  std::vector<kcron::OutRecord> rest() {
    std::vector<kcron::OutRecord> records;
    for (auto& [partition, batch] : open_) {
      if (batch.jobs_size() > 0) records.push_back(take(partition));
    }
    return records;
  }

  // How many records `count` jobs make, without building them.
  std::int64_t plan(std::int64_t count) const {
    std::map<std::int32_t, std::int64_t> jobs;
    for (std::int64_t index = 0; index < count; ++index) ++jobs[owner(index)];
    std::int64_t records = 0;
    for (const auto& [partition, n] : jobs) records += (n + options_.batch - 1) / options_.batch;
    return records;
  }

 private:
  std::int32_t owner(std::int64_t index) const {
    return kcron::partition_for_key(kcron::scoped_routing_key("", factory_.id(index)), partitions_).value();
  }

  kcron::OutRecord take(std::int32_t partition) {
    kcron::v1::Command command;
    *command.mutable_batch() = std::move(open_[partition]);
    open_[partition].Clear();
    return {options_.topic, partition, "", kcron::encode(command), false, kcron::typed_headers("batch", "", "")};
  }

  const Options& options_;
  const JobFactory& factory_;
  std::int32_t partitions_;
  std::map<std::int32_t, kcron::v1::Batch> open_;
};

int run(const Options& options) {
  Acknowledgements acknowledgements;
  const auto properties = kcron::bench::client_properties(options.brokers, {{"client.id", "kcron-bench-load"},
                                                                            {"linger.ms", options.linger_ms},
                                                                            {"batch.num.messages", "10000"},
                                                                            {"queue.buffering.max.messages", "1000000"},
                                                                            {"queue.buffering.max.kbytes", "1048576"}});
  auto producer = kcron::kafka::make_producer(properties, "", &acknowledgements);
  if (!producer) {
    std::cerr << "kcron-bench-load: " << producer.error().message() << "\n";
    return 1;
  }
  const std::int64_t start_ms = kcron::bench::wall_ms();
  const auto start = SteadyClock::now();
  std::int64_t first_send_ms = 0;
  std::int64_t last_send_ms = 0;
  std::size_t record_bytes = 0;
  std::int64_t sent = 0;
  const JobFactory factory(options, start_ms);
  std::optional<Batcher> batcher;
  if (options.batch > 0) {
    auto counts = kcron::kafka::partition_counts(**producer, std::chrono::seconds(30));
    if (!counts || !counts->contains(options.topic)) {
      std::cerr << "kcron-bench-load: "
                << (counts ? fmt::format("topic {} does not exist", options.topic) : counts.error().message()) << "\n";
      return 1;
    }
    batcher.emplace(options, factory, counts->at(options.topic));
    if (options.plan) {
      std::cout << fmt::format("{{\"count\":{},\"records\":{}}}\n", options.count, batcher->plan(options.count));
      return 0;
    }
  } else if (options.plan) {
    std::cout << fmt::format("{{\"count\":{},\"records\":{}}}\n", options.count, options.count);
    return 0;
  }
  std::int64_t records = 0;
  const auto send = [&](const kcron::OutRecord& record) -> bool {
    if (records == 0) {
      record_bytes = record.value.size();
      first_send_ms = kcron::bench::wall_ms();
    }
    if (auto status = kcron::kafka::produce(**producer, record); !status) {
      std::cerr << "kcron-bench-load: " << status.error().message() << "\n";
      return false;
    }
    if (++records % 1000 == 0) (*producer)->poll(0);
    return true;
  };
  while (sent < options.count && !kcron::stop_requested()) {
    // Send everything the rate allows by now, then sleep a millisecond: batches, not a busy loop.
    std::int64_t allowed = options.count;
    if (options.rate > 0) {
      const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
      allowed = std::min(options.count, static_cast<std::int64_t>(elapsed * options.rate) + 1);
    }
    for (; sent < allowed && !kcron::stop_requested(); ++sent) {
      if (batcher) {
        if (auto full = batcher->add(sent); full && !send(*full)) return 1;
      } else if (!send(factory.record(sent))) {
        return 1;
      }
    }
    if (batcher && sent == options.count) {
      for (const auto& record : batcher->rest()) {
        if (!send(record)) return 1;
      }
    }
    last_send_ms = kcron::bench::wall_ms();
    (*producer)->poll(0);
    if (sent < options.count && options.rate > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto flushed = (*producer)->flush(120000);
  const double send_seconds = static_cast<double>(std::max<std::int64_t>(1, last_send_ms - first_send_ms)) / 1000.0;

  kcron::bench::JsonObject summary;
  summary.add("count", sent)
      .add("acknowledged", acknowledgements.acknowledged)
      .add("failed", acknowledgements.failed)
      .add("first_error", acknowledgements.first_error)
      .add("flushed", flushed == RdKafka::ERR_NO_ERROR)
      .add("start_ms", start_ms)
      .add("first_send_ms", first_send_ms)
      .add("last_send_ms", last_send_ms)
      .add("last_ack_ms", acknowledgements.last_ack_ms)
      .add("send_rate", static_cast<double>(sent) / send_seconds)
      .add("target_rate", options.rate)
      .add("due", options.due)
      .add("first_due_ms", options.due == "now" ? std::int64_t{0} : factory.due_ms(0))
      .add("last_due_ms", options.due == "now" ? std::int64_t{0} : factory.due_ms(std::max<std::int64_t>(0, sent - 1)))
      .add("record_bytes", static_cast<std::int64_t>(record_bytes))
      .add("records", records)
      .add("batch", options.batch);
  if (auto status = kcron::bench::write_text(options.summary_path, summary.str()); !status) {
    std::cerr << "kcron-bench-load: " << status.error().message() << "\n";
    return 1;
  }
  const bool complete = sent == options.count && acknowledgements.acknowledged == records && flushed == RdKafka::ERR_NO_ERROR;
  if (!complete) std::cerr << "kcron-bench-load: not every record was acknowledged: " << acknowledgements.first_error << "\n";
  return complete ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  kcron::bench::Flags flags("kcron-bench-load", "produces benchmark jobs (submit Commands) to a kcron jobs topic");
  flags.text("brokers", "127.0.0.1:9092", "bootstrap servers")
      .text("topic", "", "jobs topic, e.g. bench-1.jobs (required)")
      .text("id-prefix", "bench", "job ids are <prefix>-<8-digit index>")
      .integer("count", 10000, "jobs to produce")
      .number("rate", 0, "jobs per second (0: as fast as possible)")
      .text("due", "now", "now | spread | instant")
      .integer("lead-ms", 0, "spread/instant: the first due instant is start + lead")
      .integer("due-at-ms", 0, "instant: the epoch ms every job is due (0: start + lead)")
      .number("due-rate", 0, "spread: due instants per second (0: --rate)")
      .integer("payload-bytes", 100, "bytes of job payload")
      .text("label-key", "", "when set, job i carries the label <key>=v<i % label-values>")
      .integer("label-values", 10, "distinct values of the --label-key label")
      .text("linger-ms", "5", "producer linger.ms")
      .text("summary", "-", "where the JSON summary goes (-: stdout)")
      .integer("batch", 0, "jobs per batch record, each written to its jobs' owner partition (0: a record per job)")
      .toggle("plan", "print {count, records} for these options and produce nothing");
  if (auto status = flags.parse(argc, argv); !status) {
    std::cerr << "kcron-bench-load: " << status.error().message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  Options options;
  options.brokers = flags.get("brokers");
  options.topic = flags.get("topic");
  options.id_prefix = flags.get("id-prefix");
  options.count = flags.get_int("count");
  options.rate = flags.get_double("rate");
  options.due = flags.get("due");
  options.lead_ms = flags.get_int("lead-ms");
  options.due_at_ms = flags.get_int("due-at-ms");
  options.due_rate = flags.get_double("due-rate");
  options.payload_bytes = static_cast<std::size_t>(std::max<std::int64_t>(0, flags.get_int("payload-bytes")));
  options.label_key = flags.get("label-key");
  options.label_values = flags.get_int("label-values");
  options.linger_ms = flags.get("linger-ms");
  options.summary_path = flags.get("summary");
  options.batch = flags.get_int("batch");
  options.plan = flags.get_toggle("plan");
  std::string problem;
  if (options.topic.empty()) problem = "--topic is required";
  if (options.count <= 0) problem = "--count must be positive";
  if (options.label_values <= 0) problem = "--label-values must be positive";
  if (options.batch < 0 || options.batch > 10000) problem = "--batch must be 0 to 10000 (a batch record's job limit)";
  if (options.due != "now" && options.due != "spread" && options.due != "instant")
    problem = "--due must be now, spread or instant";
  if (options.due == "spread" && options.rate <= 0 && options.due_rate <= 0) problem = "--due spread needs --rate or --due-rate";
  if (!problem.empty()) {
    std::cerr << "kcron-bench-load: " << problem << "\n";
    return 2;
  }
  kcron::init_logging("bench-load", "warn");
  kcron::install_stop_signals();
  return run(options);
}
