// The daemon's journal: an append-only sequence of opaque records that
// survives crashes. The handover engine writes an intent before the action it
// announces (a CAS, a hook operation, a peer message), syncs, and only then
// acts; on restart it replays the records to learn what it may have done.
//
// Records are opaque bytes here (the engine serializes its own protos), so
// the journal knows nothing about handovers and can be tested on its own.
#ifndef NICHANDOVER_DAEMON_JOURNAL_JOURNAL_H_
#define NICHANDOVER_DAEMON_JOURNAL_JOURNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace nichandover {
namespace journal {

// What a journal has done since it was opened.
struct JournalStats {
  uint64_t records = 0;     // records in the journal now (after open/compaction)
  uint64_t size_bytes = 0;  // bytes the journal takes, header included
  uint64_t syncs = 0;       // durable flushes issued (fdatasync for a file)
  uint64_t compactions = 0;
};

class Journal {
 public:
  virtual ~Journal() = default;

  // Appends `records` after the last one, in order. They are not durable
  // until Sync() returns OK: append a batch, then sync once.
  virtual absl::Status Append(const std::vector<std::string>& records) = 0;

  // Makes every appended record durable. A no-op when nothing is pending.
  // After a failed sync the journal refuses all further calls: the kernel
  // may have dropped the dirty pages, so what is on disk is unknown.
  virtual absl::Status Sync() = 0;

  // Replaces the whole journal by `live_records`, durably and atomically: a
  // crash at any point leaves either the old journal or the new one. Records
  // appended but not synced before the call are dropped with the old journal.
  virtual absl::Status Compact(const std::vector<std::string>& live_records) = 0;

  // Makes sure the next `bytes` of appends find space on disk (preallocates
  // them), so that a full disk refuses new work here, before anything moved,
  // instead of failing an append the protocol already acts on.
  // RESOURCE_EXHAUSTED when the space is not there. Journals that cannot run
  // out of space (in memory) accept every reservation.
  virtual absl::Status Reserve(size_t bytes) {
    (void)bytes;
    return absl::OkStatus();
  }

  virtual JournalStats Stats() const = 0;
};

}  // namespace journal
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_JOURNAL_JOURNAL_H_
