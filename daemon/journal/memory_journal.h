// An in-memory Journal for tests of code that journals (the engine): it keeps
// what was synced apart from what was only appended, so a test can "crash"
// the process and see exactly the records a real file would still hold, and
// it can fail appends or syncs on demand.
#ifndef NICHANDOVER_DAEMON_JOURNAL_MEMORY_JOURNAL_H_
#define NICHANDOVER_DAEMON_JOURNAL_MEMORY_JOURNAL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/journal/journal.h"

namespace nichandover {
namespace journal {

class MemoryJournal : public Journal {
 public:
  // Starts with `durable` records, as if opened on a file holding them.
  explicit MemoryJournal(std::vector<std::string> durable = {});

  absl::Status Append(const std::vector<std::string>& records) override;
  absl::Status Sync() override;
  absl::Status Compact(const std::vector<std::string>& live_records) override;
  JournalStats Stats() const override;

  // The records a restart would find: the synced ones. Appended but unsynced
  // records are lost, as after a crash.
  std::vector<std::string> DurableRecords() const { return durable_; }
  // Every record, synced or not.
  std::vector<std::string> AllRecords() const;

  // The next Append / Sync fails with `status` (once). A failed sync, like
  // FileJournal's, breaks the journal for good.
  void FailNextAppend(absl::Status status) { fail_append_ = std::move(status); }
  void FailNextSync(absl::Status status) { fail_sync_ = std::move(status); }

 private:
  std::vector<std::string> durable_;
  std::vector<std::string> pending_;
  absl::Status fail_append_;
  absl::Status fail_sync_;
  absl::Status broken_;
  JournalStats stats_;
};

}  // namespace journal
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_JOURNAL_MEMORY_JOURNAL_H_
