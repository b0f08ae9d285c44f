// The exec executor against real processes (/bin/sh, /bin/echo, /usr/bin/env...): what the policy
// refuses, what the child sees, and that timeouts and stops leave nothing of the job running.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/runner.h"
#include "core/secret_refs.h"
#include "core/tenant_walls.h"
#include "exec/exec_task.h"
#include "secrets/secret_dir.h"

using namespace kcron;
using namespace kcron::worker;
using namespace std::chrono_literals;

namespace {

ExecPolicy test_policy() {
  ExecPolicy policy;
  policy.programs = {"/bin/sh", "/bin/echo", "/bin/sleep", "/usr/bin/env", "/usr/bin/head", "/usr/bin/grep", "/usr/bin/ls"};
  policy.env_names = {"GREETING"};
  policy.default_timeout = 10s;
  policy.kill_grace = 200ms;
  return policy;
}

v1::Job exec_job(const std::vector<std::string>& argv) {
  v1::Job job;
  job.set_id("job-exec-1");
  auto* task = job.mutable_exec();
  for (const auto& argument : argv) task->add_argv(argument);
  return job;
}

v1::Job shell_job(const std::string& script) {
  return exec_job({"/bin/sh", "-c", script});
}

Outcome run(const v1::Job& job, const ExecPolicy& policy = test_policy()) {
  const std::atomic<bool> stop{false};
  return make_exec_executor(policy)(job, stop);
}

std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

// Gone, or a zombie waiting for an init that may never reap it (as in some containers): either
// way it runs no more. Polls for at most `limit`.
bool process_ended_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (::kill(pid, 0) == -1 && errno == ESRCH) return true;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto name_end = line.rfind(") ");
    if (name_end != std::string::npos && name_end + 2 < line.size()) {
      const char state = line[name_end + 2];
      if (state == 'Z' || state == 'X') return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::size_t open_descriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

}  // namespace

TEST_CASE("an allowlisted program runs and its stdout becomes the output") {
  const auto outcome = run(exec_job({"/bin/echo", "hello", "world"}));
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.exit_code == 0);
  CHECK(outcome.output == "hello world\n");
  CHECK(outcome.error.empty());
}

TEST_CASE("the runner runs exec jobs through the registered executor") {
  Runner runner(SystemClock::instance());
  runner.register_executor(v1::Job::kExec, make_exec_executor(test_policy()));
  const std::atomic<bool> stop{false};
  const auto outcome = runner.run(exec_job({"/bin/echo", "via runner"}), stop);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output == "via runner\n");
}

TEST_CASE("a non-zero exit fails retriably with the status and the tail of stderr") {
  const auto outcome = run(shell_job("echo partial; echo boom >&2; exit 3"));
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.retriable);
  CHECK(outcome.exit_code == 3);
  CHECK(outcome.error == "exited with status 3; stderr: boom");
  CHECK(outcome.output == "partial\n");
}

TEST_CASE("a child killed by a signal fails naming the signal") {
  const auto outcome = run(shell_job("kill -SEGV $$"));
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.exit_code == 128 + SIGSEGV);
  CHECK_THAT(outcome.error, Catch::StartsWith("killed by signal SIGSEGV"));
}

TEST_CASE("a program outside the allowlist is refused and never runs") {
  const auto marker = std::filesystem::temp_directory_path() / ("kcron-exec-test-marker-" + std::to_string(::getpid()));
  std::filesystem::remove(marker);
  const auto outcome = run(exec_job({"/usr/bin/touch", marker.string()}));
  CHECK(outcome.state == v1::FAILED);
  CHECK_FALSE(outcome.retriable);
  CHECK(outcome.error == "program '/usr/bin/touch' is not in the worker's exec.programs allowlist");
  CHECK_FALSE(std::filesystem::exists(marker));
}

TEST_CASE("a relative program is refused even when the bare name is allowlisted") {
  auto policy = test_policy();
  policy.programs.emplace_back("sh");
  const auto outcome = run(exec_job({"sh", "-c", "echo ran"}), policy);
  CHECK(outcome.state == v1::FAILED);
  CHECK_FALSE(outcome.retriable);
  CHECK_THAT(outcome.error, Catch::Contains("'sh' is not an absolute path") && Catch::Contains("exec.programs"));
  CHECK(outcome.output.empty());
}

TEST_CASE("exec jobs are refused while exec.programs is empty") {
  const auto status = check_exec(exec_job({"/bin/echo"}).exec(), ExecPolicy{});
  REQUIRE_FALSE(status.ok());
  CHECK_THAT(status.error().message(), Catch::Contains("disabled") && Catch::Contains("exec.programs is empty"));
}

TEST_CASE("an environment variable outside exec.env is refused, so LD_PRELOAD cannot slip in") {
  auto job = exec_job({"/bin/echo", "never"});
  (*job.mutable_exec()->mutable_env())["LD_PRELOAD"] = "/tmp/evil.so";
  const auto outcome = run(job);
  CHECK(outcome.state == v1::FAILED);
  CHECK_FALSE(outcome.retriable);
  CHECK(outcome.error == "environment variable 'LD_PRELOAD' is not in the worker's exec.env allowlist");
  CHECK(outcome.output.empty());
}

TEST_CASE("malformed tasks are refused: empty argv, bad env names, NUL bytes, a relative cwd") {
  const auto policy = test_policy();
  CHECK_THAT(check_exec(v1::ExecTask{}, policy).error().message(), Catch::Contains("empty argv"));

  auto with_equals = exec_job({"/bin/echo"});
  (*with_equals.mutable_exec()->mutable_env())["GREETING=x"] = "y";
  CHECK_THAT(check_exec(with_equals.exec(), policy).error().message(), Catch::Contains("is invalid"));

  auto with_nul = exec_job({"/bin/echo"});
  (*with_nul.mutable_exec()->mutable_env())[std::string("GREETING\0X", 10)] = "y";
  CHECK_THAT(check_exec(with_nul.exec(), policy).error().message(), Catch::Contains("is invalid"));

  auto nul_argument = exec_job({"/bin/echo", std::string("a\0b", 3)});
  CHECK_THAT(check_exec(nul_argument.exec(), policy).error().message(), Catch::Contains("NUL"));

  auto relative_cwd = exec_job({"/bin/echo"});
  relative_cwd.mutable_exec()->set_cwd("tmp");
  CHECK_THAT(check_exec(relative_cwd.exec(), policy).error().message(), Catch::Contains("cwd 'tmp' is not an absolute path"));

  auto fine = exec_job({"/bin/echo"});
  (*fine.mutable_exec()->mutable_env())["GREETING"] = "hi";
  fine.mutable_exec()->set_cwd("/");
  CHECK(check_exec(fine.exec(), policy).ok());
}

TEST_CASE("the child sees its allowlisted variables and a fixed PATH, nothing of the worker's environment") {
  REQUIRE(::setenv("KCRON_EXEC_TEST_SECRET", "leaked", 1) == 0);
  auto job = exec_job({"/usr/bin/env"});
  (*job.mutable_exec()->mutable_env())["GREETING"] = "hi there";
  const auto outcome = run(job);
  ::unsetenv("KCRON_EXEC_TEST_SECRET");
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output == "GREETING=hi there\nPATH=/usr/local/bin:/usr/bin:/bin\n");
}

TEST_CASE("the child starts with default signal dispositions, no blocked signals and only stdio open") {
  // As in the worker: SIGPIPE ignored, SIGTERM blocked in the slot thread, a descriptor without CLOEXEC.
  const auto previous_pipe = std::signal(SIGPIPE, SIG_IGN);
  sigset_t terminate;
  sigemptyset(&terminate);
  sigaddset(&terminate, SIGTERM);
  sigset_t previous_mask;
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &terminate, &previous_mask) == 0);
  const int inheritable = ::open("/dev/null", O_RDONLY);
  REQUIRE(inheritable >= 0);

  const auto signals = run(exec_job({"/usr/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}));
  const auto descriptors = run(exec_job({"/usr/bin/ls", "/proc/self/fd"}));

  ::close(inheritable);
  ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  std::signal(SIGPIPE, previous_pipe);
  CHECK(signals.output == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  CHECK(descriptors.output == "0\n1\n2\n3\n");  // 3: the directory ls is reading
}

TEST_CASE("a timeout kills the whole process group, grandchildren included") {
  auto job = shell_job("sleep 30 & echo $!; wait");
  job.mutable_timeout()->set_nanos(300'000'000);
  const auto start = std::chrono::steady_clock::now();
  const auto outcome = run(job);
  CHECK(elapsed_since(start) < 1500ms);
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.retriable);
  CHECK(outcome.error == "timed out after 0.3s; process group killed");
  const auto grandchild = static_cast<pid_t>(std::stol(outcome.output));
  CHECK(process_ended_within(grandchild, 2s));
}

TEST_CASE("a process group that ignores SIGTERM is killed after the grace period") {
  auto job = shell_job("trap '' TERM; sleep 30 & echo $!; wait; wait");
  job.mutable_timeout()->set_nanos(200'000'000);
  const auto start = std::chrono::steady_clock::now();
  const auto outcome = run(job);  // kill_grace 200 ms
  const auto took = elapsed_since(start);
  CHECK(took >= 400ms);
  CHECK(took < 1500ms);
  CHECK(outcome.error == "timed out after 0.2s; process group killed");
  CHECK(outcome.exit_code == 128 + SIGKILL);
  CHECK(process_ended_within(static_cast<pid_t>(std::stol(outcome.output)), 2s));
}

TEST_CASE("setting stop from another thread ends the job promptly") {
  std::atomic<bool> stop{false};
  const auto executor = make_exec_executor(test_policy());
  std::jthread stopper([&stop] {
    std::this_thread::sleep_for(100ms);
    stop = true;
  });
  const auto start = std::chrono::steady_clock::now();
  const auto outcome = executor(exec_job({"/bin/sleep", "30"}), stop);
  CHECK(elapsed_since(start) < 1000ms);
  CHECK(outcome.state == v1::FAILED);
  CHECK(outcome.error == "stopped: process group killed");
}

TEST_CASE("output beyond capture_bytes is dropped while the child keeps writing") {
  auto policy = test_policy();
  policy.capture_bytes = 1000;
  const auto start = std::chrono::steady_clock::now();
  const auto outcome = run(exec_job({"/usr/bin/head", "-c", "1000000", "/dev/zero"}), policy);
  CHECK(elapsed_since(start) < 1500ms);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output.substr(0, 1000) == std::string(1000, '\0'));
  CHECK_THAT(outcome.output.substr(1000), Catch::Contains("kept the first 1000 of 1000000 bytes"));

  const auto noisy = run(shell_job("head -c 1000000 /dev/zero | tr '\\0' x >&2; echo >&2; echo last words >&2; exit 1"), policy);
  CHECK(noisy.exit_code == 1);
  CHECK(noisy.error.size() < 1100);
  CHECK_THAT(noisy.error, Catch::StartsWith("exited with status 1; stderr: ...") && Catch::EndsWith("x\nlast words"));
}

TEST_CASE("with an object store a stdout or stderr over its threshold is also kept whole, up to whole_bytes") {
  auto policy = test_policy();
  policy.capture_bytes = 1000;
  policy.whole_bytes = 300000;
  policy.whole_threshold = 5000;
  const auto outcome = run(exec_job({"/usr/bin/head", "-c", "200000", "/dev/zero"}), policy);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output.substr(0, 1000) == std::string(1000, '\0'));
  CHECK_THAT(outcome.output.substr(1000), Catch::Contains("kept the first 1000 of 200000 bytes"));
  REQUIRE(outcome.whole_outputs.size() == 1);
  CHECK(outcome.whole_outputs[0].name == "stdout");
  CHECK(outcome.whole_outputs[0].bytes == std::string(200000, '\0'));
  CHECK_FALSE(outcome.whole_outputs[0].cut());

  const auto capped = run(exec_job({"/usr/bin/head", "-c", "400000", "/dev/zero"}), policy);
  REQUIRE(capped.whole_outputs.size() == 1);
  CHECK(capped.whole_outputs[0].bytes.size() == 300000);
  CHECK(capped.whole_outputs[0].total == 400000);  // recorded on the ObjectRef as original_size

  const auto small = run(exec_job({"/usr/bin/head", "-c", "4000", "/dev/zero"}), policy);
  CHECK(small.whole_outputs.empty());

  // stderr too: its whole (first whole_bytes) beside the tail the error keeps.
  const auto noisy = run(shell_job("head -c 20000 /dev/zero | tr '\\0' e >&2; echo last >&2; echo out; exit 2"), policy);
  CHECK(noisy.exit_code == 2);
  CHECK_THAT(noisy.error, Catch::EndsWith("elast"));
  REQUIRE(noisy.whole_outputs.size() == 1);
  CHECK(noisy.whole_outputs[0].name == "stderr");
  CHECK(noisy.whole_outputs[0].bytes == std::string(20000, 'e') + "last\n");
  CHECK(small.output.size() > 1000);  // the inline head and its truncation note, as without a store
}

TEST_CASE("resource limits from the policy apply to the child") {
  auto policy = test_policy();
  policy.open_files = 64;
  policy.memory_bytes = 256LL * 1024 * 1024;
  policy.cpu_seconds = 5;
  const auto outcome = run(shell_job("ulimit -n; ulimit -v; ulimit -t"), policy);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output == "64\n262144\n5\n");
}

TEST_CASE("a busy loop past the CPU limit is killed and the error names exec.cpu_seconds") {
  auto policy = test_policy();
  policy.cpu_seconds = 1;
  auto job = shell_job("while :; do :; done");
  job.mutable_timeout()->set_seconds(5);
  const auto outcome = run(job, policy);
  CHECK(outcome.state == v1::FAILED);
  CHECK_THAT(outcome.error, Catch::StartsWith("killed by signal SIGXCPU") && Catch::Contains("exec.cpu_seconds = 1"));
}

TEST_CASE("an allowlisted program that cannot be executed fails clearly and is not retried") {
  auto policy = test_policy();
  policy.programs = {"/nonexistent/kcron-no-such-program", "/etc/passwd"};
  const auto missing = run(exec_job({"/nonexistent/kcron-no-such-program"}), policy);
  CHECK(missing.state == v1::FAILED);
  CHECK_FALSE(missing.retriable);
  CHECK(missing.error == "cannot execute /nonexistent/kcron-no-such-program: No such file or directory");

  const auto not_executable = run(exec_job({"/etc/passwd"}), policy);
  CHECK_FALSE(not_executable.retriable);
  CHECK(not_executable.error == "cannot execute /etc/passwd: Permission denied");
}

TEST_CASE("the job's cwd is used, else the worker's exec.cwd, and a missing one is refused") {
  auto policy = test_policy();
  policy.default_cwd = "/usr";
  auto job = shell_job("pwd");
  CHECK(run(job, policy).output == "/usr\n");

  job.mutable_exec()->set_cwd("/");
  CHECK(run(job, policy).output == "/\n");

  job.mutable_exec()->set_cwd("/nonexistent/kcron-dir");
  const auto missing = run(job, policy);
  CHECK_FALSE(missing.retriable);
  CHECK(missing.error == "cannot change to directory /nonexistent/kcron-dir: No such file or directory");
}

TEST_CASE("runs leave no descriptor open in the worker, whatever their outcome") {
  const auto before = open_descriptors();
  auto policy = test_policy();
  policy.programs.emplace_back("/nonexistent/kcron-no-such-program");
  static_cast<void>(run(exec_job({"/bin/echo", "ok"}), policy));
  static_cast<void>(run(shell_job("exit 2"), policy));
  static_cast<void>(run(exec_job({"/nonexistent/kcron-no-such-program"}), policy));
  static_cast<void>(run(exec_job({"/usr/bin/touch", "/tmp/never"}), policy));
  CHECK(open_descriptors() == before);
}

TEST_CASE("exec settings load from the configuration") {
  auto config = Config::load(exec_config_keys(), "",
                             {"exec.programs=/bin/sh, /bin/echo", "exec.env=GREETING,LANG", "exec.memory_mb=64",
                              "exec.default_timeout_ms=1500", "exec.open_files=128"},
                             {});
  REQUIRE(config.ok());
  const auto policy = exec_policy_from(*config);
  REQUIRE(policy.ok());
  CHECK(policy->programs == std::vector<std::string>{"/bin/sh", "/bin/echo"});
  CHECK(policy->env_names == std::vector<std::string>{"GREETING", "LANG"});
  CHECK(policy->default_cwd == "/tmp");
  CHECK(policy->default_timeout == 1500ms);
  CHECK(policy->kill_grace == 2000ms);
  CHECK(policy->memory_bytes == 64LL * 1024 * 1024);
  CHECK(policy->open_files == 128);
  CHECK(policy->cpu_seconds == 0);
  CHECK(policy->capture_bytes == 65536);

  auto defaults = Config::load(exec_config_keys(), "", {}, {});
  REQUIRE(defaults.ok());
  const auto disabled = exec_policy_from(*defaults);
  REQUIRE(disabled.ok());
  CHECK(disabled->programs.empty());
}

TEST_CASE("a bad exec setting is an error naming its key") {
  auto bad_number = Config::load(exec_config_keys(), "", {"exec.cpu_seconds=lots"}, {});
  REQUIRE(bad_number.ok());
  CHECK_THAT(exec_policy_from(*bad_number).error().message(), Catch::Contains("exec.cpu_seconds"));

  auto negative = Config::load(exec_config_keys(), "", {"exec.kill_grace_ms=-1"}, {});
  REQUIRE(negative.ok());
  CHECK_THAT(exec_policy_from(*negative).error().message(), Catch::Contains("exec.kill_grace_ms"));

  auto relative = Config::load(exec_config_keys(), "", {"exec.programs=/bin/sh,echo"}, {});
  REQUIRE(relative.ok());
  CHECK_THAT(exec_policy_from(*relative).error().message(), Catch::Contains("exec.programs") && Catch::Contains("'echo'"));
}

namespace {

class TokenSecret final : public SecretResolver {
 public:
  Result<std::string> resolve(std::string_view tenant, std::string_view name) const override {
    if (name == "token") return fmt::format("{}-s3cr3t", tenant);
    return make_error("secret '{}' of tenant '{}' not found", name, tenant);
  }
};

v1::Job tenant_exec(const std::string& tenant, const std::vector<std::string>& argv,
                    const std::map<std::string, std::string>& env = {}) {
  v1::Job job;
  job.set_id("j");
  job.set_tenant(tenant);
  for (const auto& argument : argv) job.mutable_exec()->add_argv(argument);
  for (const auto& [name, value] : env) (*job.mutable_exec()->mutable_env())[name] = value;
  return job;
}

}  // namespace

TEST_CASE("a tenant's programs and env names narrow the worker's, and secrets resolve and are redacted") {
  ExecPolicy policy;
  policy.programs = {"/bin/echo", "/bin/sh"};
  policy.env_names = {"X", "Y"};
  TenantWalls walls;
  std::map<std::string, v1::TenantSettings, std::less<>> tenants;
  tenants["acme"].add_allowed_programs("/bin/sh");
  tenants["acme"].add_allowed_programs("/usr/bin/env");  // not the worker's: still refused
  tenants["acme"].add_allowed_env_names("X");
  walls.update(tenants, 1);
  const TokenSecret secrets;
  const auto executor = make_exec_executor(policy, JobWalls{&walls, &secrets});
  const std::atomic<bool> stop{false};

  const auto echo = executor(tenant_exec("acme", {"/bin/echo", "hi"}), stop);
  CHECK_FALSE(echo.retriable);
  CHECK_THAT(echo.error, Catch::Contains("tenant 'acme' may not run program '/bin/echo'"));
  const auto env = executor(tenant_exec("acme", {"/bin/sh", "-c", "true"}, {{"Y", "1"}}), stop);
  CHECK_THAT(env.error, Catch::Contains("tenant 'acme' may not set environment variable 'Y'"));
  CHECK_THAT(executor(tenant_exec("acme", {"/usr/bin/env"}), stop).error, Catch::Contains("exec.programs"));
  // Another tenant without lists gets the worker's.
  CHECK(executor(tenant_exec("beta", {"/bin/echo", "hi"}), stop).state == v1::SUCCEEDED);

  const auto secret =
      executor(tenant_exec("acme", {"/bin/sh", "-c", "echo $X; echo ${#X}; echo $X >&2; exit 1"}, {{"X", "secret:token"}}), stop);
  CHECK(secret.state == v1::FAILED);
  CHECK(secret.output == "[secret:token]\n11\n");  // "acme-s3cr3t"
  CHECK_THAT(secret.error, Catch::Contains("[secret:token]") && !Catch::Contains("s3cr3t"));
  const auto missing = executor(tenant_exec("acme", {"/bin/sh", "-c", "true"}, {{"X", "secret:other"}}), stop);
  CHECK_FALSE(missing.retriable);
  CHECK(missing.error == "secret 'other' of tenant 'acme' not found");
}

TEST_CASE("the sandbox's argument vector: namespaces, /usr read-only, no host directory as the working directory",
          "[exec][sandbox]") {
  SandboxSettings settings;
  settings.kind = ExecSandbox::kBwrap;
  const auto argv = bwrap_argv(settings, {"/opt/tool/run", "--flag"}, sandbox_cwd("/srv/data"));
  const auto has = [&](const std::vector<std::string>& sequence) {
    return std::search(argv.begin(), argv.end(), sequence.begin(), sequence.end()) != argv.end();
  };
  CHECK(argv.front() == "/usr/bin/bwrap");
  CHECK(has({"--unshare-all", "--share-net", "--unshare-user", "--uid", "65534"}));
  CHECK(has({"--ro-bind", "/usr", "/usr"}));
  CHECK(has({"--ro-bind", "/opt/tool/run", "/opt/tool/run"}));  // the program, outside /usr
  CHECK(has({"--tmpfs", "/tmp", "--dir", "/tmp/job", "--chdir", "/tmp/job", "--", "/opt/tool/run", "--flag"}));
  CHECK_FALSE(has({"--bind"}));  // nothing of the host is writable
  CHECK(sandbox_cwd("/tmp") == "/tmp");
  CHECK(sandbox_cwd("/tmp/work") == "/tmp/work");
  CHECK(sandbox_cwd("/tmp/../etc") == "/tmp/job");
  CHECK(sandbox_cwd("/etc/kcron") == "/tmp/job");
  settings.network = false;
  const auto offline = bwrap_argv(settings, {"/usr/bin/true"}, "/tmp");
  CHECK(std::find(offline.begin(), offline.end(), "--share-net") == offline.end());
  CHECK(std::find(offline.begin(), offline.end(), "/usr/bin/true") != offline.end());
  CHECK(parse_exec_sandbox("bwrap").value() == ExecSandbox::kBwrap);
  CHECK_FALSE(parse_exec_sandbox("docker").ok());
}

TEST_CASE("a sandboxed exec job sees no host file outside /usr, runs as nobody, and writes only in its own /tmp",
          "[exec][sandbox]") {
  auto policy = test_policy();
  policy.sandbox.kind = ExecSandbox::kBwrap;
  if (::access(policy.sandbox.bwrap.c_str(), X_OK) != 0 || !check_sandbox(policy).ok()) {
    // scripts/setup installs bubblewrap; a machine without user namespaces cannot run it.
    WARN("KCRON-SKIP: bubblewrap cannot run here: " << check_sandbox(policy).error().message());
    return;
  }
  // A secret of another tenant and the worker's own files, readable by the worker's user.
  const auto host_dir = std::filesystem::temp_directory_path() / fmt::format("kcron-sandbox-{}", ::getpid());
  std::filesystem::create_directories(host_dir / "secrets" / "b");
  std::ofstream(host_dir / "secrets" / "b" / "token") << "tenant-b-secret-value\n";
  const auto secret_path = (host_dir / "secrets" / "b" / "token").string();

  auto outcome =
      run(shell_job(fmt::format("id -u; pwd; cat '{}' 2>&1; ls /root 2>&1; ls /etc/kcron 2>&1; echo scratch > file && cat file; "
                                "cat /proc/1/cmdline | tr '\\0' ' '",
                                secret_path)),
          policy);
  INFO(outcome.error << " / " << outcome.output);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK_THAT(outcome.output, Catch::StartsWith("65534\n/tmp\n"));
  CHECK_THAT(outcome.output, Catch::Contains(secret_path + ": No such file or directory"));
  CHECK_THAT(outcome.output, !Catch::Contains("tenant-b-secret-value"));
  CHECK_THAT(outcome.output, Catch::Contains("/root': No such file or directory"));
  CHECK_THAT(outcome.output, Catch::Contains("scratch"));
  CHECK_THAT(outcome.output, Catch::Contains("bwrap"));  // its own PID namespace: pid 1 is the sandbox, not the host's init
  // The job's /tmp was its own: nothing it wrote is on the host.
  CHECK_FALSE(std::filesystem::exists("/tmp/file"));
  // /usr is read-only.
  auto write_usr = run(shell_job("echo x > /usr/kcron-sandbox-test"), policy);
  CHECK(write_usr.state == v1::FAILED);
  CHECK_FALSE(std::filesystem::exists("/usr/kcron-sandbox-test"));
  std::filesystem::remove_all(host_dir);
}

TEST_CASE("a sandboxed exec job gets its secret's value in its environment and cannot read the secrets directory",
          "[exec][sandbox]") {
  auto policy = test_policy();
  policy.env_names = {"X"};
  policy.sandbox.kind = ExecSandbox::kBwrap;
  if (::access(policy.sandbox.bwrap.c_str(), X_OK) != 0 || !check_sandbox(policy).ok()) {
    WARN("KCRON-SKIP: bubblewrap cannot run here: " << check_sandbox(policy).error().message());
    return;
  }
  const auto root = std::filesystem::temp_directory_path() / fmt::format("kcron-secrets-sandbox-{}", ::getpid());
  std::filesystem::create_directories(root / "acme");
  std::ofstream(root / "acme" / "token") << "acme-sandboxed\n";
  const SecretDirectory secrets(root.string());
  v1::Job job = shell_job(fmt::format("echo ${{#X}}; cat '{}/acme/token' 2>&1; echo rc=$?", root.string()));
  job.set_tenant("acme");
  (*job.mutable_exec()->mutable_env())["X"] = "secret:token";
  const std::atomic<bool> stop{false};
  const auto outcome = make_exec_executor(policy, JobWalls{nullptr, &secrets})(job, stop);
  std::filesystem::remove_all(root);
  CHECK(outcome.state == v1::SUCCEEDED);
  // 14 bytes of value; the file is not there for the job (cat fails; had it read the file, the
  // value would show, redacted).
  CHECK_THAT(outcome.output, Catch::StartsWith("14\n") && Catch::Contains("No such file") && Catch::EndsWith("rc=1\n") &&
                                 !Catch::Contains("[secret:token]"));
}

TEST_CASE("a secret's value is redacted from the whole output kept for the object store too") {
  auto policy = test_policy();
  policy.env_names = {"X"};
  policy.capture_bytes = 100;
  policy.whole_bytes = 100000;
  policy.whole_threshold = 1000;
  const auto root = std::filesystem::temp_directory_path() / fmt::format("kcron-secrets-whole-{}", ::getpid());
  std::filesystem::create_directories(root / "acme");
  std::ofstream(root / "acme" / "token") << "acme-whole-secret\n";
  const SecretDirectory secrets(root.string());
  // The value first (in the inline head), then 2000 bytes, then the value again (only in the whole output).
  v1::Job job = shell_job("echo \"$X\"; head -c 2000 /dev/zero | tr '\\0' y; echo; echo \"$X\"");
  job.set_tenant("acme");
  (*job.mutable_exec()->mutable_env())["X"] = "secret:token";
  const std::atomic<bool> stop{false};
  const auto outcome = make_exec_executor(policy, JobWalls{nullptr, &secrets})(job, stop);
  std::filesystem::remove_all(root);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK_THAT(outcome.output, Catch::StartsWith("[secret:token]\n") && !Catch::Contains("acme-whole-secret"));
  REQUIRE(outcome.whole_outputs.size() == 1);
  const auto& whole = outcome.whole_outputs[0].bytes;
  CHECK_THAT(whole, Catch::StartsWith("[secret:token]\n") && Catch::EndsWith("\n[secret:token]\n"));
  CHECK(whole.find("acme-whole-secret") == std::string::npos);
}

TEST_CASE("a flow node's exec job gets its flow, its node and its parents' outputs in its environment") {
  auto job = shell_job(R"(printf '%s|%s|%s|%s|%s|%s' "$KCRON_FLOW_ID" "$KCRON_FLOW_NODE" "$KCRON_STATE_EXTRACT" )"
                       R"("$KCRON_INPUT_EXTRACT" "$KCRON_SIZE_BIG_ROWS" "${KCRON_INPUT_BIG_ROWS-unset}")");
  job.mutable_flow()->set_id("etl");
  job.mutable_flow()->set_node("load");
  auto* extract = job.mutable_flow()->add_inputs();
  extract->set_node("extract");
  extract->set_state(v1::SUCCEEDED);
  extract->set_output("rows=42");
  extract->set_size(7);
  auto* big = job.mutable_flow()->add_inputs();
  big->set_node("big-rows");
  big->set_state(v1::SUCCEEDED);
  big->set_too_large(true);
  big->set_size(123456);
  const auto outcome = run(job);
  INFO(outcome.error);
  CHECK(outcome.state == v1::SUCCEEDED);
  CHECK(outcome.output == "etl|load|SUCCEEDED|rows=42|123456|unset");
  CHECK(flow_environment(shell_job("true")).empty());
}
