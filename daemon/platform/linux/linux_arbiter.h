// Where a Linux node's ownership records live, as LinuxPlatformConfig says:
// a SharedFileArbiter file (arbiter_file), or the simulated machine's own
// record in its memory (machine_memory: the machine file, or in a guest
// attached through ivshmem its function's BAR2). The latter is the sim
// backend's MachineArbiter over that memory, so a guest's daemon and the sim
// nodes' daemons CAS the same word.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_ARBITER_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_ARBITER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "daemon/platform/platform.h"
#include "nichandover/v1/config.pb.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

// INVALID_ARGUMENT unless exactly one of the two fields is set; the opener's
// error otherwise (NOT_FOUND: no such file; FAILED_PRECONDITION: not a
// machine or arbiter file of this version, or `daemon.node_id` is not one of
// the machine's nodes), each naming the field.
absl::StatusOr<std::unique_ptr<Arbiter>> OpenLinuxArbiter(const v1::LinuxPlatformConfig& config,
                                                          const v1::DaemonConfig& daemon);

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_ARBITER_H_
