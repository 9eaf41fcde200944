#include "sim/kernel.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "pci/msi.h"
#include "pci/reroute.h"
#include "sim/doorbell.h"
#include "sim/ethernet.h"
#include "sim/interrupt_fabric.h"
#include "sim/packet_queue.h"
#include "sim/realtime.h"

namespace nichandover {
namespace sim {
namespace {

constexpr uint32_t kNapiSched = 0x1;    // NAPI_STATE_SCHED
constexpr uint32_t kNapiDisable = 0x2;  // NAPI_STATE_DISABLE
// EIMS bits of every cause of a NIC of `queues` queue pairs.
uint32_t AllCauses(uint32_t queues) {
  uint32_t causes = 1u << kOtherVectorEntry;
  for (uint32_t q = 0; q < queues; ++q) causes |= 1u << QueueVectorEntry(q);
  return causes;
}
constexpr int32_t kNoHandler = -1;
// handlers_ of kHandoffDoorbellVector on CPU 0: the kernel commit path.
constexpr int32_t kDoorbellHandler = -2;
constexpr int kDoorbellCpu = 0;
// How long the commit worker sleeps before it looks at stop_ again when no
// doorbell comes (Shutdown rings it anyway).
constexpr absl::Duration kWorkerIdle = absl::Seconds(1);

}  // namespace

const char* KernelHookStateName(KernelHookState state) {
  switch (state) {
    case KernelHookState::kDetached:
      return "detached";
    case KernelHookState::kRunning:
      return "running";
    case KernelHookState::kQuiesced:
      return "quiesced";
  }
  return "unknown";
}

Kernel::NicDriver::NicDriver(Machine* machine, int index)
    : index(index),
      nic(machine->nic(index)),
      queue_count(machine->nic(index).queue_count),
      config(machine->nic(index), machine->layout().device_bell),
      bars(machine->nic(index), machine->layout().device_bell) {
  for (QueueNapi& napi : queues) napi.napi_state.store(kNapiSched | kNapiDisable);  // until running
}

Kernel::Kernel(Machine* machine, const KernelOptions& options, int node_index)
    : machine_(machine),
      node_(machine->node(node_index)),
      options_(options),
      node_index_(node_index) {
  for (auto& cpu : handlers_) {
    for (auto& handler : cpu) handler.store(kNoHandler);
  }
  for (int i = 0; i < machine->nic_count(); ++i) {
    drivers_.push_back(std::make_unique<NicDriver>(machine, i));
  }
}

absl::StatusOr<std::unique_ptr<Kernel>> Kernel::Boot(Machine* machine,
                                                      const KernelOptions& options) {
  absl::StatusOr<int> index = machine->NodeIndex(options.node_id);
  if (!index.ok()) return index.status();
  if (options.first_vector < 0x20 || options.last_vector > 0xff ||
      options.first_vector > options.last_vector || options.napi_weight == 0) {
    return absl::InvalidArgumentError("bad kernel options (vector range or NAPI weight)");
  }
  if (options.first_vector <= kHandoffDoorbellVector &&
      kHandoffDoorbellVector <= options.last_vector) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vector range 0x%02x..0x%02x holds 0x%02x, the kernel commit path's doorbell",
        options.first_vector, options.last_vector, kHandoffDoorbellVector));
  }
  NodeSlot& node = machine->node(*index);
  if (node.kind.load() == NodeKind::kGuest) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "node %s is a QEMU guest (ivshmem peer %d), not a simulated kernel's",
        options.node_id, node.peer_id.load()));
  }
  auto kernel = std::unique_ptr<Kernel>(new Kernel(machine, options, *index));
  // A previous kernel of this node is gone: its handlers and requests too.
  for (int cpu = 0; cpu < kMaxApicIdsPerNode; ++cpu) {
    for (int i = 0; i < 4; ++i) {
      node.registered[cpu][i].store(0);
      node.irr[cpu][i].store(0);
    }
  }
  for (auto& slot : node.handoff_mailbox) slot.store(0);  // rung for the kernel that died
  // The doorbell's "IPI" vector, like Linux's system vectors: at boot.
  kernel->handlers_[kDoorbellCpu][kHandoffDoorbellVector].store(kDoorbellHandler);
  RegisterVector(node, kDoorbellCpu, kHandoffDoorbellVector);
  node.kernel_pid.store(getpid());
  node.kind.store(NodeKind::kSimKernel);
  for (auto& driver : kernel->drivers_) {
    Ownership record = machine->ReadOwnership(driver->index);
    if (record.state != OwnershipState::kActive || record.owner != *index) continue;
    std::lock_guard<std::mutex> lock(driver->control_mu);
    driver->highest.epoch = record.epoch;
    if (driver->nic.initialized.load() == 0) {
      if (options.probe) {
        if (absl::Status s = kernel->Probe(*driver); !s.ok()) return s;
      }
    } else {
      kernel->Adopt(*driver);
    }
  }
  kernel->cpu_ = std::thread([k = kernel.get()] { k->CpuLoop(); });
  kernel->commit_worker_ = std::thread([k = kernel.get()] { k->CommitWorkerLoop(); });
  for (std::thread* thread : {&kernel->cpu_, &kernel->commit_worker_}) {
    absl::Status s = SetRealtimePriority(
        thread->native_handle(), options.realtime_priority,
        options.node_id + (thread == &kernel->cpu_ ? "'s CPU thread" : "'s commit worker"));
    if (!s.ok()) return s;  // the destructor stops both threads
  }
  return kernel;
}

Kernel::~Kernel() { Shutdown(); }

void Kernel::Shutdown() {
  if (stop_.exchange(true)) return;
  StopWaiters();
  DoorbellRing(node_.bell);
  DoorbellRing(worker_bell_);
  if (cpu_.joinable()) cpu_.join();
  if (commit_worker_.joinable()) commit_worker_.join();
  UnregisterVector(node_, kDoorbellCpu, kHandoffDoorbellVector);
  int32_t me = getpid();
  if (node_.kernel_pid.compare_exchange_strong(me, 0)) node_.kind.store(NodeKind::kNone);
}

// --- The CPU ---------------------------------------------------------------

void Kernel::CpuLoop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    uint32_t snapshot = DoorbellSnapshot(node_.bell);
    bool work = false;
    for (CpuVector vector : TakePendingVectors(node_)) {
      HandleIrq(vector);
      work = true;
    }
    for (auto& driver : drivers_) {
      if (!driver->kick.exchange(false)) continue;
      for (uint32_t q = 0; q < driver->queue_count; ++q) NapiSchedule(driver->queues[q]);
    }
    work |= NetRxAction();
    for (auto& driver : drivers_) work |= DevQueueXmit(*driver);
    if (!work) DoorbellWait(node_.bell, snapshot, options_.idle_wait);
  }
}

void Kernel::HandleIrq(CpuVector vector) {
  node_.counters.irqs_handled.fetch_add(1, std::memory_order_relaxed);
  int32_t handler = handlers_[vector.cpu][vector.vector].load(std::memory_order_acquire);
  if (handler == kNoHandler) return;
  if (handler == kDoorbellHandler) {
    // The kernel commit path's doorbell: hand the work to the commit worker
    // (it takes control_mu, which the CPU must never wait for).
    node_.counters.handoff_doorbells.fetch_add(1, std::memory_order_relaxed);
    doorbell_irq_ns_.store(MonotonicNanos(), std::memory_order_relaxed);
    doorbell_pending_.store(true, std::memory_order_seq_cst);
    DoorbellRingIfSleepers(worker_bell_);
    return;
  }
  NicDriver& driver = *drivers_[handler >> 8];
  const uint32_t entry = static_cast<uint32_t>(handler & 0xff);
  if (entry == kOtherVectorEntry) {
    // igb_msix_other: link events; nothing to do but re-arm.
    driver.nic.regs.eims.fetch_or(1u << kOtherVectorEntry, std::memory_order_seq_cst);
  } else if (entry - kQueueVectorEntry < driver.queue_count) {
    // igb_msix_ring: the device auto-masked the cause; poll later.
    NapiSchedule(driver.queues[entry - kQueueVectorEntry]);
  }
}

bool Kernel::NapiSchedule(QueueNapi& napi) {
  uint32_t state = napi.napi_state.load(std::memory_order_seq_cst);
  do {
    if (state & (kNapiSched | kNapiDisable)) return false;
  } while (!napi.napi_state.compare_exchange_weak(state, state | kNapiSched));
  napi.on_poll_list = true;
  return true;
}

void Kernel::NapiComplete(NicDriver& driver, uint32_t queue, bool rearm) {
  QueueNapi& napi = driver.queues[queue];
  napi.on_poll_list = false;
  napi.napi_state.fetch_and(~kNapiSched, std::memory_order_seq_cst);
  WakeProgressWaiters();  // napi_disable waits for this
  if (rearm) {
    driver.nic.regs.eims.fetch_or(1u << QueueVectorEntry(queue), std::memory_order_seq_cst);
    DoorbellRing(machine_->layout().device_bell);  // MMIO write of EIMS
  }
}

bool Kernel::NetRxAction() {
  int64_t budget = options_.netdev_budget;
  const int64_t end_ns = MonotonicNanos() + 2000000;  // netdev_budget_usecs
  bool ran = false;
  // Round robin over the poll list (every NIC's queues that are on it), as
  // net_rx_action moves a poll that used its whole weight to the tail.
  bool polled = true;
  while (polled && budget > 0 && MonotonicNanos() <= end_ns) {
    polled = false;
    for (auto& owned : drivers_) {
      NicDriver& driver = *owned;
      for (uint32_t q = 0; q < driver.queue_count; ++q) {
        QueueNapi& napi = driver.queues[q];
        if (!napi.on_poll_list) continue;
        // The hook's RX gate: no poll of this device while it is closed.
        if (options_.hook && driver.rx_gate_closed.load(std::memory_order_seq_cst)) {
          node_.counters.gated_polls.fetch_add(1, std::memory_order_relaxed);
          NapiComplete(driver, q, /*rearm=*/false);
          continue;
        }
        ran = true;
        uint32_t work = Poll(driver, q, options_.napi_weight);
        budget -= work;
        bool disable_pending = napi.napi_state.load(std::memory_order_seq_cst) & kNapiDisable;
        if (work < options_.napi_weight || disable_pending) {
          NapiComplete(driver, q, /*rearm=*/!disable_pending);
        } else {
          polled = true;  // stays scheduled: another round if the budget allows
        }
      }
    }
  }
  return ran;
}

uint32_t Kernel::Poll(NicDriver& driver, uint32_t queue, uint32_t budget) {
  NodeCounters& counters = node_.counters;
  NicState& nic = driver.nic;
  QueueNapi& napi = driver.queues[queue];
  QueueRings rings = machine_->rings(driver.index, queue);
  counters.napi_polls.fetch_add(1, std::memory_order_relaxed);
  if (driver.state.load(std::memory_order_seq_cst) != KernelHookState::kRunning) {
    counters.polls_while_quiesced.fetch_add(1, std::memory_order_relaxed);
  }
  if (driver.awaiting_first_poll.load(std::memory_order_relaxed) &&
      driver.awaiting_first_poll.exchange(false)) {
    machine_->StampTimeline(&HandoverTimeline::first_rx_poll_ns, driver.attached_epoch.load(),
                            driver.index);
  }
  const uint32_t mask = nic.ring_size - 1;
  // TX completions (not counted against the budget, as in igb).
  uint32_t tx_clean = napi.tx_next_to_clean.load(std::memory_order_relaxed);
  const uint32_t tx_use = napi.tx_next_to_use.load(std::memory_order_acquire);
  uint64_t completed = 0;
  while (tx_clean != tx_use &&
         (rings.tx_ring[tx_clean].status.load(std::memory_order_acquire) & kDescriptorDone)) {
    rings.tx_ring[tx_clean].status.store(0, std::memory_order_relaxed);
    tx_clean = (tx_clean + 1) & mask;
    ++completed;
  }
  napi.tx_next_to_clean.store(tx_clean, std::memory_order_release);
  counters.tx_completed.fetch_add(completed, std::memory_order_relaxed);

  // RX descriptors, up to the budget, to the flow's socket.
  PacketQueue socket(machine_->app_rx(driver.index, queue));
  uint32_t rx_clean = napi.rx_next_to_clean.load(std::memory_order_relaxed);
  uint32_t work = 0;
  uint64_t dropped = 0;
  while (work < budget &&
         (rings.rx_ring[rx_clean].status.load(std::memory_order_acquire) & kDescriptorDone)) {
    std::optional<WirePacket> packet =
        ReadWireFrame(rings.rx_buffers[rx_clean], rings.rx_ring[rx_clean].length);
    if (!packet.has_value()) {
      ++dropped;  // no protocol handler for this ethertype
    } else {
      packet->node = static_cast<uint32_t>(node_index_);
      if (!socket.TryPush(*packet)) ++dropped;  // netif_receive_skb: socket full
    }
    rings.rx_ring[rx_clean].status.store(0, std::memory_order_relaxed);
    rx_clean = (rx_clean + 1) & mask;
    ++work;
  }
  if (work > 0) {
    napi.rx_next_to_clean.store(rx_clean, std::memory_order_release);
    napi.rx_cleaned.fetch_add(work, std::memory_order_seq_cst);
    // Refill: every cleaned descriptor goes back to the hardware.
    uint32_t rx_use = (rx_clean - 1) & mask;
    napi.rx_next_to_use.store(rx_use, std::memory_order_release);
    nic.regs.ring(queue).rdt.store(rx_use, std::memory_order_release);
    DoorbellRing(machine_->layout().device_bell);
    DoorbellRing(machine_->layout().sink_bell);
    counters.rx_delivered.fetch_add(work - dropped, std::memory_order_relaxed);
    counters.rx_socket_drops.fetch_add(dropped, std::memory_order_relaxed);
    nic.regs.queue_stats[queue].rx_socket_drops.fetch_add(dropped, std::memory_order_relaxed);
  }
  if (completed > 0 || work > 0) WakeProgressWaiters();  // Quiesce's drain waits for this
  uint64_t max_work = counters.max_poll_work.load(std::memory_order_relaxed);
  if (work > max_work) counters.max_poll_work.store(work, std::memory_order_relaxed);
  return work;
}

bool Kernel::DevQueueXmit(NicDriver& driver) {
  if (driver.state.load(std::memory_order_acquire) == KernelHookState::kDetached) return false;
  NicState& nic = driver.nic;
  const uint32_t mask = nic.ring_size - 1;
  const MacAddress nic_mac = machine_->nic_mac(driver.index);
  bool any = false;
  for (uint32_t queue = 0; queue < driver.queue_count; ++queue) {
    PacketQueue socket(machine_->app_tx(driver.index, queue));
    if (!socket.Peek().has_value()) continue;
    QueueNapi& napi = driver.queues[queue];
    QueueRings rings = machine_->rings(driver.index, queue);
    std::lock_guard<std::mutex> lock(driver.xmit_mu);
    uint32_t sent = 0;
    uint32_t use = napi.tx_next_to_use.load(std::memory_order_relaxed);
    while (sent < options_.xmit_batch) {
      std::optional<WirePacket> packet = socket.Peek();
      if (!packet.has_value()) break;
      // dev_hard_start_xmit: the hook's TX gate. A held packet stays queued.
      if (options_.hook && driver.tx_gate_closed.load(std::memory_order_seq_cst)) {
        node_.counters.held_xmits.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      // Driver xmit. Ring full: the queue stops until TX completions free room.
      if (((use + 1) & mask) == napi.tx_next_to_clean.load(std::memory_order_acquire)) break;
      packet->node = static_cast<uint32_t>(node_index_);
      rings.tx_ring[use].length =
          WriteWireFrame(kWirePeerMac, nic_mac, *packet, rings.tx_buffers[use]);
      rings.tx_ring[use].status.store(0, std::memory_order_relaxed);
      use = (use + 1) & mask;
      socket.Pop();
      ++sent;
    }
    if (sent == 0) continue;
    napi.tx_next_to_use.store(use, std::memory_order_release);
    nic.regs.ring(queue).tdt.store(use, std::memory_order_release);  // one tail write per batch
    DoorbellRing(machine_->layout().device_bell);
    node_.counters.driver_xmits.fetch_add(sent, std::memory_order_relaxed);
    any = true;
  }
  return any;
}

// --- Driver setup ----------------------------------------------------------

std::vector<RingState> Kernel::CurrentRings(const NicDriver& driver) const {
  std::vector<RingState> rings(driver.queue_count);
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    const QueueNapi& napi = driver.queues[q];
    rings[q].rx_next_to_clean = napi.rx_next_to_clean.load();
    rings[q].rx_next_to_use = napi.rx_next_to_use.load();
    rings[q].tx_next_to_clean = napi.tx_next_to_clean.load();
    rings[q].tx_next_to_use = napi.tx_next_to_use.load();
  }
  return rings;
}

absl::Status Kernel::SetEntriesMasked(NicDriver& driver, bool masked) {
  absl::StatusOr<pci::MsixCapability> cap =
      pci::ReadMsixCapability(driver.config, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(driver.bars, *cap, i);
    if (!entry.ok()) return entry.status();
    uint32_t control = masked ? (entry->vector_control | pci::kMsixVectorControlMask)
                              : (entry->vector_control & ~pci::kMsixVectorControlMask);
    if (absl::Status s = pci::WriteMsixVectorControl(driver.bars, *cap, i, control); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Kernel::CheckRoutedHere(NicDriver& driver, const std::vector<CpuVector>& vectors) {
  absl::StatusOr<pci::MsixCapability> cap =
      pci::ReadMsixCapability(driver.config, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  if (vectors.size() != cap->table_size()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s holds %d vectors for %s, the device has %d", options_.node_id, vectors.size(),
        driver.nic.bdf, cap->table_size()));
  }
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(driver.bars, *cap, i);
    if (!entry.ok()) return entry.status();
    pci::X86MsiMessage message = pci::DecodeX86Msi(entry->address(), entry->data);
    bool here = message.IsInterruptAddress() && !message.remappable &&
                !message.logical_destination &&
                message.destination_apic_id == node_.apic_ids[vectors[i].cpu] &&
                message.vector == vectors[i].vector;
    if (!here) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "MSI-X entry %d of %s routes to %s, not to %s's vector 0x%02x on APIC ID %d", i,
          driver.nic.bdf, pci::DescribeX86Msi(message), options_.node_id, vectors[i].vector,
          node_.apic_ids[vectors[i].cpu]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Kernel::TableHolds(NicDriver& driver,
                                        const std::vector<pci::RawMsiMessage>& messages) {
  absl::StatusOr<pci::MsixCapability> cap =
      pci::ReadMsixCapability(driver.config, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  if (messages.size() != cap->table_size()) return false;
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(driver.bars, *cap, i);
    if (!entry.ok()) return entry.status();
    if (entry->address() != messages[i].address || entry->data != messages[i].data) return false;
  }
  return true;
}

void Kernel::StartRunning(NicDriver& driver) {
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    driver.queues[q].napi_state.store(0, std::memory_order_seq_cst);  // napi_enable
  }
  driver.rx_gate_closed.store(false, std::memory_order_seq_cst);
  driver.tx_gate_closed.store(false, std::memory_order_seq_cst);
  driver.state.store(KernelHookState::kRunning, std::memory_order_seq_cst);
  driver.nic.running_node.store(node_index_, std::memory_order_seq_cst);
  driver.nic.regs.eims.fetch_or(AllCauses(driver.queue_count), std::memory_order_seq_cst);
  // Replay: poll once for whatever the rings collected while nobody ran them.
  driver.kick.store(true, std::memory_order_seq_cst);
  DoorbellRing(node_.bell);
  DoorbellRing(machine_->layout().device_bell);
}

absl::StatusOr<std::vector<CpuVector>> Kernel::AllocateVectors(NicDriver& driver,
                                                               uint32_t count) {
  std::lock_guard<std::mutex> lock(vectors_mu_);
  const int cpus = static_cast<int>(node_.apic_count);
  std::vector<CpuVector> vectors;
  for (uint32_t i = 0; i < count; ++i) {
    // Entry i on CPU i % CPUs, or the next CPU that still has a free vector
    // (the kernel's vector matrix spreads a device over the CPUs).
    bool found = false;
    for (int step = 0; step < cpus && !found; ++step) {
      const int cpu = static_cast<int>((i + step) % cpus);
      for (uint32_t v = options_.first_vector; v <= options_.last_vector; ++v) {
        if (IsVectorRegistered(node_, cpu, static_cast<uint8_t>(v))) continue;
        vectors.push_back({cpu, static_cast<uint8_t>(v)});
        RegisterVector(node_, cpu, static_cast<uint8_t>(v));  // request_irq
        handlers_[cpu][v].store(driver.index << 8 | static_cast<int32_t>(i));
        found = true;
        break;
      }
    }
    if (!found) {
      FreeVectorsLocked(vectors);
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s has no free vector in 0x%02x..0x%02x on any of its %d CPUs (%d needed for %s)",
          options_.node_id, options_.first_vector, options_.last_vector, cpus, count,
          driver.nic.bdf));
    }
  }
  return vectors;
}

void Kernel::FreeVectors(std::vector<CpuVector>& vectors) {
  std::lock_guard<std::mutex> lock(vectors_mu_);
  FreeVectorsLocked(vectors);
}

void Kernel::FreeVectorsLocked(std::vector<CpuVector>& vectors) {
  for (CpuVector v : vectors) {
    UnregisterVector(node_, v.cpu, v.vector);
    handlers_[v.cpu][v.vector].store(kNoHandler, std::memory_order_release);
  }
  vectors.clear();
}

absl::StatusOr<pci::RawMsiMessage> Kernel::MessageFor(CpuVector vector) const {
  return pci::ComposeFixedX86Msi(node_.apic_ids[vector.cpu], vector.vector);
}

absl::Status Kernel::Probe(NicDriver& driver) {
  // igb_probe + igb_open, reduced: vectors, MSI-X table, rings, enable.
  NicState& nic = driver.nic;
  absl::StatusOr<pci::MsixCapability> cap =
      pci::ReadMsixCapability(driver.config, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  absl::StatusOr<std::vector<CpuVector>> vectors = AllocateVectors(driver, cap->table_size());
  if (!vectors.ok()) return vectors.status();
  for (uint32_t i = 0; i < vectors->size(); ++i) {
    absl::StatusOr<pci::RawMsiMessage> message = MessageFor((*vectors)[i]);
    if (!message.ok()) return message.status();
    if (absl::Status s =
            pci::WriteMsixMessage(driver.bars, *cap, i, message->address, message->data);
        !s.ok()) {
      return s;
    }
  }
  driver.active_vectors = *vectors;
  if (absl::Status s = driver.config.Write16(kMsixCapabilityOffset + 2,
                                             pci::kMsixControlEnable | (kMsixTableEntries - 1));
      !s.ok()) {
    return s;
  }
  const uint32_t size = nic.ring_size;
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    QueueRings rings = machine_->rings(driver.index, q);
    for (uint32_t i = 0; i < size; ++i) {
      rings.rx_ring[i].status.store(0);
      rings.tx_ring[i].status.store(0);
    }
    RingRegisters& ring = nic.regs.ring(q);
    ring.rdh.store(0);
    ring.tdh.store(0);
    ring.tdt.store(0);
    ring.rdt.store(size - 1);
    QueueNapi& napi = driver.queues[q];
    napi.rx_next_to_clean.store(0);
    napi.rx_next_to_use.store(size - 1);
    napi.tx_next_to_clean.store(0);
    napi.tx_next_to_use.store(0);
  }
  nic.regs.ctrl.store(kCtrlRxEnable | kCtrlTxEnable);
  nic.initialized.store(1);
  if (absl::Status s = SetEntriesMasked(driver, false); !s.ok()) return s;
  StartRunning(driver);
  std::vector<std::string> names;
  for (CpuVector v : driver.active_vectors) {
    names.push_back(absl::StrFormat("%d:0x%02x", node_.apic_ids[v.cpu], v.vector));
  }
  NH_LOG(DEBUG) << options_.node_id << ": probed " << nic.bdf << " (ring " << size << ", "
                << driver.queue_count << " queues, APIC:vector " << absl::StrJoin(names, ",")
                << ")";
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CpuVector>> Kernel::TakeVectorsRoutedHere(NicDriver& driver) {
  absl::StatusOr<pci::MsixCapability> cap =
      pci::ReadMsixCapability(driver.config, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  std::vector<CpuVector> vectors;
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(driver.bars, *cap, i);
    if (!entry.ok()) return entry.status();
    pci::X86MsiMessage message = pci::DecodeX86Msi(entry->address(), entry->data);
    const int cpu = CpuOfApicId(node_, message.destination_apic_id);
    if (cpu < 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "MSI-X entry %d of %s routes to %s, not to %s", i, driver.nic.bdf,
          pci::DescribeX86Msi(message), options_.node_id));
    }
    vectors.push_back({cpu, message.vector});
  }
  {
    std::lock_guard<std::mutex> lock(vectors_mu_);
    for (uint32_t i = 0; i < vectors.size(); ++i) {
      handlers_[vectors[i].cpu][vectors[i].vector].store(driver.index << 8 |
                                                         static_cast<int32_t>(i));
      RegisterVector(node_, vectors[i].cpu, vectors[i].vector);
    }
  }
  return vectors;
}

void Kernel::Adopt(NicDriver& driver) {
  // This node owns a NIC that was running before the kernel (re)started:
  // take the vectors the table routes here and continue from the registers.
  // Packets the previous kernel had taken but not delivered are lost with it.
  NicState& nic = driver.nic;
  absl::StatusOr<std::vector<CpuVector>> vectors = TakeVectorsRoutedHere(driver);
  if (!vectors.ok()) {
    NH_LOG(WARNING) << options_.node_id << ": owns " << nic.bdf << " but "
                    << vectors.status().message() << "; staying detached";
    return;
  }
  driver.active_vectors = *vectors;
  const uint32_t mask = nic.ring_size - 1;
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    RingRegisters& ring = nic.regs.ring(q);
    QueueNapi& napi = driver.queues[q];
    QueueRings rings = machine_->rings(driver.index, q);
    // Every descriptor the previous kernel cleaned was given back (RDT)
    // at the end of its poll; one that died inside a poll had cleaned some
    // (delivered, DD cleared) past RDT without giving them back. They are
    // the first ones after RDT, before the device's head: skip them and
    // give them back, or NAPI would wait at a cleared descriptor forever
    // while the device fills the rest of the ring.
    const uint32_t head = ring.rdh.load() & mask;
    uint32_t clean = (ring.rdt.load() + 1) & mask;
    while (clean != head &&
           !(rings.rx_ring[clean].status.load(std::memory_order_acquire) & kDescriptorDone)) {
      clean = (clean + 1) & mask;
    }
    const uint32_t use = (clean - 1) & mask;
    napi.rx_next_to_clean.store(clean);
    napi.rx_next_to_use.store(use);
    ring.rdt.store(use, std::memory_order_release);
    napi.tx_next_to_use.store(ring.tdt.load());
    napi.tx_next_to_clean.store(ring.tdh.load());
  }
  (void)SetEntriesMasked(driver, false);
  StartRunning(driver);
  NH_LOG(INFO) << options_.node_id << ": adopted running " << nic.bdf;
}

// --- Hook operations -------------------------------------------------------

absl::StatusOr<Kernel::NicDriver*> Kernel::Driver(const std::string& bdf) {
  absl::StatusOr<int> index = machine_->NicIndex(bdf);
  if (!index.ok()) {
    return absl::NotFoundError(absl::StrFormat("%s has no NIC %s", options_.node_id, bdf));
  }
  return drivers_[*index].get();
}

absl::Status Kernel::CheckOperation(const char* operation, NicDriver& driver, const Fence& fence) {
  if (!options_.hook) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s's kernel runs without the hook (--hook off)", options_.node_id));
  }
  if (absl::Status s = CheckFence(driver.highest, fence,
                                  absl::StrFormat("%s of %s on %s", operation, driver.nic.bdf,
                                                  options_.node_id));
      !s.ok()) {
    return s;
  }
  driver.highest = fence;
  return absl::OkStatus();
}

absl::Status Kernel::NapiDisable(NicDriver& driver, absl::Time deadline) {
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    driver.queues[q].napi_state.fetch_or(kNapiDisable, std::memory_order_seq_cst);
  }
  DoorbellRing(node_.bell);  // a scheduled poll sees the disable and completes
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    std::atomic<uint32_t>& napi_state = driver.queues[q].napi_state;
    // Take SCHED once the running poll gave it up (NapiComplete rings).
    auto took_sched = [&napi_state] {
      uint32_t state = napi_state.load(std::memory_order_seq_cst);
      return !(state & kNapiSched) &&
             napi_state.compare_exchange_strong(state, state | kNapiSched);
    };
    if (!DoorbellWaitUntil(progress_, took_sched, deadline)) {
      return absl::DeadlineExceededError(
          absl::StrFormat("napi_disable: a poll of queue %d did not finish in time", q));
    }
  }
  return absl::OkStatus();
}

#define NH_DRIVER_OR_RETURN(driver, bdf)                        \
  absl::StatusOr<NicDriver*> driver##_or = Driver(bdf);          \
  if (!driver##_or.ok()) return driver##_or.status();            \
  NicDriver& driver = **driver##_or;                             \
  std::lock_guard<std::mutex> driver##_lock(driver.control_mu)

absl::StatusOr<QuiesceOutcome> Kernel::Quiesce(const std::string& bdf, const Fence& fence,
                                               absl::Duration timeout) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("quiesce", driver, fence); !s.ok()) return s;
  return QuiesceLocked(driver, fence.epoch, timeout);
}

absl::StatusOr<QuiesceOutcome> Kernel::QuiesceLocked(NicDriver& driver, uint64_t epoch,
                                                     absl::Duration timeout) {
  const std::string& bdf = driver.nic.bdf;
  KernelHookState state = driver.state.load();
  if (state == KernelHookState::kQuiesced) return driver.last_quiesce;
  if (state == KernelHookState::kDetached) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s does not run %s", options_.node_id, bdf));
  }
  const absl::Time deadline = absl::Now() + timeout;
  NicState& nic = driver.nic;
  // Per-NIC counts from the node's counters are only exact while no other
  // NIC of this node moves packets; the rings are what the target needs.
  NodeCounters& counters = node_.counters;
  const uint64_t tx_before = counters.tx_completed.load();
  const uint64_t rx_before = counters.rx_delivered.load() + counters.rx_socket_drops.load();
  const uint64_t held_before = counters.held_xmits.load();
  const uint64_t bad_polls_before = counters.polls_while_quiesced.load();

  // A new handover of this NIC starts here (on both commit paths).
  machine_->ResetTimeline(epoch, driver.index);
  // 1. netif_tx_disable: close the gate, wait out an xmit in progress.
  driver.tx_gate_closed.store(true, std::memory_order_seq_cst);
  { std::lock_guard<std::mutex> xmit(driver.xmit_mu); }
  machine_->StampTimeline(&HandoverTimeline::gate_closed_ns, epoch, driver.index);
  // 2. TX completions to zero on every queue; NAPI still runs to clean them.
  // The waits sleep on progress_, which the CPU rings after each poll that
  // cleaned or took something: no sleep-and-poll step whose length depends
  // on the scheduler (docs/simulator.md, "No sleep-and-poll waits").
  absl::Status drained = absl::OkStatus();
  for (uint32_t q = 0; q < driver.queue_count && drained.ok(); ++q) {
    QueueNapi& napi = driver.queues[q];
    auto tx_clean = [&napi] {
      return napi.tx_next_to_clean.load(std::memory_order_seq_cst) ==
             napi.tx_next_to_use.load(std::memory_order_seq_cst);
    };
    if (!DoorbellWaitUntil(progress_, tx_clean, deadline)) {
      drained = absl::DeadlineExceededError(absl::StrFormat(
          "%d TX descriptors of queue %d still in flight",
          (napi.tx_next_to_use.load() - napi.tx_next_to_clean.load()) & (nic.ring_size - 1), q));
    }
  }
  // 3. Let NAPI drain what the device had written when the gate closed:
  // until its count of cleaned descriptors reaches the one the ring's head
  // stood at. Counted, not compared by ring index: the RX gate is still
  // open, so NAPI keeps cleaning what arrives after the head was read, and
  // an index passed between two looks would match again only a whole ring
  // later (4096 descriptors at 10,000 packets/s: 410 ms — the rare drains of
  // 100-400 ms the benchmark found) or never before the deadline. Reading
  // the count before the index makes the mark at most one poll early, never
  // late: what is left in the ring goes to the target with the ring state.
  uint64_t rx_marks[kMaxQueues];
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    QueueNapi& napi = driver.queues[q];
    const uint64_t cleaned = napi.rx_cleaned.load(std::memory_order_seq_cst);
    const uint32_t next = napi.rx_next_to_clean.load(std::memory_order_seq_cst);
    const uint32_t head = nic.regs.ring(q).rdh.load(std::memory_order_acquire);
    rx_marks[q] = cleaned + ((head - next) & (nic.ring_size - 1));
  }
  for (uint32_t q = 0; q < driver.queue_count && drained.ok(); ++q) {
    QueueNapi& napi = driver.queues[q];
    const uint64_t mark = rx_marks[q];
    auto rx_drained = [&napi, mark] {
      return napi.rx_cleaned.load(std::memory_order_seq_cst) >= mark;
    };
    if (!DoorbellWaitUntil(progress_, rx_drained, deadline)) {
      drained = absl::DeadlineExceededError(
          absl::StrFormat("RX drain of queue %d did not finish", q));
    }
  }
  // 4. The RX gate and napi_disable; 5. mask the vectors. Done even after a
  // timeout: the interface promises the gates stay closed.
  driver.rx_gate_closed.store(true, std::memory_order_seq_cst);
  absl::Status napi =
      NapiDisable(driver, drained.ok() ? deadline : absl::Now() + absl::Milliseconds(100));
  absl::Status masked = SetEntriesMasked(driver, true);
  driver.state.store(KernelHookState::kQuiesced, std::memory_order_seq_cst);
  int32_t me = node_index_;
  nic.running_node.compare_exchange_strong(me, -1);
  if (!drained.ok()) return drained;
  if (!napi.ok()) return napi;
  if (!masked.ok()) return masked;
  machine_->StampTimeline(&HandoverTimeline::drained_ns, epoch, driver.index);

  QuiesceOutcome outcome;
  outcome.drained_tx_packets = counters.tx_completed.load() - tx_before;
  outcome.drained_rx_packets =
      counters.rx_delivered.load() + counters.rx_socket_drops.load() - rx_before;
  outcome.held_xmits = counters.held_xmits.load() - held_before;
  outcome.polls_while_quiesced = counters.polls_while_quiesced.load() - bad_polls_before;
  outcome.rings = CurrentRings(driver);
  driver.last_quiesce = outcome;
  return outcome;
}

absl::Status Kernel::Resume(const std::string& bdf, const Fence& fence) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("resume", driver, fence); !s.ok()) return s;
  KernelHookState state = driver.state.load();
  if (state == KernelHookState::kRunning) return absl::OkStatus();
  if (state == KernelHookState::kDetached) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s released %s: it can only Attach it again", options_.node_id, bdf));
  }
  if (absl::Status s = CheckRoutedHere(driver, driver.active_vectors); !s.ok()) return s;
  if (absl::Status s = SetEntriesMasked(driver, false); !s.ok()) return s;
  StartRunning(driver);
  return absl::OkStatus();
}

absl::Status Kernel::Attach(const std::string& bdf, const Fence& fence,
                            const std::vector<RingState>& rings) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("attach", driver, fence); !s.ok()) return s;
  return AttachLocked(driver, fence.epoch, rings);
}

absl::Status Kernel::AttachLocked(NicDriver& driver, uint64_t epoch,
                                  const std::vector<RingState>& rings) {
  const std::string& bdf = driver.nic.bdf;
  KernelHookState state = driver.state.load();
  if (state == KernelHookState::kRunning) return absl::OkStatus();  // a retried Attach
  if (state == KernelHookState::kQuiesced) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has %s quiesced: Resume it, or Release it first", options_.node_id, bdf));
  }
  NicState& nic = driver.nic;
  if (rings.size() != driver.queue_count) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "ring state for %d queues, %s has %d", rings.size(), bdf, driver.queue_count));
  }
  const uint32_t mask = nic.ring_size - 1;
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    const RingState& r = rings[q];
    uint32_t tdt = nic.regs.ring(q).tdt.load() & mask;
    uint32_t rdt = nic.regs.ring(q).rdt.load() & mask;
    if (r.rx_next_to_clean > mask || r.tx_next_to_clean > mask || r.tx_next_to_use != tdt ||
        r.rx_next_to_use != rdt) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "ring state of queue %d rx %d/%d tx %d/%d does not match the device (RDT %d, TDT %d)",
          q, r.rx_next_to_clean, r.rx_next_to_use, r.tx_next_to_clean, r.tx_next_to_use, rdt,
          tdt));
    }
  }
  if (!nic.initialized.load()) {
    return absl::FailedPreconditionError(absl::StrFormat("%s was never probed", bdf));
  }
  std::vector<CpuVector> vectors = driver.reserved_vectors;
  if (vectors.empty()) vectors = driver.active_vectors;
  if (vectors.empty()) {
    // This kernel restarted after its predecessor reserved the vectors the
    // source has since routed the NIC to: they are this node's (the
    // reservation was the node's, not the process's), as Adopt takes them.
    absl::StatusOr<std::vector<CpuVector>> routed = TakeVectorsRoutedHere(driver);
    if (!routed.ok()) return routed.status();
    vectors = *routed;
  }
  if (absl::Status s = CheckRoutedHere(driver, vectors); !s.ok()) return s;
  driver.active_vectors = vectors;
  driver.reserved_vectors.clear();
  driver.armed = false;  // the reservation is spent
  for (uint32_t q = 0; q < driver.queue_count; ++q) {
    QueueNapi& napi = driver.queues[q];
    napi.rx_next_to_clean.store(rings[q].rx_next_to_clean);
    napi.rx_next_to_use.store(rings[q].rx_next_to_use);
    napi.tx_next_to_clean.store(rings[q].tx_next_to_clean);
    napi.tx_next_to_use.store(rings[q].tx_next_to_use);
  }
  if (absl::Status s = SetEntriesMasked(driver, false); !s.ok()) return s;  // replays pending
  driver.attached_epoch.store(epoch, std::memory_order_relaxed);
  driver.awaiting_first_poll.store(true, std::memory_order_seq_cst);
  // Stamped as the gates open: the CPU's first poll may follow at once.
  machine_->StampTimeline(&HandoverTimeline::target_attached_ns, epoch, driver.index);
  StartRunning(driver);
  return absl::OkStatus();
}

absl::Status Kernel::Release(const std::string& bdf, const Fence& fence) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("release", driver, fence); !s.ok()) return s;
  KernelHookState state = driver.state.load();
  if (state == KernelHookState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s runs %s: quiesce it before releasing", options_.node_id, bdf));
  }
  FreeVectors(driver.active_vectors);
  driver.state.store(KernelHookState::kDetached, std::memory_order_seq_cst);
  return absl::OkStatus();
}

absl::StatusOr<KernelStatus> Kernel::Status(const std::string& bdf) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  KernelStatus status;
  status.state = driver.state.load();
  status.epoch = driver.highest.epoch;
  status.held_xmits = node_.counters.held_xmits.load();
  status.polls_while_quiesced = node_.counters.polls_while_quiesced.load();
  status.drained_tx_packets = driver.last_quiesce.drained_tx_packets;
  status.rings = CurrentRings(driver);
  for (CpuVector v : driver.active_vectors) status.active_vectors.push_back(v.vector);
  for (CpuVector v : driver.reserved_vectors) status.reserved_vectors.push_back(v.vector);
  status.armed = driver.armed;
  status.armed_epoch = driver.armed ? driver.armed_fence.epoch : 0;
  return status;
}

absl::StatusOr<std::vector<pci::RawMsiMessage>> Kernel::ReserveVectors(const std::string& bdf,
                                                                       const Fence& fence,
                                                                       uint32_t count) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("reserve", driver, fence); !s.ok()) return s;
  if (driver.state.load() != KernelHookState::kDetached) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s already runs %s", options_.node_id, bdf));
  }
  if (count == 0 || count > kMsixTableEntries) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot reserve %d vectors", count));
  }
  if (driver.reserved_epoch != fence.epoch || driver.reserved_vectors.size() != count) {
    FreeVectors(driver.reserved_vectors);
    absl::StatusOr<std::vector<CpuVector>> vectors = AllocateVectors(driver, count);
    if (!vectors.ok()) return vectors.status();
    driver.reserved_vectors = *vectors;
    driver.reserved_epoch = fence.epoch;
  }
  std::vector<pci::RawMsiMessage> messages;
  for (CpuVector v : driver.reserved_vectors) {
    absl::StatusOr<pci::RawMsiMessage> message = MessageFor(v);
    if (!message.ok()) return message.status();
    messages.push_back(*message);
  }
  return messages;
}

absl::Status Kernel::ReleaseVectors(const std::string& bdf, const Fence& fence) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("release reservation", driver, fence); !s.ok()) return s;
  FreeVectors(driver.reserved_vectors);
  driver.reserved_epoch = 0;
  driver.armed = false;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pci::RawMsiMessage>> Kernel::Reroute(
    const std::string& bdf, const Fence& fence, const std::vector<pci::RawMsiMessage>& target) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("reroute", driver, fence); !s.ok()) return s;
  return RerouteLocked(driver, fence.epoch, target);
}

absl::StatusOr<std::vector<pci::RawMsiMessage>> Kernel::RerouteLocked(
    NicDriver& driver, uint64_t epoch, const std::vector<pci::RawMsiMessage>& target) {
  if (driver.state.load() != KernelHookState::kQuiesced) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s: %s must be quiesced here before its interrupts move",
                        options_.node_id, driver.nic.bdf));
  }
  pci::ApplyOutcome outcome;
  absl::StatusOr<pci::ReroutePlan> plan =
      pci::Reroute(driver.config, &driver.bars, target, &outcome);
  if (!plan.ok()) return plan.status();
  machine_->StampTimeline(&HandoverTimeline::rerouted_ns, epoch, driver.index);
  return plan->previous;
}

absl::Status Kernel::Restore(const std::string& bdf, const Fence& fence,
                             const std::vector<pci::RawMsiMessage>& previous) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  if (absl::Status s = CheckOperation("restore", driver, fence); !s.ok()) return s;
  if (driver.state.load() != KernelHookState::kQuiesced) {
    // A source daemon that crashed before its Quiesce ran restores on
    // recovery without knowing (docs/protocol.md, "Known limits"): on a
    // running NIC whose table still holds `previous` that is a no-op.
    // Rewriting a live NIC's routing is refused.
    absl::StatusOr<bool> unchanged = TableHolds(driver, previous);
    if (!unchanged.ok()) return unchanged.status();
    if (driver.state.load() == KernelHookState::kRunning && *unchanged) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %s must be quiesced here to restore its interrupts", options_.node_id, bdf));
  }
  pci::ApplyOutcome outcome;
  absl::StatusOr<pci::ReroutePlan> plan =
      pci::Reroute(driver.config, &driver.bars, previous, &outcome);
  return plan.status();
}

// --- The kernel commit path ------------------------------------------------

absl::Status Kernel::Arm(const std::string& bdf, const Fence& fence, const Ownership& handoff) {
  NH_DRIVER_OR_RETURN(driver, bdf);
  const bool source_is_another_node = handoff.owner != node_index_ && handoff.owner >= 0 &&
                                      handoff.owner < machine_->node_count();
  if (handoff.state != OwnershipState::kHandoff || handoff.target != node_index_ ||
      !source_is_another_node || handoff.epoch != fence.epoch) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s can only arm for HANDOFF(another node, %s, %d) of %s", options_.node_id,
        options_.node_id, fence.epoch, bdf));
  }
  if (driver.reserved_vectors.empty() || driver.reserved_epoch != fence.epoch) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has no vectors reserved for %s at epoch %d: ReserveVectors first", options_.node_id,
        bdf, fence.epoch));
  }
  if (absl::Status s = CheckOperation("arm", driver, fence); !s.ok()) return s;
  driver.armed = true;
  driver.armed_fence = fence;
  driver.armed_record = handoff;
  return absl::OkStatus();
}

HandOffOutcome Kernel::HandOff(const std::string& bdf, const Fence& fence,
                               const Ownership& expected, const Ownership& desired,
                               const std::vector<pci::RawMsiMessage>& target,
                               absl::Duration drain_timeout) {
  HandOffOutcome out;
  absl::StatusOr<NicDriver*> found = Driver(bdf);
  if (!found.ok()) {
    out.status = found.status();
    return out;
  }
  NicDriver& driver = **found;
  const int target_node = desired.target;
  if (expected.state != OwnershipState::kPreparing || desired.state != OwnershipState::kHandoff ||
      expected.owner != node_index_ || desired.owner != node_index_ ||
      expected.target != target_node || target_node == node_index_ || target_node < 0 ||
      target_node >= machine_->node_count() || expected.epoch != fence.epoch ||
      desired.epoch != fence.epoch) {
    out.status = absl::InvalidArgumentError(absl::StrFormat(
        "%s hands %s off from PREPARING(%s, T, %d) to HANDOFF(%s, T, %d) only", options_.node_id,
        bdf, options_.node_id, fence.epoch, options_.node_id, fence.epoch));
    return out;
  }
  if (target.size() != kMsixTableEntries) {
    out.status = absl::InvalidArgumentError(absl::StrFormat(
        "%d target messages for the %d MSI-X entries of %s", target.size(), kMsixTableEntries,
        bdf));
    return out;
  }
  HitFaultPoint(FaultPoint::kHandoffEntry);
  // From here to the doorbell is the blackout. A real kernel runs it in the
  // daemon's system call on the node's own CPU; here it arrived on a
  // control thread, which runs it at the data path's priority (with
  // --realtime-priority) so it does not wait behind the daemons.
  ScopedRealtimePriority syscall_on_own_cpu(options_.realtime_priority,
                                            options_.node_id + "'s HandOff");
  {
    std::lock_guard<std::mutex> lock(driver.control_mu);
    if (absl::Status s = CheckOperation("hand-off", driver, fence); !s.ok()) {
      out.status = s;
      return out;
    }
    // A record that is not `expected` now cannot become HANDOFF: the CAS is
    // lost before the NIC is touched (it keeps running here).
    out.record = machine_->ReadOwnership(driver.index);
    if (!(out.record == expected)) return out;
    absl::StatusOr<QuiesceOutcome> quiesced = QuiesceLocked(driver, fence.epoch, drain_timeout);
    if (!quiesced.ok()) {
      // The gates stay closed whatever the drain did (Quiesce's promise).
      out.reached = HandOffStage::kQuiesced;
      out.status = quiesced.status();
      return out;
    }
    out.quiesce = *quiesced;
    out.reached = HandOffStage::kQuiesced;
    absl::StatusOr<std::vector<pci::RawMsiMessage>> previous =
        RerouteLocked(driver, fence.epoch, target);
    if (!previous.ok()) {
      out.status = previous.status();
      return out;
    }
    out.previous = *previous;
    out.reached = HandOffStage::kRerouted;
    if (absl::Status s = machine_->WriteHandoff(fence, quiesced->rings, driver.index); !s.ok()) {
      out.status = s;
      return out;
    }
    out.reached = HandOffStage::kRingsWritten;
    out.record = machine_->CompareAndSwapOwnership(expected, desired, driver.index);
    if (!(out.record == desired)) return out;  // lost: nothing is rung
    out.reached = HandOffStage::kHandedOff;
  }
  if (HitFaultPoint(FaultPoint::kHandoffBeforeDoorbell) == FaultAction::kDropDoorbell) {
    NH_LOG(WARNING) << options_.node_id << ": fault injection drops the doorbell of " << bdf;
    return out;
  }
  machine_->StampTimeline(&HandoverTimeline::doorbell_ns, fence.epoch, driver.index);
  InterruptFabric(*machine_).RingHandoffDoorbell(target_node, driver.index, fence.epoch);
  out.reached = HandOffStage::kDoorbellRung;
  return out;
}

void Kernel::CommitWorkerLoop() {
  while (!stop_.load()) {
    auto rung = [this] {
      return doorbell_pending_.load(std::memory_order_seq_cst) || stop_.load();
    };
    if (!DoorbellWaitUntil(worker_bell_, rung, absl::Now() + kWorkerIdle)) continue;
    if (stop_.load()) break;
    doorbell_pending_.store(false, std::memory_order_seq_cst);
    const int64_t woken_ns = doorbell_irq_ns_.load(std::memory_order_relaxed);
    for (auto& driver : drivers_) {
      uint64_t epoch = node_.handoff_mailbox[driver->index].exchange(0, std::memory_order_seq_cst);
      if (epoch != 0) TakeDoorbell(*driver, epoch, woken_ns);
    }
  }
}

void Kernel::TakeDoorbell(NicDriver& driver, uint64_t epoch, int64_t woken_ns) {
  const int nic = driver.index;
  Ownership record;
  std::string ignored;
  {
    std::lock_guard<std::mutex> lock(driver.control_mu);
    record = machine_->ReadOwnership(nic);
    if (!driver.armed || driver.armed_fence.epoch != epoch) {
      ignored = driver.armed ? absl::StrFormat("armed at epoch %d", driver.armed_fence.epoch)
                             : std::string("not armed");
    } else if (driver.highest.epoch != epoch) {
      ignored = absl::StrFormat("a later operation at epoch %d", driver.highest.epoch);
    } else if (!(record == driver.armed_record)) {
      ignored = "the record is not the armed HANDOFF";
    } else {
      machine_->StampTimeline(&HandoverTimeline::target_woken_ns, epoch, nic, woken_ns);
      const Ownership committed{OwnershipState::kActive, node_index_, kNoNode, epoch};
      record = machine_->CompareAndSwapOwnership(driver.armed_record, committed, nic);
      if (!(record == committed)) ignored = "the CAS HANDOFF -> ACTIVE lost";
    }
  }
  if (!ignored.empty()) {
    node_.counters.stale_doorbells.fetch_add(1, std::memory_order_relaxed);
    NH_LOG(INFO) << options_.node_id << ": doorbell for " << driver.nic.bdf << " epoch " << epoch
                 << " ignored: " << ignored;
    AppendEvent(KernelEvent::Kind::kNotCommitted, driver, epoch, record,
                "doorbell ignored: " + ignored);
    return;
  }
  HitFaultPoint(FaultPoint::kCommitAfterCas);
  absl::Status attached;
  {
    // The record is ACTIVE(self, epoch) now: the NIC is this node's. A
    // daemon's Attach at the same epoch may have come first (then this one
    // finds the NIC running and is a no-op).
    std::lock_guard<std::mutex> lock(driver.control_mu);
    if (driver.highest.epoch != epoch) {
      attached = absl::FailedPreconditionError(
          absl::StrFormat("a later operation at epoch %d came first", driver.highest.epoch));
    } else {
      absl::StatusOr<std::vector<RingState>> rings = machine_->ReadHandoff(epoch, nic);
      attached = rings.ok() ? AttachLocked(driver, epoch, *rings) : rings.status();
      driver.armed = false;
    }
  }
  if (!attached.ok()) {
    NH_LOG(WARNING) << options_.node_id << ": committed " << driver.nic.bdf << " at epoch "
                    << epoch << " but the attach failed: " << attached;
    AppendEvent(KernelEvent::Kind::kNotCommitted, driver, epoch, record,
                "attach failed: " + std::string(attached.message()));
    return;
  }
  AppendEvent(KernelEvent::Kind::kCommitted, driver, epoch, record, "");
}

void Kernel::AppendEvent(KernelEvent::Kind kind, const NicDriver& driver, uint64_t epoch,
                         const Ownership& record, std::string message) {
  std::lock_guard<std::mutex> lock(events_mu_);
  KernelEvent event;
  event.seq = ++last_event_seq_;
  event.kind = kind;
  event.bdf = driver.nic.bdf;
  event.epoch = epoch;
  event.record = record;
  event.message = std::move(message);
  events_.push_back(std::move(event));
  if (events_.size() > kMaxKernelEvents) events_.pop_front();
  events_changed_.notify_all();
}

KernelEvents Kernel::WaitEvents(uint64_t after_seq, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(events_mu_);
  events_changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
    return last_event_seq_ != after_seq || waiters_stopped_.load();
  });
  KernelEvents out;
  out.last_seq = last_event_seq_;
  // A client of an earlier boot (after_seq beyond the newest) gets them all.
  const uint64_t from = after_seq > last_event_seq_ ? 0 : after_seq;
  for (const KernelEvent& event : events_) {
    if (event.seq > from) out.events.push_back(event);
  }
  return out;
}

absl::Status Kernel::InjectFault(FaultPoint point, FaultAction action) {
  if (!options_.fault_injection) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s's kernel runs without --fault-injection", options_.node_id));
  }
  std::lock_guard<std::mutex> lock(faults_mu_);
  faults_[static_cast<int>(point)] = action == FaultAction::kRelease ? FaultAction::kNone : action;
  ++faults_generation_;
  faults_changed_.notify_all();
  return absl::OkStatus();
}

void Kernel::StopWaiters() {
  waiters_stopped_.store(true);
  {
    std::lock_guard<std::mutex> lock(faults_mu_);
    faults_changed_.notify_all();
  }
  std::lock_guard<std::mutex> lock(events_mu_);
  events_changed_.notify_all();
}

FaultAction Kernel::HitFaultPoint(FaultPoint point) {
  if (!options_.fault_injection) return FaultAction::kNone;
  std::unique_lock<std::mutex> lock(faults_mu_);
  const FaultAction action = faults_[static_cast<int>(point)];
  if (action == FaultAction::kCrash) {
    NH_LOG(WARNING) << options_.node_id << ": fault injection crashes the kernel";
    raise(SIGKILL);
  }
  if (action == FaultAction::kHold) {
    // Said before blocking: a fault test waits for this line to know the
    // call it holds has arrived (nothing else shows it before the gates
    // close).
    NH_LOG(WARNING) << options_.node_id << ": fault injection holds at "
                    << FaultPointName(point);
    const uint64_t generation = faults_generation_;
    faults_changed_.wait(
        lock, [&] { return faults_generation_ != generation || waiters_stopped_.load(); });
  }
  return action;
}

const char* FaultPointName(FaultPoint point) {
  switch (point) {
    case FaultPoint::kHandoffEntry:
      return "handoff-entry";
    case FaultPoint::kHandoffBeforeDoorbell:
      return "handoff-before-doorbell";
    case FaultPoint::kCommitAfterCas:
      return "commit-after-cas";
  }
  return "unknown";
}

absl::StatusOr<FaultPoint> ParseFaultPoint(const std::string& name) {
  for (FaultPoint point : {FaultPoint::kHandoffEntry, FaultPoint::kHandoffBeforeDoorbell,
                           FaultPoint::kCommitAfterCas}) {
    if (name == FaultPointName(point)) return point;
  }
  return absl::InvalidArgumentError(
      "fault point " + name +
      ": one of handoff-entry, handoff-before-doorbell, commit-after-cas");
}

absl::StatusOr<FaultAction> ParseFaultAction(const std::string& name) {
  if (name == "hold") return FaultAction::kHold;
  if (name == "crash") return FaultAction::kCrash;
  if (name == "drop-doorbell") return FaultAction::kDropDoorbell;
  if (name == "release") return FaultAction::kRelease;
  return absl::InvalidArgumentError("fault action " + name +
                                    ": one of hold, crash, drop-doorbell, release");
}

#undef NH_DRIVER_OR_RETURN

}  // namespace sim
}  // namespace nichandover
