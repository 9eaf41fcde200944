// One node's simulated kernel: the parts of Linux's network data path that a
// NIC handover touches, with the nichandover hook's two gates, running on
// one simulated CPU (a thread) of the node, for every NIC of the machine
// (one driver instance per NIC, one NAPI context per queue pair).
//
//   RX: MSI -> fabric -> this node's IRR (per CPU) -> HandleIrq (the
//       driver's handler of that NIC's entry) -> napi_schedule of the
//       entry's queue -> net_rx_action [RX gate of the NIC] -> poll(budget):
//       clean the queue's TX completions, take its RX descriptors, deliver
//       to the flow's socket, refill RDT.
//   TX: dev_queue_xmit (from each flow's socket send buffer, flow q on TX
//       queue q) -> dev_hard_start_xmit [TX gate of the NIC] -> driver
//       xmit: fill a TX descriptor, write the queue's TDT.
//
// The hook's operations (Quiesce/Resume/Attach/Release and the vector
// reservations and rerouting a Router needs) are called from other threads
// (the control server), per NIC: operations on different NICs run
// concurrently, one NIC's one at a time. Each carries a fence
// (common/fence.h): one lower than the highest accepted for that NIC, by
// epoch then operation id, is refused with FAILED_PRECONDITION. Quiesce follows e1000e_down's
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
#include "sim/interrupt_fabric.h"
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
  std::vector<RingState> rings;  // one per queue pair
};

struct KernelStatus {
  KernelHookState state = KernelHookState::kDetached;
  uint64_t epoch = 0;
  uint64_t held_xmits = 0;
  uint64_t polls_while_quiesced = 0;
  uint64_t drained_tx_packets = 0;
  std::vector<RingState> rings;           // one per queue pair
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
  // `rings`: one per queue pair, in queue order.
  absl::Status Attach(const std::string& bdf, const Fence& fence,
                      const std::vector<RingState>& rings);
  absl::Status Release(const std::string& bdf, const Fence& fence);
  absl::StatusOr<KernelStatus> Status(const std::string& bdf);
  // Installs handlers for `count` free vectors on this node's CPUs (entry i
  // on APIC ID i % CPUs when that CPU has a free vector, else the next CPU
  // with one) and returns the messages that reach them.
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
  // One queue pair's NAPI context and ring indexes.
  struct QueueNapi {
    std::atomic<uint32_t> napi_state{0};
    bool on_poll_list = false;  // CPU thread only
    std::atomic<uint32_t> rx_next_to_clean{0}, rx_next_to_use{0};
    std::atomic<uint32_t> tx_next_to_clean{0}, tx_next_to_use{0};
  };
  // The driver's instance for one NIC, with the hook's state for it.
  struct NicDriver {
    NicDriver(Machine* machine, int index);
    const int index;
    NicState& nic;
    const uint32_t queue_count;
    SimConfigSpace config;
    SimBarMemory bars;

    std::mutex control_mu;  // one hook operation on this NIC at a time
    Fence highest;  // the highest fence accepted for this NIC
    std::vector<CpuVector> active_vectors;
    std::vector<CpuVector> reserved_vectors;
    uint64_t reserved_epoch = 0;
    QuiesceOutcome last_quiesce;

    std::atomic<KernelHookState> state{KernelHookState::kDetached};
    std::atomic<bool> tx_gate_closed{true};
    std::atomic<bool> rx_gate_closed{true};
    std::mutex xmit_mu;  // HARD_TX_LOCK
    std::atomic<bool> kick{false};  // a softirq raised from another thread
    QueueNapi queues[kMaxQueues];
  };

  Kernel(Machine* machine, const KernelOptions& options, int node_index);

  // CPU thread.
  void CpuLoop();
  void HandleIrq(CpuVector vector);
  bool NapiSchedule(QueueNapi& napi);
  void NapiComplete(NicDriver& driver, uint32_t queue, bool rearm);
  bool NetRxAction();
  uint32_t Poll(NicDriver& driver, uint32_t queue, uint32_t budget);
  bool DevQueueXmit(NicDriver& driver);

  // Control side; the driver's control_mu held.
  absl::StatusOr<NicDriver*> Driver(const std::string& bdf);
  // Admits a hook operation: the hook is on, the fence is not below the
  // highest the NIC's driver accepted (then becomes it).
  absl::Status CheckOperation(const char* operation, NicDriver& driver, const Fence& fence);
  absl::Status NapiDisable(NicDriver& driver, absl::Time deadline);
  absl::Status SetEntriesMasked(NicDriver& driver, bool masked);
  absl::Status CheckRoutedHere(NicDriver& driver, const std::vector<CpuVector>& vectors);
  // True when the MSI-X table holds exactly `messages` (one per entry).
  absl::StatusOr<bool> TableHolds(NicDriver& driver,
                                  const std::vector<pci::RawMsiMessage>& messages);
  void StartRunning(NicDriver& driver);
  // Vectors for `count` entries, handlers installed (request_irq).
  absl::StatusOr<std::vector<CpuVector>> AllocateVectors(NicDriver& driver, uint32_t count);
  void FreeVectors(std::vector<CpuVector>& vectors);
  void FreeVectorsLocked(std::vector<CpuVector>& vectors);  // vectors_mu_ held
  absl::StatusOr<pci::RawMsiMessage> MessageFor(CpuVector vector) const;
  absl::Status Probe(NicDriver& driver);
  void Adopt(NicDriver& driver);
  // The vectors every MSI-X entry of the NIC routes to on this node, taken as
  // this kernel's (request_irq); an error naming the first entry that routes
  // elsewhere. What a restarted kernel inherits from its predecessor.
  absl::StatusOr<std::vector<CpuVector>> TakeVectorsRoutedHere(NicDriver& driver);
  std::vector<RingState> CurrentRings(const NicDriver& driver) const;

  Machine* machine_;
  NodeSlot& node_;
  const KernelOptions options_;
  const int node_index_;
  std::vector<std::unique_ptr<NicDriver>> drivers_;  // one per NIC, by index

  std::mutex vectors_mu_;  // the node's vector allocation (vector_matrix_lock)
  // Per CPU and vector: (NIC index << 8 | MSI-X entry) of the handler, or -1.
  std::atomic<int32_t> handlers_[kMaxApicIdsPerNode][256];

  std::atomic<bool> stop_{false};
  std::thread cpu_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_KERNEL_H_
