// platform::Inventory of a VM node. The NICs are the host agent's (the
// hypervisor decides which VM holds one); a NIC plugged into this VM is
// described as the Linux backend describes it (libpci + sysfs + the module),
// and its interrupt capability is reported to the agent; a NIC plugged
// elsewhere is described from the agent (IDs from QEMU, the capability as
// its holder reported it), with this VM's driver if the driver is loaded
// here, so an offer finds out whether this VM could run it. Until the
// holder has described it, a NIC plugged elsewhere is UNAVAILABLE.
#ifndef NICHANDOVER_DAEMON_PLATFORM_VM_VM_INVENTORY_H_
#define NICHANDOVER_DAEMON_PLATFORM_VM_VM_INVENTORY_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/platform/linux/linux_inventory.h"
#include "daemon/platform/linux/linux_platform.h"
#include "daemon/platform/vm/agent_client.h"
#include "daemon/platform/vm/guest_view.h"

namespace nichandover {
namespace platform {
namespace vm {

class VmInventory : public Inventory {
 public:
  VmInventory(std::shared_ptr<AgentClient> agent, linux_backend::LinuxMachineAccess access)
      : agent_(std::move(agent)), access_(std::move(access)), guest_(access_.sysfs_root) {}

  // The agent's NICs in PCI address order. UNAVAILABLE when the agent does
  // not answer.
  absl::StatusOr<std::vector<NicInfo>> ListNics() override;
  absl::StatusOr<NicInfo> GetNic(const std::string& bdf) override;

 private:
  absl::StatusOr<NicInfo> Describe(const vmhost::AgentNic& nic);
  // libpci scans once per LibpciAccess: a function plugged in later needs a
  // new scan, made when the current one does not know a present function.
  absl::StatusOr<NicInfo> DescribePlugged(const std::string& bdf,
                                          const std::vector<std::string>& all)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<AgentClient> agent_;
  const linux_backend::LinuxMachineAccess access_;
  const GuestView guest_;
  absl::Mutex mu_;
  std::unique_ptr<linux_backend::LinuxInventory> scan_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> scanned_present_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vm
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_VM_VM_INVENTORY_H_
