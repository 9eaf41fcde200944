// FakeMachine: builds, inspects and manipulates a fake machine's state file
// from tests and the fake-machine tool, as an observer outside the daemons
// (a logic analyser on the real machine). Daemons use MakeFakePlatform.
#ifndef NICHANDOVER_DAEMON_PLATFORM_FAKE_FAKE_MACHINE_H_
#define NICHANDOVER_DAEMON_PLATFORM_FAKE_FAKE_MACHINE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/platform/fake/machine_file.h"
#include "daemon/platform/fake/machine_state.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace platform {
namespace fake {

// `nodes` nodes "node0".."nodeN-1" with `cpus_per_node` CPUs each (APIC IDs
// node*16 + cpu), and one MSI-X NIC per BDF with `vectors` vectors and 2
// queues, driver "igb" on every node, owned and run by node0 at epoch 1.
FakeMachineSpec SimpleMachineSpec(int nodes, int cpus_per_node, const std::vector<std::string>& bdfs,
                                  uint32_t vectors = 4);

// One node's view of a NIC, as the inspector sees it.
struct NodeNicView {
  std::string node_id;
  FakeHookState state = FAKE_HOOK_DETACHED;
  uint64_t hook_epoch = 0;
  std::string driver;
  uint32_t reserved_vectors = 0;
};

// A NIC as the inspector sees it.
struct NicView {
  std::string bdf;
  v1::OwnershipRecord ownership;
  std::vector<std::string> running_nodes;  // hooks in the running state
  std::vector<NodeNicView> nodes;
  // Per vector: the node its message reaches ("" if no node has that APIC
  // ID, "?" with remapping on), and whether it is masked.
  std::vector<std::string> interrupt_nodes;
  std::vector<bool> masked;
  std::vector<v1::QueueRingState> rings;
};

class FakeMachine {
 public:
  explicit FakeMachine(std::string state_path) : file_(std::move(state_path)) {}

  // Writes a new machine from `spec` to the state path (replacing any):
  // owners' hooks running at the spec's epoch, their vectors unmasked and
  // routed round-robin over the owner's CPUs from its first vector, every
  // record ACTIVE(owner, epoch). INVALID_ARGUMENT for an inconsistent spec.
  absl::Status Create(const FakeMachineSpec& spec);

  absl::StatusOr<FakeMachineState> State() const { return file_.Read(); }
  absl::StatusOr<NicView> Inspect(const std::string& bdf) const;

  // The invariants of a settled NIC: the record is ACTIVE, exactly one node
  // runs the NIC and it is the record's owner, every vector reaches one of
  // its CPUs unmasked, and its hook is not ahead of the record's epoch.
  // FAILED_PRECONDITION describing the first violation.
  absl::Status CheckSettled(const std::string& bdf) const;
  // What must hold at every instant, mid-handover too: at most one node runs
  // the NIC, and a running node has all of its vectors.
  absl::Status CheckSafe(const std::string& bdf) const;

  // Installs a knob (replacing the one for the same node and operation).
  // A fail_code without fail_times or fail_always fails once.
  absl::Status SetFault(const FakeFault& fault);
  // Removes knobs: for `node_id` ("" = every knob of any node) and
  // `operation` (UNSPECIFIED = every operation).
  absl::Status ClearFaults(const std::string& node_id, FakeOperation operation);
  // How many calls hit the knob for (node, operation); 0 if none is set.
  absl::StatusOr<uint64_t> FaultHits(const std::string& node_id, FakeOperation operation) const;

  // Moves `packets` through the NIC on the node that runs it: rings advance,
  // a few TX completions and RX frames stay in flight for a quiesce to
  // drain. With the NIC quiesced the transmits are held at the gate (counted
  // on the quiesced node). FAILED_PRECONDITION if no node runs or holds it.
  absl::Status RunTraffic(const std::string& bdf, uint32_t packets);

  // A human-readable summary: nodes, NICs (record, hooks, vector routes),
  // knobs and the recent history.
  absl::StatusOr<std::string> Describe() const;

  const std::string& path() const { return file_.path(); }

 private:
  MachineFile file_;
};

}  // namespace fake
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_FAKE_FAKE_MACHINE_H_
