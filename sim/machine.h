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
  std::string initial_owner;       // a node_id
  uint32_t ring_size = 1024;       // power of two, kMinRingSize..kMaxRingSize
  std::string bdf = "0000:03:00.0";
};

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

// The NIC's MAC, locally administered and derived from its BDF
// (02:4e:48:<domain low byte>:<bus>:<devfn>). INVALID_ARGUMENT for a BDF that
// is not DDDD:BB:DD.F.
absl::StatusOr<std::array<uint8_t, 6>> NicMacFromBdf(absl::string_view bdf);

class Machine {
 public:
  // Creates (replacing any existing file) and maps the machine. The NIC is
  // powered on but not probed: MSI-X disabled, every table entry masked, the
  // ownership record ACTIVE(initial_owner, epoch 1).
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
  NicState& nic() { return layout_->nic; }
  const std::string& path() const { return path_; }
  int node_count() const { return static_cast<int>(layout_->node_count); }
  NodeSlot& node(int index) { return layout_->nodes[index]; }
  std::string node_id(int index) const;
  // NOT_FOUND for an unknown node.
  absl::StatusOr<int> NodeIndex(absl::string_view node_id) const;
  // The node whose CPU has this APIC ID, or kNoNode.
  int NodeOfApicId(uint32_t apic_id) const;
  std::string bdf() const { return layout_->nic.bdf; }
  uint32_t ring_size() const { return layout_->nic.ring_size; }
  // The NIC's MAC address (the directory's nic_mac).
  std::array<uint8_t, 6> nic_mac() const {
    std::array<uint8_t, 6> mac;
    std::copy(layout_->directory.nic_mac, layout_->directory.nic_mac + 6, mac.begin());
    return mac;
  }

  Ownership ReadOwnership() const;
  // Replaces the record iff it equals `expected`; returns the record after.
  Ownership CompareAndSwapOwnership(const Ownership& expected, const Ownership& desired);

  // The ring state beside the record (seqlock-protected), stored with the
  // writer's fence. FAILED_PRECONDITION (nothing written) when the stored
  // rings carry a higher fence: a late write of an aborted attempt must not
  // replace a later HANDOFF's rings. A writer that died mid-write is taken
  // over after kHandoffWriterTakeover.
  absl::Status WriteHandoff(const Fence& fence, const RingState& rings);
  // NOT_FOUND when none was written for `epoch`.
  absl::StatusOr<RingState> ReadHandoff(uint64_t epoch) const;

 private:
  Machine(std::string path, MachineLayout* layout) : path_(std::move(path)), layout_(layout) {}

  std::string path_;
  MachineLayout* layout_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_MACHINE_H_
