#include "kcron/codec.h"

#include <catch2/catch.hpp>

using namespace kcron;

TEST_CASE("a one-line JSON job is a submit") {
  auto command = decode_command(R"({"id":"j1","delay":"5s","noop":{}})", "", "");
  REQUIRE(command.ok());
  REQUIRE(command->has_submit());
  CHECK(command->submit().id() == "j1");
  CHECK(command->submit().delay().seconds() == 5);
  CHECK(command->submit().has_noop());
}

TEST_CASE("a JSON job with a retry policy is a submit, not a Retry command") {
  auto command = decode_command(R"({"id":"j2","sleep":{"fail":true},"retry":{"max_retries":2,"multiplier":2}})", "", "");
  REQUIRE(command.ok());
  REQUIRE(command->has_submit());
  CHECK(command->submit().retry().max_retries() == 2);
  auto retry = decode_command(R"({"retry":{"job":{"id":"j2","noop":{}},"due_ms":5}})", "", "");
  REQUIRE(retry.ok());
  CHECK(retry->has_retry());
}

TEST_CASE("a JSON command envelope decodes to its command") {
  auto command = decode_command(R"({"cancel":{"job_id":"j1","reason":"no longer needed"}})", "application/json", "");
  REQUIRE(command.ok());
  REQUIRE(command->has_cancel());
  CHECK(command->cancel().job_id() == "j1");
}

TEST_CASE("run_at accepts RFC 3339 and run_at_ms epoch milliseconds") {
  auto rfc = decode_command(R"({"id":"a","run_at":"2026-03-01T09:00:00Z","noop":{}})", "", "");
  REQUIRE(rfc.ok());
  CHECK(rfc->submit().run_at().seconds() == 1772355600);
  auto epoch = decode_command(R"({"id":"b","run_at_ms":"1772355600000","noop":{}})", "", "");
  REQUIRE(epoch.ok());
  CHECK(epoch->submit().run_at_ms() == 1772355600000);
}

TEST_CASE("Protobuf binary round-trips through the codec") {
  v1::Command command;
  command.mutable_submit()->set_id("bin-1");
  command.mutable_submit()->mutable_noop();
  const auto bytes = encode(command);
  auto decoded = decode_command(bytes, "application/x-protobuf", "");
  REQUIRE(decoded.ok());
  CHECK(decoded->submit().id() == "bin-1");
}

TEST_CASE("bad input is an error that says what was wrong") {
  SECTION("garbage bytes") {
    auto decoded = decode_command(std::string("\xff\xfe\x00\x01garbage", 11), "", "");
    REQUIRE_FALSE(decoded.ok());
  }
  SECTION("invalid JSON") {
    auto decoded = decode_command(R"({"id": "x", )", "", "");
    REQUIRE_FALSE(decoded.ok());
    CHECK_THAT(decoded.error().message(), Catch::Contains("invalid JSON"));
  }
  SECTION("a field of the wrong type") {
    auto decoded = decode_command(R"({"id":"x","priority":"high","noop":{}})", "", "");
    REQUIRE_FALSE(decoded.ok());
    CHECK_THAT(decoded.error().message(), Catch::Contains("priority"));
  }
  SECTION("an unknown field") {
    auto decoded = decode_command(R"({"id":"x","colour":"red","noop":{}})", "", "");
    REQUIRE_FALSE(decoded.ok());
    CHECK_THAT(decoded.error().message(), Catch::Contains("colour"));
  }
  SECTION("an empty record") {
    auto decoded = decode_command("", "", "");
    REQUIRE_FALSE(decoded.ok());
  }
  SECTION("an empty envelope") {
    const std::string only_unknown_field("\xa0\x06\x01", 3);  // field 100, varint 1
    auto decoded = decode_command(only_unknown_field, "application/x-protobuf", "");
    REQUIRE_FALSE(decoded.ok());
    CHECK_THAT(decoded.error().message(), Catch::Contains("no command"));
  }
}

TEST_CASE("to_json prints one line with proto field names") {
  v1::StatusRecord status;
  status.set_job_id("j1");
  status.set_state(v1::QUEUED);
  const auto json = to_json(status);
  CHECK(json == R"({"job_id":"j1","state":"QUEUED"})");
  CHECK(state_name(v1::DEAD) == "DEAD");
}
