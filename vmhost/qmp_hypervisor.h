// Hypervisor over QEMU's QMP: one session per VM (QEMU serves one QMP client
// at a time per socket), opened on first use and reopened after an error.
//
//   find    query-pci, searched through bridges for the device's qdev id
//   unplug  device_del -> DEVICE_DELETED{device} -> netdev_del
//   plug    netdev_add {type: stream, server: false, addr: unix PATH}
//           -> device_add {driver, id, netdev, bus, mac, romfile: ""}
#ifndef NICHANDOVER_VMHOST_QMP_HYPERVISOR_H_
#define NICHANDOVER_VMHOST_QMP_HYPERVISOR_H_

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "hypervisor.h"
#include "qmp_connection.h"

namespace nichandover {
namespace vmhost {

class QmpHypervisor : public Hypervisor {
 public:
  // `sockets`: VM name -> QMP socket path.
  explicit QmpHypervisor(std::map<std::string, std::string> sockets)
      : sockets_(std::move(sockets)) {}

  absl::StatusOr<std::optional<PciIdentity>> FindNic(const std::string& vm,
                                                     const NicConfig& nic) override;
  absl::Status Unplug(const std::string& vm, const NicConfig& nic,
                      absl::Duration timeout) override;
  absl::Status Plug(const std::string& vm, const NicConfig& nic) override;

 private:
  struct Session {
    absl::Mutex mu;
    std::unique_ptr<QmpConnection> qmp ABSL_GUARDED_BY(mu);
  };
  // The VM's session, connected; UNAVAILABLE when QEMU does not answer.
  absl::StatusOr<QmpConnection*> Connected(const std::string& vm, Session& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session.mu);
  absl::StatusOr<Session*> SessionOf(const std::string& vm);

  const std::map<std::string, std::string> sockets_;
  absl::Mutex sessions_mu_;
  std::map<std::string, std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(sessions_mu_);
};

}  // namespace vmhost
}  // namespace nichandover

#endif  // NICHANDOVER_VMHOST_QMP_HYPERVISOR_H_
