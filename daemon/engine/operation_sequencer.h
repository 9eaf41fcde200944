// Operation ids for the fences of platform calls (common/fence.h).
//
// Every call that changes a device carries (epoch, op_id); the kernel side
// refuses one lower than the highest it accepted. For that to fence the late
// calls of a crashed or retried daemon instance, op_id must grow within a
// daemon and across its restarts: op_id = incarnation << 32 | counter, where
// the incarnation is a number in a small file beside the journal
// (state_dir/incarnation), raised and synced at every start before the first
// platform call. Losing that file is like losing the journal: the next start
// counts from 1 again, and its calls at the current epoch are refused until
// a handover raises the epoch (the operator's `nicctl recover` does).
#ifndef NICHANDOVER_DAEMON_ENGINE_OPERATION_SEQUENCER_H_
#define NICHANDOVER_DAEMON_ENGINE_OPERATION_SEQUENCER_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace nichandover {
namespace engine {

class OperationSequencer {
 public:
  // Reads the incarnation stored at `path` (none: 0), stores the next one
  // durably (a new file fsynced, renamed over the old, directory fsynced)
  // and returns it. DATA_LOSS for a file that does not hold a number (a
  // guess could go backwards), RESOURCE_EXHAUSTED past 2^32 - 1 starts,
  // the errno's code when the file cannot be written.
  static absl::StatusOr<uint32_t> NextIncarnation(const std::string& path);

  explicit OperationSequencer(uint32_t incarnation)
      : last_(static_cast<uint64_t>(incarnation) << 32) {}

  // The next operation id: higher than every one returned before by this
  // sequencer and by those of lower incarnations (up to 2^32 - 1 ids per
  // incarnation). Thread-safe.
  uint64_t Next() { return last_.fetch_add(1, std::memory_order_relaxed) + 1; }

 private:
  std::atomic<uint64_t> last_;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_OPERATION_SEQUENCER_H_
