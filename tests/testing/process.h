// Test support: real processes (daemons, nicctl) started from the Bazel
// runfiles, with their output captured, and helpers to wait for them.
#ifndef NICHANDOVER_TESTS_TESTING_PROCESS_H_
#define NICHANDOVER_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nichandover {
namespace testing {

// Absolute path of a file in this workspace's runfiles ("daemon/nichandoverd").
std::string RunfilePath(const std::string& workspace_relative);

// A fresh directory under $TEST_TMPDIR (or /tmp), short enough for unix socket paths.
std::string MakeTempDir(const std::string& prefix);

// A TCP port on 127.0.0.1 that was free a moment ago.
int PickFreePort();

// Writes `content` to `path`, replacing it.
void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);
// `bytes` random bytes from /dev/urandom as lowercase hex (test secrets).
std::string RandomHex(size_t bytes);

// A child process. Its stdout and stderr go to files in `log_dir`; the
// destructor kills (SIGKILL) and reaps it if still running.
class Subprocess {
 public:
  Subprocess() = default;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  ~Subprocess();

  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::string& log_dir,
                                          const std::map<std::string, std::string>& env = {});

  pid_t pid() const { return pid_; }
  bool running();
  // Sends a signal (no-op if it has exited).
  void Signal(int sig);
  // Waits for exit; DEADLINE_EXCEEDED if it does not exit within `timeout`.
  // The result is the exit code, or 128+signal when killed by a signal.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string stdout_path_;
  std::string stderr_path_;
};

// Result of running a command to completion.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv to completion (killed after `timeout`), capturing output.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& log_dir,
                         const std::map<std::string, std::string>& env = {},
                         absl::Duration timeout = absl::Seconds(30));

// What a running process holds, from /proc/PID (zeros once it is gone).
struct ProcessUsage {
  uint64_t rss_kib = 0;  // VmRSS
  int threads = 0;
  int open_fds = 0;      // entries of /proc/PID/fd
};
ProcessUsage ReadProcessUsage(pid_t pid);

// Polls `probe` until it returns true or `timeout` passes.
bool WaitUntil(const std::function<bool()>& probe, absl::Duration timeout,
               absl::Duration interval = absl::Milliseconds(20));

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_TESTING_PROCESS_H_
