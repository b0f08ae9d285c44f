#include "kcron/topic_drift.h"

#include <catch2/catch.hpp>

using namespace kcron;

namespace {

TopicSpec status_spec() {
  return {"kcron.status",
          12,
          {{"cleanup.policy", "compact,delete"},
           {"retention.ms", "604800000"},
           {"min.compaction.lag.ms", "86400000"},
           {"delete.retention.ms", "86400000"}}};
}

// The status topic as the previous release created it, with one override of the operator's.
DescribedTopicConfig old_status() {
  DescribedTopicConfig described;
  described.topic = "kcron.status";
  described.overrides = {{"cleanup.policy", "compact"},
                         {"delete.retention.ms", "86400000"},
                         {"min.compaction.lag.ms", "604800000"},
                         {"max.message.bytes", "2000000"}};
  described.effective = described.overrides;
  described.effective["retention.ms"] = "604800000";  // the broker's default happens to match
  described.effective["segment.bytes"] = "1073741824";
  return described;
}

}  // namespace

TEST_CASE("config drift lists the spec keys whose effective value differs, in spec order") {
  const auto drift = config_drift(status_spec(), old_status());
  CHECK(drift == std::vector<ConfigDrift>{{"kcron.status", "cleanup.policy", "compact", "compact,delete"},
                                          {"kcron.status", "min.compaction.lag.ms", "604800000", "86400000"}});
}

TEST_CASE("config drift compares cleanup.policy as a set and other keys exactly") {
  auto described = old_status();
  described.effective["cleanup.policy"] = "delete, compact";
  described.effective["min.compaction.lag.ms"] = "86400000";
  CHECK(config_drift(status_spec(), described).empty());
  described.effective["cleanup.policy"] = "delete";
  described.effective["retention.ms"] = "0604800000";
  CHECK(config_drift(status_spec(), described) ==
        std::vector<ConfigDrift>{{"kcron.status", "cleanup.policy", "delete", "compact,delete"},
                                 {"kcron.status", "retention.ms", "0604800000", "604800000"}});
}

TEST_CASE("a spec key the broker gives no value for is drift with an empty current value") {
  auto described = old_status();
  described.effective.erase("delete.retention.ms");
  const auto drift = config_drift(status_spec(), described);
  REQUIRE(drift.size() == 3);
  CHECK(drift[2] == ConfigDrift{"kcron.status", "delete.retention.ms", "", "86400000"});
  CHECK(change_line(drift[2]) == "  kcron.status: delete.retention.ms (no value) -> 86400000");
}

TEST_CASE("the overlay keeps every override of the topic and lays the spec's keys over them") {
  const auto overlaid = overlay_overrides(old_status(), status_spec().config);
  REQUIRE(overlaid.ok());
  CHECK(*overlaid == std::map<std::string, std::string>{{"cleanup.policy", "compact,delete"},
                                                        {"delete.retention.ms", "86400000"},
                                                        {"max.message.bytes", "2000000"},
                                                        {"min.compaction.lag.ms", "86400000"},
                                                        {"retention.ms", "604800000"}});
}

TEST_CASE("the overlay refuses a topic with overrides whose values the broker withholds") {
  auto described = old_status();
  described.hidden_overrides = {"some.secret", "other.secret"};
  const auto overlaid = overlay_overrides(described, status_spec().config);
  REQUIRE_FALSE(overlaid.ok());
  CHECK(overlaid.error().message().starts_with("topic kcron.status: its override(s) some.secret, other.secret have values"));
}

TEST_CASE("a topic whose cleanup.policy differs is aligned with all its drift, the tuning of others is noted") {
  const std::vector<ConfigDrift> drift = {{"kcron.status", "min.compaction.lag.ms", "604800000", "86400000"},
                                          {"kcron.status", "cleanup.policy", "compact", "compact,delete"},
                                          {"kcron.results", "retention.ms", "86400000", "604800000"}};
  const auto plan = plan_alignment(drift, false);
  CHECK(plan.topics == std::vector<std::string>{"kcron.status"});
  CHECK(plan.changes == std::vector<ConfigDrift>{drift[0], drift[1]});
  CHECK(plan.notes == std::vector<ConfigDrift>{drift[2]});
  CHECK(plan.policy_differs());
  CHECK(change_line(drift[1]) == "  kcron.status: cleanup.policy compact -> compact,delete");
  CHECK(note_line(drift[2]) == "  note: kcron.results retention.ms is 86400000 (kcron ships 604800000)");
}

TEST_CASE("with align-configs every topic that differs is aligned and nothing is left as a note") {
  const std::vector<ConfigDrift> drift = {{"kcron.results", "retention.ms", "86400000", "604800000"},
                                          {"kcron.audit", "retention.ms", "1", "2592000000"},
                                          {"kcron.results", "cleanup.policy", "compact", "delete"}};
  const auto plan = plan_alignment(drift, true);
  CHECK(plan.topics == std::vector<std::string>{"kcron.results", "kcron.audit"});
  CHECK(plan.changes == drift);
  CHECK(plan.notes.empty());
}

TEST_CASE("tuning alone aligns nothing and is no policy difference") {
  const std::vector<ConfigDrift> drift = {{"kcron.results", "retention.ms", "86400000", "604800000"}};
  const auto plan = plan_alignment(drift, false);
  CHECK(plan.topics.empty());
  CHECK(plan.changes.empty());
  CHECK(plan.notes == drift);
  CHECK_FALSE(plan.policy_differs());
  CHECK_FALSE(plan_alignment({}, true).policy_differs());
}
