// The rolling-upgrade gate (docs/tenancy.md#upgrading): a writer uses a protocol feature (tenant
// keys, tenant deletion, ...) only once every dispatcher and worker in the groups says, in its
// heartbeat on the workers topic, that it understands it. A program of an earlier release says
// nothing (a dispatcher) or lists no features (a worker), so it holds the gate closed until it is
// upgraded or gone. The check is pure (check_members); require_feature() asks the broker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/kafka.h"
#include "kcron/result.h"
#include "kcron/topics.h"

namespace kcron {

namespace feature {
inline constexpr std::string_view kTenantKeys = "tenant-keys";      // <tenant>~<id> keys on every topic
inline constexpr std::string_view kTenantLimits = "tenant-limits";  // the registry's limits are enforced
inline constexpr std::string_view kPurgeTenant = "purge-tenant";    // PurgeTenant, tenant-wide cancels
inline constexpr std::string_view kAudit = "audit";                 // decisions on kcron.audit
inline constexpr std::string_view kFireAhead = "fire-ahead";        // workers hold exec records until due_ms
inline constexpr std::string_view kResultsDone = "results-done";    // workers read results as done markers
inline constexpr std::string_view kSealed = "sealed";               // sealed tasks scheduled and opened
inline constexpr std::string_view kFlows = "flows";                 // flows decided; nodes' endings reported
inline constexpr std::string_view kBatch = "batch";                 // Batch records split to their jobs' owners
}  // namespace feature

// What a dispatcher and a worker of this release advertise.
std::vector<std::string> dispatcher_features();
std::vector<std::string> worker_features();

// One consumer group of kcron's programs: its members' group.instance.id are
// `<prefix><instance_prefix><instance>`, their heartbeats keyed `<heartbeat_key_prefix><instance>`.
struct MemberGroup {
  std::string role;  // "dispatcher", "worker": for messages
  std::string group_id;
  std::string instance_prefix;
  std::string heartbeat_key_prefix;
};
std::vector<MemberGroup> member_groups(const TopicNames& names);

// A member of a group as the broker lists it.
struct GroupMember {
  std::string instance_id;  // group.instance.id (the client id when it has none)
  std::string member_id;
};

// Whether every member of `group` has a heartbeat that lists `wanted` and is its own: the
// heartbeat names the member id the member holds now (any age: a program restoring for minutes
// sends none meanwhile, and one that stopped cleanly reads nothing more), or, just after a join
// (before the program learnt its new member id), it is younger than three intervals and not a
// stop. A program of an earlier release that took over an instance id finds neither. The error
// names the first member that holds the gate closed and why.
Status check_members(const MemberGroup& group, const std::vector<GroupMember>& members,
                     const std::map<std::string, v1::WorkerHeartbeat, std::less<>>& heartbeats, std::string_view wanted,
                     Instant now);

// Asks the broker: describes the dispatcher and worker groups, reads the workers topic, and runs
// check_members for each. An error when a member holds the gate closed, or the broker cannot be
// asked within `timeout`.
Status require_feature(const kafka::Properties& client, const TopicNames& names, std::string_view wanted, Instant now,
                       std::chrono::milliseconds timeout);

// require_feature() asked again and again on a thread of its own, every `interval`, so that a loop
// can read the answer without waiting on the broker. Closed until the first answer.
class FeatureWatch {
 public:
  // Asks every `interval` while open, and every `min(interval, 2 s)` while closed, so that a
  // closed answer holds nothing back longer than it must.
  FeatureWatch(kafka::Properties client, TopicNames names, std::string wanted, std::chrono::milliseconds interval);
  ~FeatureWatch();  // stops and joins the thread
  FeatureWatch(const FeatureWatch&) = delete;
  FeatureWatch& operator=(const FeatureWatch&) = delete;

  void start();
  bool open() const { return open_.load(); }
  std::string reason() const;  // why it is closed (empty when open)

 private:
  void run();

  kafka::Properties client_;
  TopicNames names_;
  std::string wanted_;
  std::chrono::milliseconds interval_;
  std::atomic<bool> open_{false};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string reason_ = "not checked yet";
  std::thread thread_;
};

}  // namespace kcron
