#include "daemon/engine/operation_sequencer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace nichandover {
namespace engine {
namespace {

absl::Status ErrnoStatus(int err, const std::string& what) {
  const absl::StatusCode code =
      err == ENOSPC || err == EDQUOT  ? absl::StatusCode::kResourceExhausted
      : err == EACCES || err == EPERM ? absl::StatusCode::kPermissionDenied
      : err == ENOENT                 ? absl::StatusCode::kNotFound
                                      : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(what, ": ", std::strerror(err)));
}

// Writes `text` to `path` durably: a new file, fsynced, renamed over the old
// one, the directory fsynced (a crash leaves the old number or the new one).
absl::Status WriteDurably(const std::string& path, const std::string& text) {
  const std::string temp = path + ".new";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", temp));
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, absl::StrCat("writing ", temp));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, absl::StrCat("syncing ", temp));
  }
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("renaming ", temp, " to ", path));
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus(errno, absl::StrCat("opening ", dir));
  int synced = ::fsync(dir_fd);
  int err = errno;
  ::close(dir_fd);
  if (synced != 0) return ErrnoStatus(err, absl::StrCat("syncing ", dir));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint32_t> OperationSequencer::NextIncarnation(const std::string& path) {
  uint64_t previous = 0;
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    if (!absl::SimpleAtoi(absl::StripTrailingAsciiWhitespace(text.str()), &previous) ||
        previous > std::numeric_limits<uint32_t>::max()) {
      return absl::DataLossError(absl::StrCat(
          path,
          " does not hold an incarnation number (0..4294967295); remove it only together "
          "with the journal beside it"));
    }
  } else if (errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("reading ", path));
  }
  if (previous == std::numeric_limits<uint32_t>::max()) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": the daemon has used up its 2^32 - 1 incarnations"));
  }
  const uint32_t next = static_cast<uint32_t>(previous + 1);
  absl::Status written = WriteDurably(path, absl::StrCat(next, "\n"));
  if (!written.ok()) return written;
  return next;
}

}  // namespace engine
}  // namespace nichandover
