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
//
// The kernel commit path (docs/simulator.md, "The kernel commit path"): a
// target kernel armed for HANDOFF(S, self, e1) commits and attaches alone
// when the source kernel's HandOff rings its doorbell (vector
// kHandoffDoorbellVector on its first CPU). The CPU thread's interrupt path
// only wakes a kernel worker thread (a futex), which does the CAS and the
// attach under the NIC's control_mu; the CPU never blocks on it.
//
// No control-side wait polls with sleeps: Quiesce's drain and napi_disable
// sleep on a futex (progress_) that the CPU thread rings when it makes the
// progress waited for, and only when someone sleeps there.
#ifndef NICHANDOVER_SIM_KERNEL_H_
#define NICHANDOVER_SIM_KERNEL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
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
#include "sim/doorbell.h"
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
  // InjectFault is refused (FAILED_PRECONDITION) unless this is set
  // (nh-sim-kernel --fault-injection): fault tests only.
  bool fault_injection = false;
  // > 0: the CPU thread and the commit worker run under SCHED_FIFO at this
  // priority (nh-sim-kernel --realtime-priority; sim/realtime.h says why).
  // Both block on a futex when idle. The control (gRPC) threads do not,
  // except for the length of a HandOff (its drain and reroute are the
  // source's part of the blackout: a real kernel's system call on the
  // node's CPU).
  int realtime_priority = 0;
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
  bool armed = false;                     // for the kernel commit path
  uint64_t armed_epoch = 0;
};

// How far a HandOff got, in order (platform::HandOffStage).
enum class HandOffStage {
  kNothing,
  kQuiesced,      // gates closed, drained, NAPI disabled, vectors masked
  kRerouted,      // every vector masked and holding the target's messages
  kRingsWritten,  // the rings beside the record at the epoch
  kHandedOff,     // the CAS PREPARING -> HANDOFF won: the commit point
  kDoorbellRung,  // the target's mailbox written and its vector sent
};  // kernel_control.proto's HandOffStage, in the same order

struct HandOffOutcome {
  // OK when HandOff ran to the CAS, won or lost (then `record` is what the
  // CAS found; a record that is not `expected` when HandOff starts is a lost
  // CAS too, with nothing done: reached kNothing). An error otherwise (drain
  // timeout, fence, read-back mismatch) with `reached` the last stage done:
  // the NIC may stay quiesced and rerouted, for the caller to reconcile.
  absl::Status status;
  HandOffStage reached = HandOffStage::kNothing;
  QuiesceOutcome quiesce;                 // from kQuiesced
  std::vector<pci::RawMsiMessage> previous;  // what Reroute replaced, from kRerouted
  Ownership record;                       // after the CAS (see status)
};

// Something the kernel did on its own (platform::KernelEvent).
struct KernelEvent {
  enum class Kind { kCommitted, kNotCommitted };
  uint64_t seq = 0;  // from 1, per boot
  Kind kind = Kind::kCommitted;
  std::string bdf;
  uint64_t epoch = 0;
  Ownership record;  // as the kernel left or found it
  std::string message;
};
struct KernelEvents {
  std::vector<KernelEvent> events;  // oldest first
  uint64_t last_seq = 0;
};

// Fault injection points and actions (nh-sim-kernel --fault-injection).
enum class FaultPoint {
  kHandoffEntry,          // "handoff-entry": HandOff called, before the gate closes
  kHandoffBeforeDoorbell,  // "handoff-before-doorbell": after the HANDOFF CAS won
  kCommitAfterCas,        // "commit-after-cas": target, its CAS won, before attach
};
enum class FaultAction {
  kNone,
  kHold,          // "hold": block there until "release" or a new InjectFault
  kCrash,         // "crash": the process SIGKILLs itself there
  kDropDoorbell,  // "drop-doorbell": the source skips the ring
  kRelease,       // "release": clears the point (and lets a hold go)
};
absl::StatusOr<FaultPoint> ParseFaultPoint(const std::string& name);
const char* FaultPointName(FaultPoint point);  // as ParseFaultPoint reads it
absl::StatusOr<FaultAction> ParseFaultAction(const std::string& name);

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
  Machine& machine() const { return *machine_; }

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

  // --- The kernel commit path ---
  // Target: commit and attach alone when the doorbell rings for this NIC at
  // fence.epoch and the record is then exactly `handoff` (HANDOFF(S, self,
  // fence.epoch)). INVALID_ARGUMENT for another record; FAILED_PRECONDITION
  // without a ReserveVectors at that epoch or for a lower fence.
  // ReleaseVectors (and any Attach) disarms.
  absl::Status Arm(const std::string& bdf, const Fence& fence, const Ownership& handoff);
  // Source, record `expected` = PREPARING(self, T, e1): Quiesce, Reroute to
  // `target` (read back), the rings beside the record, CAS `expected` ->
  // `desired` (HANDOFF(self, T, e1)), ring T's doorbell. See HandOffOutcome.
  HandOffOutcome HandOff(const std::string& bdf, const Fence& fence, const Ownership& expected,
                         const Ownership& desired, const std::vector<pci::RawMsiMessage>& target,
                         absl::Duration drain_timeout);
  // Events newer than `after_seq`, waiting up to `timeout` for one; every
  // event kept (the newest kMaxKernelEvents) when `after_seq` is beyond the
  // newest (a client of an earlier boot).
  KernelEvents WaitEvents(uint64_t after_seq, absl::Duration timeout);
  // FAILED_PRECONDITION unless options.fault_injection.
  absl::Status InjectFault(FaultPoint point, FaultAction action);
  // Lets every control thread blocked in WaitEvents or at a held fault
  // point go, now and from then on: the control server calls it before it
  // shuts down (it waits for its handlers), Shutdown too.
  void StopWaiters();
  static constexpr size_t kMaxKernelEvents = 1024;

 private:
  // One queue pair's NAPI context and ring indexes.
  struct QueueNapi {
    std::atomic<uint32_t> napi_state{0};
    bool on_poll_list = false;  // CPU thread only
    std::atomic<uint32_t> rx_next_to_clean{0}, rx_next_to_use{0};
    std::atomic<uint32_t> tx_next_to_clean{0}, tx_next_to_use{0};
    // RX descriptors cleaned so far: a count that never wraps, stored after
    // rx_next_to_clean, for Quiesce's drain (an index compared for equality
    // can be passed between two looks while packets keep arriving, and then
    // only comes round again a whole ring later).
    std::atomic<uint64_t> rx_cleaned{0};
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
    // Kernel commit path: armed for `armed_record` at `armed_fence`.
    bool armed = false;
    Fence armed_fence;
    Ownership armed_record;
    // Set by an attach, cleared by the first poll after it (the timeline's
    // first_rx_poll_ns).
    std::atomic<bool> awaiting_first_poll{false};
    std::atomic<uint64_t> attached_epoch{0};  // of the latest attach

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
  // The bodies of Quiesce, Attach and Reroute, after CheckOperation.
  absl::StatusOr<QuiesceOutcome> QuiesceLocked(NicDriver& driver, uint64_t epoch,
                                               absl::Duration timeout);
  absl::Status AttachLocked(NicDriver& driver, uint64_t epoch,
                            const std::vector<RingState>& rings);
  absl::StatusOr<std::vector<pci::RawMsiMessage>> RerouteLocked(
      NicDriver& driver, uint64_t epoch, const std::vector<pci::RawMsiMessage>& target);
  // Wakes control threads waiting (on progress_) for what the CPU just did.
  void WakeProgressWaiters() { DoorbellRingIfSleepers(progress_); }

  // Kernel commit path, target side: the worker thread takes the mailbox
  // after the CPU's interrupt path saw the doorbell vector.
  void CommitWorkerLoop();
  void TakeDoorbell(NicDriver& driver, uint64_t epoch, int64_t woken_ns);
  void AppendEvent(KernelEvent::Kind kind, const NicDriver& driver, uint64_t epoch,
                   const Ownership& record, std::string message);
  // Blocks or kills the process when a fault is injected at `point`;
  // returns the action found there.
  FaultAction HitFaultPoint(FaultPoint point);
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

  // The CPU rings it when it cleaned TX, took RX or completed a poll (only
  // when someone sleeps on it): Quiesce's waits.
  Doorbell progress_{};
  // The CPU's doorbell interrupt wakes the commit worker here.
  Doorbell worker_bell_{};
  std::atomic<bool> doorbell_pending_{false};
  std::atomic<int64_t> doorbell_irq_ns_{0};

  std::mutex events_mu_;
  std::condition_variable events_changed_;
  std::deque<KernelEvent> events_;  // the newest kMaxKernelEvents
  uint64_t last_event_seq_ = 0;

  std::mutex faults_mu_;
  std::condition_variable faults_changed_;
  FaultAction faults_[3] = {FaultAction::kNone, FaultAction::kNone, FaultAction::kNone};
  uint64_t faults_generation_ = 0;

  std::atomic<bool> waiters_stopped_{false};
  std::atomic<bool> stop_{false};
  std::thread cpu_;
  std::thread commit_worker_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_KERNEL_H_
