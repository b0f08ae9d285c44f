// kcron-bench-admin: a benchmark run's topics. `create-topics` creates kcron's full topic layout
// (docs/protocol.md#topics, the programs' defaults unless told otherwise) under a fresh prefix;
// `delete-topics` deletes every topic under a prefix when the scenario is done, so runs do not
// pile partitions onto the broker.
#include <spdlog/spdlog.h>

#include <iostream>

#include "kcron/kafka.h"
#include "kcron/program.h"
#include "kcron/service.h"
#include "kcron/topics.h"
#include "support/bench.h"
#include "support/flags.h"

namespace {

int run(int argc, char** argv) {
  kcron::bench::Flags flags("kcron-bench-admin", "create-topics | delete-topics for a benchmark run's prefix");
  flags.text("brokers", "127.0.0.1:9092", "bootstrap servers")
      .text("prefix", "", "topic prefix, e.g. bench-20260101-e2e. (required)")
      .integer("jobs-partitions", 12, "create-topics: partitions of jobs and the dispatcher changelog")
      .integer("exec-partitions", 12, "create-topics: partitions of each exec topic and worker-done")
      .integer("output-partitions", 12, "create-topics: partitions of results, dead-letters, status, events")
      .integer("timeout-s", 60, "longest the command waits for the cluster");
  if (auto status = flags.parse(argc, argv, true); !status) {
    std::cerr << "kcron-bench-admin: " << status.error().message() << "\n";
    return 2;
  }
  if (flags.help_requested() || flags.command().empty()) {
    std::cout << flags.usage();
    return flags.help_requested() ? 0 : 2;
  }
  const std::string prefix = flags.get("prefix");
  // A prefix ending in '.' keeps delete-topics from matching another run's longer prefix.
  if (prefix.empty() || !prefix.ends_with('.')) {
    std::cerr << "kcron-bench-admin: --prefix is required and must end with '.'\n";
    return 2;
  }
  kcron::init_logging("bench-admin", "warn");
  const kcron::kafka::Properties properties =
      kcron::bench::client_properties(flags.get("brokers"), {{"client.id", "kcron-bench-admin"}});
  const auto timeout = std::chrono::seconds(flags.get_int("timeout-s"));

  if (flags.command() == "create-topics") {
    kcron::TopicLayout layout;
    layout.jobs_partitions = static_cast<std::int32_t>(flags.get_int("jobs-partitions"));
    layout.exec_partitions = static_cast<std::int32_t>(flags.get_int("exec-partitions"));
    layout.output_partitions = static_cast<std::int32_t>(flags.get_int("output-partitions"));
    auto created = kcron::kafka::create_topics(properties, kcron::all_topics(kcron::TopicNames(prefix), layout), 1, timeout);
    if (!created) {
      std::cerr << "kcron-bench-admin: " << created.error().message() << "\n";
      return 1;
    }
    std::cout << "created " << created->size() << " topics under " << prefix << "\n";
    return 0;
  }
  if (flags.command() == "delete-topics") {
    auto producer = kcron::kafka::make_producer(properties, "");
    if (!producer) {
      std::cerr << "kcron-bench-admin: " << producer.error().message() << "\n";
      return 1;
    }
    auto topics = kcron::bench::topics_with_prefix(**producer, prefix, timeout);
    if (!topics) {
      std::cerr << "kcron-bench-admin: " << topics.error().message() << "\n";
      return 1;
    }
    std::vector<std::string> names;
    for (const auto& [name, partitions] : *topics) names.push_back(name);
    if (auto status = kcron::bench::delete_topics(properties, names, timeout); !status) {
      std::cerr << "kcron-bench-admin: " << status.error().message() << "\n";
      return 1;
    }
    std::cout << "deleted " << names.size() << " topics under " << prefix << "\n";
    return 0;
  }
  std::cerr << "kcron-bench-admin: unknown command '" << flags.command() << "' (create-topics, delete-topics)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  return kcron::run_main("kcron-bench-admin", [&] { return run(argc, argv); });
}
