// platform::Inventory of a Linux node: the PCI functions from libpci (any
// access method: linux-sysfs on a node, a dump file in tests), what the
// kernel made of them from sysfs, the interrupt capability decoded from
// config space, and the MSI-X messages from the hook module (the table lives
// in a BAR that user space may not map while a driver owns it).
//
// Plus the hook module's contract devices (LIST) that are not PCI functions
// of this kernel: a NIC reached through a window (the simulated machine's NIC
// behind a guest's ivshmem function) has a machine-wide address libpci never
// sees, so its config space, driver and interface come from the module.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_INVENTORY_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_INVENTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/platform/linux/module_connection.h"
#include "daemon/platform/linux/sysfs_view.h"
#include "daemon/platform/platform.h"
#include "pci/config_space.h"
#include "pci/libpci_access.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

class LinuxInventory : public Inventory {
 public:
  // `allow_list`: the only functions to list (any class), or empty for every
  // network-class function (base class 0x02). INVALID_ARGUMENT for an entry
  // that is not a PCI address.
  static absl::StatusOr<std::unique_ptr<LinuxInventory>> Create(
      std::unique_ptr<pci::LibpciAccess> pci, SysfsView sysfs, ModuleConnection module,
      const std::vector<std::string>& allow_list);

  // In PCI address order, libpci's functions and the module's contract
  // devices together. An allow-listed function that neither sees is left out
  // (and logged); one whose description fails fails the call.
  absl::StatusOr<std::vector<NicInfo>> ListNics() override;
  // NOT_FOUND when neither libpci nor the module sees it, or the allow-list
  // excludes it.
  absl::StatusOr<NicInfo> GetNic(const std::string& bdf) override;

 private:
  LinuxInventory(std::unique_ptr<pci::LibpciAccess> pci, SysfsView sysfs, ModuleConnection module,
                 std::vector<std::string> allow_list)
      : pci_(std::move(pci)),
        sysfs_(std::move(sysfs)),
        module_(std::move(module)),
        allow_list_(std::move(allow_list)) {}

  bool Selected(const std::string& bdf, uint32_t class_code) const;
  absl::Status NotSelected(const std::string& bdf) const;
  absl::StatusOr<NicInfo> Describe(const pci::LibpciDevice& device)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The module's contract devices that are not PCI functions of this kernel
  // (`known` are), with their config space. Empty when the module is not
  // loaded.
  std::vector<hook::ListedDevice> WindowDevices(const std::vector<std::string>& known) const;
  // A contract device from what LIST says of it and its READ_MSI entries.
  absl::StatusOr<NicInfo> DescribeWindowDevice(const hook::ListedDevice& device) const;
  // The interrupt capability decoded from `config`, and for MSI-X the
  // table entries from the module.
  void AddInterruptLayout(pci::ConfigSpace& config, NicInfo& nic) const;
  // MSI-X: the vectors the driver allocated, as the module reads them.
  void AddMsixVectors(const std::string& bdf, v1::InterruptLayout& layout) const;

  absl::Mutex mu_;  // libpci is not thread-safe
  std::unique_ptr<pci::LibpciAccess> pci_ ABSL_GUARDED_BY(mu_);
  const SysfsView sysfs_;
  const ModuleConnection module_;
  const std::vector<std::string> allow_list_;  // canonical BDFs
};

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_INVENTORY_H_
