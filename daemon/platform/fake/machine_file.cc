#include "daemon/platform/fake/machine_file.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/text_format.h"

namespace nichandover {
namespace platform {
namespace fake {
namespace {

absl::Status ErrnoError(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Holds flock(2) on "<path>.lock" for its lifetime. A separate lock file,
// because the state file itself is replaced by rename on every update.
class FileLock {
 public:
  FileLock(const std::string& path, int operation) {
    std::string lock_path = path + ".lock";
    fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      status_ = ErrnoError(absl::StrCat("open ", lock_path));
      return;
    }
    while (flock(fd_, operation) != 0) {
      if (errno == EINTR) continue;
      status_ = ErrnoError(absl::StrCat("flock ", lock_path));
      return;
    }
  }
  ~FileLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  const absl::Status& status() const { return status_; }

 private:
  int fd_ = -1;
  absl::Status status_;
};

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("fake machine state ", path,
                                              " does not exist (create it with fake-machine create)"));
    }
    return ErrnoError(absl::StrCat("open ", path));
  }
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = ErrnoError(absl::StrCat("read ", path));
      close(fd);
      return status;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

absl::StatusOr<FakeMachineState> Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return text.status();
  FakeMachineState state;
  if (!google::protobuf::TextFormat::ParseFromString(*text, &state)) {
    return absl::DataLossError(absl::StrCat("fake machine state ", path, " does not parse"));
  }
  return state;
}

absl::Status Store(const std::string& path, const FakeMachineState& state) {
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(state, &text)) {
    return absl::InternalError("cannot print the fake machine state");
  }
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(absl::StrCat("open ", tmp));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = ErrnoError(absl::StrCat("write ", tmp));
      close(fd);
      unlink(tmp.c_str());
      return status;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  // No fsync: the fake models state that survives a process crash, not a
  // power loss, and the page cache survives a process crash.
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoError(absl::StrCat("rename ", tmp, " to ", path));
    unlink(tmp.c_str());
    return status;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MachineFile::Write(const FakeMachineState& state) {
  FileLock lock(path_, LOCK_EX);
  if (!lock.status().ok()) return lock.status();
  return Store(path_, state);
}

absl::StatusOr<FakeMachineState> MachineFile::Read() const {
  FileLock lock(path_, LOCK_SH);
  if (!lock.status().ok()) return lock.status();
  return Load(path_);
}

absl::Status MachineFile::Update(const std::function<absl::Status(FakeMachineState*)>& change) {
  FileLock lock(path_, LOCK_EX);
  if (!lock.status().ok()) return lock.status();
  absl::StatusOr<FakeMachineState> state = Load(path_);
  if (!state.ok()) return state.status();
  std::string before = state->SerializeAsString();
  absl::Status result = change(&*state);
  if (state->SerializeAsString() != before) {
    state->set_generation(state->generation() + 1);
    absl::Status stored = Store(path_, *state);
    if (!stored.ok()) return stored;
  }
  return result;
}

MachineFileWatch::MachineFileWatch(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    status_ = ErrnoError("inotify_init1");
    return;
  }
  // Every update renames a new file over the old one (Store).
  if (inotify_add_watch(fd_, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    status_ = ErrnoError(absl::StrCat("inotify_add_watch ", dir));
  }
}

MachineFileWatch::~MachineFileWatch() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<bool> MachineFileWatch::Wait(absl::Time deadline) {
  if (!status_.ok()) return status_;
  alignas(struct inotify_event) char buffer[4096];
  while (true) {
    // Drain what is queued; other files of the directory (the lock, other
    // tests' machines, temporaries) do not count.
    bool changed = false;
    while (true) {
      const ssize_t n = read(fd_, buffer, sizeof(buffer));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return ErrnoError("read inotify");
      }
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + at);
        if (event->len > 0 && name_ == event->name) changed = true;
        at += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
      }
    }
    if (changed) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    struct pollfd pfd = {fd_, POLLIN, 0};
    // Rounded up, so a wait never ends a little before its deadline.
    const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
    const int rc = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, 60000)));
    if (rc < 0 && errno != EINTR) return ErrnoError("poll inotify");
  }
}

}  // namespace fake
}  // namespace platform
}  // namespace nichandover
