// platform::Inventory of a Linux node: the PCI functions from libpci (any
// access method: linux-sysfs on a node, a dump file in tests), what the
// kernel made of them from sysfs, the interrupt capability decoded from
// config space, and the MSI-X messages from the hook module (the table lives
// in a BAR that user space may not map while a driver owns it).
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

  // In PCI address order. An allow-listed function libpci does not see is left
  // out (and logged); one whose description fails fails the call.
  absl::StatusOr<std::vector<NicInfo>> ListNics() override;
  // NOT_FOUND when libpci does not see it or the allow-list excludes it.
  absl::StatusOr<NicInfo> GetNic(const std::string& bdf) override;

 private:
  LinuxInventory(std::unique_ptr<pci::LibpciAccess> pci, SysfsView sysfs, ModuleConnection module,
                 std::vector<std::string> allow_list)
      : pci_(std::move(pci)),
        sysfs_(std::move(sysfs)),
        module_(std::move(module)),
        allow_list_(std::move(allow_list)) {}

  bool Selected(const pci::LibpciDevice& device) const;
  absl::StatusOr<NicInfo> Describe(const pci::LibpciDevice& device)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
