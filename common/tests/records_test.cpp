#include "kcron/records.h"

#include <catch2/catch.hpp>

#include "kcron/codec.h"

using namespace kcron;

namespace {

const TopicNames kNames{"t."};
constexpr Instant kAt = instant_from_ms(1'790'000'000'123);

std::string header_of(const OutRecord& record, std::string_view name) {
  for (const auto& [key, value] : record.headers) {
    if (key == name) return value;
  }
  return "<absent>";
}

}  // namespace

TEST_CASE("a status goes to the events topic and then the status topic, keyed by its tenant-scoped id and typed") {
  std::vector<OutRecord> out;
  append_status({.job_id = "job-1",
                 .state = v1::DEAD,
                 .attempt = 3,
                 .sequence = 1U << 20U,
                 .at = kAt,
                 .reason = "out of retries",
                 .component = "worker",
                 .due = kAt - Millis(5'000),
                 .tenant = "acme"},
                kNames, true, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].topic == "t.events");
  CHECK(out[1].topic == "t.status");
  for (const auto& record : out) {
    CHECK(record.key == "acme~job-1");
    CHECK(record.partition == -1);
    CHECK_FALSE(record.tombstone);
    CHECK(header_of(record, header::kType) == "status");
    CHECK(header_of(record, header::kJobId) == "job-1");
    CHECK(header_of(record, header::kTenant) == "acme");
    CHECK(header_of(record, header::kContentType) == header::kProtobuf);
    CHECK(header_of(record, header::kStatus) == "DEAD");
  }
  CHECK(out[0].value == out[1].value);
  v1::StatusRecord status;
  REQUIRE(status.ParseFromString(out[1].value));
  CHECK(status.job_id() == "job-1");
  CHECK(status.state() == v1::DEAD);
  CHECK(status.attempt() == 3);
  CHECK(status.sequence() == 1U << 20U);
  CHECK(status.at_ms() == 1'790'000'000'123);
  CHECK(status.reason() == "out of retries");
  CHECK(status.component() == "worker");
  CHECK(status.due_ms() == 1'789'999'995'123);
  CHECK(status.tenant() == "acme");
}

TEST_CASE("with events off a status goes to the status topic only") {
  std::vector<OutRecord> out;
  append_status({.job_id = "job-2", .state = v1::REJECTED, .at = kAt, .component = "cron-producer"}, kNames, false, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].topic == "t.status");
  v1::StatusRecord status;
  REQUIRE(status.ParseFromString(out[0].value));
  CHECK(status.due_ms() == 0);  // no due instant: the epoch
}

TEST_CASE("a rejected input keeps at most its copy limit of the value, where it came from, and its reason") {
  std::vector<OutRecord> out;
  const std::string value(100, 'v');
  const RejectedInput input{"t.jobs", Partition(4), 77, "job-3", value};
  const auto key = append_rejected(input, "", "job-3", "no task", kAt, "dispatcher", 40, kNames, out);
  CHECK(key == "job-3");
  REQUIRE(out.size() == 1);
  CHECK(out[0].topic == "t.dead-letters");
  CHECK(out[0].key == "job-3");
  CHECK(header_of(out[0], header::kType) == "dead-letter");
  CHECK(header_of(out[0], header::kJobId) == "job-3");
  CHECK(header_of(out[0], header::kStatus) == "REJECTED");
  v1::DeadLetter letter;
  REQUIRE(letter.ParseFromString(out[0].value));
  CHECK(letter.state() == v1::REJECTED);
  CHECK(letter.reason() == "no task");
  CHECK(letter.original() == std::string(40, 'v'));
  CHECK(letter.truncated());
  CHECK(letter.source_topic() == "t.jobs");
  CHECK(letter.source_partition() == 4);
  CHECK(letter.source_offset() == 77);
  CHECK(letter.at_ms() == 1'790'000'000'123);
  CHECK(letter.component() == "dispatcher");

  out.clear();
  (void)append_rejected(input, "", "job-3", "no task", kAt, "dispatcher", kDeadLetterCopyBytes, kNames, out);
  REQUIRE(letter.ParseFromString(out.at(0).value));
  CHECK(letter.original() == value);
  CHECK_FALSE(letter.truncated());
}

TEST_CASE("a rejected input without a job id is keyed by its record key, cut to a job id's length") {
  std::vector<OutRecord> out;
  const std::string huge_key(10'000, 'k');
  const auto key = append_rejected({"t.schedules", Partition(0), 5, huge_key, "{"}, "", "", "invalid JSON", kAt, "cron-producer",
                                   kDeadLetterCopyBytes, kNames, out);
  CHECK(key == std::string(kMaxJobIdBytes, 'k'));
  REQUIRE(out.size() == 1);
  CHECK(out[0].key == key);
  CHECK(header_of(out[0], header::kJobId) == key);
}

TEST_CASE("a dead letter the caller filled in is published as is, with its state in the headers") {
  v1::DeadLetter letter;
  letter.set_state(v1::DEAD);
  letter.set_reason("attempt 2 failed");
  letter.mutable_job()->set_id("job-4");
  std::vector<OutRecord> out;
  append_dead_letter(letter, "job-4", kNames, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].topic == "t.dead-letters");
  CHECK(out[0].key == "job-4");
  CHECK(header_of(out[0], header::kStatus) == "DEAD");
  CHECK(out[0].value == encode(letter));
}

TEST_CASE("the default tenant's records keep bare keys, no tenant header and an empty tenant field") {
  std::vector<OutRecord> out;
  append_status({.job_id = "job-1", .state = v1::QUEUED, .at = kAt, .component = "dispatcher", .tenant = "default"}, kNames,
                false, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].key == "job-1");
  CHECK(header_of(out[0], header::kTenant) == "<absent>");
  v1::StatusRecord status;
  REQUIRE(status.ParseFromString(out[0].value));
  CHECK(status.tenant().empty());

  out.clear();
  (void)append_rejected({"t.jobs", Partition(1), 9, "k", "v"}, "ab", "job-9", "no task", kAt, "dispatcher", 10, kNames, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].key == "ab~job-9");
  v1::DeadLetter letter;
  REQUIRE(letter.ParseFromString(out[0].value));
  CHECK(letter.tenant() == "ab");
}
