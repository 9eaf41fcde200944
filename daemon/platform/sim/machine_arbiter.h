// The ownership record of the simulated machine's NIC as a platform::Arbiter:
// one 64-bit word in the machine's shared memory, changed by a hardware
// compare-and-swap, with the ring state for the target beside it under a
// sequence lock (sim/machine.h). Any process that maps the machine's memory
// can use it: a sim node's daemon (the machine file) and a guest's daemon on
// the linux backend (BAR2 of its ivshmem function, which is that memory).
#ifndef NICHANDOVER_DAEMON_PLATFORM_SIM_MACHINE_ARBITER_H_
#define NICHANDOVER_DAEMON_PLATFORM_SIM_MACHINE_ARBITER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/platform/platform.h"
#include "sim/machine.h"

namespace nichandover {
namespace platform {
namespace sim {

// Records of `machine`'s NIC, for node `node_id` (named in errors). NOT_FOUND
// for any other BDF; records naming a node the machine lacks are
// INVALID_ARGUMENT.
std::unique_ptr<Arbiter> MakeMachineArbiter(std::shared_ptr<::nichandover::sim::Machine> machine,
                                            std::string node_id);

// Maps the machine memory at `path` for its records: the machine file, or
// memory that only holds it, such as an ivshmem BAR (resource2), which is at
// least the layout's size and must not be resized or locked.
absl::StatusOr<std::unique_ptr<::nichandover::sim::Machine>> AttachMachineMemory(
    const std::string& path);

}  // namespace sim
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_SIM_MACHINE_ARBITER_H_
