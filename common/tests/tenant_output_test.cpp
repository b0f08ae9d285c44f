#include "kcron/tenant_output.h"

#include <catch2/catch.hpp>

#include "kcron/codec.h"

TEST_CASE("a tenant that opted in gets copies of its results, status and dead letters, nobody else's", "[tenant_output]") {
  const kcron::TopicNames names("kcron.");
  const auto record = [](std::string topic, std::string key, std::string tenant) {
    kcron::OutRecord out{std::move(topic), 3, std::move(key), "v", false, {{"content-type", "application/x-protobuf"}}};
    if (!tenant.empty()) out.headers.emplace_back(kcron::header::kTenant, std::move(tenant));
    return out;
  };
  const std::vector<kcron::OutRecord> records = {
      record("kcron.results", "a~j1", "a"),
      record("kcron.status", "a~j1", "a"),
      record("kcron.dead-letters", "a~j2", "a"),
      record("kcron.exec.default.normal", "a~j3", "a"),
      record("kcron.dispatcher-changelog", "a~j3", "a"),
      record("kcron.results", "ab~j1", "ab"),
      record("kcron.results", "b~j1", "b"),
      record("kcron.results", "j1", ""),
  };
  std::vector<std::size_t> sources;
  const auto copies = kcron::tenant_output_copies(records, names, {"a", "b"}, &sources);
  REQUIRE(copies.size() == 4);
  CHECK(copies[0].topic == "kcron.out.a");
  CHECK(copies[0].key == "a~j1");
  CHECK(copies[0].partition == -1);
  CHECK(copies[0].headers == records[0].headers);
  CHECK(copies[1].topic == "kcron.out.a");
  CHECK(copies[2].topic == "kcron.out.a");
  CHECK(copies[3].topic == "kcron.out.b");
  CHECK(sources == std::vector<std::size_t>{0, 1, 2, 6});
  CHECK(kcron::tenant_output_copies(records, names, {}).empty());
}
