// One node's simulated kernel: the parts of Linux's network data path that a
// NIC handover touches, with the nichandover hook's two gates, running on
// one simulated CPU (a thread) of the node.
//
//   RX: MSI -> fabric -> this node's IRR -> HandleIrq (driver IRQ handler)
//       -> napi_schedule -> net_rx_action [RX gate] -> poll(budget): clean TX
//       completions, take RX descriptors, deliver to the socket, refill RDT.
//   TX: dev_queue_xmit (from the socket send buffer) -> dev_hard_start_xmit
//       [TX gate] -> driver xmit: fill a TX descriptor, write TDT.
//
// The hook's operations (Quiesce/Resume/Attach/Release and the vector
// reservations and rerouting a Router needs) are called from other threads
// (the control server). Each carries a fence (common/fence.h): one lower
// than the highest accepted, by epoch then operation id, is refused with
// FAILED_PRECONDITION. Quiesce follows e1000e_down's
// order: close the TX gate and wait out an xmit in progress (the xmit lock),
// wait for TX completions to reach zero, let NAPI drain the RX descriptors
// the device had written when the gate closed, close the RX gate and
// napi_disable (waits for a running poll), mask the MSI-X entries. The ring
// state it returns (next-to-clean / next-to-use) lets another node's kernel
// Attach and continue exactly there; descriptors the device writes during
// the blackout stay in the ring for the target.
#ifndef NICHANDOVER_SIM_KERNEL_H_
#define NICHANDOVER_SIM_KERNEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/fence.h"
#include "pci/x86_msi.h"
#include "sim/config_space_image.h"
#include "sim/machine.h"

namespace nichandover {
namespace sim {

struct KernelOptions {
  std::string node_id;
  // Vectors this kernel may hand out (Linux's device vectors).
  uint32_t first_vector = 0x40;
  uint32_t last_vector = 0xdf;
  uint32_t napi_weight = 64;     // budget of one poll (NAPI_POLL_WEIGHT)
  uint32_t netdev_budget = 300;  // budget of one net_rx_action
  uint32_t xmit_batch = 64;      // packets per dev_queue_xmit round
  absl::Duration idle_wait = absl::Milliseconds(2);
  // Probe the NIC at boot when this node owns it and no driver ever did.
  bool probe = true;
  // Without the hook (bench/ measures its cost on the data path): the two
  // gates are not checked and every hook operation is refused.
  bool hook = true;
};

enum class KernelHookState { kDetached, kRunning, kQuiesced };
const char* KernelHookStateName(KernelHookState state);

struct QuiesceOutcome {
  uint64_t drained_tx_packets = 0;
  uint64_t drained_rx_packets = 0;
  uint64_t held_xmits = 0;
  uint64_t polls_while_quiesced = 0;
  RingState rings;
};

struct KernelStatus {
  KernelHookState state = KernelHookState::kDetached;
  uint64_t epoch = 0;
  uint64_t held_xmits = 0;
  uint64_t polls_while_quiesced = 0;
  uint64_t drained_tx_packets = 0;
  RingState rings;
  std::vector<uint8_t> active_vectors;    // bound to the NIC's entries
  std::vector<uint8_t> reserved_vectors;  // offered for an incoming handover
};

class Kernel {
 public:
  // Maps nothing itself: `machine` must outlive the kernel. Starts the CPU.
  static absl::StatusOr<std::unique_ptr<Kernel>> Boot(Machine* machine,
                                                      const KernelOptions& options);
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  // Stops the CPU thread (the NIC's state stays as it is in the machine).
  void Shutdown();

  const std::string& node_id() const { return options_.node_id; }
  int node_index() const { return node_index_; }

  absl::StatusOr<QuiesceOutcome> Quiesce(const std::string& bdf, const Fence& fence,
                                         absl::Duration timeout);
  absl::Status Resume(const std::string& bdf, const Fence& fence);
  absl::Status Attach(const std::string& bdf, const Fence& fence, const RingState& rings);
  absl::Status Release(const std::string& bdf, const Fence& fence);
  absl::StatusOr<KernelStatus> Status(const std::string& bdf);
  // Installs handlers for `count` free vectors on this node's CPUs (entry i
  // on APIC ID i % CPUs) and returns the messages that reach them.
  absl::StatusOr<std::vector<pci::RawMsiMessage>> ReserveVectors(const std::string& bdf,
                                                                 const Fence& fence,
                                                                 uint32_t count);
  absl::Status ReleaseVectors(const std::string& bdf, const Fence& fence);
  // Source side, quiesced: rewrites the MSI-X table with the PCI layer's
  // careful sequence (mask, write, read back, leave masked). Returns the
  // messages it replaced.
  absl::StatusOr<std::vector<pci::RawMsiMessage>> Reroute(
      const std::string& bdf, const Fence& fence, const std::vector<pci::RawMsiMessage>& target);
  absl::Status Restore(const std::string& bdf, const Fence& fence,
                       const std::vector<pci::RawMsiMessage>& previous);

 private:
  Kernel(Machine* machine, const KernelOptions& options, int node_index);

  // CPU thread.
  void CpuLoop();
  void HandleIrq(uint8_t vector);
  bool NapiSchedule();
  void NapiComplete(bool rearm);
  bool NetRxAction();
  uint32_t Poll(uint32_t budget);
  bool DevQueueXmit();

  // Control side; control_mu_ held.
  // Admits a hook operation: the hook is on, the NIC is this node's, the
  // fence is not below the highest accepted (then becomes it).
  absl::Status CheckOperation(const char* operation, const std::string& bdf, const Fence& fence);
  absl::Status NapiDisable(absl::Time deadline);
  void NapiEnable();
  absl::Status SetEntriesMasked(bool masked);
  absl::Status CheckRoutedHere(const std::vector<uint8_t>& vectors);
  // True when the MSI-X table holds exactly `messages` (one per entry).
  absl::StatusOr<bool> TableHolds(const std::vector<pci::RawMsiMessage>& messages);
  void StartRunning();
  void FreeVectors(std::vector<uint8_t>& vectors);
  absl::Status Probe();
  void Adopt();
  RingState CurrentRings() const;

  Machine* machine_;
  NicState& nic_;
  NodeSlot& node_;
  const KernelOptions options_;
  const int node_index_;
  SimConfigSpace config_;
  SimBarMemory bars_;

  std::mutex control_mu_;  // one hook operation at a time
  Fence highest_;          // the highest fence accepted
  std::vector<uint8_t> active_vectors_;
  std::vector<uint8_t> reserved_vectors_;
  uint64_t reserved_epoch_ = 0;
  QuiesceOutcome last_quiesce_;

  std::atomic<KernelHookState> state_{KernelHookState::kDetached};
  std::atomic<bool> tx_gate_closed_{true};
  std::atomic<bool> rx_gate_closed_{true};
  std::mutex xmit_mu_;  // HARD_TX_LOCK
  std::atomic<uint32_t> napi_state_;
  std::atomic<bool> kick_{false};  // a softirq raised from another thread
  bool on_poll_list_ = false;      // CPU thread only
  std::atomic<int16_t> handler_entry_[256];
  std::atomic<uint32_t> rx_next_to_clean_{0}, rx_next_to_use_{0};
  std::atomic<uint32_t> tx_next_to_clean_{0}, tx_next_to_use_{0};

  std::atomic<bool> stop_{false};
  std::thread cpu_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_KERNEL_H_
