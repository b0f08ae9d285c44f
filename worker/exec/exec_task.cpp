#include "exec/exec_task.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "core/secret_refs.h"
#include "kcron/codec.h"

namespace kcron::worker {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kTick{50};
// After the child exits and its group is SIGKILLed, how long to wait for the pipes to close: only
// a process that left the group (setsid) can hold them open that long.
constexpr std::chrono::milliseconds kDrainAfterExit{500};
constexpr std::size_t kErrorTailBytes = 2048;  // of stderr, in the error text
constexpr std::int64_t kBytesPerMb = std::int64_t{1024} * 1024;

std::string describe_errno(int error_number) {
  const char* text = ::strerrordesc_np(error_number);
  return text != nullptr ? std::string(text) : fmt::format("error {}", error_number);
}

std::string signal_name(int signal_number) {
  const char* abbreviation = ::sigabbrev_np(signal_number);
  return abbreviation != nullptr ? fmt::format("SIG{}", abbreviation) : fmt::format("signal {}", signal_number);
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// The last `limit` bytes of `text` as valid UTF-8 without trailing blanks (error strings travel in
// protobuf `string` fields): invalid sequences and control characters other than \n and \t become '?'.
// `cut_before` says the text already lost its beginning (marked with "...", as a cut here is).
std::string printable_tail(std::string_view text, std::size_t limit, bool cut_before = false) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  std::string out;
  if (text.size() > limit) {
    text = text.substr(text.size() - limit);
    cut_before = true;
  }
  if (cut_before && !text.empty()) out = "...";
  std::size_t index = 0;
  while (index < text.size()) {
    const auto lead = static_cast<unsigned char>(text[index]);
    std::size_t length = 0;
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
    }
    bool valid = length > 0 && index + length <= text.size();
    for (std::size_t offset = 1; valid && offset < length; ++offset) {
      valid = (static_cast<unsigned char>(text[index + offset]) & 0xC0) == 0x80;
    }
    // Overlong three-byte forms, surrogates and code points above U+10FFFF.
    if (valid && length >= 3) {
      const auto second = static_cast<unsigned char>(text[index + 1]);
      valid = !(lead == 0xE0 && second < 0xA0) && !(lead == 0xED && second >= 0xA0) && !(lead == 0xF0 && second < 0x90) &&
              !(lead == 0xF4 && second >= 0x90);
    }
    if (!valid) {
      out += '?';
      ++index;
      continue;
    }
    if (length == 1 && lead < 0x20 && lead != '\n' && lead != '\t') {
      out += '?';
    } else {
      out.append(text.substr(index, length));
    }
    index += length;
  }
  return out;
}

// Owns one file descriptor; closes it on every path.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Moves a descriptor to 3 or above (still close-on-exec), so the child's dup2 onto 0-2 can never
// overwrite one it still needs, even in a worker started with stdin or stdout closed.
Result<Fd> above_stdio(Fd fd) {
  if (fd.get() > STDERR_FILENO) return fd;
  const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) return make_error("fcntl: {}", describe_errno(errno));
  return Fd(moved);
}

struct Pipe {
  Fd read;
  Fd write;
};

Result<Pipe> make_pipe() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) return make_error("pipe2: {}", describe_errno(errno));
  auto read = above_stdio(Fd(fds[0]));
  auto write = above_stdio(Fd(fds[1]));
  if (!read) return read.error();
  if (!write) return write.error();
  return Pipe{std::move(read).value(), std::move(write).value()};
}

// What the child failed to do before execve, sent to the parent over the status pipe.
enum class ChildStep : int { kSignals, kProcessGroup, kStdio, kWorkingDirectory, kCpuLimit, kMemoryLimit, kFilesLimit, kExec };

struct ChildFailure {
  ChildStep step;
  int error_number;
};

struct Limit {
  int resource;
  rlimit value;
  ChildStep step;
};

// Everything the child needs, built before fork: after fork the child may only call
// async-signal-safe functions (no allocation: other threads may have held the malloc lock).
struct Launch {
  std::vector<std::string> argument_storage;
  std::vector<char*> arguments;
  std::vector<std::string> environment_storage;
  std::vector<char*> environment;
  std::string cwd;
  std::vector<Limit> limits;
  int highest_fd = 0;  // bound of the close loop where close_range is missing
};

Launch prepare_launch(const v1::Job& job, const ExecPolicy& policy) {
  const auto& task = job.exec();
  Launch launch;
  launch.argument_storage.assign(task.argv().begin(), task.argv().end());
  for (auto& argument : launch.argument_storage) launch.arguments.push_back(argument.data());
  launch.arguments.push_back(nullptr);

  bool has_path = false;
  std::map<std::string, std::string> variables(task.env().begin(), task.env().end());
  for (auto& [name, value] : flow_environment(job)) variables[name] = std::move(value);
  for (const auto& [name, value] : variables) {
    has_path = has_path || name == "PATH";
    launch.environment_storage.push_back(fmt::format("{}={}", name, value));
  }
  if (!has_path) launch.environment_storage.push_back(std::string("PATH=") + kExecPath);
  std::sort(launch.environment_storage.begin(), launch.environment_storage.end());
  for (auto& entry : launch.environment_storage) launch.environment.push_back(entry.data());
  launch.environment.push_back(nullptr);

  launch.cwd = task.cwd().empty() ? policy.default_cwd : task.cwd();
  if (policy.sandbox.kind == ExecSandbox::kBwrap) {
    // bwrap runs the job in its own root, in a working directory of its own /tmp; bwrap itself
    // starts from /. The limits set below apply to bwrap and everything it starts.
    launch.argument_storage = bwrap_argv(policy.sandbox, launch.argument_storage, sandbox_cwd(launch.cwd));
    launch.arguments.clear();
    for (auto& argument : launch.argument_storage) launch.arguments.push_back(argument.data());
    launch.arguments.push_back(nullptr);
    launch.cwd = "/";
  }

  auto as_rlim = [](std::int64_t value) { return static_cast<rlim_t>(value); };
  if (policy.cpu_seconds > 0) {
    // SIGXCPU at the limit (default action: terminate), SIGKILL a second later if it is ignored.
    launch.limits.push_back({RLIMIT_CPU, {as_rlim(policy.cpu_seconds), as_rlim(policy.cpu_seconds + 1)}, ChildStep::kCpuLimit});
  }
  if (policy.memory_bytes > 0) {
    launch.limits.push_back({RLIMIT_AS, {as_rlim(policy.memory_bytes), as_rlim(policy.memory_bytes)}, ChildStep::kMemoryLimit});
  }
  if (policy.open_files > 0) {
    launch.limits.push_back({RLIMIT_NOFILE, {as_rlim(policy.open_files), as_rlim(policy.open_files)}, ChildStep::kFilesLimit});
  }

  rlimit files{};
  constexpr rlim_t kCloseLoopCap = 1 << 20;
  launch.highest_fd = (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY)
                          ? static_cast<int>(std::min(files.rlim_cur, kCloseLoopCap))
                          : static_cast<int>(kCloseLoopCap);
  return launch;
}

[[noreturn]] void child_fail(int status_fd, ChildStep step) {
  const ChildFailure failure{step, errno};
  [[maybe_unused]] const auto written = ::write(status_fd, &failure, sizeof failure);
  ::_exit(127);
}

// Runs in the forked child: async-signal-safe calls only, then execve.
[[noreturn]] void become_job(const Launch& launch, int stdin_fd, int stdout_fd, int stderr_fd, int status_fd) {
  // Ignored signals and the blocked mask survive execve; the worker ignores SIGPIPE and its slot
  // threads may block SIGTERM. The job starts from the defaults.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigemptyset(&default_action.sa_mask);
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
    if (signal_number != SIGKILL && signal_number != SIGSTOP) ::sigaction(signal_number, &default_action, nullptr);
  }
  sigset_t no_signals;
  ::sigemptyset(&no_signals);
  if (::sigprocmask(SIG_SETMASK, &no_signals, nullptr) != 0) child_fail(status_fd, ChildStep::kSignals);

  if (::setpgid(0, 0) != 0) child_fail(status_fd, ChildStep::kProcessGroup);

  // Every source descriptor is above 2 (above_stdio), so these cannot clobber one another.
  if (::dup2(stdin_fd, STDIN_FILENO) < 0 || ::dup2(stdout_fd, STDOUT_FILENO) < 0 || ::dup2(stderr_fd, STDERR_FILENO) < 0) {
    child_fail(status_fd, ChildStep::kStdio);
  }
  constexpr int kStatusFd = STDERR_FILENO + 1;
  if (status_fd != kStatusFd) {
    if (::dup3(status_fd, kStatusFd, O_CLOEXEC) < 0) child_fail(status_fd, ChildStep::kStdio);
    status_fd = kStatusFd;
  }
  if (::close_range(kStatusFd + 1, ~0U, 0) != 0) {
    for (int fd = kStatusFd + 1; fd < launch.highest_fd; ++fd) ::close(fd);
  }

  if (::chdir(launch.cwd.c_str()) != 0) child_fail(status_fd, ChildStep::kWorkingDirectory);
  for (const auto& limit : launch.limits) {
    if (::setrlimit(limit.resource, &limit.value) != 0) child_fail(status_fd, limit.step);
  }
  ::execve(launch.arguments[0], launch.arguments.data(), launch.environment.data());
  child_fail(status_fd, ChildStep::kExec);
}

// A started child and its process group (pgid == pid). The destructor kills the group and reaps
// the child on any path that did not, so no job outlives run_exec and no zombie is left behind.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (!reaped_) {
      signal_group(SIGKILL);
      ::kill(pid_, SIGKILL);
      static_cast<void>(reap());
    }
  }

  pid_t pid() const { return pid_; }

  // Sends to every process of the group. While the child is unreaped (at worst a zombie) its pid
  // stays allocated, so the group id cannot name some later, unrelated group.
  void signal_group(int signal_number) const {
    if (!reaped_) ::kill(-pid_, signal_number);
  }

  // Whether the child has exited, without reaping it (so signal_group stays safe).
  bool exited() const {
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno != EINTR) return true;  // ECHILD: nothing left to wait for
    }
    return info.si_pid == pid_;
  }

  struct Exit {
    bool known = false;  // false when someone else reaped the child (SIGCHLD ignored, waitpid(-1))
    int status = 0;
    rusage usage{};
  };
  Exit reap() {
    Exit exit;
    pid_t result = 0;
    do {
      result = ::wait4(pid_, &exit.status, 0, &exit.usage);
    } while (result < 0 && errno == EINTR);
    exit.known = result == pid_;
    reaped_ = true;
    return exit;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
};

// One output pipe of the child and what is kept of it: the head of stdout (the job's output) and
// the tail of stderr (where the reason for a failure usually is); with `whole_limit`, also the
// first whole_limit bytes as they came (for the object store). Bytes past the limits are read and
// dropped, so the child never blocks on a full pipe.
class Stream {
 public:
  enum class Keep { kHead, kTail };
  Stream(Fd fd, std::size_t limit, Keep keep, std::size_t whole_limit = 0)
      : fd_(std::move(fd)), limit_(limit), keep_(keep), whole_limit_(whole_limit) {}

  bool open() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  const std::string& text() const { return text_; }
  std::size_t total() const { return total_; }
  bool truncated() const { return total_ > text_.size(); }
  const std::string& whole() const { return whole_; }

  // Reads what is there now (the fd is non-blocking); closes the fd at end of file.
  void read_available() {
    std::array<char, 16384> buffer{};
    for (int round = 0; round < 64 && fd_.valid(); ++round) {
      const auto count = ::read(fd_.get(), buffer.data(), buffer.size());
      if (count > 0) {
        keep(std::string_view(buffer.data(), static_cast<std::size_t>(count)));
      } else if (count < 0 && errno == EAGAIN) {
        return;
      } else if (count == 0 || errno != EINTR) {  // end of file, or a read error
        fd_.reset();
      }
    }
  }

 private:
  void keep(std::string_view bytes) {
    total_ += bytes.size();
    if (whole_.size() < whole_limit_) whole_.append(bytes.substr(0, whole_limit_ - whole_.size()));
    if (keep_ == Keep::kHead) {
      text_.append(bytes.substr(0, limit_ - std::min(limit_, text_.size())));
      return;
    }
    if (bytes.size() >= limit_) {
      text_.assign(bytes.substr(bytes.size() - limit_));
      return;
    }
    text_.append(bytes);
    if (text_.size() > limit_) text_.erase(0, text_.size() - limit_);
  }

  Fd fd_;
  std::size_t limit_;
  Keep keep_;
  std::string text_;
  std::size_t total_ = 0;
  std::size_t whole_limit_;
  std::string whole_;
};

// Waits up to `tick` for output or the child's exit (when a pidfd is available), reading output.
void pump(Stream& out, Stream& err, const Fd& exit_watch, std::chrono::milliseconds tick) {
  std::array<pollfd, 3> watched{};
  nfds_t count = 0;
  const std::array<Stream*, 2> streams{&out, &err};
  for (Stream* stream : streams) {
    if (stream->open()) watched[count++] = {stream->fd(), POLLIN, 0};
  }
  if (exit_watch.valid()) watched[count++] = {exit_watch.get(), POLLIN, 0};
  const int ready = ::poll(watched.data(), count, static_cast<int>(tick.count()));
  if (ready <= 0) return;  // timeout or EINTR: the caller looks at the clock and loops
  for (Stream* stream : streams) {
    if (stream->open()) stream->read_available();
  }
}

Result<Fd> nonblocking(Fd fd) {
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) return make_error("fcntl: {}", describe_errno(errno));
  return fd;
}

std::chrono::milliseconds timeout_of(const v1::Job& job, const ExecPolicy& policy) {
  if (!job.has_timeout()) return policy.default_timeout;
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::seconds(job.timeout().seconds()) +
                                                                             std::chrono::nanoseconds(job.timeout().nanos()));
  return timeout > std::chrono::milliseconds::zero() ? timeout : policy.default_timeout;
}

std::string seconds_text(std::chrono::milliseconds duration) {
  return fmt::format("{}s", static_cast<double>(duration.count()) / 1000.0);
}

Outcome start_failure(const ChildFailure& failure, const v1::ExecTask& task, const std::string& cwd, const ExecPolicy& policy) {
  const auto reason = describe_errno(failure.error_number);
  switch (failure.step) {
    case ChildStep::kExec:
      if (policy.sandbox.kind == ExecSandbox::kBwrap) {
        return failed(fmt::format("cannot execute the sandbox {} (exec.sandbox = bwrap) for {}: {}", policy.sandbox.bwrap,
                                  task.argv(0), reason));
      }
      return failed(fmt::format("cannot execute {}: {}", task.argv(0), reason), false);
    case ChildStep::kWorkingDirectory:
      return failed(fmt::format("cannot change to directory {}: {}", cwd, reason), false);
    case ChildStep::kCpuLimit:
      return failed(fmt::format("cannot set the CPU limit (exec.cpu_seconds = {}): {}", policy.cpu_seconds, reason), false);
    case ChildStep::kMemoryLimit:
      return failed(
          fmt::format("cannot set the memory limit (exec.memory_mb = {}): {}", policy.memory_bytes / kBytesPerMb, reason), false);
    case ChildStep::kFilesLimit:
      return failed(fmt::format("cannot set the open files limit (exec.open_files = {}): {}", policy.open_files, reason), false);
    case ChildStep::kSignals:
    case ChildStep::kProcessGroup:
    case ChildStep::kStdio:
      break;
  }
  return failed(fmt::format("cannot start {}: setting up the child process failed: {}", task.argv(0), reason));
}

std::string with_stderr(std::string error, const Stream& err) {
  const auto tail = printable_tail(err.text(), kErrorTailBytes, err.truncated());
  if (!tail.empty()) error += fmt::format("; stderr: {}", tail);
  return error;
}

// The inline output: the first `capture_bytes` of stdout (the stream may keep more for the object store).
std::string output_of(const Stream& out, std::size_t capture_bytes) {
  std::string output = out.text().substr(0, capture_bytes);
  if (out.total() > output.size()) {
    output +=
        fmt::format("\n[output truncated: kept the first {} of {} bytes (exec.capture_bytes)]\n", output.size(), out.total());
  }
  return output;
}

}  // namespace

Status check_exec(const v1::ExecTask& task, const ExecPolicy& policy) {
  if (task.argv().empty()) return make_error("exec task has an empty argv (argv[0] must be the program's absolute path)");
  for (const auto& argument : task.argv()) {
    if (argument.find('\0') != std::string::npos) return make_error("exec argument contains a NUL byte");
  }
  const auto& program = task.argv(0);
  if (policy.programs.empty()) {
    return make_error("exec jobs are disabled on this worker: cannot run '{}' (exec.programs is empty)", program);
  }
  if (!program.starts_with('/')) {
    return make_error("program '{}' is not an absolute path; it is not in the worker's exec.programs allowlist", program);
  }
  if (!contains(policy.programs, program)) {
    return make_error("program '{}' is not in the worker's exec.programs allowlist", program);
  }
  for (const auto& [name, value] : task.env()) {
    if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos) {
      return make_error("environment variable name '{}' is invalid (empty, or contains '=' or NUL)", printable_tail(name, 256));
    }
    if (!contains(policy.env_names, name)) {
      return make_error("environment variable '{}' is not in the worker's exec.env allowlist", name);
    }
    if (value.find('\0') != std::string::npos) return make_error("environment variable '{}' has a NUL byte in its value", name);
  }
  if (!task.cwd().empty() && !task.cwd().starts_with('/')) {
    return make_error("cwd '{}' is not an absolute path", task.cwd());
  }
  if (task.cwd().find('\0') != std::string::npos) return make_error("cwd contains a NUL byte");
  return Status::success();
}

std::vector<std::pair<std::string, std::string>> flow_environment(const v1::Job& job) {
  std::vector<std::pair<std::string, std::string>> variables;
  if (!job.has_flow() || job.flow().id().empty()) return variables;
  variables.emplace_back("KCRON_FLOW_ID", job.flow().id());
  variables.emplace_back("KCRON_FLOW_NODE", job.flow().node());
  for (const auto& input : job.flow().inputs()) {
    std::string name;
    for (const char c : input.node()) {
      const auto upper = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      name.push_back((upper >= 'A' && upper <= 'Z') || (upper >= '0' && upper <= '9') ? upper : '_');
    }
    variables.emplace_back("KCRON_STATE_" + name, std::string(state_name(input.state())));
    // Inline, whole, without a NUL, and far below the kernel's 128 KiB for one variable.
    if (!input.too_large() && input.output().size() >= input.size() && input.output().size() <= kFlowInputEnvBytes &&
        input.output().find('\0') == std::string::npos) {
      variables.emplace_back("KCRON_INPUT_" + name, input.output());
    } else {
      variables.emplace_back("KCRON_SIZE_" + name, std::to_string(input.size()));
    }
  }
  return variables;
}

Outcome run_exec(const v1::Job& job, const ExecPolicy& policy, const std::atomic<bool>& stop) {
  const auto& task = job.exec();
  if (task.argv().empty()) return failed("exec task has an empty argv", false);
  if (stop.load()) return failed("stopped before the process started");

  const Launch launch = prepare_launch(job, policy);
  auto stdout_pipe = make_pipe();
  auto stderr_pipe = make_pipe();
  auto status_pipe = make_pipe();
  for (const auto* pipe : {&stdout_pipe, &stderr_pipe, &status_pipe}) {
    if (!*pipe) return failed(fmt::format("cannot start {}: {}", task.argv(0), pipe->error().message()));
  }
  auto dev_null = above_stdio(Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
  if (!dev_null || !dev_null->valid()) return failed(fmt::format("cannot start {}: cannot open /dev/null", task.argv(0)));

  const pid_t pid = ::fork();
  if (pid < 0) return failed(fmt::format("cannot start {}: fork: {}", task.argv(0), describe_errno(errno)));
  if (pid == 0) {
    become_job(launch, dev_null->get(), stdout_pipe->write.get(), stderr_pipe->write.get(), status_pipe->write.get());
  }
  Child child(pid);
  // Also here, so no signal_group can run before the group exists (EACCES once it has exec'd: fine).
  ::setpgid(pid, pid);
  dev_null->reset();
  stdout_pipe->write.reset();
  stderr_pipe->write.reset();
  status_pipe->write.reset();

  // The status pipe closes on execve (O_CLOEXEC) or brings the step that failed before it.
  ChildFailure failure{};
  ssize_t status_bytes = 0;
  do {
    status_bytes = ::read(status_pipe->read.get(), &failure, sizeof failure);
  } while (status_bytes < 0 && errno == EINTR);
  if (status_bytes == static_cast<ssize_t>(sizeof failure)) return start_failure(failure, task, launch.cwd, policy);

  auto stdout_read = nonblocking(std::move(stdout_pipe->read));
  auto stderr_read = nonblocking(std::move(stderr_pipe->read));
  if (!stdout_read || !stderr_read) return failed(fmt::format("cannot watch {}: fcntl failed", task.argv(0)));
  Stream out(std::move(stdout_read).value(), std::max(policy.capture_bytes, policy.whole_bytes), Stream::Keep::kHead);
  Stream err(std::move(stderr_read).value(), policy.capture_bytes, Stream::Keep::kTail, policy.whole_bytes);
  // Wakes poll when the child exits; without it (kernels before 5.3) the tick notices.
  const Fd exit_watch(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  enum class Ending { kExited, kTimedOut, kStopped };
  Ending ending = Ending::kExited;
  const auto timeout = timeout_of(job, policy);
  const auto deadline = SteadyClock::now() + timeout;
  SteadyClock::time_point kill_at;
  bool killed = false;
  while (!child.exited()) {
    pump(out, err, exit_watch, kTick);
    const auto now = SteadyClock::now();
    if (ending == Ending::kExited) {
      if (stop.load()) {
        ending = Ending::kStopped;
      } else if (now >= deadline) {
        ending = Ending::kTimedOut;
      }
      if (ending != Ending::kExited) {
        child.signal_group(SIGTERM);
        kill_at = now + policy.kill_grace;
      }
    } else if (!killed && now >= kill_at) {
      child.signal_group(SIGKILL);
      killed = true;
    }
  }
  // The child is a zombie, not yet reaped: its group id is still ours to signal.
  child.signal_group(SIGKILL);
  const auto drain_until = SteadyClock::now() + kDrainAfterExit;
  while ((out.open() || err.open()) && SteadyClock::now() < drain_until) pump(out, err, Fd(), kTick);
  const auto exit = child.reap();

  if (!exit.known) return failed(fmt::format("{}: the exit status was lost (the child was reaped elsewhere)", task.argv(0)));

  Outcome outcome;
  outcome.output = output_of(out, policy.capture_bytes);
  if (policy.whole_bytes > 0 && out.text().size() > policy.whole_threshold) {
    outcome.whole_outputs.emplace_back("stdout", out.text(), out.total());
  }
  if (policy.whole_bytes > 0 && err.whole().size() > policy.whole_threshold) {
    outcome.whole_outputs.emplace_back("stderr", err.whole(), err.total());
  }
  if (ending == Ending::kTimedOut) {
    outcome.state = v1::FAILED;
    outcome.error = with_stderr(fmt::format("timed out after {}; process group killed", seconds_text(timeout)), err);
    outcome.exit_code = WIFEXITED(exit.status) ? WEXITSTATUS(exit.status) : 128 + WTERMSIG(exit.status);
    return outcome;
  }
  if (ending == Ending::kStopped) {
    outcome.state = v1::FAILED;
    outcome.error = "stopped: process group killed";
    outcome.exit_code = WIFEXITED(exit.status) ? WEXITSTATUS(exit.status) : 128 + WTERMSIG(exit.status);
    return outcome;
  }
  if (WIFEXITED(exit.status)) {
    outcome.exit_code = WEXITSTATUS(exit.status);
    if (outcome.exit_code == 0) return outcome;
    outcome.state = v1::FAILED;
    outcome.error = with_stderr(fmt::format("exited with status {}", outcome.exit_code), err);
    return outcome;
  }
  const int signal_number = WIFSIGNALED(exit.status) ? WTERMSIG(exit.status) : SIGKILL;
  outcome.state = v1::FAILED;
  outcome.exit_code = 128 + signal_number;
  std::string error = fmt::format("killed by signal {}", signal_name(signal_number));
  const auto cpu_used = std::chrono::seconds(exit.usage.ru_utime.tv_sec + exit.usage.ru_stime.tv_sec);
  if (policy.cpu_seconds > 0 &&
      (signal_number == SIGXCPU || (signal_number == SIGKILL && cpu_used >= std::chrono::seconds(policy.cpu_seconds)))) {
    error += fmt::format(" (CPU time limit exec.cpu_seconds = {} reached)", policy.cpu_seconds);
  }
  outcome.error = with_stderr(std::move(error), err);
  return outcome;
}

Status check_sandbox(const ExecPolicy& policy) {
  if (policy.sandbox.kind == ExecSandbox::kNone) return Status::success();
  v1::Job probe;
  probe.set_id("sandbox-check");
  probe.mutable_exec()->add_argv("/usr/bin/true");
  probe.mutable_timeout()->set_seconds(15);
  ExecPolicy checked = policy;
  checked.programs = {"/usr/bin/true"};
  const std::atomic<bool> stop{false};
  const auto outcome = run_exec(probe, checked, stop);
  if (outcome.state == v1::SUCCEEDED) return Status::success();
  return make_error(
      "exec.sandbox = bwrap, but bubblewrap cannot run a job here: {} (install bubblewrap, and allow unprivileged user "
      "namespaces: "
      "sysctl kernel.unprivileged_userns_clone=1; or set exec.sandbox = none where tenants need no isolation, docs/security.md)",
      outcome.error);
}

Handler make_exec_executor(ExecPolicy policy, JobWalls walls) {
  return [policy = std::move(policy), walls](const v1::Job& job, const std::atomic<bool>& stop) -> Outcome {
    if (auto status = check_exec(job.exec(), policy); !status) return failed(status.error().message(), false);
    if (walls.tenants != nullptr) {
      const auto lists = walls.tenants->find(job.tenant());
      if (auto status = check_exec_for_tenant(walls.tenants->settings(), job.tenant(), lists.get(), job.exec()); !status) {
        return failed(status.error().message(), false);
      }
    }
    if (!has_secret_references(job)) return run_exec(job, policy, stop);
    auto resolved = resolve_secrets(job, walls.secrets);
    if (!resolved) return failed(resolved.error().message(), false);
    auto outcome = run_exec(resolved->job, policy, stop);
    outcome.output = resolved->redactor.apply(outcome.output);
    for (auto& whole : outcome.whole_outputs) whole.bytes = resolved->redactor.apply(whole.bytes);
    outcome.error = resolved->redactor.apply(outcome.error);
    return outcome;
  };
}

std::vector<ConfigKey> exec_config_keys() {
  return {
      {"exec.programs", "", "programs exec jobs may run: comma-separated absolute paths (empty = exec jobs disabled)"},
      {"exec.env", "", "environment variable names exec jobs may set (comma-separated); others are refused"},
      {"exec.cwd", "/tmp", "working directory of exec jobs that set none"},
      {"exec.default_timeout_ms", "3600000", "timeout of exec jobs that set none"},
      {"exec.kill_grace_ms", "2000", "after a timeout or stop: SIGTERM, then SIGKILL after this long"},
      {"exec.cpu_seconds", "0", "CPU time limit per exec job, RLIMIT_CPU (0 = unlimited)"},
      {"exec.memory_mb", "0", "address space limit per exec job, RLIMIT_AS (0 = unlimited)"},
      {"exec.open_files", "0", "open files limit per exec job, RLIMIT_NOFILE (0 = unlimited)"},
      {"exec.capture_bytes", "65536", "bytes kept of an exec job's stdout (first) and stderr (last)"},
      {"exec.sandbox", "none",
       "bwrap: every exec job under bubblewrap (own namespaces, an empty root with /usr read-only, uid "
       "exec.sandbox_uid); none: as the worker's user"},
      {"exec.sandbox_bwrap", "/usr/bin/bwrap", "the bubblewrap program"},
      {"exec.sandbox_network", "true", "sandboxed jobs share the host's network (false: no network at all)"},
      {"exec.sandbox_read_only", "", "more host paths sandboxed jobs see read-only (comma-separated absolute paths)"},
      {"exec.sandbox_uid", "65534", "uid and gid of sandboxed jobs inside the sandbox"},
  };
}

Result<ExecPolicy> exec_policy_from(const Config& config) {
  ExecPolicy policy;
  policy.programs = config.get_list("exec.programs");
  for (const auto& program : policy.programs) {
    if (!program.starts_with('/')) return make_error("configuration exec.programs: '{}' is not an absolute path", program);
  }
  policy.env_names = config.get_list("exec.env");
  for (const auto& name : policy.env_names) {
    if (name.find('=') != std::string::npos) return make_error("configuration exec.env: '{}' is not a variable name", name);
  }
  policy.default_cwd = config.get("exec.cwd");
  if (!policy.default_cwd.starts_with('/')) {
    return make_error("configuration exec.cwd: '{}' is not an absolute path", policy.default_cwd);
  }

  // Each number: an integer at least `minimum`.
  auto number = [&](const std::string& name, std::int64_t minimum) -> Result<std::int64_t> {
    auto value = config.get_int(name);
    if (!value) return value.error();
    if (*value < minimum) return make_error("configuration {}: {} is below the minimum of {}", name, *value, minimum);
    return *value;
  };
  auto timeout_ms = number("exec.default_timeout_ms", 1);
  if (!timeout_ms) return timeout_ms.error();
  auto grace_ms = number("exec.kill_grace_ms", 0);
  if (!grace_ms) return grace_ms.error();
  auto cpu_seconds = number("exec.cpu_seconds", 0);
  if (!cpu_seconds) return cpu_seconds.error();
  auto memory_mb = number("exec.memory_mb", 0);
  if (!memory_mb) return memory_mb.error();
  if (*memory_mb > std::numeric_limits<std::int64_t>::max() / kBytesPerMb) {
    return make_error("configuration exec.memory_mb: {} is too large", *memory_mb);
  }
  auto open_files = number("exec.open_files", 0);
  if (!open_files) return open_files.error();
  auto capture_bytes = number("exec.capture_bytes", 0);
  if (!capture_bytes) return capture_bytes.error();

  policy.default_timeout = std::chrono::milliseconds(*timeout_ms);
  policy.kill_grace = std::chrono::milliseconds(*grace_ms);
  policy.cpu_seconds = *cpu_seconds;
  policy.memory_bytes = *memory_mb * kBytesPerMb;
  policy.open_files = *open_files;
  policy.capture_bytes = static_cast<std::size_t>(*capture_bytes);

  auto sandbox = parse_exec_sandbox(config.get("exec.sandbox"));
  if (!sandbox) return make_error("configuration {}", sandbox.error().message());
  policy.sandbox.kind = *sandbox;
  policy.sandbox.bwrap = config.get("exec.sandbox_bwrap");
  if (!policy.sandbox.bwrap.starts_with('/')) {
    return make_error("configuration exec.sandbox_bwrap: '{}' is not an absolute path", policy.sandbox.bwrap);
  }
  auto network = config.get_bool("exec.sandbox_network");
  if (!network) return network.error();
  policy.sandbox.network = *network;
  policy.sandbox.read_only = config.get_list("exec.sandbox_read_only");
  for (const auto& path : policy.sandbox.read_only) {
    if (!path.starts_with('/')) return make_error("configuration exec.sandbox_read_only: '{}' is not an absolute path", path);
  }
  auto uid = number("exec.sandbox_uid", 1);
  if (!uid) return uid.error();
  if (*uid > 65535) return make_error("configuration exec.sandbox_uid: {} is above 65535", *uid);
  policy.sandbox.uid = static_cast<int>(*uid);
  return policy;
}

}  // namespace kcron::worker
