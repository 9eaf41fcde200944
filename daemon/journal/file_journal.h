// A Journal in one file.
//
// Layout (little-endian):
//   header  "NHJOURNL" | u32 version (1) | u32 CRC-32C of the 12 bytes before
//   record  u32 length | u32 CRC-32C of (length field + payload) | payload
//
// The CRC covers the length field, so a flipped bit there is caught too. On
// open, a bad record with no valid record after it is a write torn by a crash
// (only the last append can be partial): it is truncated and logged. A bad
// record followed by a valid one cannot come from a crash; the data was
// damaged, and Open refuses with DATA_LOSS naming the file and byte offset
// instead of silently forgetting what the daemon did.
#ifndef NICHANDOVER_DAEMON_JOURNAL_FILE_JOURNAL_H_
#define NICHANDOVER_DAEMON_JOURNAL_FILE_JOURNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/journal/journal.h"

namespace nichandover {
namespace journal {

// The largest record Append accepts; a longer length field on open is damage.
inline constexpr uint32_t kMaxRecordBytes = 16u << 20;

// What Open found in an existing file.
struct RecoveredJournal {
  std::vector<std::string> records;  // every intact record, in append order
  uint64_t truncated_bytes = 0;      // torn tail dropped (0: the file was clean)
  uint64_t truncated_at = 0;         // byte offset the tail was cut at
  bool created = false;              // there was no journal (missing or empty file)
};

class FileJournal : public Journal {
 public:
  // Opens `path`, creating it (and syncing its directory) if it is missing or
  // empty. Takes an exclusive flock on the file: a second daemon instance on
  // the same state directory gets FAILED_PRECONDITION. The records found are
  // stored in `recovered` (may be null). DATA_LOSS when the file is damaged
  // before its tail; FAILED_PRECONDITION for an unknown format version.
  static absl::StatusOr<std::unique_ptr<FileJournal>> Open(const std::string& path,
                                                           RecoveredJournal* recovered);

  ~FileJournal() override;
  FileJournal(const FileJournal&) = delete;
  FileJournal& operator=(const FileJournal&) = delete;

  absl::Status Append(const std::vector<std::string>& records) override;
  absl::Status Sync() override;
  absl::Status Reserve(size_t bytes) override;
  absl::Status Compact(const std::vector<std::string>& live_records) override;
  JournalStats Stats() const override;

  const std::string& path() const { return path_; }

 private:
  FileJournal(std::string path, int fd, uint64_t size, uint64_t records);

  // Set once a failure leaves the file in an unknown state; returned by
  // every later call.
  absl::Status broken_;
  std::string path_;
  int fd_;
  uint64_t end_offset_;     // where the next record goes
  uint64_t synced_offset_;  // everything before it is durable
  JournalStats stats_;
};

// The bytes of one framed record (exposed for tests that build damaged files).
std::string FrameRecord(const std::string& payload);

// The bytes of the file header.
std::string JournalHeader();

}  // namespace journal
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_JOURNAL_FILE_JOURNAL_H_
