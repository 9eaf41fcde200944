// What a VM's kernel shows of a PCI function that the hypervisor plugs in and
// out: whether it is there, whether its driver has probed it, whether a
// driver is loaded that would.
#ifndef NICHANDOVER_DAEMON_PLATFORM_VM_GUEST_VIEW_H_
#define NICHANDOVER_DAEMON_PLATFORM_VM_GUEST_VIEW_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace nichandover {
namespace platform {
namespace vm {

class GuestView {
 public:
  explicit GuestView(std::string sysfs_root) : root_(std::move(sysfs_root)) {}

  // bus/pci/devices/BDF exists: the function is plugged into this VM.
  bool Present(const std::string& bdf) const;
  // Present, a driver bound and its network interface registered.
  bool Probed(const std::string& bdf) const;
  // bus/pci/drivers/DRIVER exists: the driver would bind a plugged function.
  bool DriverLoaded(const std::string& driver) const;
  // Polls Probed every 10 ms; UNAVAILABLE naming what is missing after
  // `wait` (the kernel probes a hot-plugged function within ~0.3 s under
  // TCG).
  absl::Status WaitProbed(const std::string& bdf, absl::Duration wait) const;

 private:
  std::string root_;
};

}  // namespace vm
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_VM_GUEST_VIEW_H_
