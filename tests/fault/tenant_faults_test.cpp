// Tenant fault test (label `fault`): three tenants (the default one, `a` and `b`) submit the same
// job ids to two dispatchers and two workers; one dispatcher is killed with SIGKILL while it holds
// pending jobs, one worker while its slots run jobs. Counted from the topics by scoped key
// (`t-N`, `a~t-N`, `b~t-N`): each tenant's job must fire exactly once and succeed exactly once,
// so no tenant's job is taken for another's re-submit, done marker or result.
#include <catch2/catch.hpp>
#include <thread>

#include "kcron.pb.h"
#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

TEST_CASE(
    "three tenants share job ids while a dispatcher and a worker are killed: each tenant's job fires once and succeeds once",
    "[fault]") {
  TestEnv env("tenantkill", 4, 4);
  const auto start = [&](const std::string& program, const std::string& instance) {
    return start_program(env, program, instance, instance, {"KCRON_SLOTS=3"});
  };
  auto d1 = start("kcron-dispatcher", "d1");
  auto d2 = start("kcron-dispatcher", "d2");
  auto w1 = start("kcron-worker", "w1");
  auto w2 = start("kcron-worker", "w2");
  std::this_thread::sleep_for(3s);  // both groups settle with two members each

  const int jobs = fault_jobs(60);  // per tenant
  const std::vector<std::string> tenants = {"", "a", "b"};
  TestProducer producer;
  for (int index = 0; index < jobs; ++index) {
    for (const auto& tenant : tenants) {
      const auto id = fmt::format("t-{}", index);
      // Due 4-10 s from now, so the dispatcher killed at 3 s holds its share pending; the first
      // 60 sleep 0.2-0.5 s, so the worker killed at 8 s has jobs running. More (a large run) are noops.
      const auto delay_ms = 4000 + 6000 * index / jobs;
      const auto task = index < 60 ? fmt::format(R"("sleep":{{"duration":"{:.2f}s"}})", 0.2 + (index % 4) * 0.1) : "\"noop\":{}";
      const auto tenant_field = tenant.empty() ? std::string() : fmt::format(R"("tenant":"{}",)", tenant);
      producer.send(env.prefix + "jobs", tenant.empty() ? id : fmt::format("{}~{}", tenant, id),
                    fmt::format(R"({{"id":"{}",{}{},{}}})", id, tenant_field, delay_json(delay_ms), task), -1,
                    {{"content-type", "application/json"}});
    }
  }
  producer.flush();
  std::this_thread::sleep_for(3s);
  d2->kill_hard();
  std::this_thread::sleep_for(5s);
  w2->kill_hard();

  const auto timeout = std::max<std::chrono::milliseconds>(120s, jobs * 6ms);
  for (const auto& tenant : tenants) {
    const auto id_prefix = tenant.empty() ? std::string("t-") : tenant + "~t-";
    const auto fired = tally(read_exec_until_all(env.prefix, id_prefix, jobs, timeout), id_prefix, jobs);
    const auto succeeded = read_succeeded_until_all(env.prefix, id_prefix, jobs, timeout);
    const auto name = tenant.empty() ? std::string("default") : tenant;
    WARN(report_fault("tenants-fired-" + name, fired, -1));
    WARN(report_fault("tenants-succeeded-" + name, succeeded, -1));
    INFO("tenant " << name);
    CHECK(fired.once == jobs);
    CHECK(fired.lost == 0);
    CHECK(fired.duplicated == 0);
    CHECK(succeeded.once == jobs);
    CHECK(succeeded.lost == 0);
    CHECK(succeeded.duplicated == 0);
  }
}
