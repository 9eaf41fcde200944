// An Arbiter for machines whose nodes share memory: the ownership records
// live in one file that every node's daemon maps MAP_SHARED -- a file in
// /dev/shm for nodes that are processes of one kernel (tests, demos), or a
// shared-memory region exposed as a file to each kernel (an ivshmem BAR's
// sysfs resource2, a reserved region of a multi-kernel machine).
//
// Each record is one 64-bit word changed only by a lock-free atomic
// compare-and-swap, so the CAS is as atomic across processes and kernels as
// the memory is coherent; no lock, futex or pid is involved (none is
// meaningful across kernels). The word holds the state, the owner's and the
// target's index in the file's node table, and the epoch (40 bits). The ring
// state written before HANDOFF sits beside the record behind a sequence
// lock: readers retry while it is odd or changes under them.
//
// Layout (little-endian, fixed): a header with magic "NHARBIT1", version,
// counts and the node table (64 names of 64 bytes), then one 64-byte aligned
// slot per NIC: BDF, ownership word, ring seqlock, ring count, the ring
// write's fence (epoch, operation id), and up to 64 queue states. The file is created once, whole,
// by Create (it appears under its name only when complete); daemons only Open it.
#ifndef NICHANDOVER_DAEMON_PLATFORM_SHARED_FILE_SHARED_FILE_ARBITER_H_
#define NICHANDOVER_DAEMON_PLATFORM_SHARED_FILE_SHARED_FILE_ARBITER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/platform/platform.h"

namespace nichandover {
namespace platform {

struct SharedArbiterLayout;
struct SharedArbiterNicSlot;

class SharedFileArbiter : public Arbiter {
 public:
  static constexpr size_t kMaxNodes = 64;
  static constexpr size_t kMaxQueues = 64;
  static constexpr uint64_t kMaxEpoch = (uint64_t{1} << 40) - 1;

  struct InitialRecord {
    std::string bdf;  // any form ParseBdf takes; stored in full form
    v1::OwnershipRecord record;
  };

  // Writes a new arbiter file at `path` (replacing any) naming `nodes` and
  // holding `records`. INVALID_ARGUMENT for an empty, over-long (63 bytes
  // max) or repeated node, a BDF that is not one or repeats, a record naming
  // a node not in `nodes`, or an epoch past kMaxEpoch.
  static absl::Status Create(const std::string& path, const std::vector<std::string>& nodes,
                             const std::vector<InitialRecord>& records);

  // Maps an existing file. NOT_FOUND if it does not exist,
  // FAILED_PRECONDITION if it is not an arbiter file of this version.
  static absl::StatusOr<std::unique_ptr<SharedFileArbiter>> Open(const std::string& path);

  ~SharedFileArbiter() override;
  SharedFileArbiter(const SharedFileArbiter&) = delete;
  SharedFileArbiter& operator=(const SharedFileArbiter&) = delete;

  absl::StatusOr<v1::OwnershipRecord> Read(const std::string& bdf) override;
  // INVALID_ARGUMENT when `desired` lowers the epoch below `expected`'s,
  // names a node the file does not know, or exceeds kMaxEpoch. An
  // `expected` that cannot be encoded cannot be current: the call returns
  // the record unchanged.
  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired) override;
  // INVALID_ARGUMENT past kMaxQueues. One writer per NIC is the protocol's
  // rule (the source); a writer that died mid-write is taken over after
  // writer_takeover(), and the one taken over from gets ABORTED.
  // FAILED_PRECONDITION when the stored rings carry a higher fence.
  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings) override;
  // UNAVAILABLE when a write stays in progress past writer_takeover().
  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch) override;

  // Every record, in file order (for tools).
  absl::StatusOr<std::vector<std::pair<std::string, v1::OwnershipRecord>>> ReadAll();
  const std::vector<std::string>& nodes() const { return nodes_; }

  static absl::Duration writer_takeover() { return absl::Seconds(1); }

 private:
  SharedFileArbiter(std::string path, SharedArbiterLayout* layout, size_t size,
                    std::vector<std::string> nodes)
      : path_(std::move(path)), layout_(layout), size_(size), nodes_(std::move(nodes)) {}

  absl::StatusOr<SharedArbiterNicSlot*> Slot(const std::string& bdf);

  std::string path_;
  SharedArbiterLayout* layout_;
  size_t size_;
  std::vector<std::string> nodes_;  // copied at Open: the table never changes
};

}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_SHARED_FILE_SHARED_FILE_ARBITER_H_
