// The Linux platform backend: a node that is a plain Linux kernel with the
// nichandover_hook module loaded. See docs/linux-backend.md.
//
//   Inventory  libpci (LinuxPlatformConfig.pci_access_method) + sysfs, MSI-X
//              messages from the module
//   Hook       the module's QUIESCE / RESUME / ATTACH / RELEASE / STATUS
//   Router     the module's READ_MSI / REROUTE (raw mode)
//   Arbiter    not this backend's: the ownership records live in what the
//              nodes share (a SharedFileArbiter over shared memory, or the VM
//              host agent), so the caller passes one in.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_PLATFORM_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_PLATFORM_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/platform/linux/module_connection.h"
#include "daemon/platform/platform.h"
#include "nichandover/v1/config.pb.h"
#include "pci/libpci_access.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

// Where the backend finds the machine; a node uses the defaults, tests point
// each part at a stand-in.
struct LinuxMachineAccess {
  pci::LibpciOptions pci;  // method from the config, read-only
  std::string sysfs_root = "/sys";
  TransportFactory open_module;  // hook::OpenGenericNetlink
  // The node ids (by index) of the simulated machine whose ownership record
  // the arbiter CASes (platform.linux.machine_memory): the record words the
  // kernel commit path hands the module are that machine's encoding. Unset
  // (records in an arbiter file, which no kernel can reach): no FastPath.
  std::optional<std::vector<std::string>> machine_node_ids;
};

// The backend for `config`, over the real machine. UNAVAILABLE when libpci
// cannot scan (its message included), INVALID_ARGUMENT for a bad `nics`
// entry or a null `arbiter`. The hook module need not be loaded yet: calls
// that need it fail with UNAVAILABLE until it is. Platform::fast_path is set
// when the records are the simulated machine's (machine_memory) and the
// module, asked once here, reports the kernel commit path for a device
// (a contract driver with struct nh_commit_ops, loaded before the daemon);
// a device without it answers Arm/HandOff with UNIMPLEMENTED.
absl::StatusOr<Platform> MakeLinuxPlatform(const v1::LinuxPlatformConfig& config,
                                           const v1::DaemonConfig& daemon,
                                           std::unique_ptr<Arbiter> arbiter);

// The same over explicit machine access (tests: a dump file, a fake sysfs
// tree, a fake module).
absl::StatusOr<Platform> MakeLinuxPlatformWith(const LinuxMachineAccess& access,
                                               const v1::LinuxPlatformConfig& config,
                                               const v1::DaemonConfig& daemon,
                                               std::unique_ptr<Arbiter> arbiter);

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_PLATFORM_H_
