#include "daemon/journal/file_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/journal/crc32c.h"

namespace nichandover {
namespace journal {
namespace {

constexpr char kMagic[8] = {'N', 'H', 'J', 'O', 'U', 'R', 'N', 'L'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 16;
constexpr size_t kRecordHeaderBytes = 8;

void PutU32(uint32_t value, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

uint32_t GetU32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 | uint32_t{b[3]} << 24;
}

absl::Status ErrnoStatus(int err, const std::string& what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status WriteAllAt(int fd, const std::string& bytes, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = pwrite(fd, bytes.data() + done, bytes.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("write ", path, " at byte offset ", offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  std::string data;
  char buf[1 << 16];
  uint64_t offset = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A new or renamed directory entry is durable only once the directory is.
absl::Status SyncDirectoryOf(const std::string& path) {
  std::string dir = DirName(path);
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus(errno, absl::StrCat("open directory ", dir));
  int rc = fsync(dir_fd);
  int err = errno;
  close(dir_fd);
  if (rc != 0) return ErrnoStatus(err, absl::StrCat("fsync directory ", dir));
  return absl::OkStatus();
}

absl::Status LockExclusive(int fd, const std::string& path) {
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "journal ", path, " is in use by another process (another daemon on this state_dir?)"));
    }
    return ErrnoStatus(errno, absl::StrCat("flock ", path));
  }
  return absl::OkStatus();
}

// Whether a whole, intact record starts at `offset`; its size in *size.
bool ValidRecordAt(const std::string& data, size_t offset, size_t* size) {
  if (data.size() - offset < kRecordHeaderBytes) return false;
  uint32_t length = GetU32(data.data() + offset);
  if (length > kMaxRecordBytes || length > data.size() - offset - kRecordHeaderBytes) return false;
  uint32_t stored_crc = GetU32(data.data() + offset + 4);
  uint32_t crc = Crc32cExtend(0, data.data() + offset, 4);
  crc = Crc32cExtend(crc, data.data() + offset + kRecordHeaderBytes, length);
  if (crc != stored_crc) return false;
  *size = kRecordHeaderBytes + length;
  return true;
}

// The record at `offset` is the file's last, all its bytes are there, yet
// ValidRecordAt refused it.
bool CompleteButCorruptAt(const std::string& data, size_t offset) {
  if (data.size() - offset < kRecordHeaderBytes) return false;
  if (data.find_first_not_of('\0', offset) == std::string::npos) return false;  // zeros
  uint32_t length = GetU32(data.data() + offset);
  return length <= kMaxRecordBytes && length == data.size() - offset - kRecordHeaderBytes;
}

// Checks the header of a file of at least kHeaderBytes.
absl::Status CheckHeader(const std::string& data, const std::string& path) {
  if (std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(
        absl::StrCat("journal ", path, ": not a nichandover journal (bad magic at byte offset 0)"));
  }
  if (Crc32c(absl::string_view(data.data(), 12)) != GetU32(data.data() + 12)) {
    return absl::DataLossError(
        absl::StrCat("journal ", path, ": header checksum mismatch at byte offset 0"));
  }
  uint32_t version = GetU32(data.data() + 8);
  if (version != kVersion) {
    return absl::FailedPreconditionError(absl::StrCat("journal ", path, ": format version ", version,
                                                      ", this daemon reads version ", kVersion));
  }
  return absl::OkStatus();
}

// Writes a complete journal (header + records) to a new file and syncs it.
absl::Status WriteFreshFile(int fd, const std::vector<std::string>& records, const std::string& path,
                            uint64_t* size) {
  std::string bytes = JournalHeader();
  for (const std::string& record : records) bytes += FrameRecord(record);
  if (ftruncate(fd, 0) != 0) return ErrnoStatus(errno, absl::StrCat("truncate ", path));
  absl::Status status = WriteAllAt(fd, bytes, 0, path);
  if (!status.ok()) return status;
  if (fdatasync(fd) != 0) return ErrnoStatus(errno, absl::StrCat("fdatasync ", path));
  *size = bytes.size();
  return absl::OkStatus();
}

absl::Status CheckRecordSizes(const std::vector<std::string>& records) {
  for (const std::string& record : records) {
    if (record.size() > kMaxRecordBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "journal record of ", record.size(), " bytes exceeds the limit of ", kMaxRecordBytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string JournalHeader() {
  std::string header(kMagic, sizeof(kMagic));
  PutU32(kVersion, &header);
  PutU32(Crc32c(header), &header);
  return header;
}

std::string FrameRecord(const std::string& payload) {
  std::string framed;
  framed.reserve(kRecordHeaderBytes + payload.size());
  PutU32(static_cast<uint32_t>(payload.size()), &framed);
  uint32_t crc = Crc32cExtend(0, framed.data(), 4);
  crc = Crc32cExtend(crc, payload.data(), payload.size());
  PutU32(crc, &framed);
  framed += payload;
  return framed;
}

absl::StatusOr<std::unique_ptr<FileJournal>> FileJournal::Open(const std::string& path,
                                                               RecoveredJournal* recovered) {
  RecoveredJournal scratch;
  if (recovered == nullptr) recovered = &scratch;
  *recovered = RecoveredJournal();

  // A compaction that crashed before its rename left only a temporary file;
  // the journal itself is still the old, complete one.
  std::string compact_path = path + ".compact";
  if (unlink(compact_path.c_str()) == 0) {
    NH_LOG(WARNING) << "journal " << path << ": removed " << compact_path
                    << " left by an interrupted compaction";
  }

  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open journal ", path));
  auto fail = [fd](absl::Status status) {
    close(fd);
    return status;
  };
  absl::Status status = LockExclusive(fd, path);
  if (!status.ok()) return fail(status);
  absl::StatusOr<std::string> data = ReadAll(fd, path);
  if (!data.ok()) return fail(data.status());

  std::string header = JournalHeader();
  if (data->size() < kHeaderBytes) {
    // Empty, or a creation torn before its header was complete.
    if (data->compare(0, data->size(), header, 0, data->size()) != 0) {
      return fail(absl::DataLossError(absl::StrCat(
          "journal ", path, ": not a nichandover journal (", data->size(), " bytes, bad header)")));
    }
    recovered->created = true;
    uint64_t size = 0;
    status = WriteFreshFile(fd, {}, path, &size);
    if (status.ok()) status = SyncDirectoryOf(path);
    if (!status.ok()) return fail(status);
    return std::unique_ptr<FileJournal>(new FileJournal(path, fd, size, 0));
  }
  status = CheckHeader(*data, path);
  if (!status.ok()) return fail(status);

  size_t offset = kHeaderBytes;
  while (offset < data->size()) {
    size_t size = 0;
    if (ValidRecordAt(*data, offset, &size)) {
      recovered->records.push_back(data->substr(offset + kRecordHeaderBytes, size - kRecordHeaderBytes));
      offset += size;
      continue;
    }
    // A crash can only tear the last append, so an intact record anywhere
    // after this one means the damage is not a torn write.
    for (size_t later = offset + 1; later < data->size(); ++later) {
      size_t later_size = 0;
      if (ValidRecordAt(*data, later, &later_size)) {
        return fail(absl::DataLossError(absl::StrCat(
            "journal ", path, ": corrupt record at byte offset ", offset,
            " followed by an intact record at byte offset ", later,
            "; refusing to start on a damaged journal (", recovered->records.size(),
            " records before the damage)")));
      }
    }
    // A complete last record (its length reaches exactly the end of the
    // file) with a wrong checksum was written whole and damaged since: a
    // torn append is shorter than its length, or a tail of zeros.
    if (CompleteButCorruptAt(*data, offset)) {
      return fail(absl::DataLossError(absl::StrCat(
          "journal ", path, ": the last record at byte offset ", offset,
          " is complete but fails its checksum (damage, not a torn write); refusing to start on a "
          "damaged journal (", recovered->records.size(), " records before the damage)")));
    }
    recovered->truncated_at = offset;
    recovered->truncated_bytes = data->size() - offset;
    NH_LOG(WARNING) << "journal " << path << ": truncating torn last record at byte offset "
                    << offset << " (" << recovered->truncated_bytes << " bytes)";
    if (ftruncate(fd, static_cast<off_t>(offset)) != 0) {
      return fail(ErrnoStatus(errno, absl::StrCat("truncate ", path)));
    }
    if (fdatasync(fd) != 0) return fail(ErrnoStatus(errno, absl::StrCat("fdatasync ", path)));
    break;
  }
  return std::unique_ptr<FileJournal>(new FileJournal(path, fd, offset, recovered->records.size()));
}

FileJournal::FileJournal(std::string path, int fd, uint64_t size, uint64_t records)
    : path_(std::move(path)), fd_(fd), end_offset_(size), synced_offset_(size) {
  stats_.records = records;
  stats_.size_bytes = size;
}

FileJournal::~FileJournal() {
  if (fd_ >= 0) close(fd_);
}

absl::Status FileJournal::Append(const std::vector<std::string>& records) {
  if (!broken_.ok()) return broken_;
  std::string bytes;
  absl::Status status = CheckRecordSizes(records);
  if (!status.ok()) return status;
  for (const std::string& record : records) bytes += FrameRecord(record);
  status = WriteAllAt(fd_, bytes, end_offset_, path_);
  if (!status.ok()) {
    // Cut a partial write off, or the next append would follow garbage and
    // the journal would look damaged in the middle on the next start.
    if (ftruncate(fd_, static_cast<off_t>(end_offset_)) != 0) {
      broken_ = absl::InternalError(absl::StrCat("journal ", path_, " unusable after a failed write (",
                                                 status.message(), ") and failed truncate"));
    }
    return status;
  }
  end_offset_ += bytes.size();
  stats_.records += records.size();
  stats_.size_bytes = end_offset_;
  return absl::OkStatus();
}

absl::Status FileJournal::Sync() {
  if (!broken_.ok()) return broken_;
  if (synced_offset_ == end_offset_) return absl::OkStatus();
  if (fdatasync(fd_) != 0) {
    broken_ = ErrnoStatus(errno, absl::StrCat("fdatasync journal ", path_));
    return broken_;
  }
  ++stats_.syncs;
  synced_offset_ = end_offset_;
  return absl::OkStatus();
}

absl::Status FileJournal::Compact(const std::vector<std::string>& live_records) {
  if (!broken_.ok()) return broken_;
  absl::Status status = CheckRecordSizes(live_records);
  if (!status.ok()) return status;
  std::string compact_path = path_ + ".compact";
  int new_fd = open(compact_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (new_fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", compact_path));
  // Locked before the rename, so no other process can ever open the new
  // journal unlocked.
  status = LockExclusive(new_fd, compact_path);
  uint64_t size = 0;
  if (status.ok()) status = WriteFreshFile(new_fd, live_records, compact_path, &size);
  if (status.ok() && rename(compact_path.c_str(), path_.c_str()) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("rename ", compact_path, " to ", path_));
  }
  if (!status.ok()) {
    close(new_fd);
    unlink(compact_path.c_str());
    return status;  // the old journal is untouched and still in use
  }
  close(fd_);
  fd_ = new_fd;
  end_offset_ = size;
  synced_offset_ = size;
  stats_.records = live_records.size();
  stats_.size_bytes = size;
  ++stats_.compactions;
  ++stats_.syncs;
  status = SyncDirectoryOf(path_);
  if (!status.ok()) {
    // The rename may or may not survive a power loss: old or new journal.
    // Both are complete, but appending now could extend the one that loses.
    broken_ = status;
    return status;
  }
  return absl::OkStatus();
}

absl::Status FileJournal::Reserve(size_t bytes) {
  if (!broken_.ok()) return broken_;
  // KEEP_SIZE: the blocks are allocated, the file's length (what the next
  // open reads) stays where the records end.
  if (fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(end_offset_),
                static_cast<off_t>(bytes)) == 0) {
    return absl::OkStatus();
  }
  const int error = errno;
  if (error == EOPNOTSUPP) return absl::OkStatus();  // nothing to reserve with
  if (error == ENOSPC || error == EDQUOT || error == EFBIG) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "journal ", path_, ": ", std::strerror(error), " (", bytes,
        " bytes needed for a handover's records); free space on its filesystem and retry"));
  }
  return ErrnoStatus(error, absl::StrCat("reserving space in journal ", path_));
}

JournalStats FileJournal::Stats() const { return stats_; }

}  // namespace journal
}  // namespace nichandover
