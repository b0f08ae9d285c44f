#include "kcron/upgrade_gate.h"

#include <catch2/catch.hpp>

using namespace kcron;

namespace {

constexpr std::int64_t kNow = 1'790'000'000'000;

v1::WorkerHeartbeat beat(const std::string& role, std::vector<std::string> features, std::int64_t age_ms = 1000,
                         bool stopped = false, const std::string& member_id = "") {
  v1::WorkerHeartbeat heartbeat;
  heartbeat.set_member_id(member_id);
  heartbeat.set_role(role);
  for (auto& feature : features) heartbeat.add_features(std::move(feature));
  heartbeat.set_at_ms(kNow - age_ms);
  heartbeat.set_interval_ms(5000);
  heartbeat.set_stopped(stopped);
  return heartbeat;
}

// Members by instance id, each holding the member id "m-<instance id>".
Status check(const MemberGroup& group, const std::vector<std::string>& instances,
             const std::map<std::string, v1::WorkerHeartbeat, std::less<>>& heartbeats) {
  std::vector<GroupMember> members;
  for (const auto& instance : instances) members.push_back({instance, "m-" + instance});
  return check_members(group, members, heartbeats, feature::kTenantKeys, instant_from_ms(kNow));
}

}  // namespace

TEST_CASE("the upgrade gate is open when every member of a group advertises the feature in a live heartbeat") {
  const auto groups = member_groups(TopicNames("kcron."));
  REQUIRE(groups.size() == 2);
  const auto& dispatchers = groups[0];
  const auto& workers = groups[1];
  CHECK(dispatchers.group_id == "kcron.dispatcher");
  CHECK(workers.group_id == "kcron.workers");
  CHECK(check(dispatchers, {}, {}).ok());  // nobody runs: nobody can misread
  CHECK(check(dispatchers, {"kcron.dispatcher-d1", "kcron.dispatcher-d2"},
              {{"dispatcher/d1", beat("dispatcher", dispatcher_features())},
               {"dispatcher/d2", beat("dispatcher", dispatcher_features())}})
            .ok());
  CHECK(check(workers, {"kcron.worker-w1"}, {{"w1", beat("", worker_features())}}).ok());
}

TEST_CASE("a member of an earlier release holds the upgrade gate closed, and the refusal names it and says why") {
  const auto groups = member_groups(TopicNames("kcron."));
  const auto& dispatchers = groups[0];
  const auto& workers = groups[1];
  // A dispatcher of the release before sends no heartbeat at all.
  auto silent = check(dispatchers, {"kcron.dispatcher-d1", "kcron.dispatcher-old"},
                      {{"dispatcher/d1", beat("dispatcher", dispatcher_features())}});
  REQUIRE_FALSE(silent.ok());
  CHECK(silent.error().message() ==
        "dispatcher 'old' sends no heartbeat: it runs a release that does not understand 'tenant-keys'. Upgrade every "
        "dispatcher first (docs/tenancy.md#upgrading-to-tenant-scoped-keys)");
  // A worker of the release before heartbeats without features.
  auto old_worker = check(workers, {"kcron.worker-w1"}, {{"w1", beat("", {})}});
  REQUIRE_FALSE(old_worker.ok());
  CHECK_THAT(old_worker.error().message(), Catch::StartsWith("worker 'w1' does not advertise it"));
  // A heartbeat this release wrote before the member was rolled back: stale or a stop.
  auto stale =
      check(dispatchers, {"kcron.dispatcher-d1"}, {{"dispatcher/d1", beat("dispatcher", dispatcher_features(), 60'000)}});
  REQUIRE_FALSE(stale.ok());
  CHECK_THAT(stale.error().message(),
             Catch::Contains("is in the group as another member than its last heartbeat (stale, 60 s old) says"));
  auto stopped =
      check(dispatchers, {"kcron.dispatcher-d1"}, {{"dispatcher/d1", beat("dispatcher", dispatcher_features(), 10, true)}});
  REQUIRE_FALSE(stopped.ok());
  CHECK_THAT(stopped.error().message(), Catch::Contains("(a stop, 0 s old)"));
  // A worker's heartbeat under a dispatcher's key does not count for the dispatcher.
  auto wrong_role = check(dispatchers, {"kcron.dispatcher-d1"}, {{"dispatcher/d1", beat("", worker_features())}});
  CHECK_FALSE(wrong_role.ok());
  auto unknown = check(dispatchers, {"someone-else"}, {});
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.error().message(), Catch::Contains("is in the group under an unknown instance id"));
}

TEST_CASE("a member's own heartbeat keeps the gate open at any age, a fresh one before it learnt its member id too") {
  const auto groups = member_groups(TopicNames("kcron."));
  const auto& dispatchers = groups[0];
  // Restoring for minutes, or stopped cleanly and not yet out of the group: its own member id.
  CHECK(check(dispatchers, {"kcron.dispatcher-d1"},
              {{"dispatcher/d1", beat("dispatcher", dispatcher_features(), 600'000, false, "m-kcron.dispatcher-d1")}})
            .ok());
  CHECK(check(dispatchers, {"kcron.dispatcher-d1"},
              {{"dispatcher/d1", beat("dispatcher", dispatcher_features(), 600'000, true, "m-kcron.dispatcher-d1")}})
            .ok());
  // Just joined: the heartbeat before the join, fresh, without a member id.
  CHECK(check(dispatchers, {"kcron.dispatcher-d1"}, {{"dispatcher/d1", beat("dispatcher", dispatcher_features(), 500)}}).ok());
}

TEST_CASE("a dispatcher of this release advertises what a worker does, and the audit topic") {
  const auto features = dispatcher_features();
  for (const auto& wanted : worker_features()) CHECK(std::find(features.begin(), features.end(), wanted) != features.end());
  CHECK(std::find(features.begin(), features.end(), feature::kAudit) != features.end());
}
