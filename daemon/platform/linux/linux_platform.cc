#include "daemon/platform/linux/linux_platform.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/platform/linux/linux_fast_path.h"
#include "daemon/platform/linux/linux_hook.h"
#include "daemon/platform/linux/linux_inventory.h"
#include "daemon/platform/linux/linux_router.h"
#include "daemon/platform/linux/sysfs_view.h"
#include "daemon/platform/sim/machine_arbiter.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

absl::StatusOr<Platform> MakeLinuxPlatformWith(const LinuxMachineAccess& access,
                                               const v1::LinuxPlatformConfig& config,
                                               const v1::DaemonConfig& daemon,
                                               std::unique_ptr<Arbiter> arbiter) {
  if (arbiter == nullptr) {
    return absl::InvalidArgumentError(
        "linux platform: no arbiter (the ownership records live in shared memory or the VM host "
        "agent, which the caller must open)");
  }
  if (!access.open_module) return absl::InvalidArgumentError("linux platform: no module transport");
  auto pci = pci::LibpciAccess::Open(access.pci);
  if (!pci.ok()) {
    return absl::Status(pci.status().code(),
                        absl::StrCat("linux platform: libpci: ", pci.status().message()));
  }
  NH_LOG(INFO) << "linux platform for node " << daemon.node_id() << ": libpci method "
               << (*pci)->method_name() << ", " << (*pci)->devices().size()
               << " PCI functions, sysfs at " << access.sysfs_root;
  ModuleConnection module(access.open_module);
  auto inventory = LinuxInventory::Create(*std::move(pci), SysfsView(access.sysfs_root), module,
                                          {config.nics().begin(), config.nics().end()});
  if (!inventory.ok()) return inventory.status();

  Platform platform;
  platform.name = "linux";
  platform.inventory = *std::move(inventory);
  platform.hook = std::make_unique<LinuxHook>(module);
  platform.router = std::make_unique<LinuxRouter>(module);
  platform.arbiter = std::move(arbiter);
  if (access.machine_node_ids) {
    absl::StatusOr<bool> capable = ModuleHasKernelCommit(module);
    if (capable.ok() && *capable) {
      platform.fast_path = std::make_unique<LinuxFastPath>(
          module, RecordWords(*access.machine_node_ids), daemon.node_id());
      NH_LOG(INFO) << "kernel commit path: the hook module reports it; handovers may commit "
                      "in the kernels";
    } else {
      NH_LOG(INFO) << "kernel commit path: none ("
                   << (capable.ok() ? "no device's driver has it"
                                    : std::string(capable.status().message()))
                   << "); handovers commit through the daemons";
    }
  }
  return platform;
}

absl::StatusOr<Platform> MakeLinuxPlatform(const v1::LinuxPlatformConfig& config,
                                           const v1::DaemonConfig& daemon,
                                           std::unique_ptr<Arbiter> arbiter) {
  LinuxMachineAccess access;
  access.pci.method = config.pci_access_method();
  access.open_module = hook::OpenGenericNetlink;
  if (!config.machine_memory().empty()) {
    auto memory = sim::AttachMachineMemory(config.machine_memory());
    if (!memory.ok()) {
      return absl::Status(memory.status().code(),
                          absl::StrCat("platform.linux.machine_memory: ", memory.status().message()));
    }
    std::vector<std::string> ids;
    for (int i = 0; i < (*memory)->node_count(); ++i) ids.push_back((*memory)->node_id(i));
    access.machine_node_ids = std::move(ids);
  }
  return MakeLinuxPlatformWith(access, config, daemon, std::move(arbiter));
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
