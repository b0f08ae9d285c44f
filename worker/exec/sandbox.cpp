#include "exec/sandbox.h"

#include <fmt/format.h>

namespace kcron::worker {

Result<ExecSandbox> parse_exec_sandbox(std::string_view text) {
  if (text == "none" || text.empty()) return ExecSandbox::kNone;
  if (text == "bwrap") return ExecSandbox::kBwrap;
  return make_error("exec.sandbox must be none or bwrap, got '{}'", text);
}

std::string_view exec_sandbox_name(ExecSandbox kind) {
  return kind == ExecSandbox::kBwrap ? "bwrap" : "none";
}

std::string sandbox_cwd(std::string_view cwd) {
  if (cwd == "/tmp" || (cwd.starts_with("/tmp/") && cwd.find("/..") == std::string_view::npos)) return std::string(cwd);
  return "/tmp/job";
}

std::vector<std::string> bwrap_argv(const SandboxSettings& settings, const std::vector<std::string>& argv, std::string_view cwd) {
  // --new-session: the job gets no controlling terminal to push input into (TIOCSTI).
  std::vector<std::string> out = {settings.bwrap, "--die-with-parent", "--new-session", "--unshare-all"};
  if (settings.network) out.emplace_back("--share-net");
  const auto uid = std::to_string(settings.uid);
  for (const auto& argument : {"--unshare-user", "--uid", uid.c_str(), "--gid", uid.c_str(), "--ro-bind", "/usr", "/usr"}) {
    out.emplace_back(argument);
  }
  // Debian 12 merges / into /usr: these are links there too.
  for (const auto* link : {"bin", "lib", "lib64", "sbin"}) {
    out.insert(out.end(), {"--symlink", fmt::format("usr/{}", link), fmt::format("/{}", link)});
  }
  // What programs read from /etc: the loader's cache, names, time zone, CA certificates, and the
  // alternatives many of /usr/bin's names point through. Never the whole of /etc.
  for (const auto* path : {"/etc/ld.so.cache", "/etc/alternatives", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                           "/etc/hosts", "/etc/resolv.conf", "/etc/localtime", "/etc/ssl/certs", "/etc/ca-certificates"}) {
    out.insert(out.end(), {"--ro-bind-try", path, path});
  }
  for (const auto& path : settings.read_only) out.insert(out.end(), {"--ro-bind-try", path, path});
  if (!argv.empty() && !argv.front().starts_with("/usr/")) out.insert(out.end(), {"--ro-bind", argv.front(), argv.front()});
  out.insert(out.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"});
  if (cwd != "/tmp") out.insert(out.end(), {"--dir", std::string(cwd)});
  out.insert(out.end(), {"--chdir", std::string(cwd), "--"});
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

}  // namespace kcron::worker
