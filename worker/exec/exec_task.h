// The `exec` executor: runs a job's ExecTask as a child process (never through a shell) under the
// worker's policy: an allowlist of programs and environment names, resource limits, a timeout and
// bounded output capture. check_exec is the pure policy decision; run_exec is the process edge.
// Register the result of make_exec_executor with Runner::register_executor(v1::Job::kExec, ...).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/runner.h"
#include "core/tenant_walls.h"
#include "exec/sandbox.h"
#include "kcron/config.h"
#include "kcron/result.h"

namespace kcron::worker {

// What a worker lets exec jobs do. Immutable once the worker starts; shared by every slot.
struct ExecPolicy {
  std::vector<std::string> programs;   // allowlist: absolute paths; argv[0] must equal one exactly
  std::vector<std::string> env_names;  // allowlist of env var names a job may set
  std::string default_cwd = "/tmp";
  std::chrono::milliseconds default_timeout{3600000};  // when the job sets no timeout
  std::chrono::milliseconds kill_grace{2000};          // SIGTERM to SIGKILL
  std::int64_t cpu_seconds = 0;                        // RLIMIT_CPU; 0 = not limited
  std::int64_t memory_bytes = 0;                       // RLIMIT_AS; 0 = not limited
  std::int64_t open_files = 0;                         // RLIMIT_NOFILE; 0 = not limited
  std::size_t capture_bytes = 65536;                   // kept of stdout (head) and of stderr (tail)
  SandboxSettings sandbox;                             // exec.sandbox*: none, or every job under bubblewrap
  // With an object store (docs/large-results.md): a stdout or stderr larger than whole_threshold
  // is kept whole, up to whole_bytes, in Outcome::whole_outputs as "stdout" / "stderr" (0: off:
  // only stdout's head and stderr's tail are kept).
  std::size_t whole_bytes = 0;
  std::size_t whole_threshold = 0;
};

// The child always gets this PATH unless the job sets PATH itself (and PATH is in exec.env).
inline constexpr const char* kExecPath = "/usr/local/bin:/usr/bin:/bin";

// What a flow node's exec job learns from its flow, as environment variables kcron sets (over any
// the job sets; docs/flows.md#data-between-nodes): KCRON_FLOW_ID, KCRON_FLOW_NODE, and per parent
// (its name upper-cased, every character but A-Z and 0-9 as '_'): KCRON_STATE_<NAME>, and
// KCRON_INPUT_<NAME> with its output when it was handed inline (whole, no NUL byte, at most
// kFlowInputEnvBytes), else KCRON_SIZE_<NAME> with its size. Empty for a job that is no flow
// node. Pure.
inline constexpr std::size_t kFlowInputEnvBytes = std::size_t{64} * 1024;
std::vector<std::pair<std::string, std::string>> flow_environment(const v1::Job& job);

// Whether the policy allows this task: a non-empty argv whose argv[0] is an allowlisted absolute
// path, only allowlisted env names (refused, never silently dropped), no NUL or '=' where they
// cannot be passed on, an absolute cwd. A refusal is final: running the job again cannot succeed.
Status check_exec(const v1::ExecTask& task, const ExecPolicy& policy);

// Runs job.exec() (already checked) in its own process group with only its allowlisted
// environment, stdin from /dev/null, and the policy's limits. Blocks the calling slot thread until
// the child exits, the timeout (job.timeout, else policy.default_timeout) passes or `stop` turns
// true; on the last two the whole group gets SIGTERM, then SIGKILL after kill_grace. The group is
// always SIGKILLed once the child exits, so nothing it started outlives the job.
// Outcome: exit 0 is SUCCEEDED; anything else is FAILED with the captured stdout as output and an
// error saying why (a bounded tail of stderr included). exit_code is the exit status, 128 + the
// signal when a signal ended the child, and -1 when it never ran. Start-up failures the job
// causes (missing program, bad cwd, a limit the worker may not set) are not retriable.
Outcome run_exec(const v1::Job& job, const ExecPolicy& policy, const std::atomic<bool>& stop);

// With exec.sandbox = bwrap: runs /usr/bin/true in the sandbox once, so a worker that cannot
// sandbox (bubblewrap missing, user namespaces disabled) says so at start, not at each job.
Status check_sandbox(const ExecPolicy& policy);

// The Handler to register for kExec: check_exec, the tenant's lists (check_exec_for_tenant), the
// job's secrets resolved (core/secret_refs.h), then run_exec, its output and error redacted of
// the secrets' values. Every refusal is final (not retriable).
Handler make_exec_executor(ExecPolicy policy, JobWalls walls = {});

// exec.programs (empty = exec disabled), exec.env, exec.cwd, exec.default_timeout_ms,
// exec.kill_grace_ms, exec.cpu_seconds, exec.memory_mb, exec.open_files, exec.capture_bytes,
// exec.sandbox, exec.sandbox_bwrap, exec.sandbox_network, exec.sandbox_read_only, exec.sandbox_uid.
std::vector<ConfigKey> exec_config_keys();
Result<ExecPolicy> exec_policy_from(const Config& config);

}  // namespace kcron::worker
