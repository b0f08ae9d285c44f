#include "core/workers.h"

#include <catch2/catch.hpp>

namespace {

kcron::v1::WorkerHeartbeat beat() {
  kcron::v1::WorkerHeartbeat heartbeat;
  heartbeat.set_worker_id("w1");
  heartbeat.set_host("build-7.internal");
  heartbeat.add_queues("default");
  heartbeat.set_slots(8);
  heartbeat.set_at_ms(1000);
  heartbeat.set_interval_ms(5000);
  heartbeat.set_member_id("kcron-worker-abc");
  heartbeat.set_succeeded(120);
  heartbeat.set_failed(3);
  heartbeat.set_rss_bytes(1 << 20);
  heartbeat.add_running("acme~report");
  heartbeat.add_running("beta~payroll");
  heartbeat.add_running("plain-default-job");
  heartbeat.set_cpu_seconds(12.5);
  heartbeat.add_programs("/usr/bin/report");
  heartbeat.add_handlers("send-mail");
  return heartbeat;
}

}  // namespace

TEST_CASE("a tenant's caller sees a worker's capacity and its own running jobs, nothing of other tenants") {
  const auto acme = kcron::api::worker_for_tenant(beat(), "acme");
  CHECK(acme.worker_id() == "w1");
  CHECK(acme.slots() == 8);
  REQUIRE(acme.queues_size() == 1);
  CHECK(acme.at_ms() == 1000);
  CHECK(acme.interval_ms() == 5000);
  REQUIRE(acme.running_size() == 1);
  CHECK(acme.running(0) == "report");
  CHECK(acme.host().empty());
  CHECK(acme.member_id().empty());
  CHECK(acme.succeeded() == 0);
  CHECK(acme.failed() == 0);
  // What it can run and how it fares: the same for every tenant, naming no job.
  CHECK(acme.rss_bytes() == 1 << 20);
  CHECK(acme.cpu_seconds() == 12.5);
  REQUIRE(acme.programs_size() == 1);
  CHECK(acme.programs(0) == "/usr/bin/report");
  REQUIRE(acme.handlers_size() == 1);
  CHECK(acme.handlers(0) == "send-mail");

  const auto others = kcron::api::worker_for_tenant(beat(), "gamma");
  CHECK(others.running_size() == 0);
  const auto plain = kcron::api::worker_for_tenant(beat(), "default");
  REQUIRE(plain.running_size() == 1);
  CHECK(plain.running(0) == "plain-default-job");
}
