// What sysfs says about a PCI function that libpci does not: the driver
// bound to it, its network interface and that interface's TX queue count.
// The root ("/sys" on a real node) is a constructor parameter so tests can
// build a tree of the same shape in a temporary directory.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_SYSFS_VIEW_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_SYSFS_VIEW_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

class SysfsView {
 public:
  explicit SysfsView(std::string root) : root_(std::move(root)) {}

  // The name of the driver bound to `bdf` (the last component of the
  // bus/pci/devices/BDF/driver link); "" when none is bound or the function
  // is not in sysfs. INTERNAL when the link exists but cannot be read.
  absl::StatusOr<std::string> DriverName(const std::string& bdf) const;

  // The function's network interface (bus/pci/devices/BDF/net/*); "" when
  // it has none. A function with several (one per port on some NICs)
  // answers the first in name order.
  absl::StatusOr<std::string> NetdevName(const std::string& bdf) const;

  // How many TX queues the interface has (class/net/IF/queues/tx-*); 1 when
  // sysfs does not list any, as for a single-queue device.
  absl::StatusOr<uint32_t> TxQueueCount(const std::string& ifname) const;

  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_SYSFS_VIEW_H_
