#include "sim/device.h"

#include <cstring>

#include "pci/msi.h"
#include "sim/config_space_image.h"
#include "sim/doorbell.h"
#include "sim/ethernet.h"
#include "sim/packet_queue.h"

namespace nichandover {
namespace sim {
namespace {

constexpr uint32_t kMaxBatch = 256;

uint32_t TableWord(uint32_t entry, uint32_t word) {
  return (kMsixTableOffset + entry * pci::kMsixEntrySize) / 4 + word;
}

}  // namespace

bool Device::ReceiveFromWire() {
  PacketQueue wire(machine_.layout().wire_in);
  const uint32_t mask = nic_.ring_size - 1;
  uint32_t head = nic_.regs.rdh.load(std::memory_order_relaxed);
  const MacAddress nic_mac = machine_.nic_mac();
  uint32_t received = 0;
  uint32_t taken = 0;
  while (taken < kMaxBatch) {
    std::optional<WirePacket> packet = wire.TryPop();
    if (!packet.has_value()) break;
    ++taken;
    // Per packet: a driver may enable RX (and set RDT) while this pass runs.
    bool rx_enabled = nic_.regs.ctrl.load(std::memory_order_acquire) & kCtrlRxEnable;
    uint32_t tail = nic_.regs.rdt.load(std::memory_order_acquire);
    if (!rx_enabled || head == (tail & mask)) {  // disabled, or no free descriptor
      nic_.regs.rx_missed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    nic_.rx_ring[head].length = WriteWireFrame(nic_mac, kWirePeerMac, *packet, nic_.rx_buffers[head]);
    nic_.rx_ring[head].status.store(kDescriptorDone, std::memory_order_release);
    head = (head + 1) & mask;
    nic_.regs.rdh.store(head, std::memory_order_release);
    nic_.regs.rx_packets.fetch_add(1, std::memory_order_relaxed);
    ++received;
  }
  if (received > 0) nic_.regs.eicr.fetch_or(1u << kQueueVectorEntry, std::memory_order_seq_cst);
  return taken > 0;
}

bool Device::TransmitToWire() {
  if (!(nic_.regs.ctrl.load(std::memory_order_acquire) & kCtrlTxEnable)) return false;
  PacketQueue wire(machine_.layout().wire_out);
  const uint32_t mask = nic_.ring_size - 1;
  uint32_t head = nic_.regs.tdh.load(std::memory_order_relaxed);
  uint32_t sent = 0;
  while (sent < kMaxBatch) {
    uint32_t tail = nic_.regs.tdt.load(std::memory_order_acquire) & mask;
    if (head == tail) break;
    // The length is the driver's (a guest's): ReadWireFrame bounds it.
    std::optional<WirePacket> packet =
        ReadWireFrame(nic_.tx_buffers[head], nic_.tx_ring[head].length);
    if (!packet.has_value()) {
      // Not the peer's protocol (e.g. a guest's IPv6 neighbour discovery).
      nic_.regs.tx_foreign_frames.fetch_add(1, std::memory_order_relaxed);
    } else if (!wire.TryPush(*packet)) {
      break;  // flow control: retry on the next pass
    }
    nic_.tx_ring[head].status.store(kDescriptorDone, std::memory_order_release);
    head = (head + 1) & mask;
    nic_.regs.tdh.store(head, std::memory_order_release);
    nic_.regs.tx_packets.fetch_add(1, std::memory_order_relaxed);
    ++sent;
  }
  if (sent > 0) {
    DoorbellRing(machine_.layout().sink_bell);
    nic_.regs.eicr.fetch_or(1u << kQueueVectorEntry, std::memory_order_seq_cst);
  }
  return sent > 0;
}

void Device::RaiseCauses() {
  for (;;) {
    uint32_t fire = nic_.regs.eicr.load(std::memory_order_seq_cst) &
                    nic_.regs.eims.load(std::memory_order_seq_cst);
    if (fire == 0) return;
    uint32_t entry = static_cast<uint32_t>(__builtin_ctz(fire));
    uint32_t bit = 1u << entry;
    nic_.regs.eims.fetch_and(~bit, std::memory_order_seq_cst);  // EIAM auto-mask
    nic_.regs.eicr.fetch_and(~bit, std::memory_order_seq_cst);
    Signal(entry);
  }
}

bool Device::EntryMasked(uint32_t entry) const {
  return nic_.msix_bar[TableWord(entry, 3)].load(std::memory_order_seq_cst) &
         pci::kMsixVectorControlMask;
}

bool Device::Pending(uint32_t entry) const {
  uint32_t word = (kMsixPbaOffset / 4) + entry / 32;
  return (nic_.msix_bar[word].load(std::memory_order_seq_cst) >> (entry % 32)) & 1;
}

void Device::SetPending(uint32_t entry, bool pending) {
  std::atomic<uint32_t>& word = nic_.msix_bar[(kMsixPbaOffset / 4) + entry / 32];
  if (pending) {
    word.fetch_or(1u << (entry % 32), std::memory_order_seq_cst);
  } else {
    word.fetch_and(~(1u << (entry % 32)), std::memory_order_seq_cst);
  }
}

void Device::Send(uint32_t entry) {
  uint64_t address = nic_.msix_bar[TableWord(entry, 0)].load(std::memory_order_seq_cst) |
                     static_cast<uint64_t>(
                         nic_.msix_bar[TableWord(entry, 1)].load(std::memory_order_seq_cst))
                         << 32;
  uint32_t data = nic_.msix_bar[TableWord(entry, 2)].load(std::memory_order_seq_cst);
  nic_.regs.msi_sent.fetch_add(1, std::memory_order_relaxed);
  fabric_.Deliver(address, data);
}

void Device::Signal(uint32_t entry) {
  uint16_t control = ReadMsixControl(nic_);
  if (!(control & pci::kMsixControlEnable)) {
    // Would assert INTx, which no node's kernel here listens to.
    nic_.regs.msi_disabled.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if ((control & pci::kMsixControlFunctionMask) || EntryMasked(entry)) {
    SetPending(entry, true);
    nic_.regs.msi_pended.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Send(entry);
}

bool Device::ReplayPending() {
  uint16_t control = ReadMsixControl(nic_);
  if (!(control & pci::kMsixControlEnable) || (control & pci::kMsixControlFunctionMask)) {
    return false;
  }
  bool replayed = false;
  for (uint32_t entry = 0; entry < kMsixTableEntries; ++entry) {
    if (!Pending(entry) || EntryMasked(entry)) continue;
    SetPending(entry, false);
    nic_.regs.msi_replayed.fetch_add(1, std::memory_order_relaxed);
    Send(entry);
    replayed = true;
  }
  return replayed;
}

bool Device::RunOnce() {
  bool work = ReceiveFromWire();
  work |= TransmitToWire();
  RaiseCauses();
  work |= ReplayPending();
  return work;
}

void Device::Run(const std::atomic<bool>& stop, absl::Duration idle_wait) {
  Doorbell& bell = machine_.layout().device_bell;
  while (!stop.load(std::memory_order_relaxed)) {
    uint32_t snapshot = DoorbellSnapshot(bell);
    if (!RunOnce()) DoorbellWait(bell, snapshot, idle_wait);
  }
}

}  // namespace sim
}  // namespace nichandover
