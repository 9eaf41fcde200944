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

bool Device::ReceiveFromWire(int index) {
  NicState& nic = machine_.nic(index);
  PacketQueue wire(machine_.wire_in(index));
  const uint32_t mask = nic.ring_size - 1;
  const uint32_t queues = nic.queue_count;
  const MacAddress nic_mac = machine_.nic_mac(index);
  uint32_t received_causes = 0;
  uint32_t taken = 0;
  while (taken < kMaxBatch) {
    std::optional<WirePacket> packet = wire.TryPop();
    if (!packet.has_value()) break;
    ++taken;
    const uint32_t queue = packet->flow % queues;  // RSS
    RingRegisters& ring = nic.regs.ring(queue);
    QueueStatistics& stats = nic.regs.queue_stats[queue];
    // Per packet: a driver may enable RX (and set RDT) while this pass runs.
    bool rx_enabled = nic.regs.ctrl.load(std::memory_order_acquire) & kCtrlRxEnable;
    uint32_t head = ring.rdh.load(std::memory_order_relaxed);
    uint32_t tail = ring.rdt.load(std::memory_order_acquire);
    if (!rx_enabled || head == (tail & mask)) {  // disabled, or no free descriptor
      nic.regs.rx_missed.fetch_add(1, std::memory_order_relaxed);
      stats.rx_missed.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    QueueRings rings = machine_.rings(index, queue);
    rings.rx_ring[head].length = WriteWireFrame(nic_mac, kWirePeerMac, *packet, rings.rx_buffers[head]);
    rings.rx_ring[head].status.store(kDescriptorDone, std::memory_order_release);
    ring.rdh.store((head + 1) & mask, std::memory_order_release);
    nic.regs.rx_packets.fetch_add(1, std::memory_order_relaxed);
    stats.rx_packets.fetch_add(1, std::memory_order_relaxed);
    received_causes |= 1u << QueueVectorEntry(queue);
  }
  if (received_causes != 0) nic.regs.eicr.fetch_or(received_causes, std::memory_order_seq_cst);
  return taken > 0;
}

bool Device::TransmitToWire(int index) {
  NicState& nic = machine_.nic(index);
  if (!(nic.regs.ctrl.load(std::memory_order_acquire) & kCtrlTxEnable)) return false;
  PacketQueue wire(machine_.wire_out(index));
  const uint32_t mask = nic.ring_size - 1;
  uint32_t sent_total = 0;
  for (uint32_t queue = 0; queue < nic.queue_count; ++queue) {
    RingRegisters& ring = nic.regs.ring(queue);
    QueueRings rings = machine_.rings(index, queue);
    uint32_t head = ring.tdh.load(std::memory_order_relaxed);
    uint32_t sent = 0;
    while (sent < kMaxBatch) {
      uint32_t tail = ring.tdt.load(std::memory_order_acquire) & mask;
      if (head == tail) break;
      // The length is the driver's (a guest's): ReadWireFrame bounds it.
      std::optional<WirePacket> packet =
          ReadWireFrame(rings.tx_buffers[head], rings.tx_ring[head].length);
      if (!packet.has_value()) {
        // Not the peer's protocol (e.g. a guest's IPv6 neighbour discovery).
        nic.regs.tx_foreign_frames.fetch_add(1, std::memory_order_relaxed);
      } else if (!wire.TryPush(*packet)) {
        break;  // flow control: retry on the next pass
      }
      rings.tx_ring[head].status.store(kDescriptorDone, std::memory_order_release);
      head = (head + 1) & mask;
      ring.tdh.store(head, std::memory_order_release);
      nic.regs.tx_packets.fetch_add(1, std::memory_order_relaxed);
      nic.regs.queue_stats[queue].tx_packets.fetch_add(1, std::memory_order_relaxed);
      ++sent;
    }
    if (sent > 0) {
      nic.regs.eicr.fetch_or(1u << QueueVectorEntry(queue), std::memory_order_seq_cst);
    }
    sent_total += sent;
  }
  if (sent_total > 0) DoorbellRing(machine_.layout().sink_bell);
  return sent_total > 0;
}

void Device::RaiseCauses(NicState& nic) {
  for (;;) {
    uint32_t fire = nic.regs.eicr.load(std::memory_order_seq_cst) &
                    nic.regs.eims.load(std::memory_order_seq_cst);
    if (fire == 0) return;
    uint32_t entry = static_cast<uint32_t>(__builtin_ctz(fire));
    uint32_t bit = 1u << entry;
    nic.regs.eims.fetch_and(~bit, std::memory_order_seq_cst);  // EIAM auto-mask
    nic.regs.eicr.fetch_and(~bit, std::memory_order_seq_cst);
    Signal(nic, entry);
  }
}

namespace {

bool EntryMasked(const NicState& nic, uint32_t entry) {
  return nic.msix_bar[TableWord(entry, 3)].load(std::memory_order_seq_cst) &
         pci::kMsixVectorControlMask;
}

bool Pending(const NicState& nic, uint32_t entry) {
  uint32_t word = (kMsixPbaOffset / 4) + entry / 32;
  return (nic.msix_bar[word].load(std::memory_order_seq_cst) >> (entry % 32)) & 1;
}

void SetPending(NicState& nic, uint32_t entry, bool pending) {
  std::atomic<uint32_t>& word = nic.msix_bar[(kMsixPbaOffset / 4) + entry / 32];
  if (pending) {
    word.fetch_or(1u << (entry % 32), std::memory_order_seq_cst);
  } else {
    word.fetch_and(~(1u << (entry % 32)), std::memory_order_seq_cst);
  }
}

}  // namespace

void Device::Send(NicState& nic, uint32_t entry) {
  uint64_t address = nic.msix_bar[TableWord(entry, 0)].load(std::memory_order_seq_cst) |
                     static_cast<uint64_t>(
                         nic.msix_bar[TableWord(entry, 1)].load(std::memory_order_seq_cst))
                         << 32;
  uint32_t data = nic.msix_bar[TableWord(entry, 2)].load(std::memory_order_seq_cst);
  nic.regs.msi_sent.fetch_add(1, std::memory_order_relaxed);
  fabric_.Deliver(address, data);
}

void Device::Signal(NicState& nic, uint32_t entry) {
  uint16_t control = ReadMsixControl(nic);
  if (!(control & pci::kMsixControlEnable)) {
    // Would assert INTx, which no node's kernel here listens to.
    nic.regs.msi_disabled.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if ((control & pci::kMsixControlFunctionMask) || EntryMasked(nic, entry)) {
    SetPending(nic, entry, true);
    nic.regs.msi_pended.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Send(nic, entry);
}

bool Device::ReplayPending(NicState& nic) {
  uint16_t control = ReadMsixControl(nic);
  if (!(control & pci::kMsixControlEnable) || (control & pci::kMsixControlFunctionMask)) {
    return false;
  }
  bool replayed = false;
  for (uint32_t entry = 0; entry < kMsixTableEntries; ++entry) {
    if (!Pending(nic, entry) || EntryMasked(nic, entry)) continue;
    SetPending(nic, entry, false);
    nic.regs.msi_replayed.fetch_add(1, std::memory_order_relaxed);
    Send(nic, entry);
    replayed = true;
  }
  return replayed;
}

bool Device::RunOnce() {
  bool work = false;
  for (int i = 0; i < machine_.nic_count(); ++i) {
    NicState& nic = machine_.nic(i);
    work |= ReceiveFromWire(i);
    work |= TransmitToWire(i);
    RaiseCauses(nic);
    work |= ReplayPending(nic);
  }
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
