// platform::Router of a VM node. VMs do not rewrite each other's MSI
// messages: the hypervisor moves the whole NIC, and the kernel of the VM it
// lands in programs the vectors when its driver probes it. So:
//   ReserveTargetMessages  reserves nothing: one "hypervisor-routed" marker
//                          per vector, the zero message (address 0 is not an
//                          x86 interrupt address; decoded, x86_address is
//                          false). One per vector because the protocol
//                          checks that the target answered for every vector.
//   Reroute                accepts only such markers, then asks the host
//                          agent to place the NIC where the ownership record
//                          (PREPARING source -> target) says: unplugged from
//                          this VM, plugged into the target's.
//   Restore                asks the agent again: after the source's abort
//                          CAS the record says ACTIVE(source), so the NIC
//                          comes back.
//   ReadMessages           the messages as the module reads them here.
#ifndef NICHANDOVER_DAEMON_PLATFORM_VM_VM_ROUTER_H_
#define NICHANDOVER_DAEMON_PLATFORM_VM_VM_ROUTER_H_

#include <memory>
#include <string>
#include <vector>

#include "daemon/platform/platform.h"
#include "daemon/platform/vm/agent_client.h"
#include "daemon/platform/vm/guest_view.h"

namespace nichandover {
namespace platform {
namespace vm {

// The marker ReserveTargetMessages hands out.
bool IsHypervisorRouted(const v1::MsiMessage& message);

class VmRouter : public Router {
 public:
  VmRouter(std::unique_ptr<Router> module, std::shared_ptr<AgentClient> agent, GuestView guest)
      : module_(std::move(module)), agent_(std::move(agent)), guest_(std::move(guest)) {}

  // FAILED_PRECONDITION when the NIC is not plugged into this VM, NOT_FOUND
  // when the machine does not have it.
  absl::StatusOr<std::vector<v1::MsiMessage>> ReadMessages(const std::string& bdf) override;
  // INVALID_ARGUMENT for anything but markers; the agent's error (e.g.
  // FAILED_PRECONDITION for an epoch the record does not have) otherwise.
  // Returns the messages the NIC had here (empty if they cannot be read).
  absl::StatusOr<std::vector<v1::MsiMessage>> Reroute(
      const std::string& bdf, const Fence& fence,
      const std::vector<v1::MsiMessage>& target) override;
  absl::Status Restore(const std::string& bdf, const Fence& fence,
                       const std::vector<v1::MsiMessage>& previous) override;
  absl::StatusOr<std::vector<v1::MsiMessage>> ReserveTargetMessages(const std::string& bdf,
                                                                    const Fence& fence,
                                                                    uint32_t count) override;
  absl::Status ReleaseReservation(const std::string& bdf, const Fence& fence) override;

 private:
  std::unique_ptr<Router> module_;
  std::shared_ptr<AgentClient> agent_;
  const GuestView guest_;
};

}  // namespace vm
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_VM_VM_ROUTER_H_
