// platform::FastPath of the Linux backend: the kernel commit path of the
// nichandover_hook module (NH_CMD_ARM, NH_CMD_HANDOFF, NH_CMD_EVENTS; see
// docs/hook.md, "Kernel commit path"), for devices whose contract driver has
// struct nh_commit_ops (hook/simnic: the record in the simulated machine's
// memory, an ivshmem doorbell to the target guest).
//
// The kernel compares record words only for equality; their encoding is the
// machine's (RecordWords). A device whose driver lacks the ops answers
// UNIMPLEMENTED, so the protocol falls back to the daemon path for it.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_FAST_PATH_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_FAST_PATH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/platform/linux/module_connection.h"
#include "daemon/platform/platform.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

// The machine's ownership word for a record and back: sim/machine.h's
// encoding (EncodeOwnership), with node ids mapped to the machine's node
// indexes. INVALID_ARGUMENT for a node the machine lacks or a state the word
// cannot hold; OUT_OF_RANGE for an epoch past its 40 bits.
class RecordWords {
 public:
  explicit RecordWords(std::vector<std::string> node_ids) : node_ids_(std::move(node_ids)) {}

  absl::StatusOr<uint64_t> Encode(const v1::OwnershipRecord& record) const;
  absl::StatusOr<v1::OwnershipRecord> Decode(uint64_t word) const;

 private:
  absl::StatusOr<int> Index(const std::string& node_id) const;

  std::vector<std::string> node_ids_;  // index -> node id
};

class LinuxFastPath : public FastPath {
 public:
  LinuxFastPath(ModuleConnection module, RecordWords words, std::string node_id)
      : module_(std::move(module)), words_(std::move(words)), node_id_(std::move(node_id)) {}

  absl::Status Arm(const std::string& bdf, const Fence& fence,
                   const v1::OwnershipRecord& handoff) override;
  absl::StatusOr<HandOffResult> HandOff(const HandOffRequest& request) override;
  absl::StatusOr<KernelEvents> WaitEvents(uint64_t after_seq, absl::Duration timeout) override;

 private:
  ModuleConnection module_;
  RecordWords words_;
  std::string node_id_;  // this node: the ACTIVE owner an armed commit writes
};

// Whether the module reports the kernel commit path for any device it knows
// (LIST): the Linux platform offers a FastPath only then. An unloaded module
// is "no" (the error), not a failure of the platform.
absl::StatusOr<bool> ModuleHasKernelCommit(const ModuleConnection& module);

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_FAST_PATH_H_
