#include "kcron/routing.h"

#include <catch2/catch.hpp>

#include "kcron/priority.h"
#include "kcron/topics.h"

using namespace kcron;

TEST_CASE("murmur2 matches Kafka's Utils.murmur2 bit for bit") {
  // Expected values printed by org.apache.kafka.common.utils.Utils.murmur2 (kafka-clients 4.1.1).
  CHECK(murmur2("") == 275646681);
  CHECK(murmur2("a") == -1563381124);
  CHECK(murmur2("ab") == 316155434);
  CHECK(murmur2("abc") == 479470107);
  CHECK(murmur2("21") == -973932308);
  CHECK(murmur2("foobar") == -790332482);
  CHECK(murmur2("job-1") == -1017057876);
  CHECK(murmur2("a-little-bit-long-string") == -985981536);
  CHECK(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971);
}

TEST_CASE("partition_for_key is Java's toPositive(murmur2) modulo the partition count") {
  CHECK(partition_for_key("a", 12).value() == 4);
  CHECK(partition_for_key("21", 12).value() == 0);
  CHECK(partition_for_key("foobar", 12).value() == 6);
  CHECK(partition_for_key("job-1", 12).value() == 8);
  CHECK(partition_for_key("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 12).value() == 5);
}

TEST_CASE("the routing key of a schedule run or a flow job is its schedule or flow id") {
  CHECK(routing_key_for_job("invoice-42") == "invoice-42");
  CHECK(routing_key_for_job("nightly@2026-11-23T02:00:00Z") == "nightly");
  CHECK(routing_key_for_job("etl/extract") == "etl");
  CHECK(routing_key_for_job("@odd") == "@odd");
}

TEST_CASE("priorities map to bands and bands to exec topics") {
  CHECK(band_for_priority(9) == Band::kHigh);
  CHECK(band_for_priority(7) == Band::kHigh);
  CHECK(band_for_priority(6) == Band::kNormal);
  CHECK(band_for_priority(3) == Band::kNormal);
  CHECK(band_for_priority(2) == Band::kLow);
  CHECK(band_for_priority(0) == Band::kLow);
  CHECK(exec_topic("kcron.", "critical", Band::kHigh) == "kcron.exec.critical.high");
}

TEST_CASE("the topic layout has every topic of the design with its partitions and cleanup policy") {
  const auto topics = all_topics(TopicNames("kcron."), TopicLayout{});
  REQUIRE(topics.size() == 14 + 9);
  auto find = [&](const std::string& name) {
    for (const auto& topic : topics) {
      if (topic.name == name) return topic;
    }
    FAIL("missing " << name);
    return TopicSpec{};
  };
  CHECK(find("kcron.jobs").partitions == 12);
  CHECK(find("kcron.dispatcher-changelog").partitions == 12);
  CHECK(find("kcron.schedules").partitions == 6);
  CHECK(find("kcron.control").partitions == 1);
  CHECK(find("kcron.exec.batch.low").partitions == 12);
  CHECK(find("kcron.tenants").partitions == 1);
  CHECK(find("kcron.audit").partitions == 12);
  const auto templates = find("kcron.templates");
  CHECK(templates.partitions == 1);
  CHECK(std::find(templates.config.begin(), templates.config.end(),
                  std::pair<std::string, std::string>{"cleanup.policy", "compact"}) != templates.config.end());
  const auto audit = find("kcron.audit");
  CHECK(std::find(audit.config.begin(), audit.config.end(), std::pair<std::string, std::string>{"retention.ms", "2592000000"}) !=
        audit.config.end());
  const auto changelog = find("kcron.dispatcher-changelog");
  CHECK(std::find(changelog.config.begin(), changelog.config.end(),
                  std::pair<std::string, std::string>{"cleanup.policy", "compact"}) != changelog.config.end());
  const auto status = find("kcron.status");
  CHECK(status.config == std::vector<std::pair<std::string, std::string>>{{"cleanup.policy", "compact,delete"},
                                                                          {"retention.ms", "604800000"},
                                                                          {"min.compaction.lag.ms", "86400000"},
                                                                          {"delete.retention.ms", "86400000"}});
  const auto events = find("kcron.events");
  CHECK(std::find(events.config.begin(), events.config.end(), std::pair<std::string, std::string>{"cleanup.policy", "delete"}) !=
        events.config.end());
}
