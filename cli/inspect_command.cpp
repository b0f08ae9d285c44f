#include "inspect_command.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "api_commands.h"
#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/codec.h"
#include "kcron/kafka.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"
#include "text.h"

namespace kcron::cli {

namespace {

// A read_committed consumer of `topic`, with the partitions to read: every one, or the one `key`
// hashes to.
struct TopicReader {
  std::unique_ptr<RdKafka::KafkaConsumer> consumer;
  std::vector<std::int32_t> partitions;
};

Result<TopicReader> open_reader(const Config& config, const std::string& topic, const std::string& key,
                                std::int32_t* partition_count) {
  auto properties = kafka::client_properties(config, "kcron-cli-inspect");
  // Never joined or committed; under the topic prefix, so kcron's principal's ACLs cover it.
  properties["group.id"] = config.get("topic_prefix") + "cli-inspect";
  properties["enable.partition.eof"] = "true";
  auto consumer = kafka::make_consumer(properties);
  if (!consumer) return consumer.error();
  auto counts = kafka::partition_counts(**consumer, Millis(10000));
  if (!counts) return counts.error();
  const auto found = counts->find(topic);
  if (found == counts->end()) return make_error("topic {} does not exist (kcron topics create makes it)", topic);
  if (partition_count != nullptr) *partition_count = found->second;
  TopicReader reader{std::move(*consumer), {}};
  for (std::int32_t partition = 0; partition < found->second; ++partition) {
    if (key.empty() || partition == partition_for_key(key, found->second).value()) reader.partitions.push_back(partition);
  }
  return reader;
}

// Reads the assigned partitions until each reaches the offset `remaining` gives it (its high
// watermark when reading began) or reports its end, handing every record to `visit`.
Status read_assigned(RdKafka::KafkaConsumer& consumer, const std::string& topic, std::map<std::int32_t, std::int64_t> remaining,
                     Millis timeout, const std::function<void(Read&&)>& visit) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!remaining.empty()) {
    if (std::chrono::steady_clock::now() > deadline)
      return make_error("reading {} did not reach its end within {} s", topic, timeout.count() / 1000);
    std::unique_ptr<RdKafka::Message> message(consumer.consume(200));
    if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      // read_committed ends at the last stable offset: past it are only aborted or open records.
      remaining.erase(message->partition());
      continue;
    }
    if (message->err() != RdKafka::ERR_NO_ERROR) continue;
    if (message->offset() + 1 >= remaining[message->partition()]) remaining.erase(message->partition());
    Read record;
    record.partition = message->partition();
    if (message->key() != nullptr) record.key = *message->key();
    if (message->payload() != nullptr) record.value.assign(static_cast<const char*>(message->payload()), message->len());
    record.tombstone = message->payload() == nullptr;
    record.timestamp_ms = kafka::record_timestamp_ms(*message, 0);
    record.content_type = kafka::header_value(*message, header::kContentType);
    visit(std::move(record));
  }
  consumer.close();
  return Status::success();
}

}  // namespace

Result<std::vector<Read>> read_to_end(const Config& config, const std::string& topic, const std::string& key,
                                      std::int32_t* partition_count) {
  auto reader = open_reader(config, topic, key, partition_count);
  if (!reader) return reader.error();
  kafka::PartitionList assignment;
  std::map<std::int32_t, std::int64_t> remaining;  // partition -> high watermark still to reach
  for (const auto partition : reader->partitions) {
    // Retried for a while: a topic created a moment ago may not have its leader yet.
    auto marks = kafka::watermarks(*reader->consumer, topic, partition, Millis(10000));
    if (!marks) return marks.error();
    const auto [low, high] = *marks;
    if (high <= low) continue;
    remaining[partition] = high;
    assignment.items.push_back(RdKafka::TopicPartition::create(topic, partition, RdKafka::Topic::OFFSET_BEGINNING));
  }
  std::vector<Read> records;
  if (remaining.empty()) return records;
  if (const auto code = reader->consumer->assign(assignment.items); code != RdKafka::ERR_NO_ERROR)
    return kafka::to_error(code, "assign");
  if (auto status = read_assigned(*reader->consumer, topic, std::move(remaining), Millis(30000),
                                  [&](Read&& record) { records.push_back(std::move(record)); });
      !status) {
    return status.error();
  }
  return records;
}

Status read_since(const Config& config, const std::string& topic, Instant since, const std::function<void(Read&&)>& visit,
                  const std::string& key, Millis timeout) {
  auto reader = open_reader(config, topic, key, nullptr);
  if (!reader) return reader.error();
  kafka::PartitionList times;
  std::map<std::int32_t, std::int64_t> high_of;
  for (const auto partition : reader->partitions) {
    auto marks = kafka::watermarks(*reader->consumer, topic, partition, Millis(10000));
    if (!marks) return marks.error();
    const auto [low, high] = *marks;
    if (high <= low) continue;
    high_of[partition] = high;
    times.items.push_back(RdKafka::TopicPartition::create(topic, partition, to_epoch_ms(since)));
  }
  if (high_of.empty()) return Status::success();
  // Each partition's first offset timestamped at or after `since`; -1 when it has none.
  if (const auto code = reader->consumer->offsetsForTimes(times.items, 10000); code != RdKafka::ERR_NO_ERROR)
    return kafka::to_error(code, fmt::format("offsetsForTimes on {}", topic));
  kafka::PartitionList assignment;
  std::map<std::int32_t, std::int64_t> remaining;
  for (const auto* partition : times.items) {
    if (partition->err() != RdKafka::ERR_NO_ERROR)
      return kafka::to_error(partition->err(), fmt::format("offsetsForTimes on {}[{}]", topic, partition->partition()));
    const auto high = high_of.at(partition->partition());
    if (partition->offset() < 0 || partition->offset() >= high) continue;
    remaining[partition->partition()] = high;
    assignment.items.push_back(RdKafka::TopicPartition::create(topic, partition->partition(), partition->offset()));
  }
  if (remaining.empty()) return Status::success();
  if (const auto code = reader->consumer->assign(assignment.items); code != RdKafka::ERR_NO_ERROR)
    return kafka::to_error(code, "assign");
  return read_assigned(*reader->consumer, topic, std::move(remaining), timeout, visit);
}

namespace {

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

}  // namespace

InspectCommands::InspectCommands(CLI::App& app) {
  status_ = app.add_subcommand("status", "a job's latest state and its history (kcron.status, kcron.events)");
  status_->add_option("job-id", job_id_)->required();
  status_->add_flag("--json", json_, "JSON lines instead of a table");

  auto* dlq = app.add_subcommand("dlq", "list or replay dead letters");
  dlq->require_subcommand(1);
  dlq_list_ = dlq->add_subcommand("list", "dead letters, oldest first (REJECTED input and DEAD jobs)");
  dlq_list_->add_flag("--json", json_, "JSON lines instead of a table");
  dlq_list_->add_option("-n,--max", max_, "only the newest N");
  dlq_replay_ = dlq->add_subcommand("replay", "run DEAD jobs again: a Replay command per job, as a new attempt");
  dlq_replay_->add_option("job-ids", replay_ids_, "ids of DEAD jobs");
  dlq_replay_->add_flag("--all", replay_all_, "every DEAD job in the dead letters");

  workers_ = app.add_subcommand("workers", "workers from their heartbeats: live, stopped or lost");
  workers_->add_flag("--json", json_, "JSON lines instead of a table");
}

int InspectCommands::run_api(ApiClient& client, std::ostream& out, std::ostream& err) const {
  if (status_->parsed()) return api_status(client, job_id_, json_, out, err);
  if (workers_->parsed()) return api_workers(client, json_, SystemClock::instance().now(), out, err);
  if (dlq_list_->parsed()) {
    if (max_ < 0) return fail(err, "--max must be 0 (all) or more");
    return api_dead_letters(client, static_cast<std::size_t>(max_), json_, out, err);
  }
  return api_replay(client, replay_ids_, replay_all_, out, err);
}

bool InspectCommands::parsed() const {
  return status_->parsed() || dlq_list_->parsed() || dlq_replay_->parsed() || workers_->parsed();
}

int InspectCommands::run(const Config& config, std::ostream& out, std::ostream& err) const {
  const TopicNames names(config.get("topic_prefix"));
  // The tenant the command acts in (--tenant); a job is (tenant, id), keyed by its scoped key.
  const std::string given_tenant = config.get("tenant");
  const std::string tenant(tenant_or_default(given_tenant));
  if (status_->parsed()) {
    const std::string key = scoped_key(tenant, job_id_);
    auto latest = read_to_end(config, names.status(), key);
    if (!latest) return fail(err, latest.error().message());
    // The timeline: every transition on `status` (kept a day before compaction may drop it), and
    // on `events` for writers with `emit_events` (or of an earlier release); each transition once.
    auto events = read_to_end(config, names.events(), key);
    if (!events) return fail(err, events.error().message());
    std::vector<v1::StatusRecord> history;
    std::set<std::tuple<std::uint32_t, std::uint64_t, int, std::int64_t>> seen;
    const auto add = [&](const std::vector<Read>& records) {
      for (const auto& record : records) {
        v1::StatusRecord status;
        if (record.key != key || !decode_message(record.value, record.content_type, status)) continue;
        if (seen.emplace(status.attempt(), status.sequence(), static_cast<int>(status.state()), status.at_ms()).second) {
          history.push_back(status);
        }
      }
    };
    add(*latest);
    add(*events);
    std::stable_sort(history.begin(), history.end(), [](const v1::StatusRecord& left, const v1::StatusRecord& right) {
      return std::tuple(left.attempt(), left.sequence(), left.at_ms()) <
             std::tuple(right.attempt(), right.sequence(), right.at_ms());
    });
    v1::StatusRecord current;
    bool known = false;
    for (const auto& status : history) {
      // Terminal states are final; otherwise (attempt, sequence) orders the writes.
      if (!known || std::pair(status.attempt(), status.sequence()) >= std::pair(current.attempt(), current.sequence())) {
        current = status;
        known = true;
      }
    }
    if (!known && history.empty()) {
      return fail(err, fmt::format("no status for job '{}'{}", job_id_,
                                   is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant)));
    }
    if (json_) {
      out << to_json(current) << "\n";
      for (const auto& entry : history) out << to_json(entry) << "\n";
      return 0;
    }
    out << fmt::format("job {}: {} (attempt {}) at {}{}\n", job_id_, state_name(current.state()), current.attempt(),
                       rfc3339_ms(current.at_ms()), current.reason().empty() ? "" : " - " + one_line(current.reason(), 200));
    if (!history.empty()) {
      out << fmt::format("{:<25} {:<10} {:>7}  {:<10} {}\n", "AT", "STATE", "ATTEMPT", "BY", "REASON");
      for (const auto& entry : history) {
        out << fmt::format("{:<25} {:<10} {:>7}  {:<10} {}\n", rfc3339_ms(entry.at_ms()), state_name(entry.state()),
                           entry.attempt(), entry.component(), one_line(entry.reason()));
      }
    }
    return 0;
  }

  if (dlq_list_->parsed() || dlq_replay_->parsed()) {
    auto records = read_to_end(config, names.dead_letters());
    if (!records) return fail(err, records.error().message());
    // Whose a letter is: its tenant field, else its job's (letters of the release before tenants).
    const auto letter_tenant = [](const v1::DeadLetter& letter) {
      return tenant_or_default(!letter.tenant().empty() ? letter.tenant() : letter.job().tenant());
    };
    std::vector<std::pair<v1::DeadLetter, std::string>> read;  // each letter, and the job id it is keyed by
    for (const auto& record : *records) {
      v1::DeadLetter letter;
      if (!decode_message(record.value, record.content_type, letter)) continue;
      // list: every tenant's unless --tenant names one; replay: this tenant's only.
      if ((dlq_replay_->parsed() || !given_tenant.empty()) && letter_tenant(letter) != tenant) continue;
      read.emplace_back(std::move(letter), std::string(split_scoped_key(record.key).id));
    }
    std::stable_sort(read.begin(), read.end(), [](const auto& a, const auto& b) { return a.first.at_ms() < b.first.at_ms(); });
    std::vector<v1::DeadLetter> letters;
    std::vector<std::string> keyed_ids;  // keyed_ids[i]: the id letters[i] is keyed by
    letters.reserve(read.size());
    keyed_ids.reserve(read.size());
    for (auto& [letter, id] : read) {
      letters.push_back(std::move(letter));
      keyed_ids.push_back(std::move(id));
    }
    if (dlq_list_->parsed()) {
      const auto skip =
          max_ > 0 && letters.size() > static_cast<std::size_t>(max_) ? letters.size() - static_cast<std::size_t>(max_) : 0;
      if (!json_) out << dead_letters_table_header();
      for (std::size_t index = skip; index < letters.size(); ++index) {
        const auto& letter = letters[index];
        if (json_) {
          out << to_json(letter) << "\n";
          continue;
        }
        out << dead_letters_table_row(letter, letter_tenant(letter), keyed_ids[index]);
      }
      return 0;
    }
    // Replay: the newest DEAD letter of each id (a job may have died, been replayed and died again).
    std::map<std::string, const v1::DeadLetter*> dead;
    for (const auto& letter : letters) {
      if (letter.state() == v1::DEAD && letter.has_job() && !letter.job().id().empty()) dead[letter.job().id()] = &letter;
    }
    std::vector<std::string> ids = replay_ids_;
    if (replay_all_) {
      for (const auto& [id, letter] : dead) ids.push_back(id);
    }
    if (ids.empty()) return fail(err, "name the job ids to replay, or --all");
    auto producer = kafka::make_producer(kafka::client_properties(config, "kcron-cli"), "");
    if (!producer) return fail(err, producer.error().message());
    int missing = 0;
    for (const auto& id : ids) {
      const auto found = dead.find(id);
      if (found == dead.end()) {
        err << fmt::format("kcron: no DEAD job '{}' in {} (REJECTED input cannot be replayed: fix it and submit again)\n", id,
                           names.dead_letters());
        ++missing;
        continue;
      }
      v1::Command command;
      command.mutable_replay()->set_job_id(id);
      *command.mutable_replay()->mutable_job() = found->second->job();
      command.mutable_replay()->mutable_job()->set_tenant(std::string(tenant_field(tenant)));
      *command.mutable_replay()->mutable_job()->mutable_history() = found->second->history();
      auto headers = typed_headers("replay", id, tenant);
      if (auto status =
              kafka::produce(**producer, {names.jobs(), -1, scoped_routing_key(tenant, id), encode(command), false, headers});
          !status) {
        return fail(err, status.error().message());
      }
      out << "replay sent for " << id << "\n";
    }
    if ((*producer)->flush(15000) != RdKafka::ERR_NO_ERROR) return fail(err, "the records were not acknowledged within 15 s");
    return missing == 0 ? 0 : 1;
  }

  if (workers_->parsed()) {
    auto records = read_to_end(config, names.workers());
    if (!records) return fail(err, records.error().message());
    std::map<std::string, v1::WorkerHeartbeat> latest;
    for (const auto& record : *records) {
      v1::WorkerHeartbeat beat;
      if (record.value.empty() || !decode_message(record.value, record.content_type, beat)) continue;
      if (!beat.role().empty()) continue;  // a dispatcher's (features for the upgrade gate), not a worker's
      auto& slot = latest[beat.worker_id()];
      if (beat.at_ms() >= slot.at_ms()) slot = beat;
    }
    const auto now = to_epoch_ms(SystemClock::instance().now());
    if (!json_) out << workers_table_header();
    for (const auto& [id, beat] : latest) {
      const auto state = worker_state(beat, now);
      if (json_) {
        out << fmt::format(R"({{"state":"{}","heartbeat":{}}})", state, to_json(beat)) << "\n";
        continue;
      }
      out << workers_table_row(beat, state, now);
    }
    return 0;
  }
  return 0;
}

}  // namespace kcron::cli
