// The simulated multi-OS machine's shared memory: one fixed layout, mapped
// MAP_SHARED by every process of the machine (the device, each node's
// simulated kernel, the traffic generator/sink and the daemons' sim platform
// backend). docs/simulator.md draws it.
//
// Everything that two processes touch concurrently is a lock-free
// std::atomic (address-free on x86-64, so it works across mappings); plain
// fields are written once when the machine is created. The layout is
// versioned: a process refuses a file whose magic or version differ, or that
// is smaller than the layout. The file's size is the layout's rounded up to a
// power of two, because a QEMU guest maps it as an ivshmem BAR (guest_abi.h
// is the guest's view; the static_asserts below pin the two together).
#ifndef NICHANDOVER_SIM_MACHINE_LAYOUT_H_
#define NICHANDOVER_SIM_MACHINE_LAYOUT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sim/guest_abi.h"

namespace nichandover {
namespace sim {

static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared atomics must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "shared atomics must be lock-free");

inline constexpr uint64_t kMachineMagic = 0x3148434d53484e4eULL;  // "NNHSMCH1"
inline constexpr uint32_t kLayoutVersion = 5;

inline constexpr int kMaxNodes = 8;
// NICs of one machine; each has its own BDF, MAC, rings, MSI-X table and
// ownership record (docs/simulator.md).
inline constexpr int kMaxNics = 128;
// RX/TX queue pairs per NIC: the I210 this NIC copies has 4, with one MSI-X
// entry each plus "other" (the table's 5 entries).
inline constexpr uint32_t kMaxQueues = 4;
inline constexpr int kMaxApicIdsPerNode = 8;
inline constexpr int kNodeIdSize = 64;
inline constexpr int kNoNode = 0xff;

// Rings: power-of-two sizes up to this many descriptors.
inline constexpr uint32_t kMaxRingSize = 4096;
inline constexpr uint32_t kMinRingSize = 8;
// Each buffer holds one Ethernet frame of a 1500-byte MTU (1514 bytes).
inline constexpr uint32_t kPacketBufferSize = 2048;
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
// igb's vector assignment: entry 0 "other" (link), entry 1 + q queue q TxRx.
inline constexpr uint32_t kOtherVectorEntry = 0;
inline constexpr uint32_t kQueueVectorEntry = 1;  // queue 0's
constexpr uint32_t QueueVectorEntry(uint32_t queue) { return kQueueVectorEntry + queue; }
static_assert(kMaxQueues + 1 <= kMsixTableEntries, "one MSI-X entry per queue plus other");

// The kernel commit path's doorbell (docs/simulator.md): a source kernel
// that won PREPARING -> HANDOFF writes the epoch into the target node's
// mailbox slot of the NIC and sends this vector to the target's first CPU,
// as an IPI. Linux keeps 0xec..0xff for system vectors (timer, IPIs); the
// simulated kernels never hand it to a device (their range ends below it).
inline constexpr uint8_t kHandoffDoorbellVector = 0xf1;

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
  // The flow: the device receives it on RX queue flow % queues (RSS), a
  // kernel transmits it on TX queue `flow` (XPS). 0 for a one-queue NIC.
  uint32_t flow = 0;
  uint32_t reserved = 0;
};
static_assert(sizeof(WirePacket) == sizeof(nh_sim_wire_packet), "guest_abi.h");
static_assert(offsetof(WirePacket, direction) == offsetof(nh_sim_wire_packet, direction), "guest_abi.h");
static_assert(offsetof(WirePacket, node) == offsetof(nh_sim_wire_packet, node), "guest_abi.h");
static_assert(offsetof(WirePacket, flow) == offsetof(nh_sim_wire_packet, flow), "guest_abi.h");
static_assert(static_cast<uint32_t>(Direction::kOutbound) == NH_SIM_DIR_OUTBOUND, "guest_abi.h");

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
// One queue pair's head/tail registers.
struct RingRegisters {
  std::atomic<uint32_t> rdh, rdt, tdh, tdt;
};
// One queue pair's statistics (the totals in DeviceRegisters count all).
struct QueueStatistics {
  std::atomic<uint64_t> rx_packets;
  std::atomic<uint64_t> rx_missed;  // dropped: no free RX descriptor on this queue
  std::atomic<uint64_t> tx_packets;
  // Counted by the kernel that runs the queue: its socket receive buffer
  // was full (the device delivered the frame).
  std::atomic<uint64_t> rx_socket_drops;
};
struct DeviceRegisters {
  std::atomic<uint32_t> ctrl;
  RingRegisters ring0;  // queue 0 (guest ABI: RDH..TDT at 0x04..0x10)
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
  // TX frames whose ethertype is not the wire's (NH_SIM_ETHERTYPE): dropped.
  std::atomic<uint64_t> tx_foreign_frames;
  // Queues 1.. (after the guest ABI's fields, so queue 0 stays where it was).
  RingRegisters more_rings[kMaxQueues - 1];
  QueueStatistics queue_stats[kMaxQueues];

  RingRegisters& ring(uint32_t queue) { return queue == 0 ? ring0 : more_rings[queue - 1]; }
  const RingRegisters& ring(uint32_t queue) const {
    return queue == 0 ? ring0 : more_rings[queue - 1];
  }
};

// Ownership record, packed in one word so a plain CAS decides:
//   bits 7:0 state, 15:8 owner/source node index, 23:16 target node index,
//   63:24 epoch.
struct OwnershipWord {
  std::atomic<uint64_t> word;
};

// Ring state written by the source beside the record before HANDOFF, under a
// sequence lock (odd = being written): `count` queues, queue 0's at the
// guest ABI's offsets, the others after.
struct HandoffRingWords {
  std::atomic<uint32_t> rx_next_to_clean, rx_next_to_use, tx_next_to_clean, tx_next_to_use;
};
struct HandoffSlot {
  std::atomic<uint32_t> seq;
  std::atomic<uint64_t> epoch;
  std::atomic<uint32_t> count;
  std::atomic<uint32_t> rx_next_to_clean, rx_next_to_use, tx_next_to_clean, tx_next_to_use;
  std::atomic<uint64_t> op_id;  // with `epoch`: the fence of the write
  HandoffRingWords more_queues[kMaxQueues - 1];
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
  // Kernel commit path: doorbells this node's kernel took (vector
  // kHandoffDoorbellVector), and mailbox entries it ignored because it was not
  // armed for that NIC at that epoch or the record was not the armed HANDOFF.
  std::atomic<uint64_t> handoff_doorbells;
  std::atomic<uint64_t> stale_doorbells;
};

// What runs on a node (NH_SIM_NODE_*): set by the simulated kernel when it
// starts, by the ivshmem front end when a guest connects.
enum class NodeKind : uint32_t { kNone = 0, kSimKernel = 1, kGuest = 2 };

// One OS node: its CPUs' APIC IDs and its local APICs, reduced to what the
// interrupt fabric needs. The fields up to `delivered` are guest ABI
// (NH_SIM_NODE_*_OFFSET); the rest is the simulated kernels' own. As on x86,
// each CPU (local APIC) has its own 256 vectors: a message names the CPU
// (APIC ID) and the vector, so a node with more CPUs has room for more
// interrupts (64 NICs of 5 entries need more than one CPU's ~200).
struct NodeSlot {
  char node_id[kNodeIdSize];
  uint32_t apic_count;
  uint32_t apic_ids[kMaxApicIdsPerNode];
  std::atomic<NodeKind> kind;
  std::atomic<uint32_t> peer_id;          // the guest's ivshmem peer id
  // A guest's local APIC: x86 vector -> ivshmem vector + 1 (0: no handler),
  // filled by the guest's driver.
  alignas(64) std::atomic<uint8_t> guest_vector[256];
  std::atomic<uint64_t> delivered[256];   // per vector (every CPU), like /proc/interrupts
  Doorbell bell;                          // a simulated kernel's CPU sleeps here
  // Per CPU (index into apic_ids): vectors requested, not yet handled; and
  // vectors with a handler (request_irq).
  std::atomic<uint64_t> irr[kMaxApicIdsPerNode][4];
  std::atomic<uint64_t> registered[kMaxApicIdsPerNode][4];
  std::atomic<uint64_t> spurious;         // vector without a handler
  std::atomic<int32_t> kernel_pid;        // 0 when no kernel runs
  NodeCounters counters;
  // The kernel commit path's mailbox: per NIC, the epoch a source kernel
  // rang this node's doorbell for (0: none pending). The target kernel takes
  // (exchanges to 0) every slot when kHandoffDoorbellVector arrives.
  std::atomic<uint64_t> handoff_mailbox[kMaxNics];
};

// One NIC's latest handover, CLOCK_MONOTONIC ns (0: not reached), for the
// benchmark and `nh-sim-machine show --json`. Reset by the source kernel when
// it closes the gates (Quiesce, on both commit paths); each step stamps its
// field when it happens there: the source kernel (gates closed, drained,
// rerouted, doorbell), whoever wins the CAS (handed_off: PREPARING ->
// HANDOFF; target_committed: HANDOFF -> ACTIVE; the kernel on the kernel
// path, the daemon's arbiter on the daemon path), the target kernel (woken
// by the doorbell, attached, its first poll of the NIC).
struct HandoverTimeline {
  std::atomic<uint64_t> epoch;
  std::atomic<int64_t> gate_closed_ns;
  std::atomic<int64_t> drained_ns;
  std::atomic<int64_t> rerouted_ns;
  std::atomic<int64_t> handed_off_ns;
  std::atomic<int64_t> doorbell_ns;
  std::atomic<int64_t> target_woken_ns;
  std::atomic<int64_t> target_committed_ns;
  std::atomic<int64_t> target_attached_ns;
  std::atomic<int64_t> first_rx_poll_ns;
};

// One NIC's device state. Its rings, buffers, wire and socket buffers are
// in the machine's NIC area (sized from the machine's spec), at
// `area_offset` from the start of the memory: see NicAreaLayout.
struct NicState {
  char bdf[16];
  uint32_t ring_size;
  uint32_t queue_count;                // RX/TX queue pairs, 1..kMaxQueues
  std::atomic<uint32_t> initialized;   // a driver probed the device once
  std::atomic<int32_t> running_node;   // node index running the data path, or -1
  OwnershipWord ownership;
  HandoffSlot handoff;
  uint64_t area_offset;
  uint8_t mac[8];
  alignas(64) uint8_t config[kConfigSpaceSize];
  std::atomic<uint32_t> msix_bar[kMsixBarSize / 4];
  DeviceRegisters regs;
  // After everything the guest ABI names (guests find NIC 0's fields through
  // the directory), so no NH_SIM_* offset moved.
  HandoverTimeline timeline;
};

// Where a NIC's area holds what, for `queues` queue pairs of `ring_size`
// descriptors (offsets from the area's start; every part page-aligned):
//   wire_in, wire_out                    the NIC's wire (both directions)
//   app_tx[q], app_rx[q]                 socket send/receive buffer of flow q
//   per queue: rx_ring, tx_ring, rx_buffers, tx_buffers
struct NicAreaLayout {
  static constexpr uint64_t kAlign = 4096;
  static constexpr uint64_t Align(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
  static constexpr uint64_t PacketQueueSize();
  static constexpr uint64_t RingSize(uint32_t ring_size) {
    return Align(uint64_t{ring_size} * sizeof(RxDescriptor));
  }
  static constexpr uint64_t BuffersSize(uint32_t ring_size) {
    return Align(uint64_t{ring_size} * kPacketBufferSize);
  }
  static constexpr uint64_t QueueRingsSize(uint32_t ring_size) {
    return 2 * RingSize(ring_size) + 2 * BuffersSize(ring_size);
  }
  static constexpr uint64_t WireIn() { return 0; }
  static constexpr uint64_t WireOut();
  static constexpr uint64_t AppTx(uint32_t queue);
  static constexpr uint64_t AppRx(uint32_t queue);
  static constexpr uint64_t QueueRings(uint32_t queues, uint32_t ring_size, uint32_t queue);
  static constexpr uint64_t Size(uint32_t queues, uint32_t ring_size) {
    return QueueRings(queues, ring_size, queues);
  }
};

// The machine's ivshmem peer id: guests ring it (guest_abi.h).
inline constexpr uint32_t kMachinePeerId = 0;

struct MachineLayout {
  uint64_t magic;
  uint32_t version;
  uint32_t node_count;
  uint64_t total_size;  // of the file: sizeof(MachineLayout) up to a power of two
  int64_t created_unix_ns;
  std::atomic<int32_t> device_pid;     // the device process, 0 when none
  // The traffic generator/sink, 0 when none: its queues have one reader, so
  // a second one would starve both.
  std::atomic<int32_t> traffic_pid;
  std::atomic<uint64_t> unroutable_msi;  // no node owns the APIC ID / not x86
  // Guest doorbells on NH_SIM_MACHINE_VEC_CONTROL (reserved for the fast path).
  std::atomic<uint64_t> control_doorbells;
  // Where everything is, for guests (NH_SIM_DIRECTORY_OFFSET); written once.
  alignas(64) nh_sim_directory directory;
  // The counter guests and host increment by CAS to prove it atomic.
  alignas(64) std::atomic<uint64_t> cas_test;
  Doorbell device_bell;  // MMIO writes, guest doorbells and wire arrivals wake the device
  Doorbell sink_bell;    // packets for the traffic sink
  NodeSlot nodes[kMaxNodes];
  uint32_t nic_count;    // NICs in use: nics[0..nic_count)
  uint32_t queue_count;  // queue pairs of every NIC
  uint64_t nic_area_size;  // bytes of each NIC's area (NicAreaLayout::Size)
  NicState nics[kMaxNics];
  // The NICs' areas follow, from kNicAreasOffset: NIC i's at
  // kNicAreasOffset + i * nic_area_size.
};
inline constexpr uint64_t kNicAreasOffset = NicAreaLayout::Align(sizeof(MachineLayout));

constexpr uint64_t NicAreaLayout::PacketQueueSize() { return Align(sizeof(PacketQueueStorage)); }
constexpr uint64_t NicAreaLayout::WireOut() { return PacketQueueSize(); }
constexpr uint64_t NicAreaLayout::AppTx(uint32_t queue) {
  return (2 + 2 * uint64_t{queue}) * PacketQueueSize();
}
constexpr uint64_t NicAreaLayout::AppRx(uint32_t queue) {
  return (3 + 2 * uint64_t{queue}) * PacketQueueSize();
}
constexpr uint64_t NicAreaLayout::QueueRings(uint32_t queues, uint32_t ring_size,
                                             uint32_t queue) {
  return (2 + 2 * uint64_t{queues}) * PacketQueueSize() + queue * QueueRingsSize(ring_size);
}

// The guest ABI (sim/guest_abi.h), pinned.
static_assert(offsetof(MachineLayout, magic) == 0, "guest_abi.h");
static_assert(kMachineMagic == NH_SIM_MAGIC, "guest_abi.h");
static_assert(offsetof(MachineLayout, directory) == NH_SIM_DIRECTORY_OFFSET, "guest_abi.h");
static_assert(offsetof(NodeSlot, node_id) == NH_SIM_NODE_ID_OFFSET, "guest_abi.h");
static_assert(kNodeIdSize == NH_SIM_NODE_ID_SIZE, "guest_abi.h");
static_assert(offsetof(NodeSlot, apic_count) == NH_SIM_NODE_APIC_COUNT_OFFSET, "guest_abi.h");
static_assert(offsetof(NodeSlot, apic_ids) == NH_SIM_NODE_APIC_IDS_OFFSET, "guest_abi.h");
static_assert(kMaxApicIdsPerNode == NH_SIM_NODE_MAX_APIC_IDS, "guest_abi.h");
static_assert(offsetof(NodeSlot, kind) == NH_SIM_NODE_KIND_OFFSET, "guest_abi.h");
static_assert(sizeof(NodeKind) == 4 && static_cast<uint32_t>(NodeKind::kGuest) == NH_SIM_NODE_GUEST &&
                  static_cast<uint32_t>(NodeKind::kSimKernel) == NH_SIM_NODE_SIM_KERNEL,
              "guest_abi.h");
static_assert(offsetof(NodeSlot, peer_id) == NH_SIM_NODE_PEER_ID_OFFSET, "guest_abi.h");
static_assert(offsetof(NodeSlot, guest_vector) == NH_SIM_NODE_GUEST_VECTOR_OFFSET, "guest_abi.h");
static_assert(sizeof(std::atomic<uint8_t>) == 1, "guest_abi.h: guest_vector is nh_u8[256]");
static_assert(offsetof(NodeSlot, delivered) == NH_SIM_NODE_DELIVERED_OFFSET, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, ctrl) == NH_SIM_REG_CTRL, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, ring0) + offsetof(RingRegisters, rdh) == NH_SIM_REG_RDH,
              "guest_abi.h");
static_assert(offsetof(DeviceRegisters, ring0) + offsetof(RingRegisters, rdt) == NH_SIM_REG_RDT,
              "guest_abi.h");
static_assert(offsetof(DeviceRegisters, ring0) + offsetof(RingRegisters, tdh) == NH_SIM_REG_TDH,
              "guest_abi.h");
static_assert(offsetof(DeviceRegisters, ring0) + offsetof(RingRegisters, tdt) == NH_SIM_REG_TDT,
              "guest_abi.h");
static_assert(offsetof(DeviceRegisters, eims) == NH_SIM_REG_EIMS, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, eicr) == NH_SIM_REG_EICR, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, rx_packets) == NH_SIM_REG_RX_PACKETS, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, rx_missed) == NH_SIM_REG_RX_MISSED, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, tx_packets) == NH_SIM_REG_TX_PACKETS, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, msi_sent) == NH_SIM_REG_MSI_SENT, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, msi_pended) == NH_SIM_REG_MSI_PENDED, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, msi_replayed) == NH_SIM_REG_MSI_REPLAYED, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, msi_disabled) == NH_SIM_REG_MSI_DISABLED, "guest_abi.h");
static_assert(offsetof(DeviceRegisters, tx_foreign_frames) == NH_SIM_REG_TX_FOREIGN_FRAMES,
              "guest_abi.h");
static_assert(kCtrlRxEnable == NH_SIM_CTRL_RX_ENABLE && kCtrlTxEnable == NH_SIM_CTRL_TX_ENABLE,
              "guest_abi.h");
static_assert(sizeof(RxDescriptor) == sizeof(nh_sim_desc) && sizeof(TxDescriptor) == sizeof(nh_sim_desc),
              "guest_abi.h");
static_assert(offsetof(RxDescriptor, length) == offsetof(nh_sim_desc, length), "guest_abi.h");
static_assert(kDescriptorDone == NH_SIM_DESC_DONE, "guest_abi.h");
static_assert(sizeof(OwnershipWord) == 8, "guest_abi.h");
static_assert(offsetof(HandoffSlot, seq) == NH_SIM_HANDOFF_SEQ, "guest_abi.h");
static_assert(offsetof(HandoffSlot, epoch) == NH_SIM_HANDOFF_EPOCH, "guest_abi.h");
static_assert(offsetof(HandoffSlot, count) == NH_SIM_HANDOFF_COUNT, "guest_abi.h");
static_assert(offsetof(HandoffSlot, rx_next_to_clean) == NH_SIM_HANDOFF_RX_NTC, "guest_abi.h");
static_assert(offsetof(HandoffSlot, rx_next_to_use) == NH_SIM_HANDOFF_RX_NTU, "guest_abi.h");
static_assert(offsetof(HandoffSlot, tx_next_to_clean) == NH_SIM_HANDOFF_TX_NTC, "guest_abi.h");
static_assert(offsetof(HandoffSlot, tx_next_to_use) == NH_SIM_HANDOFF_TX_NTU, "guest_abi.h");
static_assert(offsetof(HandoffSlot, op_id) == NH_SIM_HANDOFF_OP_ID, "guest_abi.h");
static_assert(kMsixTableOffset == 0, "guest_abi.h: the table at the MSI-X BAR's start");
static_assert(kQueueVectorEntry == 1 && kOtherVectorEntry == 0, "guest_abi.h vector assignment");

// The machine's memory size: the layout and the NICs' areas, rounded up to
// a power of two (an ivshmem BAR's size must be one).
constexpr uint64_t MachineMemorySize(uint32_t nics = 1, uint32_t queues = 1,
                                     uint32_t ring_size = 1024) {
  uint64_t needed = kNicAreasOffset + nics * NicAreaLayout::Size(queues, ring_size);
  uint64_t size = 1;
  while (size < needed) size <<= 1;
  return size;
}

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_MACHINE_LAYOUT_H_
