#include "sim/kernel.h"

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

namespace nichandover {
namespace sim {
namespace {

constexpr uint32_t kNapiSched = 0x1;    // NAPI_STATE_SCHED
constexpr uint32_t kNapiDisable = 0x2;  // NAPI_STATE_DISABLE
constexpr uint32_t kQueueCauses = 1u << kQueueVectorEntry;
constexpr uint32_t kAllCauses = kQueueCauses | (1u << kOtherVectorEntry);
constexpr absl::Duration kWaitStep = absl::Microseconds(20);

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

Kernel::Kernel(Machine* machine, const KernelOptions& options, int node_index)
    : machine_(machine),
      nic_(machine->nic()),
      node_(machine->node(node_index)),
      options_(options),
      node_index_(node_index),
      config_(machine->nic(), machine->layout().device_bell),
      bars_(machine->nic(), machine->layout().device_bell) {
  napi_state_.store(kNapiSched | kNapiDisable);  // disabled until running
  for (auto& entry : handler_entry_) entry.store(-1);
}

absl::StatusOr<std::unique_ptr<Kernel>> Kernel::Boot(Machine* machine,
                                                      const KernelOptions& options) {
  absl::StatusOr<int> index = machine->NodeIndex(options.node_id);
  if (!index.ok()) return index.status();
  if (options.first_vector < 0x20 || options.last_vector > 0xff ||
      options.first_vector > options.last_vector || options.napi_weight == 0) {
    return absl::InvalidArgumentError("bad kernel options (vector range or NAPI weight)");
  }
  NodeSlot& node = machine->node(*index);
  if (node.kind.load() == NodeKind::kGuest) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "node %s is a QEMU guest (ivshmem peer %d), not a simulated kernel's",
        options.node_id, node.peer_id.load()));
  }
  auto kernel = std::unique_ptr<Kernel>(new Kernel(machine, options, *index));
  // A previous kernel of this node is gone: its handlers and requests too.
  for (int i = 0; i < 4; ++i) {
    node.registered[i].store(0);
    node.irr[i].store(0);
  }
  node.kernel_pid.store(getpid());
  node.kind.store(NodeKind::kSimKernel);
  Ownership record = machine->ReadOwnership();
  if (record.state == OwnershipState::kActive && record.owner == *index) {
    std::lock_guard<std::mutex> lock(kernel->control_mu_);
    kernel->highest_.epoch = record.epoch;
    if (machine->nic().initialized.load() == 0) {
      if (options.probe) {
        if (absl::Status s = kernel->Probe(); !s.ok()) return s;
      }
    } else {
      kernel->Adopt();
    }
  }
  kernel->cpu_ = std::thread([k = kernel.get()] { k->CpuLoop(); });
  return kernel;
}

Kernel::~Kernel() { Shutdown(); }

void Kernel::Shutdown() {
  if (stop_.exchange(true)) return;
  DoorbellRing(node_.bell);
  if (cpu_.joinable()) cpu_.join();
  int32_t me = getpid();
  if (node_.kernel_pid.compare_exchange_strong(me, 0)) node_.kind.store(NodeKind::kNone);
}

// --- The CPU ---------------------------------------------------------------

void Kernel::CpuLoop() {
  while (!stop_.load(std::memory_order_relaxed)) {
    uint32_t snapshot = DoorbellSnapshot(node_.bell);
    bool work = false;
    for (uint8_t vector : TakePendingVectors(node_)) {
      HandleIrq(vector);
      work = true;
    }
    if (kick_.exchange(false)) NapiSchedule();
    if (on_poll_list_) work |= NetRxAction();
    work |= DevQueueXmit();
    if (!work) DoorbellWait(node_.bell, snapshot, options_.idle_wait);
  }
}

void Kernel::HandleIrq(uint8_t vector) {
  node_.counters.irqs_handled.fetch_add(1, std::memory_order_relaxed);
  int entry = handler_entry_[vector].load(std::memory_order_acquire);
  if (entry == static_cast<int>(kQueueVectorEntry)) {
    // igb_msix_ring: the device auto-masked the cause; poll later.
    NapiSchedule();
  } else if (entry == static_cast<int>(kOtherVectorEntry)) {
    // igb_msix_other: link events; nothing to do but re-arm.
    nic_.regs.eims.fetch_or(1u << kOtherVectorEntry, std::memory_order_seq_cst);
  }
}

bool Kernel::NapiSchedule() {
  uint32_t state = napi_state_.load(std::memory_order_seq_cst);
  do {
    if (state & (kNapiSched | kNapiDisable)) return false;
  } while (!napi_state_.compare_exchange_weak(state, state | kNapiSched));
  on_poll_list_ = true;
  return true;
}

void Kernel::NapiComplete(bool rearm) {
  on_poll_list_ = false;
  napi_state_.fetch_and(~kNapiSched, std::memory_order_seq_cst);
  if (rearm) {
    nic_.regs.eims.fetch_or(kQueueCauses, std::memory_order_seq_cst);
    DoorbellRing(machine_->layout().device_bell);  // MMIO write of EIMS
  }
}

bool Kernel::NetRxAction() {
  int64_t budget = options_.netdev_budget;
  const int64_t end_ns = MonotonicNanos() + 2000000;  // netdev_budget_usecs
  bool ran = false;
  while (on_poll_list_) {
    // The hook's RX gate: no poll of this device while it is closed.
    if (options_.hook && rx_gate_closed_.load(std::memory_order_seq_cst)) {
      node_.counters.gated_polls.fetch_add(1, std::memory_order_relaxed);
      NapiComplete(/*rearm=*/false);
      break;
    }
    ran = true;
    uint32_t work = Poll(options_.napi_weight);
    budget -= work;
    bool disable_pending = napi_state_.load(std::memory_order_seq_cst) & kNapiDisable;
    if (work < options_.napi_weight || disable_pending) {
      NapiComplete(/*rearm=*/!disable_pending);
      break;
    }
    if (budget <= 0 || MonotonicNanos() > end_ns) break;  // stay scheduled, yield
  }
  return ran;
}

uint32_t Kernel::Poll(uint32_t budget) {
  NodeCounters& counters = node_.counters;
  counters.napi_polls.fetch_add(1, std::memory_order_relaxed);
  if (state_.load(std::memory_order_seq_cst) != KernelHookState::kRunning) {
    counters.polls_while_quiesced.fetch_add(1, std::memory_order_relaxed);
  }
  const uint32_t mask = nic_.ring_size - 1;
  // TX completions (not counted against the budget, as in igb).
  uint32_t tx_clean = tx_next_to_clean_.load(std::memory_order_relaxed);
  const uint32_t tx_use = tx_next_to_use_.load(std::memory_order_acquire);
  uint64_t completed = 0;
  while (tx_clean != tx_use &&
         (nic_.tx_ring[tx_clean].status.load(std::memory_order_acquire) & kDescriptorDone)) {
    nic_.tx_ring[tx_clean].status.store(0, std::memory_order_relaxed);
    tx_clean = (tx_clean + 1) & mask;
    ++completed;
  }
  tx_next_to_clean_.store(tx_clean, std::memory_order_release);
  counters.tx_completed.fetch_add(completed, std::memory_order_relaxed);

  // RX descriptors, up to the budget.
  PacketQueue socket(machine_->layout().app_rx);
  uint32_t rx_clean = rx_next_to_clean_.load(std::memory_order_relaxed);
  uint32_t work = 0;
  uint64_t dropped = 0;
  while (work < budget &&
         (nic_.rx_ring[rx_clean].status.load(std::memory_order_acquire) & kDescriptorDone)) {
    std::optional<WirePacket> packet =
        ReadWireFrame(nic_.rx_buffers[rx_clean], nic_.rx_ring[rx_clean].length);
    if (!packet.has_value()) {
      ++dropped;  // no protocol handler for this ethertype
    } else {
      packet->node = static_cast<uint32_t>(node_index_);
      if (!socket.TryPush(*packet)) ++dropped;  // netif_receive_skb: socket full
    }
    nic_.rx_ring[rx_clean].status.store(0, std::memory_order_relaxed);
    rx_clean = (rx_clean + 1) & mask;
    ++work;
  }
  if (work > 0) {
    rx_next_to_clean_.store(rx_clean, std::memory_order_release);
    // Refill: every cleaned descriptor goes back to the hardware.
    uint32_t rx_use = (rx_clean - 1) & mask;
    rx_next_to_use_.store(rx_use, std::memory_order_release);
    nic_.regs.rdt.store(rx_use, std::memory_order_release);
    DoorbellRing(machine_->layout().device_bell);
    DoorbellRing(machine_->layout().sink_bell);
    counters.rx_delivered.fetch_add(work - dropped, std::memory_order_relaxed);
    counters.rx_socket_drops.fetch_add(dropped, std::memory_order_relaxed);
  }
  uint64_t max_work = counters.max_poll_work.load(std::memory_order_relaxed);
  if (work > max_work) counters.max_poll_work.store(work, std::memory_order_relaxed);
  return work;
}

bool Kernel::DevQueueXmit() {
  if (state_.load(std::memory_order_acquire) == KernelHookState::kDetached) return false;
  PacketQueue socket(machine_->layout().app_tx);
  if (!socket.Peek().has_value()) return false;
  const uint32_t mask = nic_.ring_size - 1;
  std::lock_guard<std::mutex> lock(xmit_mu_);
  uint32_t sent = 0;
  uint32_t use = tx_next_to_use_.load(std::memory_order_relaxed);
  const MacAddress nic_mac = machine_->nic_mac();
  while (sent < options_.xmit_batch) {
    std::optional<WirePacket> packet = socket.Peek();
    if (!packet.has_value()) break;
    // dev_hard_start_xmit: the hook's TX gate. A held packet stays queued.
    if (options_.hook && tx_gate_closed_.load(std::memory_order_seq_cst)) {
      node_.counters.held_xmits.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    // Driver xmit. Ring full: the queue stops until TX completions free room.
    if (((use + 1) & mask) == tx_next_to_clean_.load(std::memory_order_acquire)) break;
    packet->node = static_cast<uint32_t>(node_index_);
    nic_.tx_ring[use].length = WriteWireFrame(kWirePeerMac, nic_mac, *packet, nic_.tx_buffers[use]);
    nic_.tx_ring[use].status.store(0, std::memory_order_relaxed);
    use = (use + 1) & mask;
    socket.Pop();
    ++sent;
  }
  if (sent == 0) return false;
  tx_next_to_use_.store(use, std::memory_order_release);
  nic_.regs.tdt.store(use, std::memory_order_release);  // one tail write per batch
  DoorbellRing(machine_->layout().device_bell);
  node_.counters.driver_xmits.fetch_add(sent, std::memory_order_relaxed);
  return true;
}

// --- Driver setup ----------------------------------------------------------

RingState Kernel::CurrentRings() const {
  RingState rings;
  rings.rx_next_to_clean = rx_next_to_clean_.load();
  rings.rx_next_to_use = rx_next_to_use_.load();
  rings.tx_next_to_clean = tx_next_to_clean_.load();
  rings.tx_next_to_use = tx_next_to_use_.load();
  return rings;
}

absl::Status Kernel::SetEntriesMasked(bool masked) {
  absl::StatusOr<pci::MsixCapability> cap = pci::ReadMsixCapability(config_, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(bars_, *cap, i);
    if (!entry.ok()) return entry.status();
    uint32_t control = masked ? (entry->vector_control | pci::kMsixVectorControlMask)
                              : (entry->vector_control & ~pci::kMsixVectorControlMask);
    if (absl::Status s = pci::WriteMsixVectorControl(bars_, *cap, i, control); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Kernel::CheckRoutedHere(const std::vector<uint8_t>& vectors) {
  absl::StatusOr<pci::MsixCapability> cap = pci::ReadMsixCapability(config_, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  if (vectors.size() != cap->table_size()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s holds %d vectors for %s, the device has %d", options_.node_id, vectors.size(),
        nic_.bdf, cap->table_size()));
  }
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(bars_, *cap, i);
    if (!entry.ok()) return entry.status();
    pci::X86MsiMessage message = pci::DecodeX86Msi(entry->address(), entry->data);
    bool here = message.IsInterruptAddress() && !message.remappable &&
                machine_->NodeOfApicId(message.destination_apic_id) == node_index_ &&
                message.vector == vectors[i];
    if (!here) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "MSI-X entry %d of %s routes to %s, not to %s's vector 0x%02x", i, nic_.bdf,
          pci::DescribeX86Msi(message), options_.node_id, vectors[i]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Kernel::TableHolds(const std::vector<pci::RawMsiMessage>& messages) {
  absl::StatusOr<pci::MsixCapability> cap = pci::ReadMsixCapability(config_, kMsixCapabilityOffset);
  if (!cap.ok()) return cap.status();
  if (messages.size() != cap->table_size()) return false;
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(bars_, *cap, i);
    if (!entry.ok()) return entry.status();
    if (entry->address() != messages[i].address || entry->data != messages[i].data) return false;
  }
  return true;
}

void Kernel::StartRunning() {
  napi_state_.store(0, std::memory_order_seq_cst);  // napi_enable
  rx_gate_closed_.store(false, std::memory_order_seq_cst);
  tx_gate_closed_.store(false, std::memory_order_seq_cst);
  state_.store(KernelHookState::kRunning, std::memory_order_seq_cst);
  nic_.running_node.store(node_index_, std::memory_order_seq_cst);
  nic_.regs.eims.fetch_or(kAllCauses, std::memory_order_seq_cst);
  // Replay: poll once for whatever the ring collected while nobody ran it.
  kick_.store(true, std::memory_order_seq_cst);
  DoorbellRing(node_.bell);
  DoorbellRing(machine_->layout().device_bell);
}

void Kernel::FreeVectors(std::vector<uint8_t>& vectors) {
  for (uint8_t vector : vectors) {
    UnregisterVector(node_, vector);
    handler_entry_[vector].store(-1, std::memory_order_release);
  }
  vectors.clear();
}

absl::Status Kernel::Probe() {
  // igb_probe + igb_open, reduced: vectors, MSI-X table, rings, enable.
  absl::StatusOr<std::vector<pci::RawMsiMessage>> messages;
  {
    // ReserveVectors takes control_mu_ itself; Boot holds it, so inline.
    std::vector<uint8_t> vectors;
    for (uint32_t v = options_.first_vector; v <= options_.last_vector &&
                                             vectors.size() < kMsixTableEntries;
         ++v) {
      vectors.push_back(static_cast<uint8_t>(v));
    }
    if (vectors.size() < kMsixTableEntries) {
      return absl::ResourceExhaustedError("not enough vectors to probe the NIC");
    }
    absl::StatusOr<pci::MsixCapability> cap =
        pci::ReadMsixCapability(config_, kMsixCapabilityOffset);
    if (!cap.ok()) return cap.status();
    for (uint32_t i = 0; i < kMsixTableEntries; ++i) {
      uint32_t apic = node_.apic_ids[i % node_.apic_count];
      absl::StatusOr<pci::RawMsiMessage> message = pci::ComposeFixedX86Msi(apic, vectors[i]);
      if (!message.ok()) return message.status();
      handler_entry_[vectors[i]].store(static_cast<int16_t>(i));
      RegisterVector(node_, vectors[i]);
      if (absl::Status s = pci::WriteMsixMessage(bars_, *cap, i, message->address, message->data);
          !s.ok()) {
        return s;
      }
    }
    active_vectors_ = vectors;
    if (absl::Status s = config_.Write16(kMsixCapabilityOffset + 2,
                                         pci::kMsixControlEnable | (kMsixTableEntries - 1));
        !s.ok()) {
      return s;
    }
  }
  const uint32_t size = nic_.ring_size;
  for (uint32_t i = 0; i < size; ++i) {
    nic_.rx_ring[i].status.store(0);
    nic_.tx_ring[i].status.store(0);
  }
  nic_.regs.rdh.store(0);
  nic_.regs.tdh.store(0);
  nic_.regs.tdt.store(0);
  nic_.regs.rdt.store(size - 1);
  rx_next_to_clean_.store(0);
  rx_next_to_use_.store(size - 1);
  tx_next_to_clean_.store(0);
  tx_next_to_use_.store(0);
  nic_.regs.ctrl.store(kCtrlRxEnable | kCtrlTxEnable);
  nic_.initialized.store(1);
  if (absl::Status s = SetEntriesMasked(false); !s.ok()) return s;
  StartRunning();
  NH_LOG(INFO) << options_.node_id << ": probed " << nic_.bdf << " (ring " << size
               << ", vectors " << absl::StrJoin(active_vectors_, ",") << ")";
  return absl::OkStatus();
}

void Kernel::Adopt() {
  // This node owns a NIC that was running before the kernel (re)started:
  // take the vectors the table routes here and continue from the registers.
  // Packets the previous kernel had taken but not delivered are lost with it.
  absl::StatusOr<pci::MsixCapability> cap = pci::ReadMsixCapability(config_, kMsixCapabilityOffset);
  if (!cap.ok()) return;
  std::vector<uint8_t> vectors;
  for (uint32_t i = 0; i < cap->table_size(); ++i) {
    absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(bars_, *cap, i);
    if (!entry.ok()) return;
    pci::X86MsiMessage message = pci::DecodeX86Msi(entry->address(), entry->data);
    if (machine_->NodeOfApicId(message.destination_apic_id) != node_index_) {
      NH_LOG(WARNING) << options_.node_id << ": owns " << nic_.bdf << " but entry " << i
                      << " routes elsewhere; staying detached";
      return;
    }
    vectors.push_back(message.vector);
  }
  for (uint32_t i = 0; i < vectors.size(); ++i) {
    handler_entry_[vectors[i]].store(static_cast<int16_t>(i));
    RegisterVector(node_, vectors[i]);
  }
  active_vectors_ = vectors;
  const uint32_t mask = nic_.ring_size - 1;
  uint32_t rdt = nic_.regs.rdt.load();
  rx_next_to_use_.store(rdt);
  rx_next_to_clean_.store((rdt + 1) & mask);
  tx_next_to_use_.store(nic_.regs.tdt.load());
  tx_next_to_clean_.store(nic_.regs.tdh.load());
  (void)SetEntriesMasked(false);
  StartRunning();
  NH_LOG(INFO) << options_.node_id << ": adopted running " << nic_.bdf;
}

// --- Hook operations -------------------------------------------------------

absl::Status Kernel::CheckOperation(const char* operation, const std::string& bdf,
                                    const Fence& fence) {
  if (!options_.hook) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s's kernel runs without the hook (--hook off)", options_.node_id));
  }
  if (bdf != nic_.bdf) {
    return absl::NotFoundError(absl::StrFormat("%s has no NIC %s", options_.node_id, bdf));
  }
  if (absl::Status s = CheckFence(
          highest_, fence, absl::StrFormat("%s of %s on %s", operation, bdf, options_.node_id));
      !s.ok()) {
    return s;
  }
  highest_ = fence;
  return absl::OkStatus();
}

absl::Status Kernel::NapiDisable(absl::Time deadline) {
  napi_state_.fetch_or(kNapiDisable, std::memory_order_seq_cst);
  DoorbellRing(node_.bell);  // a scheduled poll sees the disable and completes
  for (;;) {
    uint32_t state = napi_state_.load(std::memory_order_seq_cst);
    if (!(state & kNapiSched) &&
        napi_state_.compare_exchange_strong(state, state | kNapiSched)) {
      return absl::OkStatus();
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("napi_disable: a poll did not finish in time");
    }
    absl::SleepFor(kWaitStep);
  }
}

absl::StatusOr<QuiesceOutcome> Kernel::Quiesce(const std::string& bdf, const Fence& fence,
                                               absl::Duration timeout) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("quiesce", bdf, fence); !s.ok()) return s;
  KernelHookState state = state_.load();
  if (state == KernelHookState::kQuiesced) return last_quiesce_;
  if (state == KernelHookState::kDetached) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s does not run %s", options_.node_id, bdf));
  }
  const absl::Time deadline = absl::Now() + timeout;
  NodeCounters& counters = node_.counters;
  const uint64_t tx_before = counters.tx_completed.load();
  const uint64_t rx_before = counters.rx_delivered.load() + counters.rx_socket_drops.load();
  const uint64_t held_before = counters.held_xmits.load();
  const uint64_t bad_polls_before = counters.polls_while_quiesced.load();

  // 1. netif_tx_disable: close the gate, wait out an xmit in progress.
  tx_gate_closed_.store(true, std::memory_order_seq_cst);
  { std::lock_guard<std::mutex> xmit(xmit_mu_); }
  // 2. TX completions to zero; NAPI still runs to clean them.
  absl::Status drained = absl::OkStatus();
  while (tx_next_to_clean_.load() != tx_next_to_use_.load()) {
    if (absl::Now() > deadline) {
      drained = absl::DeadlineExceededError(absl::StrFormat(
          "%d TX descriptors still in flight", (tx_next_to_use_.load() - tx_next_to_clean_.load()) &
                                                   (nic_.ring_size - 1)));
      break;
    }
    absl::SleepFor(kWaitStep);
  }
  // 3. Let NAPI drain what the device had written when the gate closed.
  const uint32_t rx_target = nic_.regs.rdh.load(std::memory_order_acquire);
  while (drained.ok() && rx_next_to_clean_.load() != rx_target) {
    if (absl::Now() > deadline) {
      drained = absl::DeadlineExceededError("RX drain did not finish");
      break;
    }
    absl::SleepFor(kWaitStep);
  }
  // 4. The RX gate and napi_disable; 5. mask the vectors. Done even after a
  // timeout: the interface promises the gates stay closed.
  rx_gate_closed_.store(true, std::memory_order_seq_cst);
  absl::Status napi = NapiDisable(drained.ok() ? deadline : absl::Now() + absl::Milliseconds(100));
  absl::Status masked = SetEntriesMasked(true);
  state_.store(KernelHookState::kQuiesced, std::memory_order_seq_cst);
  int32_t me = node_index_;
  nic_.running_node.compare_exchange_strong(me, -1);
  if (!drained.ok()) return drained;
  if (!napi.ok()) return napi;
  if (!masked.ok()) return masked;

  QuiesceOutcome outcome;
  outcome.drained_tx_packets = counters.tx_completed.load() - tx_before;
  outcome.drained_rx_packets =
      counters.rx_delivered.load() + counters.rx_socket_drops.load() - rx_before;
  outcome.held_xmits = counters.held_xmits.load() - held_before;
  outcome.polls_while_quiesced = counters.polls_while_quiesced.load() - bad_polls_before;
  outcome.rings = CurrentRings();
  last_quiesce_ = outcome;
  return outcome;
}

absl::Status Kernel::Resume(const std::string& bdf, const Fence& fence) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("resume", bdf, fence); !s.ok()) return s;
  KernelHookState state = state_.load();
  if (state == KernelHookState::kRunning) return absl::OkStatus();
  if (state == KernelHookState::kDetached) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s released %s: it can only Attach it again", options_.node_id, bdf));
  }
  if (absl::Status s = CheckRoutedHere(active_vectors_); !s.ok()) return s;
  if (absl::Status s = SetEntriesMasked(false); !s.ok()) return s;
  StartRunning();
  return absl::OkStatus();
}

absl::Status Kernel::Attach(const std::string& bdf, const Fence& fence, const RingState& rings) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("attach", bdf, fence); !s.ok()) return s;
  KernelHookState state = state_.load();
  if (state == KernelHookState::kRunning) return absl::OkStatus();  // a retried Attach
  if (state == KernelHookState::kQuiesced) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has %s quiesced: Resume it, or Release it first", options_.node_id, bdf));
  }
  const uint32_t mask = nic_.ring_size - 1;
  uint32_t tdt = nic_.regs.tdt.load() & mask;
  uint32_t rdt = nic_.regs.rdt.load() & mask;
  if (rings.rx_next_to_clean > mask || rings.tx_next_to_clean > mask ||
      rings.tx_next_to_use != tdt || rings.rx_next_to_use != rdt) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "ring state rx %d/%d tx %d/%d does not match the device (RDT %d, TDT %d)",
        rings.rx_next_to_clean, rings.rx_next_to_use, rings.tx_next_to_clean,
        rings.tx_next_to_use, rdt, tdt));
  }
  if (!nic_.initialized.load()) {
    return absl::FailedPreconditionError(absl::StrFormat("%s was never probed", bdf));
  }
  std::vector<uint8_t> vectors = reserved_vectors_;
  if (vectors.empty()) vectors = active_vectors_;
  if (absl::Status s = CheckRoutedHere(vectors); !s.ok()) return s;
  active_vectors_ = vectors;
  reserved_vectors_.clear();
  rx_next_to_clean_.store(rings.rx_next_to_clean);
  rx_next_to_use_.store(rings.rx_next_to_use);
  tx_next_to_clean_.store(rings.tx_next_to_clean);
  tx_next_to_use_.store(rings.tx_next_to_use);
  if (absl::Status s = SetEntriesMasked(false); !s.ok()) return s;  // replays pending
  StartRunning();
  return absl::OkStatus();
}

absl::Status Kernel::Release(const std::string& bdf, const Fence& fence) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("release", bdf, fence); !s.ok()) return s;
  KernelHookState state = state_.load();
  if (state == KernelHookState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s runs %s: quiesce it before releasing", options_.node_id, bdf));
  }
  FreeVectors(active_vectors_);
  state_.store(KernelHookState::kDetached, std::memory_order_seq_cst);
  return absl::OkStatus();
}

absl::StatusOr<KernelStatus> Kernel::Status(const std::string& bdf) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (bdf != nic_.bdf) {
    return absl::NotFoundError(absl::StrFormat("%s has no NIC %s", options_.node_id, bdf));
  }
  KernelStatus status;
  status.state = state_.load();
  status.epoch = highest_.epoch;
  status.held_xmits = node_.counters.held_xmits.load();
  status.polls_while_quiesced = node_.counters.polls_while_quiesced.load();
  status.drained_tx_packets = last_quiesce_.drained_tx_packets;
  status.rings = CurrentRings();
  status.active_vectors = active_vectors_;
  status.reserved_vectors = reserved_vectors_;
  return status;
}

absl::StatusOr<std::vector<pci::RawMsiMessage>> Kernel::ReserveVectors(const std::string& bdf,
                                                                       const Fence& fence,
                                                                       uint32_t count) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("reserve", bdf, fence); !s.ok()) return s;
  if (state_.load() != KernelHookState::kDetached) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s already runs %s", options_.node_id, bdf));
  }
  if (count == 0 || count > kMsixTableEntries) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot reserve %d vectors", count));
  }
  if (reserved_epoch_ != fence.epoch || reserved_vectors_.size() != count) {
    FreeVectors(reserved_vectors_);
    std::vector<uint8_t> vectors;
    for (uint32_t v = options_.first_vector; v <= options_.last_vector && vectors.size() < count;
         ++v) {
      if (!IsVectorRegistered(node_, static_cast<uint8_t>(v))) {
        vectors.push_back(static_cast<uint8_t>(v));
      }
    }
    if (vectors.size() < count) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s has %d free vectors in 0x%02x..0x%02x, %d needed", options_.node_id, vectors.size(),
          options_.first_vector, options_.last_vector, count));
    }
    for (uint32_t i = 0; i < count; ++i) {
      handler_entry_[vectors[i]].store(static_cast<int16_t>(i));
      RegisterVector(node_, vectors[i]);  // request_irq
    }
    reserved_vectors_ = vectors;
    reserved_epoch_ = fence.epoch;
  }
  std::vector<pci::RawMsiMessage> messages;
  for (uint32_t i = 0; i < reserved_vectors_.size(); ++i) {
    absl::StatusOr<pci::RawMsiMessage> message =
        pci::ComposeFixedX86Msi(node_.apic_ids[i % node_.apic_count], reserved_vectors_[i]);
    if (!message.ok()) return message.status();
    messages.push_back(*message);
  }
  return messages;
}

absl::Status Kernel::ReleaseVectors(const std::string& bdf, const Fence& fence) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("release reservation", bdf, fence); !s.ok()) return s;
  FreeVectors(reserved_vectors_);
  reserved_epoch_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pci::RawMsiMessage>> Kernel::Reroute(
    const std::string& bdf, const Fence& fence, const std::vector<pci::RawMsiMessage>& target) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("reroute", bdf, fence); !s.ok()) return s;
  if (state_.load() != KernelHookState::kQuiesced) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %s must be quiesced here before its interrupts move", options_.node_id, bdf));
  }
  pci::ApplyOutcome outcome;
  absl::StatusOr<pci::ReroutePlan> plan = pci::Reroute(config_, &bars_, target, &outcome);
  if (!plan.ok()) return plan.status();
  return plan->previous;
}

absl::Status Kernel::Restore(const std::string& bdf, const Fence& fence,
                             const std::vector<pci::RawMsiMessage>& previous) {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (absl::Status s = CheckOperation("restore", bdf, fence); !s.ok()) return s;
  if (state_.load() != KernelHookState::kQuiesced) {
    // A source daemon that crashed before its Quiesce ran restores on
    // recovery without knowing (docs/protocol.md, "Known limits"): on a
    // running NIC whose table still holds `previous` that is a no-op.
    // Rewriting a live NIC's routing is refused.
    absl::StatusOr<bool> unchanged = TableHolds(previous);
    if (!unchanged.ok()) return unchanged.status();
    if (state_.load() == KernelHookState::kRunning && *unchanged) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: %s must be quiesced here to restore its interrupts", options_.node_id, bdf));
  }
  pci::ApplyOutcome outcome;
  absl::StatusOr<pci::ReroutePlan> plan = pci::Reroute(config_, &bars_, previous, &outcome);
  return plan.status();
}

}  // namespace sim
}  // namespace nichandover
