// The simulated machine's shared memory, mapped into this process: created
// once by `nh-sim-machine create` (or a test), opened by every other process.
#ifndef NICHANDOVER_SIM_MACHINE_H_
#define NICHANDOVER_SIM_MACHINE_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/fence.h"
#include "sim/machine_layout.h"

namespace nichandover {
namespace sim {

struct NodeSpec {
  std::string node_id;
  std::vector<uint32_t> apic_ids;  // 1..kMaxApicIdsPerNode, each < 256
};

struct MachineSpec {
  std::vector<NodeSpec> nodes;     // 1..kMaxNodes
  std::string initial_owner;       // a node_id: owns every NIC (unless spread_owners)
  uint32_t ring_size = 1024;       // power of two, kMinRingSize..kMaxRingSize
  std::string bdf = "0000:03:00.0";  // NIC 0's; NIC i is on bus + i (NicBdf)
  uint32_t nic_count = 1;          // 1..kMaxNics
  uint32_t queue_count = 1;        // RX/TX queue pairs per NIC, 1..kMaxQueues
  // NIC i starts owned by node i % nodes instead of initial_owner.
  bool spread_owners = false;
};

// NIC `index`'s BDF: `first`'s bus plus `index` (one NIC per bus, as PCIe
// root ports give each endpoint its own). INVALID_ARGUMENT past bus 0xff or
// for a malformed BDF.
absl::StatusOr<std::string> NicBdf(absl::string_view first, uint32_t index);

// The ownership record, decoded from its word. Node indexes, kNoNode for none.
enum class OwnershipState : uint8_t { kUnspecified = 0, kActive = 1, kPreparing = 2, kHandoff = 3 };
struct Ownership {
  OwnershipState state = OwnershipState::kUnspecified;
  int owner = kNoNode;   // ACTIVE: owner; PREPARING/HANDOFF: source
  int target = kNoNode;  // PREPARING/HANDOFF: target
  uint64_t epoch = 0;    // < 2^40
  friend bool operator==(const Ownership& a, const Ownership& b) {
    return a.state == b.state && a.owner == b.owner && a.target == b.target && a.epoch == b.epoch;
  }
};
inline constexpr uint64_t kMaxEpoch = (uint64_t{1} << 40) - 1;
uint64_t EncodeOwnership(const Ownership& o);
Ownership DecodeOwnership(uint64_t word);

struct RingState {
  uint32_t rx_next_to_clean = 0;
  uint32_t rx_next_to_use = 0;
  uint32_t tx_next_to_clean = 0;
  uint32_t tx_next_to_use = 0;
  friend bool operator==(const RingState& a, const RingState& b) {
    return a.rx_next_to_clean == b.rx_next_to_clean && a.rx_next_to_use == b.rx_next_to_use &&
           a.tx_next_to_clean == b.tx_next_to_clean && a.tx_next_to_use == b.tx_next_to_use;
  }
};

// One queue pair's descriptor rings and buffers (buffer i of descriptor i).
struct QueueRings {
  RxDescriptor* rx_ring = nullptr;
  TxDescriptor* tx_ring = nullptr;
  uint8_t (*rx_buffers)[kPacketBufferSize] = nullptr;
  uint8_t (*tx_buffers)[kPacketBufferSize] = nullptr;
};

// The NIC's MAC, locally administered and derived from its BDF
// (02:4e:48:<domain low byte>:<bus>:<devfn>). INVALID_ARGUMENT for a BDF that
// is not DDDD:BB:DD.F.
absl::StatusOr<std::array<uint8_t, 6>> NicMacFromBdf(absl::string_view bdf);

class Machine {
 public:
  // Creates (replacing any existing file) and maps the machine, sized from
  // the spec (MachineMemorySize). Every NIC is powered on but not probed:
  // MSI-X disabled, every table entry masked, its ownership record
  // ACTIVE(initial owner, epoch 1).
  static absl::StatusOr<std::unique_ptr<Machine>> Create(const std::string& path,
                                                         const MachineSpec& spec);
  // Maps an existing machine. NOT_FOUND if absent, FAILED_PRECONDITION if it
  // is not a machine of this layout version (or smaller than the layout).
  static absl::StatusOr<std::unique_ptr<Machine>> Open(const std::string& path);
  // Maps an existing machine memory from any file that holds one, read/write
  // and MAP_SHARED, without resizing or locking it: the machine's file, or in
  // a guest the ivshmem function's BAR2
  // (/sys/bus/pci/devices/<BDF>/resource2, after `echo 1 > .../enable`),
  // whose size is the machine's power-of-two size. Same errors as Open.
  static absl::StatusOr<std::unique_ptr<Machine>> AttachExisting(const std::string& path);
  static absl::Status Destroy(const std::string& path);

  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  MachineLayout& layout() { return *layout_; }
  int nic_count() const { return static_cast<int>(layout_->nic_count); }
  uint32_t queue_count() const { return layout_->queue_count; }
  // NIC `index` (0..nic_count()).
  NicState& nic(int index = 0) { return layout_->nics[index]; }
  const NicState& nic(int index = 0) const { return layout_->nics[index]; }
  // NOT_FOUND for a BDF that is no NIC of the machine.
  absl::StatusOr<int> NicIndex(absl::string_view bdf) const;
  QueueRings rings(int nic, uint32_t queue);
  // The NIC's wire (generator -> device, device -> sink) and the socket
  // buffers of flow `queue` (generator -> running kernel, kernel -> sink).
  PacketQueueStorage& wire_in(int nic) { return Area<PacketQueueStorage>(nic, NicAreaLayout::WireIn()); }
  PacketQueueStorage& wire_out(int nic) { return Area<PacketQueueStorage>(nic, NicAreaLayout::WireOut()); }
  PacketQueueStorage& app_tx(int nic, uint32_t queue) {
    return Area<PacketQueueStorage>(nic, NicAreaLayout::AppTx(queue));
  }
  PacketQueueStorage& app_rx(int nic, uint32_t queue) {
    return Area<PacketQueueStorage>(nic, NicAreaLayout::AppRx(queue));
  }
  const std::string& path() const { return path_; }
  int node_count() const { return static_cast<int>(layout_->node_count); }
  NodeSlot& node(int index) { return layout_->nodes[index]; }
  std::string node_id(int index) const;
  // NOT_FOUND for an unknown node.
  absl::StatusOr<int> NodeIndex(absl::string_view node_id) const;
  // The node whose CPU has this APIC ID, or kNoNode.
  int NodeOfApicId(uint32_t apic_id) const;
  std::string bdf(int nic = 0) const { return layout_->nics[nic].bdf; }
  uint32_t ring_size() const { return layout_->nics[0].ring_size; }  // every NIC's
  // NIC `nic`'s MAC address (NIC 0's is the directory's nic_mac).
  std::array<uint8_t, 6> nic_mac(int nic = 0) const {
    std::array<uint8_t, 6> mac;
    std::copy(layout_->nics[nic].mac, layout_->nics[nic].mac + 6, mac.begin());
    return mac;
  }

  // NIC `nic`'s ownership record.
  Ownership ReadOwnership(int nic = 0) const;
  // Replaces the record iff it equals `expected`; returns the record after.
  // A won PREPARING -> HANDOFF or HANDOFF -> ACTIVE stamps the NIC's
  // timeline (handed_off_ns, target_committed_ns), whoever CASes: a kernel
  // or a daemon's arbiter.
  Ownership CompareAndSwapOwnership(const Ownership& expected, const Ownership& desired,
                                    int nic = 0);

  // NIC `nic`'s handover timeline (machine_layout.h): Reset starts the one
  // of `epoch` (every step 0); Stamp writes now into `field` when the
  // timeline is `epoch`'s (a late step of an older handover writes nothing);
  // `at_ns` instead of now when given (a step taken earlier).
  void ResetTimeline(uint64_t epoch, int nic = 0);
  void StampTimeline(std::atomic<int64_t> HandoverTimeline::*field, uint64_t epoch, int nic = 0,
                     int64_t at_ns = 0);

  // The ring state of every queue beside NIC `nic`'s record (seqlock-
  // protected), stored with the writer's fence. INVALID_ARGUMENT unless there
  // is one RingState per queue; FAILED_PRECONDITION (nothing written) when the
  // stored rings carry a higher fence: a late write of an aborted attempt must
  // not replace a later HANDOFF's rings. A writer that died mid-write is taken
  // over after kHandoffWriterTakeover.
  absl::Status WriteHandoff(const Fence& fence, const std::vector<RingState>& rings, int nic = 0);
  // NOT_FOUND when none was written for `epoch`.
  absl::StatusOr<std::vector<RingState>> ReadHandoff(uint64_t epoch, int nic = 0) const;

 private:
  Machine(std::string path, MachineLayout* layout, uint64_t mapped_size)
      : path_(std::move(path)), layout_(layout), mapped_size_(mapped_size) {}
  template <typename T>
  T& Area(int nic, uint64_t offset) {
    return *reinterpret_cast<T*>(reinterpret_cast<char*>(layout_) + layout_->nics[nic].area_offset +
                                 offset);
  }

  std::string path_;
  MachineLayout* layout_;
  uint64_t mapped_size_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_MACHINE_H_
