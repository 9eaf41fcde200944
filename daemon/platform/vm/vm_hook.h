// platform::Hook of a VM node: the Linux hook (the nichandover_hook module)
// for a NIC plugged into this VM, and what a hot-plugged NIC means for it:
//   - not plugged here: detached (Status), and released already (Release is
//     OK: the hypervisor took it away after the quiesce); Quiesce refuses;
//     a NIC the host agent does not know is NOT_FOUND for all of them;
//   - Attach and Resume wait (bounded) until the guest kernel has probed the
//     NIC the hypervisor just plugged in, then call the module, whose slot
//     for the function keeps its highest epoch across unplug and replug.
#ifndef NICHANDOVER_DAEMON_PLATFORM_VM_VM_HOOK_H_
#define NICHANDOVER_DAEMON_PLATFORM_VM_VM_HOOK_H_

#include <memory>
#include <string>
#include <vector>

#include "daemon/platform/platform.h"
#include "daemon/platform/vm/agent_client.h"
#include "daemon/platform/vm/guest_view.h"

namespace nichandover {
namespace platform {
namespace vm {

class VmHook : public Hook {
 public:
  VmHook(std::unique_ptr<Hook> module, std::shared_ptr<AgentClient> agent, GuestView guest,
         absl::Duration probe_wait)
      : module_(std::move(module)),
        agent_(std::move(agent)),
        guest_(std::move(guest)),
        probe_wait_(probe_wait) {}

  absl::StatusOr<QuiesceResult> Quiesce(const std::string& bdf, const Fence& fence,
                                        absl::Duration timeout) override;
  absl::Status Resume(const std::string& bdf, const Fence& fence) override;
  absl::Status Attach(const std::string& bdf, const Fence& fence,
                      const std::vector<v1::QueueRingState>& rings) override;
  absl::Status Release(const std::string& bdf, const Fence& fence) override;
  absl::StatusOr<HookStatus> Status(const std::string& bdf) override;

 private:
  std::unique_ptr<Hook> module_;
  // Tells a NIC of another VM (FAILED_PRECONDITION) from one the machine
  // does not have (NOT_FOUND).
  std::shared_ptr<AgentClient> agent_;
  const GuestView guest_;
  const absl::Duration probe_wait_;
};

}  // namespace vm
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_VM_VM_HOOK_H_
