#include "kcron/config.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

using namespace kcron;

namespace {
std::vector<ConfigKey> keys() {
  auto all = common_config_keys("test", 0);
  all.push_back({"dispatcher.commit_interval_ms", "100", "test key"});
  return all;
}
}  // namespace

TEST_CASE("defaults apply when nothing overrides them") {
  auto config = Config::load(keys(), "", {}, {});
  REQUIRE(config.ok());
  CHECK(config->get("brokers") == "127.0.0.1:9092");
  CHECK(*config->get_int("dispatcher.commit_interval_ms") == 100);
  CHECK(config->get_list("queues") == std::vector<std::string>{"default", "critical", "batch"});
}

TEST_CASE("a TOML file, then the environment, then --set override in that order") {
  const std::string path = "/tmp/kcron-config-test.toml";
  {
    std::ofstream file(path);
    file << "brokers = \"file:9092\"\ntopic_prefix = \"file.\"\n[dispatcher]\ncommit_interval_ms = 250\n"
         << "[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n";
  }
  auto config = Config::load(keys(), path, {"topic_prefix=flag."},
                             {"KCRON_BROKERS=env:9092", "KCRON_TOPIC_PREFIX=env.", "KCRON_KAFKA_SASL_MECHANISMS=SCRAM-SHA-512"});
  std::remove(path.c_str());
  REQUIRE(config.ok());
  CHECK(config->get("brokers") == "env:9092");
  CHECK(config->get("topic_prefix") == "flag.");
  CHECK(*config->get_int("dispatcher.commit_interval_ms") == 250);
  const auto kafka = config->kafka_properties();
  CHECK(kafka.at("security.protocol") == "SASL_SSL");
  CHECK(kafka.at("sasl.mechanisms") == "SCRAM-SHA-512");
}

TEST_CASE("unknown keys and malformed values are errors naming the key") {
  auto unknown = Config::load(keys(), "", {"no_such_key=1"}, {});
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.error().message(), Catch::Contains("no_such_key"));
  auto config = Config::load(keys(), "", {"dispatcher.commit_interval_ms=soon"}, {});
  REQUIRE(config.ok());
  auto value = config->get_int("dispatcher.commit_interval_ms");
  REQUIRE_FALSE(value.ok());
  CHECK_THAT(value.error().message(), Catch::Contains("commit_interval_ms"));
}

TEST_CASE("a broken TOML file is reported with its line") {
  const std::string path = "/tmp/kcron-config-broken.toml";
  {
    std::ofstream file(path);
    file << "brokers = \n";
  }
  auto config = Config::load(keys(), path, {}, {});
  std::remove(path.c_str());
  REQUIRE_FALSE(config.ok());
  CHECK_THAT(config.error().message(), Catch::Contains("line 1"));
}
