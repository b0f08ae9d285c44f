// Poison input (label `fault`): random bytes, truncated Protobuf, bad JSON, unknown enum values,
// absurd due instants, oversized records and keys, invalid cron expressions and time zones,
// produced to every partition of kcron.jobs and kcron.schedules between valid records. Each poison
// record must come back as exactly one REJECTED dead letter (matched by its source partition and
// offset) with a reason naming the problem; the programs keep running; every valid record behind
// the poison on the same partition is processed (no stalled partition).
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "kcron.pb.h"
#include "kcron/codec.h"
#include "kcron/priority.h"
#include "kcron/routing.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kNoKey = "\x01<null key>";  // a key that is null on the wire
constexpr std::string_view kNoValue = "\x01<null value>";

// One produced record and what must become of it.
struct Sent {
  std::string topic;
  std::int32_t partition = -1;
  std::int64_t offset = -1;  // from the delivery report
  std::string what;          // a short description, for failure messages
  std::string reason;        // poison: a substring of the dead letter's reason ("" = any reason)
  bool poison = false;
};

// Produces raw records (null keys and values included) to explicit partitions and records the
// offset of each from its delivery report, so dead letters can be matched to what caused them.
class RawProducer : public RdKafka::DeliveryReportCb {
 public:
  RawProducer() {
    // Large enough for the record whose key and value together pass the dispatcher's limit.
    auto producer =
        kafka::make_producer(test_client_properties({{"message.max.bytes", "1046000"}, {"linger.ms", "5"}}), "", this);
    REQUIRE(producer.ok());
    producer_ = std::move(*producer);
  }

  void send(const std::string& topic, std::int32_t partition, std::string_view key, std::string_view value, Sent sent,
            const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    sent.topic = topic;
    sent.partition = partition;
    std::size_t index = 0;
    {
      std::lock_guard lock(mutex_);
      index = sent_.size();
      sent_.push_back(std::move(sent));
    }
    RdKafka::Headers* wire_headers = RdKafka::Headers::create();
    for (const auto& [name, header_value] : headers) wire_headers->add(name, header_value);
    const bool null_key = key == kNoKey;
    const bool null_value = value == kNoValue;
    RdKafka::ErrorCode code = RdKafka::ERR__QUEUE_FULL;
    // A large run queues 100k records: wait for room (bounded) rather than fail on a full queue.
    for (int attempt = 0; attempt < 600 && code == RdKafka::ERR__QUEUE_FULL; ++attempt) {
      if (attempt > 0) producer_->poll(100);
      code = producer_->produce(topic, partition, RdKafka::Producer::RK_MSG_COPY,
                                null_value ? nullptr : const_cast<char*>(value.data()), null_value ? 0 : value.size(),
                                null_key ? nullptr : key.data(), null_key ? 0 : key.size(), 0, wire_headers,
                                reinterpret_cast<void*>(static_cast<std::uintptr_t>(index)));
    }
    if (code != RdKafka::ERR_NO_ERROR) delete wire_headers;
    INFO(fmt::format("producing {} ({} + {} bytes): {}", sent_[index].what, key.size(), value.size(), RdKafka::err2str(code)));
    REQUIRE(code == RdKafka::ERR_NO_ERROR);
    producer_->poll(0);
  }

  std::vector<Sent> flush() {
    REQUIRE(producer_->flush(30000) == RdKafka::ERR_NO_ERROR);
    std::lock_guard lock(mutex_);
    INFO(error_);
    REQUIRE(error_.empty());
    return sent_;
  }

  void dr_cb(RdKafka::Message& message) override {
    std::lock_guard lock(mutex_);
    const auto index = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(message.msg_opaque()));
    if (message.err() != RdKafka::ERR_NO_ERROR) {
      error_ += fmt::format("{}: {}; ", sent_[index].what, message.errstr());
      return;
    }
    sent_[index].offset = message.offset();
  }

 private:
  std::mutex mutex_;
  std::vector<Sent> sent_;
  std::string error_;
  std::unique_ptr<RdKafka::Producer> producer_;
};

// The first key of the form `<stem><n>` (padded to `length` bytes when given) routed to `partition`.
std::string key_on(const std::string& stem, std::int32_t partition, std::int32_t partitions, std::size_t length = 0) {
  for (int attempt = 0;; ++attempt) {
    std::string key = fmt::format("{}{}", stem, attempt);
    if (key.size() < length) key.append(length - key.size(), 'k');
    if (partition_for_key(key, partitions).value() == partition) return key;
  }
}

std::string random_bytes(std::mt19937& random, std::size_t size) {
  std::string bytes(size, '\0');
  for (auto& byte : bytes) byte = static_cast<char>(random() & 0xffU);
  bytes[0] = '\xff';  // field 31 with wire type 7: never valid Protobuf, never JSON
  return bytes;
}

std::string noop_job_binary(const std::string& id, std::size_t payload_bytes = 0) {
  v1::Command command;
  command.mutable_submit()->set_id(id);
  command.mutable_submit()->mutable_noop();
  command.mutable_submit()->set_payload(std::string(payload_bytes, 'p'));
  return encode(command);
}

const std::vector<std::pair<std::string, std::string>> kJsonHeader = {{"content-type", "application/json"}};
const std::vector<std::pair<std::string, std::string>> kProtobufHeader = {{"content-type", "application/x-protobuf"}};

// The poison records for one jobs partition, each with a key routed to it (unless null or empty).
void send_job_poison(RawProducer& producer, const std::string& topic, std::int32_t partition, std::int32_t partitions,
                     std::mt19937& random, const std::function<void()>& send_good) {
  const auto key = [&](const std::string& kind) {
    return key_on(fmt::format("bad-{}-{}-", partition, kind), partition, partitions);
  };
  const auto poison = [](std::string what, std::string reason) {
    return Sent{"", -1, -1, std::move(what), std::move(reason), true};
  };
  const auto json_job = [](const std::string& id, const std::string& rest) {
    return fmt::format(R"({{"id":"{}","noop":{{}}{}}})", id, rest);
  };

  auto id = key("random");
  producer.send(topic, partition, id, random_bytes(random, 64), poison("random bytes", "not valid Protobuf binary nor JSON"));
  send_good();
  id = key("truncated");
  const auto whole = noop_job_binary(id, 200);
  producer.send(topic, partition, id, whole.substr(0, whole.size() / 2), poison("truncated Protobuf", "malformed Command"),
                kProtobufHeader);
  send_good();
  id = key("badjson");
  producer.send(topic, partition, id, fmt::format(R"({{"id":"{}","noop":)", id), poison("bad JSON", "invalid JSON"));
  producer.send(topic, partition, id, json_job(id, R"(,"schedule_run":{"schedule_id":"s","misfire":"FIRE_SOMETIMES"})"),
                poison("unknown enum name in JSON", "invalid JSON"), kJsonHeader);
  producer.send(topic, partition, id, json_job(id, R"(,"no_such_field":1)"), poison("unknown JSON field", "invalid JSON"));
  producer.send(topic, partition, id, R"(["an","array"])", poison("JSON array", "invalid JSON"), kJsonHeader);
  send_good();
  {
    id = key("enum");
    v1::Command command;
    command.mutable_submit()->set_id(id);
    command.mutable_submit()->mutable_noop();
    command.mutable_submit()->mutable_schedule_run()->set_schedule_id("s");
    command.mutable_submit()->mutable_schedule_run()->set_misfire(static_cast<v1::MisfirePolicy>(99));
    producer.send(topic, partition, id, encode(command), poison("misfire enum 99 in binary", "misfire policy 99"));
    command.mutable_submit()->mutable_schedule_run()->set_misfire(v1::SKIP);
    command.mutable_submit()->mutable_schedule_run()->set_overlap(static_cast<v1::OverlapPolicy>(-7));
    producer.send(topic, partition, id, encode(command), poison("overlap enum -7 in binary", "overlap policy -7"));
  }
  send_good();
  id = key("due");
  producer.send(topic, partition, id, json_job(id, R"(,"run_at_ms":"-5")"), poison("negative run_at_ms", "is negative"));
  producer.send(topic, partition, id, json_job(id, R"(,"run_at":"1969-12-31T23:59:59Z")"),
                poison("run_at before 1970", "before 1970"));
  producer.send(topic, partition, id, json_job(id, R"(,"run_at":"9999-12-31T23:59:59Z")"),
                poison("run_at in year 9999", "beyond the horizon"));
  producer.send(topic, partition, id, json_job(id, fmt::format(R"(,"run_at_ms":"{}")", std::numeric_limits<std::int64_t>::max())),
                poison("run_at_ms int64 max", "beyond the horizon"));
  producer.send(topic, partition, id, json_job(id, R"(,"delay":"-5s")"), poison("negative delay", "delay is negative"));
  producer.send(topic, partition, id, json_job(id, R"(,"delay":"315576000000s")"),
                poison("delay of 10000 years", "beyond the horizon"));
  {
    v1::Command command;
    command.mutable_submit()->set_id(id);
    command.mutable_submit()->mutable_noop();
    command.mutable_submit()->mutable_run_at()->set_seconds(std::numeric_limits<std::int64_t>::max());
    producer.send(topic, partition, id, encode(command), poison("run_at seconds int64 max (binary)", "beyond the horizon"));
    command.mutable_submit()->mutable_delay()->set_seconds(std::numeric_limits<std::int64_t>::max() / 100);
    producer.send(topic, partition, id, encode(command), poison("delay seconds near int64 max (binary)", "beyond the horizon"));
  }
  send_good();
  id = key("fields");
  producer.send(topic, partition, id, json_job(id, R"(,"queue":"no-such-queue")"), poison("unknown queue", "unknown queue"));
  producer.send(topic, partition, id, json_job(id, R"(,"priority":42)"), poison("priority 42", "priority 42 is outside 0-9"));
  producer.send(topic, partition, id, fmt::format(R"({{"id":"{}"}})", id), poison("no task", "job has no task"));
  producer.send(topic, partition, id, json_job("another-id", ""),
                poison("key does not match the job id", "does not match job id"));
  producer.send(topic, partition, id, R"({"noop":{}})", poison("no job id", "job id is empty"));
  send_good();
  const auto long_id = key_on(fmt::format("bad-{}-long-", partition), partition, partitions, 300);
  producer.send(topic, partition, long_id, json_job(long_id, ""), poison("job id of 300 bytes", "exceeds 256 bytes"));
  id = key("empty");
  producer.send(topic, partition, id, "", poison("empty value", "empty record"));
  producer.send(topic, partition, id, kNoValue, poison("null value", "empty record"));
  producer.send(topic, partition, kNoKey, random_bytes(random, 32), poison("null key, random bytes", "not valid Protobuf"));
  producer.send(topic, partition, "", "{", poison("empty key, bad JSON", "invalid JSON"));
  send_good();
  id = key("headers");
  producer.send(topic, partition, id, noop_job_binary(id), poison("Protobuf under a JSON content-type", "invalid JSON"),
                kJsonHeader);
  producer.send(topic, partition, id, json_job(id, ""), poison("JSON under a Protobuf content-type", "malformed Command"),
                kProtobufHeader);
  producer.send(topic, partition, id, random_bytes(random, 40), poison("unknown kcron-type, random bytes", "malformed"),
                {{"kcron-type", "no-such-type"}});
  producer.send(topic, partition, id, fmt::format(R"({{"cancel":{{"job_id":"{}"}}}})", id),
                poison("a Command under kcron-type job", "invalid JSON Job"), {{"kcron-type", "job"}});
  send_good();
  id = key("size");
  producer.send(topic, partition, id, noop_job_binary(id, 950'000), poison("950 kB record", "exceeds the limit of 900000 bytes"));
  // Key and value each under the limit, together over it and over a producer's default
  // message.max.bytes of 1 MB; its key belongs to another partition, so forwarding it there
  // could never succeed.
  const auto big_key = key_on(fmt::format("bad-{}-bigkey-", partition), (partition + 1) % partitions, partitions, 150'000);
  producer.send(topic, partition, big_key, noop_job_binary("bad-bigkey", 870'000),
                poison("150 kB key with an 870 kB value", "exceeds the limit of 900000 bytes"));
  const auto long_key = key_on(fmt::format("bad-{}-longkey-", partition), partition, partitions, 5000);
  producer.send(topic, partition, long_key, random_bytes(random, 16), poison("5 kB key, random bytes", ""));
  send_good();
}

void send_schedule_poison(RawProducer& producer, const std::string& topic, std::int32_t partition, std::int32_t partitions,
                          std::mt19937& random, const std::function<void()>& send_good) {
  const auto key = [&](const std::string& kind) {
    return key_on(fmt::format("bad-{}-{}-", partition, kind), partition, partitions);
  };
  const auto poison = [](std::string what, std::string reason) {
    return Sent{"", -1, -1, std::move(what), std::move(reason), true};
  };
  const auto schedule_json = [](const std::string& id, const std::string& expression, const std::string& zone) {
    return fmt::format(R"({{"id":"{}","expression":"{}","time_zone":"{}","job_template":{{"noop":{{}}}}}})", id, expression,
                       zone);
  };
  const std::vector<std::pair<std::string, std::string>> bad_cron = {
      {"61 * * * *", "minute"},     {"* * * *", "field"},     {"*/0 * * * *", "step"},           {"0 0 30 2 *", "never fires"},
      {"@every 0s", "@every"},      {"@yearly-ish", "macro"}, {"5-1 * * * *", "runs backwards"}, {"0 0 * * MON#6", "day-of-week"},
      {"0 0 0 1 1 ? 1969", "year"},
  };
  for (std::size_t index = 0; index < bad_cron.size(); ++index) {
    const auto id = key(fmt::format("cron{}", index));
    producer.send(topic, partition, id, schedule_json(id, bad_cron[index].first, "UTC"),
                  poison("cron '" + bad_cron[index].first + "'", bad_cron[index].second), kJsonHeader);
  }
  send_good();
  for (const auto* zone : {"Mars/Olympus_Mons", "../../../../etc/passwd", "Europe/", "UTC+25"}) {
    const auto id = key("zone");
    producer.send(topic, partition, id, schedule_json(id, "* * * * *", zone),
                  poison(std::string("time zone ") + zone, "time zone"), kJsonHeader);
  }
  send_good();
  auto id = key("bytes");
  producer.send(topic, partition, id, random_bytes(random, 48), poison("random bytes", "malformed Schedule"));
  producer.send(topic, partition, id, R"({"id":)", poison("bad JSON", "invalid JSON"), kJsonHeader);
  producer.send(topic, partition, id,
                fmt::format(R"({{"id":"{}","expression":"* * * * *","misfire":"SOMETIMES","job_template":{{"noop":{{}}}}}})", id),
                poison("unknown misfire name", "invalid JSON"), kJsonHeader);
  {
    v1::Schedule schedule;
    schedule.set_id(id);
    schedule.set_expression("* * * * *");
    schedule.mutable_job_template()->mutable_noop();
    schedule.set_overlap(static_cast<v1::OverlapPolicy>(42));
    producer.send(topic, partition, id, encode(schedule), poison("overlap enum 42 in binary", "overlap policy 42"));
  }
  send_good();
  producer.send(topic, partition, id, schedule_json("another-id", "* * * * *", "UTC"),
                poison("id does not match the key", "does not match the record key"), kJsonHeader);
  producer.send(topic, partition, id, R"({"expression":"* * * * *"})", poison("no job template", "no task"), kJsonHeader);
  const auto at_id = key_on(fmt::format("bad-{}-at@", partition), partition, partitions);
  producer.send(topic, partition, at_id, schedule_json(at_id, "* * * * *", "UTC"), poison("id with '@'", "must not contain"),
                kJsonHeader);
  const auto long_id = key_on(fmt::format("bad-{}-long-", partition), partition, partitions, 300);
  producer.send(topic, partition, long_id, schedule_json(long_id, "* * * * *", "UTC"),
                poison("schedule id of 300 bytes", "bytes"), kJsonHeader);
  // (A null key never arrives: the broker refuses it on a compacted topic.)
  producer.send(topic, partition, "", schedule_json("no-key", "* * * * *", "UTC"), poison("empty key", "needs the schedule id"),
                kJsonHeader);
  producer.send(topic, partition, id,
                fmt::format(R"({{"id":"{}","expression":"* * * * *","start":"2030-01-01T00:00:00Z","end":"2029-01-01T00:00:00Z",)"
                            R"("job_template":{{"noop":{{}}}}}})",
                            id),
                poison("end before start", "end is not after start"), kJsonHeader);
  producer.send(topic, partition, id, std::string(950'000, ' '), poison("950 kB record", "exceeds the limit"), kJsonHeader);
  send_good();
}

}  // namespace

TEST_CASE("poison records on every jobs partition are each REJECTED once, and the valid jobs between them fire once", "[fault]") {
  TestEnv env("poison-jobs");
  auto vars = env.program_env("d1");
  Process dispatcher(program_path("kcron-dispatcher"), vars, env.state_root + "/dispatcher.log");
  INFO(tail_file(dispatcher.log_path()));
  REQUIRE(wait_for_log(dispatcher, "event=assigned", 60s));

  RawProducer producer;
  std::mt19937 random(20261123);
  const std::string topic = env.prefix + "jobs";
  std::vector<std::string> good_ids;
  for (std::int32_t partition = 0; partition < env.jobs_partitions; ++partition) {
    const auto send_good = [&] {
      const auto id = key_on(fmt::format("good-{}-{}-", partition, good_ids.size()), partition, env.jobs_partitions);
      good_ids.push_back(id);
      // A job without a due instant is due now; a few are near the size limit, a few sent twice.
      const bool large = good_ids.size() % 7 == 0;
      producer.send(topic, partition, id, noop_job_binary(id, large ? 890'000 : 0), Sent{"", -1, -1, "good " + id, "", false});
      if (good_ids.size() % 5 == 0) {
        // A duplicate id is idempotent: no second fire and no dead letter.
        producer.send(topic, partition, id, noop_job_binary(id), Sent{"", -1, -1, "duplicate " + id, "", false});
      }
    };
    send_good();
    send_job_poison(producer, topic, partition, env.jobs_partitions, random, send_good);
  }
  // A large run (KCRON_FAULT_JOBS): more valid jobs behind the poison, on every partition.
  for (int extra = 0; static_cast<int>(good_ids.size()) < fault_jobs(0); ++extra) {
    const std::int32_t partition = extra % env.jobs_partitions;
    const auto id = key_on(fmt::format("good-{}-{}-", partition, good_ids.size()), partition, env.jobs_partitions);
    good_ids.push_back(id);
    producer.send(topic, partition, id, noop_job_binary(id, 0), Sent{"", -1, -1, "good " + id, "", false});
  }
  const auto sent = producer.flush();
  std::size_t poison_count = 0;
  for (const auto& record : sent) poison_count += record.poison ? 1 : 0;

  const auto exec_topic_names = exec_topics(env.prefix);
  std::vector<std::string> topics = exec_topic_names;
  topics.push_back(env.prefix + "dead-letters");
  const std::set<std::string> exec_set(exec_topic_names.begin(), exec_topic_names.end());
  const auto split = [&](const std::vector<Record>& records, std::vector<const Record*>& exec,
                         std::vector<const Record*>& letters) {
    for (const auto& record : records) (exec_set.contains(record.topic) ? exec : letters).push_back(&record);
  };
  auto done = [&](const std::vector<Record>& records) {
    std::vector<const Record*> exec;
    std::vector<const Record*> letters;
    split(records, exec, letters);
    std::set<std::string> fired;
    for (const auto* record : exec) fired.insert(record->headers.count("kcron-job-id") ? record->headers.at("kcron-job-id") : "");
    return letters.size() >= poison_count &&
           std::all_of(good_ids.begin(), good_ids.end(), [&](const auto& id) { return fired.contains(id); });
  };
  read_topics(topics, std::max<std::chrono::milliseconds>(90s, good_ids.size() * 3ms), done);
  std::this_thread::sleep_for(2s);  // late duplicates, if any, show in the final read
  const auto records = read_topics(topics, 30s, done);
  std::vector<const Record*> exec;
  std::vector<const Record*> letters;
  split(records, exec, letters);

  std::map<std::string, int> fires;
  for (const auto* record : exec) {
    REQUIRE(record->headers.count("kcron-job-id") == 1);
    ++fires[record->headers.at("kcron-job-id")];
  }
  int good_once = 0;
  for (const auto& id : good_ids) {
    INFO("good job " << id);
    CHECK(fires[id] == 1);
    good_once += fires[id] == 1 ? 1 : 0;
  }
  for (const auto& [id, count] : fires) {
    INFO("fired " << id);
    CHECK(id.starts_with("good-"));
  }

  std::map<std::pair<std::int32_t, std::int64_t>, std::vector<v1::DeadLetter>> by_source;
  for (const auto* record : letters) {
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record->value));
    CHECK(letter.state() == v1::REJECTED);
    CHECK(letter.source_topic() == topic);
    CHECK(record->headers.at("kcron-status") == "REJECTED");
    by_source[{letter.source_partition(), letter.source_offset()}].push_back(letter);
  }
  int rejected_once = 0;
  for (const auto& record : sent) {
    INFO(fmt::format("{} at {}@{}", record.what, record.partition, record.offset));
    const auto found = by_source.find({record.partition, record.offset});
    if (!record.poison) {
      CHECK(found == by_source.end());
      continue;
    }
    REQUIRE(found != by_source.end());
    CHECK(found->second.size() == 1);
    CHECK_THAT(found->second.front().reason(), Catch::Contains(record.reason));
    CHECK(found->second.front().original().size() <= 64'000);
    rejected_once += found->second.size() == 1 ? 1 : 0;
  }
  // In the fault table: each record is handled once when a good job fired once or a poison
  // record was rejected once.
  int doubled = 0;
  for (const auto& id : good_ids) doubled += fires[id] > 1 ? 1 : 0;
  for (const auto& [source, found_letters] : by_source) doubled += found_letters.size() > 1 ? 1 : 0;
  const int total = static_cast<int>(good_ids.size() + poison_count);
  WARN(report_fault("poison-jobs", total, good_once + rejected_once, total - good_once - rejected_once - doubled, doubled, -1,
                    fmt::format("partitions={} good={} fired_once={} poison={} rejected_once={} dead_letters={} dispatcher={}",
                                env.jobs_partitions, good_ids.size(), good_once, poison_count, rejected_once, letters.size(),
                                dispatcher.running() ? "running" : "EXITED")));
  CHECK(letters.size() == poison_count);
  CHECK(dispatcher.running());
}

TEST_CASE("invalid schedules on every schedules partition are each REJECTED once, and valid schedules behind them fire",
          "[fault]") {
  TestEnv env("poison-schedules");
  auto vars = env.program_env("c1");
  vars.emplace_back("KCRON_SCHEDULES_PARTITIONS=2");
  Process dispatcher(program_path("kcron-dispatcher"), env.program_env("d1"), env.state_root + "/dispatcher.log");
  Process cron(program_path("kcron-cron-producer"), vars, env.state_root + "/cron-producer.log");
  INFO(tail_file(cron.log_path()));
  REQUIRE(wait_for_log(dispatcher, "event=assigned", 60s));
  REQUIRE(wait_for_log(cron, "event=assigned", 60s));

  RawProducer producer;
  std::mt19937 random(20261124);
  const std::string topic = env.prefix + "schedules";
  constexpr std::int32_t kSchedulePartitions = 2;
  std::vector<std::string> good_ids;
  for (std::int32_t partition = 0; partition < kSchedulePartitions; ++partition) {
    const auto send_good = [&] {
      const auto id = key_on(fmt::format("good-{}-{}-", partition, good_ids.size()), partition, kSchedulePartitions);
      good_ids.push_back(id);
      const auto* zone = good_ids.size() % 2 == 0 ? "Europe/Berlin" : "America/New_York";
      producer.send(topic, partition, id,
                    fmt::format(R"({{"expression":"* * * * * *","time_zone":"{}","job_template":{{"noop":{{}}}}}})", zone),
                    Sent{"", -1, -1, "good " + id, "", false}, kJsonHeader);
    };
    send_schedule_poison(producer, topic, partition, kSchedulePartitions, random, send_good);
  }
  // A large run (KCRON_FAULT_JOBS): enough every-second schedules behind the poison that their
  // runs, each fired as a job, reach that many in about 60 s.
  const int min_runs = fault_jobs(0);
  for (int extra = 0; static_cast<int>(good_ids.size()) < min_runs / 60; ++extra) {
    const std::int32_t partition = extra % kSchedulePartitions;
    const auto id = key_on(fmt::format("good-{}-{}-", partition, good_ids.size()), partition, kSchedulePartitions);
    good_ids.push_back(id);
    producer.send(topic, partition, id, R"({"expression":"* * * * * *","job_template":{"noop":{}}})",
                  Sent{"", -1, -1, "good " + id, "", false}, kJsonHeader);
  }
  const auto sent = producer.flush();
  std::size_t poison_count = 0;
  for (const auto& record : sent) poison_count += record.poison ? 1 : 0;

  std::vector<std::string> topics = exec_topics(env.prefix);
  topics.push_back(env.prefix + "dead-letters");
  const auto schedule_of = [](const Record& record) {
    v1::Execution execution;
    return execution.ParseFromString(record.value) ? execution.job().schedule_run().schedule_id() : std::string();
  };
  auto done = [&](const std::vector<Record>& records) {
    std::set<std::string> fired;
    std::size_t letters = 0;
    for (const auto& record : records) {
      if (record.topic == env.prefix + "dead-letters") {
        ++letters;
      } else {
        fired.insert(schedule_of(record));
      }
    }
    return letters >= poison_count && records.size() >= letters + static_cast<std::size_t>(min_runs) &&
           std::all_of(good_ids.begin(), good_ids.end(), [&](const auto& id) { return fired.contains(id); });
  };
  read_topics(topics, std::max<std::chrono::milliseconds>(60s, min_runs * 3ms), done);
  std::this_thread::sleep_for(2s);
  const auto records = read_topics(topics, 30s, done);

  std::map<std::string, int> runs;
  std::map<std::string, int> fires_per_run;  // job id (schedule@instant) -> exec records
  std::map<std::pair<std::int32_t, std::int64_t>, std::vector<v1::DeadLetter>> by_source;
  std::size_t letters = 0;
  for (const auto& record : records) {
    if (record.topic != env.prefix + "dead-letters") {
      ++runs[schedule_of(record)];
      ++fires_per_run[record.key];
      continue;
    }
    ++letters;
    v1::DeadLetter letter;
    REQUIRE(letter.ParseFromString(record.value));
    CHECK(letter.state() == v1::REJECTED);
    CHECK(letter.component() == "cron-producer");
    CHECK(letter.source_topic() == topic);
    by_source[{letter.source_partition(), letter.source_offset()}].push_back(letter);
  }
  int good_firing = 0;
  for (const auto& id : good_ids) {
    INFO("good schedule " << id);
    CHECK(runs[id] >= 1);
    good_firing += runs[id] >= 1 ? 1 : 0;
  }
  for (const auto& [id, count] : runs) {
    INFO("fired for schedule " << id);
    CHECK(id.starts_with("good-"));
  }
  int rejected_once = 0;
  for (const auto& record : sent) {
    INFO(fmt::format("{} at {}@{}", record.what, record.partition, record.offset));
    const auto found = by_source.find({record.partition, record.offset});
    if (!record.poison) {
      CHECK(found == by_source.end());
      continue;
    }
    REQUIRE(found != by_source.end());
    CHECK(found->second.size() == 1);
    CHECK_THAT(found->second.front().reason(), Catch::Contains(record.reason));
    rejected_once += found->second.size() == 1 ? 1 : 0;
  }
  // In the fault table: each poison record rejected once and each schedule run (a job) fired once.
  int runs_once = 0;
  int runs_doubled = 0;
  for (const auto& [job_id, count] : fires_per_run) (count == 1 ? runs_once : runs_doubled) += 1;
  const int total = static_cast<int>(fires_per_run.size() + poison_count);
  WARN(report_fault("poison-schedules", total, runs_once + rejected_once, static_cast<int>(poison_count) - rejected_once,
                    runs_doubled, -1,
                    fmt::format("partitions={} good={} firing={} runs={} poison={} rejected_once={} dead_letters={} "
                                "cron-producer={}",
                                kSchedulePartitions, good_ids.size(), good_firing, fires_per_run.size(), poison_count,
                                rejected_once, letters, cron.running() ? "running" : "EXITED")));
  CHECK(runs_doubled == 0);
  CHECK(letters == poison_count);
  CHECK(cron.running());
  CHECK(dispatcher.running());
}

// Validation cannot know every limit: an operator may set an exec topic's max.message.bytes below
// kcron's record limit. Queue `tiny`'s exec topics refuse records (and producer batches) over
// 2000 bytes; only the two big jobs use it. A job due now with a 4000-byte payload (its outputs
// are part of the consumed record's transaction) and one due 12 s later (its exec record is
// produced when it comes due, from the delay buckets) abort the transactions they are in. The
// delivery report names the refused record, so the dispatcher gives up on what produced it in the
// next batch (it halves the batch instead when several records are refused at once): the first is
// REJECTED and the second DEAD, with the broker's error. The 40 (KCRON_FAULT_JOBS) small jobs
// around them, on two other queues, fire once, and the dispatcher keeps running.
TEST_CASE("jobs whose execution records the exec topic refuses are given up on, REJECTED or DEAD, and the rest fire once",
          "[fault]") {
  TestEnv env("poison-exec", 2, 2);
  std::vector<TopicSpec> tiny;
  for (const auto band : kAllBands) tiny.push_back({exec_topic(env.prefix, "tiny", band), 2, {{"max.message.bytes", "2000"}}});
  REQUIRE(kafka::create_topics(test_client_properties(), tiny, 1, 30s).ok());
  auto dispatcher = start_program(env, "kcron-dispatcher", "d1", "d1", {"KCRON_QUEUES=default,critical,batch,tiny"});

  std::string payload;  // incompressible base64: the limit applies to the compressed batch
  std::mt19937 random(11);
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int index = 0; index < 4000; ++index) payload += kAlphabet[random() % kAlphabet.size()];
  TestProducer producer;
  std::vector<std::string> good;
  const auto send_good = [&](int count) {
    for (int index = 0; index < count; ++index) {
      const auto id = fmt::format("small-{}", good.size());
      producer.send(env.prefix + "jobs", id,
                    fmt::format(R"({{"id":"{}","queue":"{}",{},"noop":{{}}}})", id, good.size() % 2 == 0 ? "critical" : "default",
                                delay_json(good.size() % 3 == 0 ? 1500 : 0)));
      good.push_back(id);
    }
  };
  send_good(10);
  producer.send(env.prefix + "jobs", "big-now",
                fmt::format(R"({{"id":"big-now","queue":"tiny","payload":"{}","noop":{{}}}})", payload));
  send_good(10);
  producer.send(env.prefix + "jobs", "big-later",
                fmt::format(R"({{"id":"big-later","queue":"tiny",{},"payload":"{}","noop":{{}}}})", delay_json(12000), payload));
  send_good(fault_jobs(40) - 20);
  producer.flush();

  std::vector<std::string> topics = exec_topics(env.prefix);
  for (const auto& spec : tiny) topics.push_back(spec.name);
  topics.push_back(env.prefix + "dead-letters");
  read_topics(topics, std::max<std::chrono::milliseconds>(90s, good.size() * 2ms), [&](const std::vector<Record>& seen) {
    std::set<std::string> fired;
    int letters = 0;
    for (const auto& record : seen) {
      if (record.topic.ends_with("dead-letters")) {
        ++letters;
      } else {
        fired.insert(record.key);
      }
    }
    return letters >= 2 && std::all_of(good.begin(), good.end(), [&](const auto& id) { return fired.contains(id); });
  });
  std::this_thread::sleep_for(2s);
  const auto final_records = read_topics(topics, 10s);
  std::map<std::string, int> fires;
  std::map<std::string, v1::DeadLetter> letters;
  for (const auto& record : final_records) {
    if (record.topic.ends_with("dead-letters")) {
      v1::DeadLetter letter;
      REQUIRE(letter.ParseFromString(record.value));
      letters[record.key] = letter;
    } else {
      ++fires[record.key];
    }
  }
  int good_once = 0;
  for (const auto& id : good) {
    INFO(id);
    CHECK(fires[id] == 1);
    good_once += fires[id] == 1 ? 1 : 0;
  }
  CHECK(fires.count("big-now") == 0);
  CHECK(fires.count("big-later") == 0);
  REQUIRE(letters.count("big-now") == 1);
  REQUIRE(letters.count("big-later") == 1);
  CHECK(letters["big-now"].state() == v1::REJECTED);
  CHECK_THAT(letters["big-now"].reason(), Catch::Contains("could not be published") && Catch::Contains("too large"));
  CHECK(letters["big-later"].state() == v1::DEAD);
  CHECK_THAT(letters["big-later"].reason(),
             Catch::Contains("execution record could not be published") && Catch::Contains("too large"));
  const int handled =
      good_once + (letters["big-now"].state() == v1::REJECTED ? 1 : 0) + (letters["big-later"].state() == v1::DEAD ? 1 : 0);
  WARN(report_fault("poison-exec-refused", static_cast<int>(good.size()) + 2, handled,
                    static_cast<int>(good.size()) + 2 - handled, 0, -1,
                    fmt::format("bisect_aborts={} dispatcher={}", count_in_log(dispatcher->log_path(), "event=bisect"),
                                dispatcher->running() ? "running" : "EXITED")));
  CHECK(dispatcher->running());
}
