// The one in-memory platform: the semantics of the platform contract
// (daemon/platform/platform.h) on a FakeMachineState held in memory, as one
// node sees the machine. Both fakes of the platform apply every call here:
//
//  - the fake backend (fake_platform.cc), inside one locked update of the
//    state file the daemons of a test share (the file is only where the
//    state persists between processes), and
//  - the protocol tests' World (daemon/protocol/testing/world.cc), on a
//    state it keeps in memory, with its own fault injection around the
//    calls (failing, hung and late calls, lost answers, crashes, lost
//    doorbells and kernel events are World's, not the platform's).
//
// What it models, per NIC:
//  - Hook: per node a state (detached / running / quiesced) and the highest
//    fence accepted (epoch, then operation id); a lower fence is refused
//    with FAILED_PRECONDITION, and so is an epoch more than one past the
//    record's. Quiesce closes the gates, drains and masks the vectors;
//    Resume and Attach unmask them; Release of a running NIC is refused.
//  - Router: Reroute needs the NIC quiesced on the calling node and refuses
//    when interrupt remapping is on; it masks, writes and leaves the vectors
//    masked. Reservations pick free vectors on the node's CPUs round-robin.
//  - Arbiter: compare-and-swap of the ownership record; the handoff rings
//    beside it, fenced like the hook.
//  - FastPath: Arm (on a reservation of the same epoch), HandOff (quiesce,
//    reroute, rings, CAS PREPARING -> HANDOFF, doorbell, in one call) and
//    each node's kernel taking its doorbells (commit and attach alone when
//    armed for exactly that NIC and epoch and the record is the armed
//    HANDOFF).
// Every change is appended to the state's history. No I/O, no clock.
#ifndef NICHANDOVER_DAEMON_PLATFORM_FAKE_MEMORY_MACHINE_H_
#define NICHANDOVER_DAEMON_PLATFORM_FAKE_MEMORY_MACHINE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/platform/fake/machine_state.pb.h"
#include "daemon/platform/platform.h"

namespace nichandover {
namespace platform {
namespace fake {

class MemoryMachine {
 public:
  // `state` outlives the object; calls are made as node `node_id`.
  MemoryMachine(FakeMachineState* state, std::string node_id)
      : state_(state), node_id_(std::move(node_id)) {}

  // Inventory.
  std::vector<NicInfo> ListNics();
  absl::StatusOr<NicInfo> GetNic(const std::string& bdf);

  // Hook. `drain_timed_out`: the drain did not finish within `timeout`
  // (the caller's clock decides): the gates close, DEADLINE_EXCEEDED.
  absl::StatusOr<QuiesceResult> Quiesce(const std::string& bdf, const Fence& fence,
                                        bool drain_timed_out, absl::Duration timeout);
  absl::Status Resume(const std::string& bdf, const Fence& fence);
  absl::Status Attach(const std::string& bdf, const Fence& fence,
                      const std::vector<v1::QueueRingState>& rings);
  absl::Status Release(const std::string& bdf, const Fence& fence);
  absl::StatusOr<HookStatus> Status(const std::string& bdf);

  // Router.
  absl::StatusOr<std::vector<v1::MsiMessage>> ReadMessages(const std::string& bdf);
  absl::StatusOr<std::vector<v1::MsiMessage>> Reroute(const std::string& bdf, const Fence& fence,
                                                      const std::vector<v1::MsiMessage>& target);
  absl::Status Restore(const std::string& bdf, const Fence& fence,
                       const std::vector<v1::MsiMessage>& previous);
  absl::StatusOr<std::vector<v1::MsiMessage>> ReserveTargetMessages(const std::string& bdf,
                                                                    const Fence& fence,
                                                                    uint32_t count);
  absl::Status ReleaseReservation(const std::string& bdf, const Fence& fence);

  // Arbiter.
  absl::StatusOr<v1::OwnershipRecord> ReadRecord(const std::string& bdf);
  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired);
  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings);
  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch);

  // FastPath, source and target daemon calls.
  absl::Status Arm(const std::string& bdf, const Fence& fence,
                   const v1::OwnershipRecord& handoff);
  // Called after each stage HandOff reaches, with the result so far
  // (`reached` and what the stages filled in); a non-OK answer ends the call
  // there with that error, what it did so far left in place (a kernel
  // failing mid-way). World's fault injection.
  using StageCheck = std::function<absl::Status(const HandOffResult& so_far)>;
  absl::StatusOr<HandOffResult> HandOff(const HandOffRequest& request, bool drain_timed_out,
                                        const StageCheck& after_stage = nullptr);

  // This node's kernel: takes every doorbell rung for it (oldest first)
  // and acts on each; returns the events it produced.
  std::vector<KernelEvent> TakeDoorbells();
  // The node's kernel events newer than `after_seq` (all it keeps when its
  // numbers are below after_seq: it restarted), and its newest seq.
  KernelEvents EventsAfter(uint64_t after_seq);

 private:
  struct FencedNic {
    FakeNic* nic;
    FakeHook* hook;
  };
  absl::StatusOr<FencedNic> FenceNic(const std::string& bdf, const Fence& fence,
                                     const char* operation);
  absl::Status QuiesceFenced(const FencedNic& fenced, const Fence& fence, bool drain_timed_out,
                             absl::Duration timeout, QuiesceResult* result);
  void AttachFenced(const FencedNic& fenced, const Fence& fence,
                    const std::vector<v1::QueueRingState>& rings, const char* who);
  absl::StatusOr<std::vector<v1::MsiMessage>> Allocate(const FakeNode& node,
                                                       const std::string& bdf, uint32_t count);
  KernelEvent TakeDoorbell(const FakeDoorbell& doorbell);
  NicInfo InfoOf(FakeNic* nic);
  void Log(const std::string& what);

  FakeMachineState* state_;
  std::string node_id_;
};

}  // namespace fake
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_FAKE_MEMORY_MACHINE_H_
