#include "tests/testing/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace nichandover {
namespace testing {

std::string RunfilePath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  std::string base = srcdir ? srcdir : ".";
  return absl::StrCat(base, "/nichandover/", workspace_relative);
}

std::string MakeTempDir(const std::string& prefix) {
  // Unix socket paths are limited to 107 bytes and Bazel's TEST_TMPDIR can be
  // deep, so prefer /tmp when it would be too long.
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string base = (tmp && std::strlen(tmp) < 40) ? tmp : "/tmp";
  std::string templ = absl::StrCat(base, "/", prefix, "XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    std::abort();
  }
  return std::string(buf.data());
}

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  int port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

std::string RandomHex(size_t bytes) {
  std::ifstream random("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  random.read(raw.data(), static_cast<std::streamsize>(bytes));
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  return hex;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Subprocess::Subprocess(Subprocess&& other) noexcept { *this = std::move(other); }

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    pid_ = other.pid_;
    exit_code_ = other.exit_code_;
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
    other.pid_ = -1;
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && exit_code_ < 0) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
}

absl::StatusOr<Subprocess> Subprocess::Start(const std::vector<std::string>& argv,
                                             const std::string& log_dir,
                                             const std::map<std::string, std::string>& env) {
  static std::atomic<int> counter{0};
  int n = counter++;
  std::string base = argv[0].substr(argv[0].rfind('/') + 1);
  Subprocess p;
  p.stdout_path_ = absl::StrCat(log_dir, "/", base, ".", n, ".out");
  p.stderr_path_ = absl::StrCat(log_dir, "/", base, ".", n, ".err");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (env.count(key) == 0) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  int out_fd = ::open(p.stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = ::open(p.stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0 || err_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create logs in ", log_dir));
  }
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(null_fd, STDIN_FILENO);
    // Own process group, so a test's Ctrl-C does not reach it twice; and
    // killed with the test, so a test killed by its timeout (no destructor
    // runs) leaves no daemon behind.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) _exit(127);  // the test died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  p.pid_ = pid;
  return p;
}

bool Subprocess::running() {
  if (pid_ <= 0 || exit_code_ >= 0) return false;
  int status;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

void Subprocess::Signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  if (exit_code_ >= 0) return exit_code_;
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (!running()) return exit_code_;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
}

std::string Subprocess::Stdout() const { return ReadFile(stdout_path_); }
std::string Subprocess::Stderr() const { return ReadFile(stderr_path_); }

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& log_dir,
                         const std::map<std::string, std::string>& env, absl::Duration timeout) {
  CommandResult result;
  auto p = Subprocess::Start(argv, log_dir, env);
  if (!p.ok()) {
    result.err = std::string(p.status().message());
    return result;
  }
  auto code = p->Wait(timeout);
  if (!code.ok()) {
    p->Signal(SIGKILL);
    (void)p->Wait(absl::Seconds(5));
    result.exit_code = -1;
    result.err = absl::StrCat("TIMED OUT: ", p->Stderr());
    result.out = p->Stdout();
    return result;
  }
  result.exit_code = *code;
  result.out = p->Stdout();
  result.err = p->Stderr();
  return result;
}

bool WaitUntil(const std::function<bool()>& probe, absl::Duration timeout,
               absl::Duration interval) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (probe()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
}

ProcessUsage ReadProcessUsage(pid_t pid) {
  ProcessUsage usage;
  const std::string proc = absl::StrCat("/proc/", pid);
  for (absl::string_view line : absl::StrSplit(ReadFile(proc + "/status"), '\n')) {
    if (absl::ConsumePrefix(&line, "VmRSS:")) {
      (void)absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"),
                             &usage.rss_kib);
    } else if (absl::ConsumePrefix(&line, "Threads:")) {
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &usage.threads);
    }
  }
  std::error_code ignored;
  for (auto it = std::filesystem::directory_iterator(proc + "/fd", ignored);
       it != std::filesystem::directory_iterator(); it.increment(ignored)) {
    ++usage.open_fds;
  }
  return usage;
}

}  // namespace testing
}  // namespace nichandover
