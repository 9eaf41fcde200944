#include "daemon/platform/sim/machine_arbiter.h"

#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "daemon/platform/ownership_record.h"

namespace nichandover {
namespace platform {
namespace sim {
namespace {

using ::nichandover::sim::Machine;
using ::nichandover::sim::Ownership;
using ::nichandover::sim::OwnershipState;
using ::nichandover::sim::RingState;

class MachineArbiter : public Arbiter {
 public:
  MachineArbiter(std::shared_ptr<Machine> machine, std::string node_id)
      : machine_(std::move(machine)), node_id_(std::move(node_id)) {}

  absl::StatusOr<v1::OwnershipRecord> Read(const std::string& bdf) override {
    absl::StatusOr<int> nic = Nic(bdf);
    if (!nic.ok()) return nic.status();
    return ToRecord(machine_->ReadOwnership(*nic));
  }

  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired) override {
    absl::StatusOr<int> nic = Nic(bdf);
    if (!nic.ok()) return nic.status();
    if (absl::Status s = CheckCompareAndSwap(bdf, expected, desired); !s.ok()) return s;
    absl::StatusOr<Ownership> want = FromRecord(expected);
    if (!want.ok()) return want.status();
    absl::StatusOr<Ownership> next = FromRecord(desired);
    if (!next.ok()) return next.status();
    return ToRecord(machine_->CompareAndSwapOwnership(*want, *next, *nic));
  }

  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings) override {
    absl::StatusOr<int> nic = Nic(bdf);
    if (!nic.ok()) return nic.status();
    const uint32_t queues = machine_->queue_count();
    std::vector<RingState> states(queues);
    std::vector<bool> seen(queues, false);
    for (const v1::QueueRingState& ring : rings) {
      if (ring.queue() >= queues || seen[ring.queue()]) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s has queues 0..%d: ring state for queue %d is not one of them (or twice)", bdf,
            queues - 1, ring.queue()));
      }
      seen[ring.queue()] = true;
      RingState& state = states[ring.queue()];
      state.rx_next_to_clean = ring.rx_next_to_clean();
      state.rx_next_to_use = ring.rx_next_to_use();
      state.tx_next_to_clean = ring.tx_next_to_clean();
      state.tx_next_to_use = ring.tx_next_to_use();
    }
    if (rings.size() != queues) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s has %d queues: %d ring states is not one per queue", bdf, queues, rings.size()));
    }
    return machine_->WriteHandoff(fence, states, *nic);
  }

  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch) override {
    absl::StatusOr<int> nic = Nic(bdf);
    if (!nic.ok()) return nic.status();
    absl::StatusOr<std::vector<RingState>> states = machine_->ReadHandoff(epoch, *nic);
    if (!states.ok()) return states.status();
    std::vector<v1::QueueRingState> rings;
    for (uint32_t q = 0; q < states->size(); ++q) {
      const RingState& state = (*states)[q];
      v1::QueueRingState ring;
      ring.set_queue(q);
      ring.set_rx_next_to_clean(state.rx_next_to_clean);
      ring.set_rx_next_to_use(state.rx_next_to_use);
      ring.set_tx_next_to_clean(state.tx_next_to_clean);
      ring.set_tx_next_to_use(state.tx_next_to_use);
      rings.push_back(ring);
    }
    return rings;
  }

 private:
  absl::StatusOr<int> Nic(const std::string& bdf) const {
    absl::StatusOr<int> nic = machine_->NicIndex(bdf);
    if (!nic.ok()) return absl::NotFoundError(absl::StrFormat("%s sees no NIC %s", node_id_, bdf));
    return nic;
  }

  v1::OwnershipRecord ToRecord(const Ownership& o) const {
    v1::OwnershipRecord record;
    record.set_state(static_cast<v1::OwnershipState>(o.state));
    record.set_owner_node(machine_->node_id(o.owner));
    record.set_target_node(machine_->node_id(o.target));
    record.set_epoch(o.epoch);
    return record;
  }

  absl::StatusOr<int> NodeOrNone(const std::string& node_id) const {
    if (node_id.empty()) return ::nichandover::sim::kNoNode;
    return machine_->NodeIndex(node_id);
  }

  absl::StatusOr<Ownership> FromRecord(const v1::OwnershipRecord& record) const {
    if (record.state() < v1::OWNERSHIP_STATE_UNSPECIFIED ||
        record.state() > v1::OWNERSHIP_STATE_HANDOFF) {
      return absl::InvalidArgumentError("unknown ownership state");
    }
    if (record.epoch() > ::nichandover::sim::kMaxEpoch) {
      return absl::OutOfRangeError("epoch does not fit the record's 40 bits");
    }
    Ownership o;
    o.state = static_cast<OwnershipState>(record.state());
    absl::StatusOr<int> owner = NodeOrNone(record.owner_node());
    absl::StatusOr<int> target = NodeOrNone(record.target_node());
    if (!owner.ok() || !target.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "record names a node the machine does not have (%s, %s)", record.owner_node(),
          record.target_node()));
    }
    o.owner = *owner;
    o.target = *target;
    o.epoch = record.epoch();
    return o;
  }

  std::shared_ptr<Machine> machine_;
  std::string node_id_;
};

// Machine::AttachExisting (branch `machine`) maps memory that merely holds
// the machine (an ivshmem BAR is larger than the layout and cannot be
// resized or locked); until it is merged, Machine::Open, which wants the
// machine file itself, is what there is. Overload resolution picks the
// former whenever it exists.
template <typename M>
auto AttachOrOpen(const std::string& path, int) -> decltype(M::AttachExisting(path)) {
  return M::AttachExisting(path);
}
template <typename M>
absl::StatusOr<std::unique_ptr<M>> AttachOrOpen(const std::string& path, long) {
  return M::Open(path);
}

}  // namespace

std::unique_ptr<Arbiter> MakeMachineArbiter(std::shared_ptr<Machine> machine,
                                            std::string node_id) {
  return std::make_unique<MachineArbiter>(std::move(machine), std::move(node_id));
}

absl::StatusOr<std::unique_ptr<Machine>> AttachMachineMemory(const std::string& path) {
  return AttachOrOpen<Machine>(path, 0);
}

}  // namespace sim
}  // namespace platform
}  // namespace nichandover
