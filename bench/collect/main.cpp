// kcron-bench-collect: what a benchmark run measures, read from Kafka the way a user would.
//   watch    follows exec and results topics live with read_committed, dates each record when it
//            becomes visible, and computes lag and latency distributions against the instant each
//            job was due (kcron: Execution.due_ms / Result.due_ms; the relay: the record timestamp,
//            which carries the submit instant; an immediate job is due when submitted); stops when
//            every expected job is seen, on a stall, or at the timeout.
//   count    records written per topic of a run's prefix: end offsets (records + transaction
//            markers) and, with --exact, the committed data records (read_committed, to the end).
//   ingest   waits until a consumer group has committed `expect` records of a topic (how fast the
//            dispatcher took in a load), and says when.
//   flow     a finished flow's node-to-child latency: for each node with parents, its exec record's
//            timestamp minus the latest of its parents' result timestamps (both CreateTime: when
//            the worker and the dispatcher produced them, inside the transactions that committed).
// Each prints one JSON object.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <thread>
#include <unordered_set>

#include "kcron.pb.h"
#include "kcron/kafka.h"
#include "kcron/program.h"
#include "kcron/service.h"
#include "support/bench.h"
#include "support/flags.h"

namespace {

using SteadyClock = std::chrono::steady_clock;
using kcron::Status;
using kcron::bench::JsonObject;
using kcron::bench::wall_ms;

// CPU seconds (user + system) this process has used: the watcher reports its own share of the
// machine, since it has exited by the time the script could look.
double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& value) {
    return static_cast<double>(value.tv_sec) + static_cast<double>(value.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A read_committed reader outside any group (manual assignment). fetch.wait.max.ms stays at its
// default: the broker answers a waiting fetch as soon as a commit makes records visible, and a
// shorter wait would only add empty fetches to the broker's load.
kcron::Result<std::unique_ptr<RdKafka::KafkaConsumer>> make_reader(const std::string& brokers, const std::string& group,
                                                                   bool partition_eof) {
  return kcron::kafka::make_consumer(kcron::bench::client_properties(
      brokers,
      {{"client.id", "kcron-bench-collect"}, {"group.id", group}, {"enable.partition.eof", partition_eof ? "true" : "false"}}));
}

// Assigns every partition of the topics from the beginning; returns the partitions assigned.
kcron::Result<std::size_t> assign_from_start(RdKafka::KafkaConsumer& consumer, const std::vector<std::string>& topics,
                                             const std::map<std::string, std::int32_t>& counts) {
  std::vector<RdKafka::TopicPartition*> assignment;
  for (const auto& topic : topics) {
    const auto found = counts.find(topic);
    if (found == counts.end()) {
      RdKafka::TopicPartition::destroy(assignment);
      return kcron::make_error("topic {} does not exist", topic);
    }
    for (std::int32_t partition = 0; partition < found->second; ++partition) {
      assignment.push_back(RdKafka::TopicPartition::create(topic, partition, RdKafka::Topic::OFFSET_BEGINNING));
    }
  }
  const auto code = consumer.assign(assignment);
  const std::size_t assigned = assignment.size();
  RdKafka::TopicPartition::destroy(assignment);
  if (code != RdKafka::ERR_NO_ERROR) return kcron::kafka::to_error(code, "assign");
  return assigned;
}

// One followed stream (the exec topics, or results): distinct jobs and the per-job samples.
struct Stream {
  std::unordered_set<std::uint64_t> seen_ids;  // hashes of job ids: duplicates show as repeats
  std::int64_t records = 0;
  std::int64_t duplicates = 0;
  std::int64_t first_due_ms = 0;
  std::int64_t last_due_ms = 0;
  std::int64_t last_visible_ms = 0;
  std::int64_t last_stamp_ms = 0;         // exec: latest fired_ms; results: latest started_ms
  std::vector<std::int64_t> visible_lag;  // visible to a read_committed reader - due
  std::vector<std::int64_t> stamp_lag;    // exec: fired_ms - due; results: started_ms - due

  std::int64_t unique() const { return static_cast<std::int64_t>(seen_ids.size()); }
  double late_share() const {
    if (visible_lag.empty()) return 0;
    const auto late = std::count_if(visible_lag.begin(), visible_lag.end(), [](std::int64_t lag) { return lag > 0; });
    return static_cast<double>(late) / static_cast<double>(visible_lag.size());
  }

  // Returns false for a duplicate (counted, not sampled).
  bool add(std::string_view job_id, std::int64_t due_ms, std::int64_t visible_ms, std::int64_t stamp_ms) {
    ++records;
    if (!seen_ids.insert(std::hash<std::string_view>{}(job_id)).second) {
      ++duplicates;
      return false;
    }
    first_due_ms = first_due_ms == 0 ? due_ms : std::min(first_due_ms, due_ms);
    last_due_ms = std::max(last_due_ms, due_ms);
    last_visible_ms = std::max(last_visible_ms, visible_ms);
    visible_lag.push_back(visible_ms - due_ms);
    if (stamp_ms > 0) {
      last_stamp_ms = std::max(last_stamp_ms, stamp_ms);
      stamp_lag.push_back(stamp_ms - due_ms);
    }
    return true;
  }

  JsonObject report(const char* stamp_name) const {
    JsonObject object;
    object.add("records", records)
        .add("unique", unique())
        .add("duplicates", duplicates)
        .add("first_due_ms", first_due_ms)
        .add("last_due_ms", last_due_ms)
        .add("last_visible_ms", last_visible_ms)
        .add(fmt::format("last_{}_ms", stamp_name), last_stamp_ms)
        .add("visible_lag_ms", kcron::bench::summarize(visible_lag))
        // Exec: the share of jobs whose record became visible after their due instant (fire-ahead
        // gave them no lead: a worker holds them for no time); results: those that ended late.
        .add("late_share", late_share())
        .add(fmt::format("{}_lag_ms", stamp_name), kcron::bench::summarize(stamp_lag));
    return object;
  }
};

int watch(const kcron::bench::Flags& flags) {
  const bool relay = flags.get("kind") == "relay";
  const auto exec_topics = flags.get_list("exec-topics");
  const std::string results_topic = flags.get("results-topic");
  const std::int64_t expect = flags.get_int("expect");
  const auto timeout = std::chrono::seconds(flags.get_int("timeout-s"));
  const auto stall = std::chrono::seconds(flags.get_int("stall-s"));
  const std::string id_prefix = flags.get("id-prefix");

  auto consumer = make_reader(flags.get("brokers"), "kcron-bench-collect", false);
  if (!consumer) {
    spdlog::error("event=fatal error=\"{}\"", consumer.error().message());
    return 1;
  }
  auto counts = kcron::kafka::partition_counts(**consumer, std::chrono::seconds(30));
  if (!counts) {
    spdlog::error("event=fatal error=\"{}\"", counts.error().message());
    return 1;
  }
  std::vector<std::string> topics = exec_topics;
  if (!results_topic.empty()) topics.push_back(results_topic);
  if (auto assigned = assign_from_start(**consumer, topics, *counts); !assigned) {
    spdlog::error("event=fatal error=\"{}\"", assigned.error().message());
    return 1;
  }
  std::unique_ptr<RdKafka::Message> first((*consumer)->consume(100));  // connects and starts fetching
  if (!flags.get("ready-file").empty()) (void)kcron::bench::write_text(flags.get("ready-file"), "ready");

  // --timeline: one line per exec record of the jobs named by --timeline-prefix, written as it
  // arrives (the failover scenario polls it for the first fire after a kill):
  // "visible_ms due_ms fired_ms duplicate(0|1)".
  std::ofstream timeline;
  const std::string timeline_prefix = flags.get("timeline-prefix");
  if (!flags.get("timeline").empty()) {
    timeline.open(flags.get("timeline"), std::ios::out | std::ios::trunc);
    if (!timeline) {
      spdlog::error("event=fatal error=\"cannot write {}\"", flags.get("timeline"));
      return 1;
    }
  }

  Stream exec;
  Stream results;
  const auto started = SteadyClock::now();
  auto last_progress = started;
  std::string stop_reason = "timeout";
  kcron::v1::Execution execution;
  kcron::v1::Result result;
  auto handle = [&](RdKafka::Message& message) {
    const std::int64_t visible_ms = wall_ms();
    const std::string_view key = message.key() != nullptr ? std::string_view(*message.key()) : std::string_view();
    const auto* bytes = static_cast<const char*>(message.payload());
    const int size = static_cast<int>(message.len());
    const std::int64_t timestamp_ms = kcron::kafka::record_timestamp_ms(message, visible_ms);
    const bool is_result = message.topic_name() == results_topic;
    last_progress = SteadyClock::now();
    if (relay) {
      if (key.starts_with(id_prefix)) (is_result ? results : exec).add(key, timestamp_ms, visible_ms, 0);
    } else if (is_result) {
      if (result.ParseFromArray(bytes, size) && result.job_id().starts_with(id_prefix)) {
        results.add(result.job_id(), result.due_ms(), visible_ms, result.started_ms());
      }
    } else if (execution.ParseFromArray(bytes, size) && execution.job().id().starts_with(id_prefix)) {
      const bool fresh = exec.add(execution.job().id(), execution.due_ms(), visible_ms, execution.fired_ms());
      if (timeline.is_open() && execution.job().id().starts_with(timeline_prefix)) {
        timeline << visible_ms << ' ' << execution.due_ms() << ' ' << execution.fired_ms() << ' ' << (fresh ? 0 : 1)
                 << std::endl;  // flushed: read while the watch runs
      }
    }
  };
  if (first->err() == RdKafka::ERR_NO_ERROR) handle(*first);
  while (!kcron::stop_requested()) {
    const bool exec_done = exec_topics.empty() || exec.unique() >= expect;
    const bool results_done = results_topic.empty() || results.unique() >= expect;
    if (exec_done && results_done) {
      stop_reason = "complete";
      break;
    }
    const auto now = SteadyClock::now();
    if (now - started >= timeout) break;
    if (now - last_progress >= stall) {
      stop_reason = "stalled";
      break;
    }
    std::unique_ptr<RdKafka::Message> message((*consumer)->consume(100));
    if (message->err() == RdKafka::ERR_NO_ERROR) handle(*message);
  }
  (*consumer)->close();

  const std::string samples_dir = flags.get("samples-dir");
  if (!samples_dir.empty()) {
    std::filesystem::create_directories(samples_dir);
    const std::vector<std::pair<std::string, const std::vector<std::int64_t>*>> files = {
        {"exec_visible_lag_ms", &exec.visible_lag},
        {"exec_fired_lag_ms", &exec.stamp_lag},
        {"results_visible_lag_ms", &results.visible_lag},
        {"results_started_lag_ms", &results.stamp_lag}};
    for (const auto& [name, samples] : files) {
      if (samples->empty()) continue;
      if (auto status = kcron::bench::write_samples(fmt::format("{}/{}.txt", samples_dir, name), *samples); !status) {
        spdlog::warn("event=samples_not_written error=\"{}\"", status.error().message());
      }
    }
  }

  JsonObject report;
  report.add("kind", relay ? "relay" : "kcron")
      .add("expected", expect)
      .add("stop", stop_reason)
      .add("complete", stop_reason == "complete")
      .add("watch_seconds", std::chrono::duration<double>(SteadyClock::now() - started).count())
      .add("cpu_seconds", own_cpu_seconds());
  if (!exec_topics.empty()) report.add("exec", exec.report("fired"));
  if (!results_topic.empty()) {
    // Throughput: distinct results over first due (= first submit for immediate jobs) -> last visible.
    const std::int64_t span_ms = results.last_visible_ms - results.first_due_ms;
    report.add("results", results.report("started"))
        .add("throughput_jobs_per_s",
             span_ms > 0 ? static_cast<double>(results.unique()) * 1000.0 / static_cast<double>(span_ms) : 0.0);
  }
  if (auto status = kcron::bench::write_text(flags.get("out"), report.str()); !status) {
    spdlog::error("event=fatal error=\"{}\"", status.error().message());
    return 1;
  }
  return stop_reason == "complete" ? 0 : 3;
}

// Committed data records per topic: read_committed from the beginning until every non-empty
// partition reports its end.
kcron::Result<std::map<std::string, std::int64_t>> committed_records(const std::string& brokers,
                                                                     const std::map<std::string, std::int32_t>& topics,
                                                                     const std::map<std::string, std::int64_t>& end_offsets,
                                                                     std::chrono::seconds timeout) {
  auto consumer = make_reader(brokers, "kcron-bench-count", true);
  if (!consumer) return consumer.error();
  std::vector<std::string> names;
  std::size_t pending = 0;
  for (const auto& [name, partitions] : topics) {
    if (end_offsets.at(name) == 0) continue;
    names.push_back(name);
    pending += static_cast<std::size_t>(partitions);
  }
  std::map<std::string, std::int64_t> records;
  for (const auto& name : names) records[name] = 0;
  if (names.empty()) return records;
  if (auto assigned = assign_from_start(**consumer, names, topics); !assigned) return assigned.error();
  const auto deadline = SteadyClock::now() + timeout;
  while (pending > 0 && SteadyClock::now() < deadline && !kcron::stop_requested()) {
    std::unique_ptr<RdKafka::Message> message((*consumer)->consume(200));
    if (message->err() == RdKafka::ERR_NO_ERROR) {
      ++records[message->topic_name()];
    } else if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      --pending;
    }
  }
  (*consumer)->close();
  if (pending > 0) return kcron::make_error("{} partitions did not reach their end within {} s", pending, timeout.count());
  return records;
}

int count(const kcron::bench::Flags& flags) {
  const std::string prefix = flags.get("prefix");
  const auto jobs = static_cast<double>(std::max<std::int64_t>(1, flags.get_int("jobs")));
  auto probe = kcron::kafka::make_consumer(kcron::bench::client_properties(
      flags.get("brokers"), {{"group.id", "kcron-bench-count"}, {"isolation.level", "read_uncommitted"}}));
  if (!probe) {
    spdlog::error("event=fatal error=\"{}\"", probe.error().message());
    return 1;
  }
  auto topics = kcron::bench::topics_with_prefix(**probe, prefix, std::chrono::seconds(30));
  if (!topics) {
    spdlog::error("event=fatal error=\"{}\"", topics.error().message());
    return 1;
  }
  std::map<std::string, std::int64_t> end_offsets;
  for (const auto& [name, partitions] : *topics) {
    auto sum = kcron::bench::end_offset_sum(**probe, name, partitions, std::chrono::seconds(30));
    if (!sum) {
      spdlog::error("event=fatal error=\"{}\"", sum.error().message());
      return 1;
    }
    end_offsets[name] = *sum;
  }
  (*probe)->close();
  std::map<std::string, std::int64_t> records;
  std::string exact_error;
  if (flags.get_toggle("exact")) {
    auto counted =
        committed_records(flags.get("brokers"), *topics, end_offsets, std::chrono::seconds(flags.get_int("timeout-s")));
    if (counted) {
      records = std::move(*counted);
    } else {
      exact_error = counted.error().message();
    }
  }

  JsonObject per_topic;
  std::int64_t total_offsets = 0;
  std::int64_t total_records = 0;
  for (const auto& [name, offsets] : end_offsets) {
    if (offsets == 0) continue;
    JsonObject topic;
    topic.add("offsets", offsets).add("offsets_per_job", static_cast<double>(offsets) / jobs);
    total_offsets += offsets;
    if (const auto found = records.find(name); found != records.end()) {
      topic.add("records", found->second).add("records_per_job", static_cast<double>(found->second) / jobs);
      total_records += found->second;
    }
    per_topic.add(name.substr(prefix.size()), topic);
  }
  JsonObject report;
  report.add("prefix", prefix)
      .add("jobs", static_cast<std::int64_t>(jobs))
      .add("topics", per_topic)
      .add("offsets_per_job", static_cast<double>(total_offsets) / jobs);
  if (flags.get_toggle("exact")) {
    if (exact_error.empty()) {
      report.add("records_per_job", static_cast<double>(total_records) / jobs);
    } else {
      report.add("exact_error", exact_error);
    }
  }
  if (auto status = kcron::bench::write_text(flags.get("out"), report.str()); !status) {
    spdlog::error("event=fatal error=\"{}\"", status.error().message());
    return 1;
  }
  return exact_error.empty() ? 0 : 3;
}

// Every committed record of `names` (partition counts in `topics`), from the start to the end
// each partition has when reading begins, handed to `visit`.
Status read_committed(const std::string& brokers, const std::vector<std::string>& names,
                      const std::map<std::string, std::int32_t>& topics, std::chrono::seconds timeout,
                      const std::function<void(const RdKafka::Message&)>& visit) {
  auto consumer = make_reader(brokers, "kcron-bench-flow", true);
  if (!consumer) return consumer.error();
  auto assigned = assign_from_start(**consumer, names, topics);
  if (!assigned) return assigned.error();
  std::size_t pending = *assigned;
  const auto deadline = SteadyClock::now() + timeout;
  while (pending > 0 && SteadyClock::now() < deadline && !kcron::stop_requested()) {
    std::unique_ptr<RdKafka::Message> message((*consumer)->consume(200));
    if (message->err() == RdKafka::ERR_NO_ERROR) {
      visit(*message);
    } else if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      --pending;
    }
  }
  (*consumer)->close();
  if (pending > 0) return kcron::make_error("{} partitions did not reach their end within {} s", pending, timeout.count());
  return Status::success();
}

int flow_latency(const kcron::bench::Flags& flags) {
  const std::string prefix = flags.get("prefix");
  const std::string flow_id = flags.get("flow");
  const auto fail = [](const kcron::Error& error) {
    spdlog::error("event=fatal error=\"{}\"", error.message());
    return 1;
  };
  auto probe =
      kcron::kafka::make_consumer(kcron::bench::client_properties(flags.get("brokers"), {{"group.id", "kcron-bench-flow"}}));
  if (!probe) return fail(probe.error());
  auto topics = kcron::bench::topics_with_prefix(**probe, prefix, std::chrono::seconds(30));
  (*probe)->close();
  if (!topics) return fail(topics.error());
  std::vector<std::string> exec_names;
  for (const auto& [name, partitions] : *topics) {
    if (name.starts_with(prefix + "exec.")) exec_names.push_back(name);
  }
  const std::string node_prefix = flow_id + "/";
  const auto timeout = std::chrono::seconds(flags.get_int("timeout-s"));
  std::map<std::string, std::int64_t> finished_at;  // node id -> its last result's timestamp
  auto results =
      read_committed(flags.get("brokers"), {prefix + "results"}, *topics, timeout, [&](const RdKafka::Message& message) {
        kcron::v1::Result result;
        if (!result.ParseFromArray(message.payload(), static_cast<int>(message.len()))) return;
        if (!result.job_id().starts_with(node_prefix)) return;
        finished_at[result.job_id()] = message.timestamp().timestamp;
      });
  if (!results) return fail(results.error());
  std::vector<std::int64_t> latencies;
  std::int64_t nodes = 0;
  std::int64_t first_fired = std::numeric_limits<std::int64_t>::max();
  std::int64_t missing_parents = 0;
  auto exec = read_committed(flags.get("brokers"), exec_names, *topics, timeout, [&](const RdKafka::Message& message) {
    kcron::v1::Execution execution;
    if (!execution.ParseFromArray(message.payload(), static_cast<int>(message.len()))) return;
    const auto& job = execution.job();
    if (job.flow().id() != flow_id) return;
    ++nodes;
    first_fired = std::min(first_fired, message.timestamp().timestamp);
    if (job.flow().inputs_size() == 0) return;
    std::int64_t released_by = 0;
    for (const auto& input : job.flow().inputs()) {
      const auto found = finished_at.find(node_prefix + input.node());
      if (found == finished_at.end()) {
        ++missing_parents;
        return;
      }
      released_by = std::max(released_by, found->second);
    }
    latencies.push_back(message.timestamp().timestamp - released_by);
  });
  if (!exec) return fail(exec.error());
  std::int64_t last_finished = 0;
  for (const auto& [id, at] : finished_at) last_finished = std::max(last_finished, at);
  JsonObject report;
  report.add("flow", flow_id)
      .add("nodes_fired", nodes)
      .add("nodes_finished", static_cast<std::int64_t>(finished_at.size()))
      .add("children_measured", static_cast<std::int64_t>(latencies.size()))
      .add("children_missing_a_parent_result", missing_parents)
      .add("first_fired_to_last_result_ms", nodes > 0 ? last_finished - first_fired : 0)
      .add("parent_result_to_child_exec_ms", kcron::bench::summarize(latencies));
  if (auto status = kcron::bench::write_text(flags.get("out"), report.str()); !status) return fail(status.error());
  return 0;
}

int ingest(const kcron::bench::Flags& flags) {
  const std::string topic = flags.get("topic");
  const std::int64_t expect = flags.get_int("expect");
  // read_uncommitted: the offset fetch then returns the last committed offsets at once instead of
  // waiting for a stable answer while the dispatcher's next transaction is open.
  auto consumer = kcron::kafka::make_consumer(kcron::bench::client_properties(
      flags.get("brokers"), {{"group.id", flags.get("group")}, {"isolation.level", "read_uncommitted"}}));
  if (!consumer) {
    spdlog::error("event=fatal error=\"{}\"", consumer.error().message());
    return 1;
  }
  auto counts = kcron::kafka::partition_counts(**consumer, std::chrono::seconds(30));
  if (!counts || !counts->contains(topic)) {
    spdlog::error("event=fatal error=\"no topic {}\"", topic);
    return 1;
  }
  const auto deadline = SteadyClock::now() + std::chrono::seconds(flags.get_int("timeout-s"));
  std::int64_t committed = 0;
  std::int64_t reached_ms = 0;
  while (SteadyClock::now() < deadline && !kcron::stop_requested()) {
    std::vector<RdKafka::TopicPartition*> partitions;
    for (std::int32_t partition = 0; partition < counts->at(topic); ++partition) {
      partitions.push_back(RdKafka::TopicPartition::create(topic, partition));
    }
    if ((*consumer)->committed(partitions, 5000) == RdKafka::ERR_NO_ERROR) {
      committed = 0;
      for (const auto* partition : partitions) committed += std::max<std::int64_t>(0, partition->offset());
    }
    RdKafka::TopicPartition::destroy(partitions);
    if (committed >= expect) {
      reached_ms = wall_ms();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (*consumer)->close();
  JsonObject report;
  report.add("group", flags.get("group")).add("topic", topic).add("expected", expect).add("committed", committed);
  report.add("reached_ms", reached_ms).add("complete", reached_ms > 0);
  if (auto status = kcron::bench::write_text(flags.get("out"), report.str()); !status) {
    spdlog::error("event=fatal error=\"{}\"", status.error().message());
    return 1;
  }
  return reached_ms > 0 ? 0 : 3;
}

int run(int argc, char** argv) {
  kcron::bench::Flags flags("kcron-bench-collect", "watch | count | ingest: what a benchmark run measured, as JSON");
  flags.text("brokers", "127.0.0.1:9092", "bootstrap servers")
      .text("out", "-", "where the JSON report goes (-: stdout)")
      .text("kind", "kcron", "watch: kcron (decode Execution/Result) | relay (record timestamps)")
      .text("exec-topics", "", "watch: comma-separated exec topics to follow")
      .text("results-topic", "", "watch: the results topic to follow")
      .integer("expect", 0, "watch: jobs expected on each followed stream; ingest: records to be committed")
      .integer("timeout-s", 600, "longest the command runs")
      .integer("stall-s", 60, "watch: stop when nothing new arrived for this long")
      .text("id-prefix", "", "watch: follow only jobs whose id starts with this (e.g. job-; warm-up jobs are not)")
      .text("ready-file", "", "watch: written once the reader is assigned and fetching")
      .text("samples-dir", "", "watch: where per-job samples go (one file per distribution)")
      .text("timeline", "", "watch: a file getting one line per exec record as it arrives: visible due fired duplicate")
      .text("timeline-prefix", "", "watch: the job id prefix of the timeline's records")
      .text("prefix", "", "count: the run's topic prefix")
      .integer("jobs", 1, "count: jobs the run processed (the per-job divisor)")
      .toggle("exact", "count: also read every topic to count committed data records")
      .text("group", "", "ingest: consumer group whose committed offsets to follow")
      .text("topic", "", "ingest: the topic")
      .text("flow", "", "flow: the flow's id");
  if (auto status = flags.parse(argc, argv, true); !status) {
    std::cerr << "kcron-bench-collect: " << status.error().message() << "\n";
    return 2;
  }
  if (flags.help_requested() || flags.command().empty()) {
    std::cout << flags.usage();
    return flags.help_requested() ? 0 : 2;
  }
  kcron::init_logging("bench-collect", "warn");
  kcron::install_stop_signals();
  if (flags.command() == "watch") return watch(flags);
  if (flags.command() == "count") return count(flags);
  if (flags.command() == "ingest") return ingest(flags);
  if (flags.command() == "flow") return flow_latency(flags);
  std::cerr << "kcron-bench-collect: unknown command '" << flags.command() << "' (watch, count, ingest, flow)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron-bench-collect", [&] { return run(argc, argv); });
}
