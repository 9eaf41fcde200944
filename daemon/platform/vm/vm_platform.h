// The vm platform backend: a node that is a QEMU VM whose NICs the
// hypervisor moves, through the host agent (vmhost/, nh-vm-agent). See
// docs/vm-deployment.md.
//
//   Inventory  the agent's NICs; plugged here: libpci + sysfs + the module
//   Hook       the Linux hook (nichandover_hook module), aware of hotplug
//   Router     no MSI rewriting: the agent places the NIC (QMP)
//   Arbiter    the ownership records the agent keeps
#ifndef NICHANDOVER_DAEMON_PLATFORM_VM_VM_PLATFORM_H_
#define NICHANDOVER_DAEMON_PLATFORM_VM_VM_PLATFORM_H_

#include <memory>

#include "absl/status/statusor.h"
#include "agent.grpc.pb.h"
#include "daemon/platform/linux/linux_platform.h"
#include "daemon/platform/platform.h"
#include "nichandover/v1/config.pb.h"

namespace nichandover {
namespace platform {
namespace vm {

struct VmMachineAccess {
  linux_backend::LinuxMachineAccess linux;  // libpci, sysfs, the module
  std::shared_ptr<vmhost::VmAgent::StubInterface> agent;
  // How long Attach/Resume wait for the guest to probe a plugged NIC.
  absl::Duration probe_wait = absl::Milliseconds(1500);
};

// Over the real VM: libpci's default method, /sys, the module's netlink
// family, a gRPC channel to `config.agent_address`. INVALID_ARGUMENT for a
// bad address or a missing vm_name.
absl::StatusOr<Platform> MakeVmPlatform(const v1::VmPlatformConfig& config,
                                        const v1::DaemonConfig& daemon);

absl::StatusOr<Platform> MakeVmPlatformWith(const VmMachineAccess& access,
                                            const v1::VmPlatformConfig& config,
                                            const v1::DaemonConfig& daemon);

}  // namespace vm
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_VM_VM_PLATFORM_H_
