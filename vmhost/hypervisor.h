// What the agent needs from the hypervisor: find a NIC's device in a VM,
// unplug it, plug it. QmpHypervisor (qmp_hypervisor.h) does it with QEMU's
// QMP; tests use a fake.
#ifndef NICHANDOVER_VMHOST_HYPERVISOR_H_
#define NICHANDOVER_VMHOST_HYPERVISOR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent.pb.h"

namespace nichandover {
namespace vmhost {

// A plugged device as the hypervisor describes it.
struct PciIdentity {
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  uint32_t class_code = 0;  // base << 16 | sub << 8 | prog-if
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;
  // The device `nic.device_id()` in VM `vm`, or nullopt when the VM does not
  // hold it. UNAVAILABLE when the VM cannot be asked.
  virtual absl::StatusOr<std::optional<PciIdentity>> FindNic(const std::string& vm,
                                                             const NicConfig& nic) = 0;
  // Removes the device from `vm` and waits until the guest has let it go
  // (DEADLINE_EXCEEDED after `timeout`), then removes its netdev, which
  // closes its connection to the traffic backend.
  virtual absl::Status Unplug(const std::string& vm, const NicConfig& nic,
                              absl::Duration timeout) = 0;
  // Creates the netdev (the same backend) and the device (same model, id,
  // MAC and bus) in `vm`.
  virtual absl::Status Plug(const std::string& vm, const NicConfig& nic) = 0;
};

}  // namespace vmhost
}  // namespace nichandover

#endif  // NICHANDOVER_VMHOST_HYPERVISOR_H_
