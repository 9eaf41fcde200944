// A Hypervisor for tests: which VM holds which device, with the order of the
// operations recorded and faults to inject.
#ifndef NICHANDOVER_VMHOST_FAKE_HYPERVISOR_H_
#define NICHANDOVER_VMHOST_FAKE_HYPERVISOR_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "hypervisor.h"

namespace nichandover {
namespace vmhost {

class FakeHypervisor : public Hypervisor {
 public:
  explicit FakeHypervisor(std::vector<std::string> vms);

  absl::StatusOr<std::optional<PciIdentity>> FindNic(const std::string& vm,
                                                     const NicConfig& nic) override;
  absl::Status Unplug(const std::string& vm, const NicConfig& nic,
                      absl::Duration timeout) override;
  absl::Status Plug(const std::string& vm, const NicConfig& nic) override;

  // Test controls.
  void PlugAtBoot(const std::string& vm, const std::string& device_id);
  // The VMs holding `device_id` now.
  std::vector<std::string> Holders(const std::string& device_id);
  // "unplug vm-a nic0", "plug vm-b nic0", in call order.
  std::vector<std::string> Log();
  // The next Plug into `vm` fails once.
  void FailNextPlug(const std::string& vm);
  // `vm`'s QMP stops answering (FindNic/Unplug/Plug: UNAVAILABLE).
  void SetDown(const std::string& vm, bool down);

 private:
  absl::Mutex mu_;
  std::map<std::string, std::set<std::string>> devices_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> fail_plug_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> down_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vmhost
}  // namespace nichandover

#endif  // NICHANDOVER_VMHOST_FAKE_HYPERVISOR_H_
