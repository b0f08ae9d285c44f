#include "kcron/upgrade_gate.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

namespace kcron {

std::vector<std::string> dispatcher_features() {
  return {std::string(feature::kTenantKeys), std::string(feature::kTenantLimits), std::string(feature::kPurgeTenant),
          std::string(feature::kAudit),      std::string(feature::kFireAhead),    std::string(feature::kResultsDone),
          std::string(feature::kSealed),     std::string(feature::kFlows),        std::string(feature::kBatch)};
}

std::vector<std::string> worker_features() {
  return {std::string(feature::kTenantKeys), std::string(feature::kTenantLimits), std::string(feature::kPurgeTenant),
          std::string(feature::kFireAhead),  std::string(feature::kResultsDone),  std::string(feature::kSealed),
          std::string(feature::kFlows),      std::string(feature::kBatch)};  // nothing to do: a writer asks every member
}

std::vector<MemberGroup> member_groups(const TopicNames& names) {
  return {{"dispatcher", names.prefix + "dispatcher", names.prefix + "dispatcher-", "dispatcher/"},
          {"worker", names.prefix + "workers", names.prefix + "worker-", ""}};
}

Status check_members(const MemberGroup& group, const std::vector<GroupMember>& members,
                     const std::map<std::string, v1::WorkerHeartbeat, std::less<>>& heartbeats, std::string_view wanted,
                     Instant now) {
  const auto closed = [&](std::string_view member, std::string_view why) {
    return make_error(
        "{} '{}' {}: it runs a release that does not understand '{}'. Upgrade every {} first "
        "(docs/tenancy.md#upgrading-to-tenant-scoped-keys)",
        group.role, member, why, wanted, group.role);
  };
  for (const auto& member : members) {
    if (!member.instance_id.starts_with(group.instance_prefix)) {
      return closed(member.instance_id, "is in the group under an unknown instance id");
    }
    const std::string instance = member.instance_id.substr(group.instance_prefix.size());
    const auto beat = heartbeats.find(group.heartbeat_key_prefix + instance);
    if (beat == heartbeats.end()) return closed(instance, "sends no heartbeat");
    const auto& heartbeat = beat->second;
    if (group.role != "worker" && heartbeat.role() != group.role) return closed(instance, "sends no heartbeat of its role");
    if (std::find(heartbeat.features().begin(), heartbeat.features().end(), wanted) == heartbeat.features().end()) {
      return closed(instance, "does not advertise it");
    }
    if (!heartbeat.member_id().empty() && heartbeat.member_id() == member.member_id) continue;  // its own, any age
    const Millis age = now - instant_from_ms(heartbeat.at_ms());
    const Millis interval(std::max<std::int64_t>(heartbeat.interval_ms(), 1000));
    if (heartbeat.stopped() || age > 3 * interval) {
      return closed(instance, fmt::format("is in the group as another member than its last heartbeat ({}, {} s old) says",
                                          heartbeat.stopped() ? "a stop" : "stale", age.count() / 1000));
    }
  }
  return Status::success();
}

namespace {

// The group.instance.ids of each consumer group's members (none for an empty or unknown group),
// asked in one request.
Result<std::map<std::string, std::vector<GroupMember>>> describe_members(rd_kafka_t* handle,
                                                                         const std::vector<std::string>& group_ids,
                                                                         std::chrono::milliseconds timeout) {
  rd_kafka_queue_t* queue = rd_kafka_queue_new(handle);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
  char error_text[512] = {};
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), error_text, sizeof error_text);
  std::vector<const char*> groups;
  for (const auto& group_id : group_ids) groups.push_back(group_id.c_str());
  rd_kafka_DescribeConsumerGroups(handle, groups.data(), groups.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 5000);
  Result<std::map<std::string, std::vector<GroupMember>>> outcome =
      make_error("describe groups {}: no answer within {} ms", fmt::join(group_ids, ", "), timeout.count());
  if (event != nullptr) {
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      outcome = make_error("describe groups {}: {}", fmt::join(group_ids, ", "), rd_kafka_event_error_string(event));
    } else {
      const auto* result = rd_kafka_event_DescribeConsumerGroups_result(event);
      std::size_t count = 0;
      const auto* descriptions = rd_kafka_DescribeConsumerGroups_result_groups(result, &count);
      std::map<std::string, std::vector<GroupMember>> members;
      std::string problem;
      for (std::size_t index = 0; index < count; ++index) {
        const std::string group_id = rd_kafka_ConsumerGroupDescription_group_id(descriptions[index]);
        auto& listed = members[group_id];
        if (const auto* error = rd_kafka_ConsumerGroupDescription_error(descriptions[index]); error != nullptr) {
          // An unknown group has no members: nothing of it can misread a record.
          if (rd_kafka_error_code(error) != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
            problem = fmt::format("{}: {}", group_id, rd_kafka_error_string(error));
          }
          continue;
        }
        const std::size_t member_count = rd_kafka_ConsumerGroupDescription_member_count(descriptions[index]);
        for (std::size_t member = 0; member < member_count; ++member) {
          const auto* description = rd_kafka_ConsumerGroupDescription_member(descriptions[index], member);
          const char* instance = rd_kafka_MemberDescription_group_instance_id(description);
          listed.push_back({instance != nullptr ? instance : rd_kafka_MemberDescription_client_id(description),
                            rd_kafka_MemberDescription_consumer_id(description)});
        }
      }
      if (problem.empty()) {
        outcome = std::move(members);
      } else {
        outcome = make_error("describe group {}", problem);
      }
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  return outcome;
}

}  // namespace

Status require_feature(const kafka::Properties& client, const TopicNames& names, std::string_view wanted, Instant now,
                       std::chrono::milliseconds timeout) {
  auto producer = kafka::make_producer(client, "");
  if (!producer) return producer.error();
  auto topics = kafka::partition_counts(**producer, timeout);
  if (!topics) return topics.error();
  if (!topics->contains(names.workers())) {
    return make_error("topic {} does not exist, so no program's heartbeat can be read (kcron topics create makes it)",
                      names.workers());
  }
  std::map<std::string, v1::WorkerHeartbeat, std::less<>> heartbeats;
  auto read = kafka::replay_partition(
      client, names.prefix + "upgrade-gate", names.workers(), 0, [](std::int64_t low, std::int64_t) { return low; },
      [&](RdKafka::Message& message) {
        if (message.key() == nullptr) return Status::success();
        if (message.payload() == nullptr) {
          heartbeats.erase(*message.key());
          return Status::success();
        }
        v1::WorkerHeartbeat beat;
        if (beat.ParseFromArray(message.payload(), static_cast<int>(message.len()))) heartbeats[*message.key()] = beat;
        return Status::success();
      },
      timeout);
  if (!read) return read.error().within("reading the heartbeats on " + names.workers());
  const auto groups = member_groups(names);
  std::vector<std::string> group_ids;
  for (const auto& group : groups) group_ids.push_back(group.group_id);
  auto members = describe_members((*producer)->c_ptr(), group_ids, timeout);
  if (!members) return members.error();
  for (const auto& group : groups) {
    const auto found = members->find(group.group_id);
    if (found == members->end()) continue;
    if (auto open = check_members(group, found->second, heartbeats, wanted, now); !open) return open;
  }
  return Status::success();
}

FeatureWatch::FeatureWatch(kafka::Properties client, TopicNames names, std::string wanted, std::chrono::milliseconds interval)
    : client_(std::move(client)), names_(std::move(names)), wanted_(std::move(wanted)), interval_(interval) {}

FeatureWatch::~FeatureWatch() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FeatureWatch::start() {
  thread_ = std::thread([this] { run(); });
}

std::string FeatureWatch::reason() const {
  std::lock_guard lock(mutex_);
  return reason_;
}

void FeatureWatch::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    const auto answer = require_feature(client_, names_, wanted_, SystemClock::instance().now(), std::chrono::seconds(5));
    lock.lock();
    const bool was_open = open_.load();
    const std::string was_reason = reason_;
    open_ = answer.ok();
    reason_ = answer.ok() ? std::string() : answer.error().message();
    if (was_open != answer.ok() || was_reason != reason_) {  // changes only: a closed gate is asked every 2 s
      spdlog::log(answer.ok() ? spdlog::level::info : spdlog::level::warn, "event=feature_gate feature={} open={} reason=\"{}\"",
                  wanted_, answer.ok(), reason_);
    }
    const auto next = answer.ok() ? interval_ : std::min<std::chrono::milliseconds>(interval_, std::chrono::seconds(2));
    wake_.wait_for(lock, next, [this] { return stopping_; });
  }
}

}  // namespace kcron
