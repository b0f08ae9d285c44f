// Network fault tests (label `fault`, tag [environment]): programs lose their network rather than
// their process. The test makes a network namespace joined to this one by a veth pair; its broker
// (one node, its own) listens on the host end's address, so programs outside reach it through the
// loopback path and programs started inside the namespace only through the veth link. nftables
// rules inside the namespace then cut that link (every packet dropped: a silent partition, not a
// refused connection) or make it lossy; with the kernel's netem qdisc it also gets delay.
// Needs root, `ip` and `nft`; without them the scenario reports SKIP with the reason.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "support/harness.h"

using namespace kcron;
using namespace kcron::testing;
using namespace std::chrono_literals;

namespace {

int shell(const std::string& command) {
  const int status = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A network namespace with a veth link to this one: 10.213.N.1 here, 10.213.N.2 inside. Removed
// (with its nftables rules and qdiscs) by the destructor.
class NetNamespace {
 public:
  NetNamespace() {
    const int n = static_cast<int>(::getpid() % 250) + 1;
    name_ = fmt::format("kcron-net-{}", ::getpid());
    host_link_ = fmt::format("kcnh{}", ::getpid() % 100000);
    inner_link_ = fmt::format("kcni{}", ::getpid() % 100000);
    host_address_ = fmt::format("10.213.{}.1", n);
    inner_address_ = fmt::format("10.213.{}.2", n);
    if (::geteuid() != 0) {
      error_ = "needs root to create a network namespace (ip netns add)";
      return;
    }
    if (shell("command -v ip") != 0 || shell("command -v nft") != 0) {
      error_ = "needs ip (iproute2) and nft (nftables): apt-get install iproute2 nftables";
      return;
    }
    const std::vector<std::string> steps = {
        fmt::format("ip netns add {}", name_),
        fmt::format("ip link add {} type veth peer name {}", host_link_, inner_link_),
        fmt::format("ip link set {} netns {}", inner_link_, name_),
        fmt::format("ip addr add {}/30 dev {}", host_address_, host_link_),
        fmt::format("ip link set {} up", host_link_),
        fmt::format("ip netns exec {} ip addr add {}/30 dev {}", name_, inner_address_, inner_link_),
        fmt::format("ip netns exec {} ip link set {} up", name_, inner_link_),
        fmt::format("ip netns exec {} ip link set lo up", name_),
        fmt::format("ip netns exec {} nft add table inet kcron", name_),
        fmt::format("ip netns exec {} nft 'add chain inet kcron out {{ type filter hook output priority 0; }}'", name_),
        fmt::format("ip netns exec {} nft 'add chain inet kcron in {{ type filter hook input priority 0; }}'", name_),
    };
    for (const auto& step : steps) {
      if (shell(step) != 0) {
        error_ = "could not set up the network namespace: `" + step + "` failed";
        return;
      }
    }
    netem_ = shell(fmt::format("tc qdisc add dev {} root netem delay 1ms", host_link_)) == 0;
    if (netem_) (void)shell(fmt::format("tc qdisc del dev {} root", host_link_));
  }
  ~NetNamespace() {
    (void)shell(fmt::format("ip link del {}", host_link_));
    (void)shell(fmt::format("ip netns del {}", name_));
  }
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  const std::string& host_address() const { return host_address_; }
  bool has_netem() const { return netem_; }

  // Every packet between the namespace and the host end is dropped, both ways.
  bool cut() const {
    return nft("add rule inet kcron out ip daddr " + host_address_ + " drop") == 0 &&
           nft("add rule inet kcron in ip saddr " + host_address_ + " drop") == 0;
  }
  // Packets are dropped at random (`loss_percent` each way) and, with netem, delayed on both ends.
  // Returns what it applied, e.g. "nft-loss=5% netem-delay=80ms+-40ms", or "" on failure.
  std::string degrade(int loss_percent, int delay_ms) const {
    std::string applied;
    const auto random_drop = fmt::format("numgen random mod 100 < {} drop", loss_percent);
    if (nft("add rule inet kcron out ip daddr " + host_address_ + " " + random_drop) != 0 ||
        nft("add rule inet kcron in ip saddr " + host_address_ + " " + random_drop) != 0) {
      return "";
    }
    applied = fmt::format("nft-loss={}%", loss_percent);
    if (netem_) {
      const auto delay = fmt::format("netem delay {}ms {}ms", delay_ms / 2, delay_ms / 4);
      if (shell(fmt::format("tc qdisc add dev {} root {}", host_link_, delay)) == 0 &&
          shell(fmt::format("ip netns exec {} tc qdisc add dev {} root {}", name_, inner_link_, delay)) == 0) {
        applied += fmt::format(" netem-delay={}ms+-{}ms(each way {}ms)", delay_ms, delay_ms / 2, delay_ms / 2);
      }
    } else {
      applied += " no-delay(kernel without sch_netem)";
    }
    return applied;
  }
  // Removes every rule and qdisc: the link is whole again.
  bool heal() const {
    (void)shell(fmt::format("tc qdisc del dev {} root", host_link_));
    (void)shell(fmt::format("ip netns exec {} tc qdisc del dev {} root", name_, inner_link_));
    return nft("flush chain inet kcron out") == 0 && nft("flush chain inet kcron in") == 0;
  }

 private:
  int nft(const std::string& command) const { return shell(fmt::format("ip netns exec {} nft '{}'", name_, command)); }

  std::string name_;
  std::string host_link_;
  std::string inner_link_;
  std::string host_address_;
  std::string inner_address_;
  std::string error_;
  bool netem_ = false;
};

int net_fault_jobs(int fallback) {
  const char* text = std::getenv("KCRON_ENV_FAULT_JOBS");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : fault_jobs(fallback);
}

int net_broker_port() {
  const char* text = std::getenv("KCRON_NET_FAULT_BROKER_PORT");
  return text != nullptr && std::atoi(text) > 0 ? std::atoi(text) : 19832;
}

struct Programs {
  const TestEnv& env;
  std::string netns;
  std::map<std::string, std::unique_ptr<Process>> running;
  // `inside`: started in the namespace. Dispatchers are d*, workers w*.
  Process& start(const std::string& name, bool inside, const std::vector<std::string>& extra = {}) {
    auto vars = env.program_env(name);
    vars.insert(vars.end(), extra.begin(), extra.end());
    const auto program = name.front() == 'd' ? "kcron-dispatcher" : "kcron-worker";
    running[name] = std::make_unique<Process>(program_path(program), vars, fmt::format("{}/{}.log", env.state_root, name),
                                              inside ? netns : std::string());
    return *running[name];
  }
  // `name_running=… name_heals=[…]` for each, plus the fatal error of one that exited.
  std::string describe() {
    std::string out;
    for (auto& [name, process] : running) {
      if (const auto code = process->wait_exit(0ms)) {
        out += fmt::format("{}_exit={} ({}) ", name, *code, fatal_reason(process->log_path()));
      }
      out += fmt::format("{}_running={} {}_heals=[{}] ", name, process->running(), name, heal_events(process->log_path()));
    }
    return out;
  }
};

// Submits `jobs` jobs (ids prefix-0..) over `spread`, even ones immediate, odd ones due 2-10 s
// after they are sent; `during(elapsed)` is called between batches. Due instants are returned.
std::map<std::string, std::int64_t> stream_jobs(const TestEnv& env, const std::string& id_prefix, int jobs,
                                                std::chrono::milliseconds spread,
                                                const std::function<void(std::chrono::milliseconds)>& during) {
  std::map<std::string, std::int64_t> due_ms;
  TestProducer producer;
  const auto started = std::chrono::steady_clock::now();
  constexpr int kBatches = 30;
  int sent = 0;
  for (int batch = 0; batch < kBatches; ++batch) {
    for (const int until = jobs * (batch + 1) / kBatches; sent < until; ++sent) {
      const auto id = fmt::format("{}{}", id_prefix, sent);
      const std::int64_t delay = sent % 2 == 0 ? 0 : 2000 + (8000LL * sent) / jobs;
      due_ms[id] = wall_ms() + delay;
      producer.send(env.prefix + "jobs", id, submit_json(id, delay == 0 ? std::string() : delay_json(delay)));
    }
    producer.poll();
    during(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started));
    std::this_thread::sleep_until(started + (batch + 1) * spread / kBatches);
  }
  producer.flush();
  return due_ms;
}

struct Outcome {
  Tally fired;
  int succeeded_once = 0;
  int succeeded_twice = 0;
  double max_done_lag_s = 0;  // longest wait past due until the SUCCEEDED result
};

Outcome collect(const TestEnv& env, const std::string& id_prefix, int jobs, const std::map<std::string, std::int64_t>& due_ms) {
  Outcome outcome;
  const auto timeout = std::max<std::chrono::milliseconds>(120s, jobs * 2ms);
  outcome.fired = tally(read_exec_until_all(env.prefix, id_prefix, jobs, timeout), id_prefix, jobs);
  std::map<std::string, std::vector<std::int64_t>> succeeded;
  read_topics({env.prefix + "results"}, timeout, [&](const std::vector<Record>& records) {
    succeeded = succeeded_results(records);
    return succeeded.size() >= static_cast<std::size_t>(jobs);
  });
  std::this_thread::sleep_for(2s);  // late duplicates show
  succeeded = succeeded_results(read_topics({env.prefix + "results"}, 10s));
  std::int64_t max_lag_ms = 0;
  for (const auto& [id, times] : succeeded) {
    outcome.succeeded_once += times.size() == 1 ? 1 : 0;
    outcome.succeeded_twice += times.size() > 1 ? 1 : 0;
    if (const auto due = due_ms.find(id); due != due_ms.end() && !times.empty()) {
      max_lag_ms = std::max(max_lag_ms, times.front() - due->second);
    }
  }
  outcome.max_done_lag_s = static_cast<double>(max_lag_ms) / 1000.0;
  return outcome;
}

// Every job fired once and succeeded once, and every program still runs (none exited).
void check_every_job_once(const Outcome& outcome, int jobs, Programs& programs) {
  INFO(tail_file(programs.running["d1"]->log_path()));
  CHECK(outcome.fired.lost == 0);
  CHECK(outcome.fired.duplicated == 0);
  CHECK(outcome.fired.once == jobs);
  CHECK(outcome.succeeded_once == jobs);
  CHECK(outcome.succeeded_twice == 0);
  for (auto& [name, process] : programs.running) {
    INFO(name);
    CHECK(process->running());
  }
}

}  // namespace

// Two dispatchers and two workers share the work; d1 and w1 run in the namespace. 4 s into a
// stream of jobs the namespace is cut off for 18 s: longer than the session timeout (6 s), so d2
// and w2 take everything over, and longer than the transaction timeout (10 s), so the
// coordinator aborts what d1 and w1 had open. When the link heals, d1 and w1 find themselves
// fenced: they must heal in place (new producer, new consumer) without committing anything stale
// and without exiting. Then a lossy link (10% of packets dropped each way, delayed with netem
// where the kernel has it) under d1 alone for 10 s of a second stream. Every job of both streams
// fires once and succeeds once.
TEST_CASE("a network partition longer than the transaction timeout, then a lossy link: every job fires once and succeeds once",
          "[fault][environment]") {
  NetNamespace net;
  if (!net.error().empty()) {
    skip_scenario(net.error());
    return;
  }
  const auto root = std::filesystem::temp_directory_path() / fmt::format("kcron-net-broker-{}", ::getpid());
  OwnBroker broker(net_broker_port(), root.string(), 1, net.host_address());
  if (!broker.started()) {
    skip_scenario("could not start a broker of its own on " + net.host_address() +
                  " (scripts/kafka start; Java and the Kafka jars are needed): " + tail_file(broker.log(), 5));
    return;
  }
  BrokersOverride brokers_override(broker.bootstrap());
  const int jobs = net_fault_jobs(300);

  // ---- Phase 1: a partition longer than the transaction timeout.
  {
    TestEnv env("net-partition", 4, 2);
    Programs programs{env, net.name(), {}};
    programs.start("d1", true);
    programs.start("d2", false);
    programs.start("w1", true);
    programs.start("w2", false);
    for (auto& [name, process] : programs.running) {
      INFO(name << ": " << tail_file(process->log_path(), 15));
      REQUIRE(wait_for_log(*process, "event=assigned", 60s));
    }
    std::optional<std::chrono::steady_clock::time_point> cut_at;
    bool cut_ok = false;
    bool healed_ok = false;
    const auto due_ms = stream_jobs(env, "np-", jobs, 20s, [&](std::chrono::milliseconds elapsed) {
      if (!cut_at && elapsed >= 4s) {
        cut_at = std::chrono::steady_clock::now();
        cut_ok = net.cut();
      }
    });
    REQUIRE(cut_at.has_value());
    REQUIRE(cut_ok);
    std::this_thread::sleep_until(*cut_at + 18s);
    healed_ok = net.heal();
    const double cut_s = seconds_since(*cut_at);
    const auto outcome = collect(env, "np-", jobs, due_ms);
    const auto described = programs.describe();
    WARN(report_fault("network-partition-dispatcher-worker", outcome.fired, outcome.max_done_lag_s,
                      fmt::format("cut_s={:.1f} succeeded_once={} succeeded_twice={} {}", cut_s, outcome.succeeded_once,
                                  outcome.succeeded_twice, described)));
    INFO(tail_file(programs.running["w1"]->log_path()));
    CHECK(healed_ok);
    check_every_job_once(outcome, jobs, programs);
    // The cut-off dispatcher noticed: it lost its partitions (a rebalance, a fenced consumer or
    // producer healed in place) rather than carrying on as if nothing happened.
    const auto& d1_log = programs.running["d1"]->log_path();
    CHECK(count_in_log(d1_log, "event=revoked") + count_in_log(d1_log, "event=rejoin ") + count_in_log(d1_log, "event=recover ") >
          0);
  }

  // ---- Phase 2: a lossy (and, with netem, slow) link under the only dispatcher.
  {
    TestEnv env("net-lossy", 4, 2);
    Programs programs{env, net.name(), {}};
    programs.start("d1", true);
    programs.start("w1", false);
    for (auto& [name, process] : programs.running) {
      INFO(name << ": " << tail_file(process->log_path(), 15));
      REQUIRE(wait_for_log(*process, "event=assigned", 60s));
    }
    std::string applied;
    std::optional<std::chrono::steady_clock::time_point> degraded_at;
    const auto due_ms = stream_jobs(env, "nl-", jobs, 12s, [&](std::chrono::milliseconds elapsed) {
      if (!degraded_at && elapsed >= 2s) {
        degraded_at = std::chrono::steady_clock::now();
        applied = net.degrade(10, 80);
      }
    });
    REQUIRE(degraded_at.has_value());
    REQUIRE_FALSE(applied.empty());
    std::this_thread::sleep_until(*degraded_at + 10s);
    const bool healed_ok = net.heal();
    const auto outcome = collect(env, "nl-", jobs, due_ms);
    const auto described = programs.describe();
    WARN(report_fault("network-lossy-link-dispatcher", outcome.fired, outcome.max_done_lag_s,
                      fmt::format("link=\"{}\" degraded_s=10 succeeded_once={} succeeded_twice={} {}", applied,
                                  outcome.succeeded_once, outcome.succeeded_twice, described)));
    CHECK(healed_ok);
    check_every_job_once(outcome, jobs, programs);
  }
}
