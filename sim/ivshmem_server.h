// The machine's ivshmem front end: QEMU guests attach to nodes of the
// machine through `-device ivshmem-doorbell,chardev=C,vectors=N` with
// `-chardev socket,id=C,path=DIR/<node_id>.sock`. For each guest node the
// server listens on that socket and speaks the ivshmem server protocol
// (QEMU's docs/specs/ivshmem-spec.txt): protocol version 0, the guest's peer
// id, the machine memory's fd (-1 + fd; the guest's BAR2), the eventfds of
// every other peer (id + fd, once per vector) and the guest's own eventfds;
// later a new peer's eventfds and, when a peer leaves, its id without an fd.
//
// The machine is a peer itself (kMachinePeerId) with NH_SIM_MACHINE_VECTORS
// eventfds that guests ring through their Doorbell register:
// NH_SIM_MACHINE_VEC_DEVICE wakes the device model, NH_SIM_MACHINE_VEC_CONTROL
// is counted (MachineLayout::control_doorbells, reserved for the fast path).
// Each guest gets kGuestIvshmemVectors eventfds: vector 0 control, 1 + i the
// NIC's MSI-X entry i (guest_abi.h); its QEMU needs vectors >= that many.
//
// On connect the node's slot becomes kind GUEST with the peer id; on
// disconnect kind NONE with its guest_vector[] table cleared. A second guest
// for an attached node, or a guest for a node a simulated kernel runs on, is
// refused (the connection is closed). Everything runs on the server's own
// thread (poll()); the device thread only calls Raise.
#ifndef NICHANDOVER_SIM_IVSHMEM_SERVER_H_
#define NICHANDOVER_SIM_IVSHMEM_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sim/interrupt_fabric.h"
#include "sim/machine.h"

namespace nichandover {
namespace sim {

inline constexpr uint32_t kGuestIvshmemVectors = NH_SIM_IVSHMEM_VEC_NIC0 + kMsixTableEntries;
inline constexpr int64_t kIvshmemProtocolVersion = 0;

// DIR/<node_id>.sock
std::string IvshmemSocketPath(const std::string& dir, const std::string& node_id);

class IvshmemServer : public GuestLinks {
 public:
  // Listens on IvshmemSocketPath(socket_dir, node) for each node index in
  // `guest_nodes` (replacing stale sockets) and serves from its own thread.
  // The machine's file must be of power-of-two size (Machine::Create makes
  // it so); put it on tmpfs (/dev/shm) for QEMU. INVALID_ARGUMENT for a bad
  // node or a socket path too long for sockaddr_un.
  static absl::StatusOr<std::unique_ptr<IvshmemServer>> Start(Machine& machine,
                                                              const std::string& socket_dir,
                                                              const std::vector<int>& guest_nodes);
  // Stops the thread, closes every connection (guests see the server gone)
  // and removes the sockets.
  ~IvshmemServer() override;

  bool Raise(int node_index, uint32_t ivshmem_vector) override;

 private:
  struct Peer {
    int node = -1;
    int64_t id = 0;
    int socket = -1;
    std::vector<int> eventfds;  // the peer's own vectors
  };

  explicit IvshmemServer(Machine& machine) : machine_(machine) {}
  void Loop();
  void Accept(int node, int listener);
  void Disconnect(int node);
  // Closes every fd in `peer`.
  static void ClosePeer(Peer& peer);

  Machine& machine_;
  int shm_fd_ = -1;
  int stop_fd_ = -1;
  int machine_eventfds_[NH_SIM_MACHINE_VECTORS] = {-1, -1};
  std::map<int, int> listeners_;         // node index -> listening socket
  std::vector<std::string> socket_paths_;
  int64_t next_peer_id_ = kMachinePeerId + 1;
  std::thread thread_;

  absl::Mutex mu_;
  std::map<int, Peer> peers_ ABSL_GUARDED_BY(mu_);  // by node index
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_IVSHMEM_SERVER_H_
