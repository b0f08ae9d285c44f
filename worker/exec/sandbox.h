// The exec sandbox (docs/security.md#the-exec-sandbox): with `exec.sandbox = bwrap` every exec job
// runs under bubblewrap in its own user, PID, IPC, UTS and mount namespaces (the network is shared
// unless exec.sandbox_network = false), as an unprivileged uid, on an empty root with the system's
// programs and libraries read-only (/usr and Debian's merged-/usr links, a few files of /etc), a
// fresh /proc, /dev and /tmp, and its working directory inside that /tmp. Nothing else of the host
// is visible: not the worker's keys and certificates, its state, the secrets directory (a job gets
// its own tenant's secrets as resolved values, never the files), nor another job's files.
// Pure: builds the argument vector; exec_task.cpp runs it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kcron/result.h"

namespace kcron::worker {

enum class ExecSandbox { kNone, kBwrap };

struct SandboxSettings {
  ExecSandbox kind = ExecSandbox::kNone;
  std::string bwrap = "/usr/bin/bwrap";
  bool network = true;                 // share the host's network (http clients, DNS)
  std::vector<std::string> read_only;  // more host paths bound read-only (e.g. a tool outside /usr)
  int uid = 65534;                     // the job's uid and gid inside (nobody)
};

// "none" or "bwrap".
Result<ExecSandbox> parse_exec_sandbox(std::string_view text);
std::string_view exec_sandbox_name(ExecSandbox kind);

// The working directory of a sandboxed job: `cwd` as given when it lies under /tmp (created in the
// sandbox's own /tmp), else /tmp/job: a job never gets a host directory as its working directory.
std::string sandbox_cwd(std::string_view cwd);

// bwrap's argument vector (argv[0] = settings.bwrap) that runs `argv` in the sandbox, in `cwd`
// (already sandbox_cwd). The program itself is bound read-only when it lies outside /usr.
std::vector<std::string> bwrap_argv(const SandboxSettings& settings, const std::vector<std::string>& argv, std::string_view cwd);

}  // namespace kcron::worker
