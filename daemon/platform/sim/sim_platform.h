// The sim platform backend: Inventory, Hook, Router and Arbiter of one node
// of the simulated multi-OS machine (sim/, docs/simulator.md).
//
//  - Inventory reads the NIC's config space and MSI-X table straight from the
//    machine's shared memory with the PCI layer's decoders (as the linux
//    backend reads config space with libpci from user space).
//  - Hook and Router talk to this node's simulated kernel (nh-sim-kernel)
//    over its control socket: the kernel gates, drains, masks, reserves
//    vectors and rewrites the MSI-X table, and fences stale epochs, as the
//    kernel module does on a real node. A daemon crash leaves the kernel
//    (and the NIC's data path) running.
//  - Arbiter is the ownership record: one 64-bit word in the shared memory,
//    changed by a hardware compare-and-swap; the ring state for the target
//    sits beside it under a sequence lock.
//  - FastPath is the kernel commit path over the same control socket: Arm
//    (target), HandOff (source: quiesce, reroute, rings, CAS, doorbell, one
//    call) and the kernel's events (WaitEvents, a long poll).
#ifndef NICHANDOVER_DAEMON_PLATFORM_SIM_SIM_PLATFORM_H_
#define NICHANDOVER_DAEMON_PLATFORM_SIM_SIM_PLATFORM_H_

#include <string>

#include "absl/status/statusor.h"
#include "daemon/platform/platform.h"
#include "nichandover/v1/config.pb.h"

namespace nichandover {
namespace platform {
namespace sim {

// The simulated NICs' driver and interface names as the kernels report them:
// NIC i's interface is "sim<i>" (NIC 0's kSimNetdev).
inline constexpr char kSimDriver[] = "nh-sim-igb";
inline constexpr char kSimNetdev[] = "sim0";
inline std::string SimNetdev(int nic_index) { return "sim" + std::to_string(nic_index); }

// NOT_FOUND when the machine file does not exist or has no node
// config.node_id; INVALID_ARGUMENT when a path is missing;
// FAILED_PRECONDITION when the config's CPUs are not this node's CPUs in the
// machine. The kernel need not be running yet: calls fail UNAVAILABLE until
// it is.
absl::StatusOr<Platform> MakeSimPlatform(const v1::SimPlatformConfig& sim,
                                         const v1::DaemonConfig& config);

}  // namespace sim
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_SIM_SIM_PLATFORM_H_
