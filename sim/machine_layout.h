// The simulated multi-OS machine's shared memory: one fixed layout, mapped
// MAP_SHARED by every process of the machine (the device, each node's
// simulated kernel, the traffic generator/sink and the daemons' sim platform
// backend). docs/simulator.md draws it.
//
// Everything that two processes touch concurrently is a lock-free
// std::atomic (address-free on x86-64, so it works across mappings); plain
// fields are written once when the machine is created. The layout is
// versioned: a process refuses a file whose magic, version or size differ.
#ifndef NICHANDOVER_SIM_MACHINE_LAYOUT_H_
#define NICHANDOVER_SIM_MACHINE_LAYOUT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace nichandover {
namespace sim {

static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared atomics must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "shared atomics must be lock-free");

inline constexpr uint64_t kMachineMagic = 0x3148434d53484e4eULL;  // "NNHSMCH1"
inline constexpr uint32_t kLayoutVersion = 2;

inline constexpr int kMaxNodes = 8;
inline constexpr int kMaxApicIdsPerNode = 8;
inline constexpr int kNodeIdSize = 64;
inline constexpr int kNoNode = 0xff;

// Rings: power-of-two sizes up to this many descriptors.
inline constexpr uint32_t kMaxRingSize = 4096;
inline constexpr uint32_t kMinRingSize = 8;
inline constexpr uint32_t kPacketBufferSize = 64;
// Socket buffers and wire queues between the processes.
inline constexpr uint32_t kQueueCapacity = 16384;

// The NIC's config space (PCI Express: 4 KiB) and its MSI-X BAR, laid out as
// the Intel I210 this device copies (see config_space_image.h).
inline constexpr uint32_t kConfigSpaceSize = 4096;
inline constexpr int kMsixBar = 3;
inline constexpr uint32_t kMsixBarSize = 0x4000;
inline constexpr uint32_t kMsixTableOffset = 0x0;
inline constexpr uint32_t kMsixPbaOffset = 0x2000;
inline constexpr uint32_t kMsixTableEntries = 5;
// igb's vector assignment: entry 0 "other" (link), entry 1 queue 0 TxRx.
inline constexpr uint32_t kOtherVectorEntry = 0;
inline constexpr uint32_t kQueueVectorEntry = 1;

// A futex word with a sleeper count, so a producer only makes the wake system
// call when someone sleeps. See doorbell.h.
struct alignas(64) Doorbell {
  std::atomic<uint32_t> seq;
  std::atomic<uint32_t> sleepers;
};

// What travels on the wire and through the socket buffers: a sequence number
// per direction and who carried it. Copied byte-wise into packet buffers.
enum class Direction : uint32_t { kInbound = 0, kOutbound = 1 };
struct WirePacket {
  uint64_t seq = 0;
  int64_t sent_ns = 0;  // CLOCK_MONOTONIC at the generator
  Direction direction = Direction::kInbound;
  uint32_t node = kNoNode;  // index of the node whose kernel carried it
  uint64_t reserved = 0;
};
static_assert(sizeof(WirePacket) <= kPacketBufferSize, "a packet must fit a buffer");

// A single-producer single-consumer queue of packets (a socket buffer or the
// wire). Indexes only grow; slot = index % capacity.
struct PacketQueueStorage {
  alignas(64) std::atomic<uint64_t> head;  // consumer
  alignas(64) std::atomic<uint64_t> tail;  // producer
  WirePacket slots[kQueueCapacity];
};

// Legacy-style descriptors: buffer i belongs to descriptor i. The device sets
// DD (descriptor done) with release order after writing the buffer.
inline constexpr uint32_t kDescriptorDone = 0x1;
struct RxDescriptor {
  std::atomic<uint32_t> status;
  uint32_t length;
};
struct TxDescriptor {
  std::atomic<uint32_t> status;
  uint32_t length;
};

// The device's register file (BAR 0), e1000/igb style: the hardware owns RX
// descriptors [RDH, RDT) and TX descriptors [TDH, TDT).
inline constexpr uint32_t kCtrlRxEnable = 0x1;
inline constexpr uint32_t kCtrlTxEnable = 0x2;
struct DeviceRegisters {
  std::atomic<uint32_t> ctrl;
  std::atomic<uint32_t> rdh, rdt, tdh, tdt;
  // Extended interrupt mask (bit i = MSI-X entry i may fire) and causes. The
  // device clears an entry's EIMS bit when it fires it (EIAM auto-mask); the
  // driver sets it again when NAPI completes.
  std::atomic<uint32_t> eims;
  std::atomic<uint32_t> eicr;
  // Statistics registers.
  std::atomic<uint64_t> rx_packets;
  std::atomic<uint64_t> rx_missed;  // dropped: no free RX descriptor
  std::atomic<uint64_t> tx_packets;
  std::atomic<uint64_t> msi_sent;
  std::atomic<uint64_t> msi_pended;    // raised while masked: PBA bit set
  std::atomic<uint64_t> msi_replayed;  // pending bit delivered on unmask
  std::atomic<uint64_t> msi_disabled;  // raised while MSI-X was disabled
};

// Ownership record, packed in one word so a plain CAS decides:
//   bits 7:0 state, 15:8 owner/source node index, 23:16 target node index,
//   63:24 epoch.
struct OwnershipWord {
  std::atomic<uint64_t> word;
};

// Ring state written by the source beside the record before HANDOFF, under a
// sequence lock (odd = being written).
struct HandoffSlot {
  std::atomic<uint32_t> seq;
  std::atomic<uint64_t> epoch;
  std::atomic<uint32_t> count;
  std::atomic<uint32_t> rx_next_to_clean, rx_next_to_use, tx_next_to_clean, tx_next_to_use;
};

// Per-node data-path counters, written by that node's kernel (for tests,
// `nh-sim-machine show` and the benchmark).
struct NodeCounters {
  std::atomic<uint64_t> irqs_handled;
  std::atomic<uint64_t> napi_polls;
  std::atomic<uint64_t> max_poll_work;
  std::atomic<uint64_t> polls_while_quiesced;  // must stay 0
  std::atomic<uint64_t> gated_polls;           // held at net_rx_action's gate
  std::atomic<uint64_t> held_xmits;            // held at dev_hard_start_xmit's gate
  std::atomic<uint64_t> driver_xmits;          // reached the driver's xmit
  std::atomic<uint64_t> tx_completed;
  std::atomic<uint64_t> rx_delivered;
  std::atomic<uint64_t> rx_socket_drops;       // socket buffer full
};

// One OS node: its CPUs' APIC IDs and its local APICs, reduced to what the
// interrupt fabric needs.
struct NodeSlot {
  char node_id[kNodeIdSize];
  uint32_t apic_count;
  uint32_t apic_ids[kMaxApicIdsPerNode];
  Doorbell bell;                          // the node's CPU sleeps here
  std::atomic<uint64_t> irr[4];           // vectors requested, not yet handled
  std::atomic<uint64_t> registered[4];    // vectors with a handler (request_irq)
  std::atomic<uint64_t> delivered[256];   // per vector, like /proc/interrupts
  std::atomic<uint64_t> spurious;         // vector without a handler
  std::atomic<int32_t> kernel_pid;        // 0 when no kernel runs
  NodeCounters counters;
};

// The one NIC.
struct NicState {
  char bdf[16];
  uint32_t ring_size;
  std::atomic<uint32_t> initialized;   // a driver probed the device once
  std::atomic<int32_t> running_node;   // node index running the data path, or -1
  OwnershipWord ownership;
  HandoffSlot handoff;
  uint8_t config[kConfigSpaceSize];
  std::atomic<uint32_t> msix_bar[kMsixBarSize / 4];
  DeviceRegisters regs;
  RxDescriptor rx_ring[kMaxRingSize];
  TxDescriptor tx_ring[kMaxRingSize];
  uint8_t rx_buffers[kMaxRingSize][kPacketBufferSize];
  uint8_t tx_buffers[kMaxRingSize][kPacketBufferSize];
};

struct MachineLayout {
  uint64_t magic;
  uint32_t version;
  uint32_t node_count;
  uint64_t total_size;
  int64_t created_unix_ns;
  std::atomic<int32_t> device_pid;     // the device process, 0 when none
  // The traffic generator/sink, 0 when none: its queues have one reader, so
  // a second one would starve both.
  std::atomic<int32_t> traffic_pid;
  std::atomic<uint64_t> unroutable_msi;  // no node owns the APIC ID / not x86
  Doorbell device_bell;  // MMIO writes and wire arrivals wake the device
  Doorbell sink_bell;    // packets for the traffic sink
  NodeSlot nodes[kMaxNodes];
  NicState nic;
  PacketQueueStorage wire_in;   // generator -> device (RX side of the wire)
  PacketQueueStorage wire_out;  // device -> sink (TX side of the wire)
  PacketQueueStorage app_tx;    // generator -> running kernel (socket send buffer)
  PacketQueueStorage app_rx;    // running kernel -> sink (socket receive buffer)
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_MACHINE_LAYOUT_H_
