// The fake platform backend: Inventory, Hook, Router and Arbiter of one node
// of a fake machine whose state lives in a file shared by all daemons of a
// test (see machine_file.h). It behaves like the hardware and kernels would:
//
//  - Hook: per node and NIC a state (detached / running / quiesced) and the
//    highest epoch seen; an operation with a lower epoch is refused with
//    FAILED_PRECONDITION. Quiesce closes the gates, drains what is in flight
//    and masks the vectors; Resume and Attach unmask them; Release of a
//    running NIC is refused (quiesce first).
//  - Router: Reroute needs the NIC quiesced on the calling node and refuses
//    when interrupt remapping is on; it masks, writes and leaves the vectors
//    masked. Reservations pick free vectors on the node's CPUs round-robin.
//  - Arbiter: an atomic compare-and-swap of the ownership record across
//    processes (one flock-protected read-modify-write).
//
// Fault knobs (FakeMachine::SetFault, fake-machine set-fault) make any
// operation of any node fail with a code, once, N times or always, or hang
// until the knob is cleared: like netdevsim's fail_* files, they are checked
// before the operation changes anything. A Quiesce hung past its `timeout`
// returns DEADLINE_EXCEEDED with the gates closed, as the interface says.
#ifndef NICHANDOVER_DAEMON_PLATFORM_FAKE_FAKE_PLATFORM_H_
#define NICHANDOVER_DAEMON_PLATFORM_FAKE_FAKE_PLATFORM_H_

#include <string>

#include "absl/status/statusor.h"
#include "daemon/platform/platform.h"

namespace nichandover {
namespace platform {
namespace fake {

// The four parts for `node_id` on the machine in `state_path`. NOT_FOUND when
// the file does not exist or the machine has no such node.
absl::StatusOr<Platform> MakeFakePlatform(const std::string& state_path, const std::string& node_id);

}  // namespace fake
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_FAKE_FAKE_PLATFORM_H_
