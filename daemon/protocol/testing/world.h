// An in-process machine for testing the handover protocol: nodes running a
// HandoverMachine each, a network that holds messages until a test delivers,
// drops, duplicates or reorders them, and the machine state that outlives a
// daemon crash (ownership records, handoff rings, per-node hook states and
// epochs, the NIC's interrupt routing, reservations, each node's journal).
//
// Platform calls are executed at once against that state through the one
// in-memory platform the fake backend uses too
// (daemon/platform/fake/memory_machine.h), with the fence the engine would
// stamp (the call's epoch and the daemon's operation id, incarnation <<
// 32 | counter), unless a fault knob of World's fails, hangs or crashes
// around them. Every change is printed to the trace; invariants are checked
// after every step and violations are printed and collected.
//
// The kernel commit path (docs/protocol.md, "The kernel commit path"): the
// platform's kernel per node keeps its Arm across the daemon's crash
// (World's kernels never crash); the source's HandOff runs quiesce, reroute,
// rings and the CAS in one call (a World knob stops it after any stage with
// an error); its doorbell waits in World until a test delivers or loses it;
// the armed target kernel then CASes HANDOFF -> ACTIVE alone, attaches and
// sends its daemon a KernelEvent (lost when the daemon is down, or by a
// World knob).
#ifndef NICHANDOVER_DAEMON_PROTOCOL_TESTING_WORLD_H_
#define NICHANDOVER_DAEMON_PROTOCOL_TESTING_WORLD_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/platform/fake/machine_state.pb.h"
#include "daemon/protocol/events.h"
#include "daemon/protocol/handover_machine.h"

namespace nichandover {
namespace protocol {
namespace testing {

struct NicSpec {
  std::string bdf = "0000:03:00.0";
  std::string owner;
  uint32_t vectors = 2;
  uint32_t queues = 2;
  std::string driver = "e1000e";
  std::set<std::string> no_driver;  // nodes without the driver
};

// Which messages a network command applies to; empty fields match anything.
struct MessageFilter {
  std::string from, to, type;  // type: Offer, Accept, Refuse, Commit, ...
  int limit = -1;              // at most this many (-1: all)
};

// kLoseAnswer: the call takes effect, its answer never reaches the daemon
// (whose step timer then gives up on it).
enum class FaultAction { kFail, kHang, kCrashBefore, kCrashAfter, kLoseAnswer };

class World {
 public:
  using TraceFn = std::function<void(const std::string&)>;
  explicit World(TraceFn trace, Timeouts timeouts = Timeouts());
  ~World();

  // Setup. Nodes first, then NICs, then Start.
  void AddNode(const std::string& id, uint32_t free_vectors = 32);
  // MachineConfig::kernel_commit of the node's daemon from its next (re)start.
  void SetKernelCommit(const std::string& id, bool on);
  void AddNic(const NicSpec& spec);
  void StartAll();
  // MachineConfig::history_per_nic of every node (re)started from now on.
  void SetHistoryPerNic(size_t n) { history_per_nic_ = n; }

  // Requests to a node's daemon.
  void Create(const std::string& node, const std::string& handover_id,
              const std::string& request_id, const std::string& nic, const std::string& to,
              v1::CommitPath commit_path = v1::COMMIT_PATH_UNSPECIFIED);
  void Cancel(const std::string& node, const std::string& handover_id);
  void RecoverNic(const std::string& node, const std::string& request_id, const std::string& nic,
                  v1::RecoveryDecision decision);
  // NodeService.QuiesceNic / ResumeNic (an operator's maintenance quiesce).
  void QuiesceNic(const std::string& node, const std::string& nic, absl::Duration timeout);
  void ResumeNic(const std::string& node, const std::string& nic);

  // An InventoryEvent to a node's machine: `bdf` (when not empty) now with
  // `vectors` enabled, and `hotplugged` new NICs this node alone sees.
  void ChangeInventory(const std::string& node, const std::string& bdf, uint32_t vectors,
                       int hotplugged);

  // Network. Each returns how many messages it touched.
  int Deliver(const MessageFilter& filter);
  int Drop(const MessageFilter& filter);       // the caller sees DEADLINE_EXCEEDED
  int Duplicate(const MessageFilter& filter);  // one more copy of each
  int Expire(const MessageFilter& filter);     // caller times out, message stays
  // Delivers until no message is left (timers are never fired by this).
  void Stabilize();
  // Fires the node's armed timers (only those of `after` when non-zero).
  int FireTimers(const std::string& node, absl::Duration after);

  // Faults on the next `count` platform calls of `kind` on `node`.
  // The first `skip` calls of that kind run normally.
  void SetFault(const std::string& node, OpKind kind, FaultAction action, int count = 1,
                absl::StatusCode code = absl::StatusCode::kUnavailable, int skip = 0);
  // Crash when the node receives a message of `type`, before it sees it.
  void CrashOnReceive(const std::string& node, const std::string& type);
  void ClearFaults();
  // Lets hung platform calls of `node` take effect now (late).
  int ReleaseHung(const std::string& node);
  // The node's next HandOff stops after `stage` (kNothing: before the gate
  // closes) and fails with `code`, leaving what it did so far in place.
  void StopHandOffAfter(const std::string& node, platform::HandOffStage stage,
                        absl::StatusCode code);
  // The node's kernel loses its next `count` KernelEvents.
  void LoseKernelEvents(const std::string& node, int count);

  // Doorbells rung by HandOff, in flight to the target's kernel. Each
  // returns how many it touched (to: only those to that node; -1: all).
  int DeliverDoorbells(const std::string& to, int limit);
  int LoseDoorbells(const std::string& to, int limit);
  // Rings `to`'s doorbell by hand for (bdf, epoch), as if from `from`, at once.
  void RingDoorbell(const std::string& from, const std::string& to, const std::string& bdf,
                    uint64_t epoch);

  // Replaces the node's journal with its machine's CompactedJournal().
  void CompactJournal(const std::string& node);
  // The node's journal is gone (deleted, or moved aside after damage).
  void LoseJournal(const std::string& node);
  void Crash(const std::string& node);
  void Restart(const std::string& node);

  // Reports.
  void PrintOwners();
  void PrintHandovers(const std::string& node);
  void PrintJournal(const std::string& node);
  // Checks the settled state: record ACTIVE, its owner runs the NIC, nobody
  // else does, routing points at it, no live handover. Prints and returns
  // violations.
  std::vector<std::string> CheckSettled();

  // Introspection for the randomized test.
  const std::vector<std::string>& violations() const { return violations_; }
  std::vector<std::string> nodes() const;
  std::vector<std::string> nics() const;
  bool IsUp(const std::string& node) const;
  bool HasLiveHandovers() const;
  bool NicIdle(const std::string& bdf) const;  // no live handover of it anywhere
  std::string RecordOwner(const std::string& bdf) const;
  // Random-test helpers: act on the i-th (mod size) message in flight.
  void DeliverAt(size_t index);
  void DropAt(size_t index);
  void DuplicateAt(size_t index);
  // When holding, platform calls take effect at once but their results wait
  // until CompleteAt hands them to the daemon (one at a time, any order), so
  // every intermediate state of the record can be observed by the others.
  void HoldResults(bool hold);
  void CompleteAt(size_t index);
  size_t HeldResults() const;
  size_t PendingDoorbells() const { return doorbells_.size(); }
  void DeliverDoorbellAt(size_t index);
  void LoseDoorbellAt(size_t index);

 private:
  struct Node;
  struct Nic;
  // A PeerService request or its answer, in flight.
  struct Message {
    uint64_t id = 0;
    std::string from, to;
    bool is_request = true;
    uint64_t call_id = 0;
    uint64_t caller_incarnation = 0;  // the incarnation that made the call
    PeerRequestBody request;
    PeerResponseBody response;

    const std::string& caller() const { return is_request ? from : to; }
    std::string type() const;
    std::string Describe() const;
  };

  Node& node(const std::string& id);
  const Node& node(const std::string& id) const;
  void Feed(Node& n, Event event);
  void Pump(Node& n);
  void HandleReady(Node& n, Ready ready);
  void ExecuteOp(Node& n, const PlatformOp& op);
  OpResult Apply(Node& n, const PlatformOp& op, const platform::Fence& fence);
  platform::fake::FakeNic& ModelNic(const std::string& bdf);
  const v1::OwnershipRecord& RecordOf(const std::string& bdf) const;
  platform::HookState HookStateOf(const std::string& node, const std::string& bdf);
  std::vector<v1::MsiMessage> RoutingOf(const std::string& bdf);
  std::vector<Message> Take(const MessageFilter& filter);
  void DeliverMessage(Message message);
  void FailCall(const Message& message, absl::Status status);
  void CheckInvariants();
  void CheckPersisted(Node& n, const std::string& what, const std::string& handover_id,
                      JournalRecord::Kind kind);
  void Violation(const std::string& what);
  std::string NodeOfApic(uint32_t apic) const;
  platform::NicInfo NicInfoOf(const std::string& node, const Nic& nic) const;
  std::vector<v1::QueueRingState> RingsOf(const Nic& nic) const;
  // A doorbell (bdf, epoch) from `from`'s kernel reaching `to`'s (or lost).
  struct Doorbell {
    std::string from, to, bdf;
    uint64_t epoch = 0;
  };
  void RingKernel(const Doorbell& doorbell, bool lost);
  std::vector<Doorbell> TakeDoorbells(const std::string& to, int limit);
  void ApplyHandOff(Node& n, const PlatformOp& op, const platform::Fence& fence, OpResult& r);
  void EmitKernelEvent(Node& n, const platform::KernelEvent& event);

  TraceFn trace_;
  Timeouts timeouts_;
  size_t history_per_nic_ = MachineConfig().history_per_nic;
  std::vector<std::string> node_order_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
  std::map<std::string, std::unique_ptr<Nic>> nics_;
  // The machine (records, rings, vectors, hooks, reservations, arms,
  // kernels): what outlives a daemon crash, changed by the platform only.
  platform::fake::FakeMachineState machine_;
  std::deque<Message> network_;  // in send order
  std::deque<Doorbell> doorbells_;  // in ring order
  uint64_t next_message_ = 1;
  uint64_t next_token_ = 1;
  std::vector<std::string> violations_;
  bool hold_results_ = false;
  std::map<std::string, uint64_t> last_record_epoch_;
};

}  // namespace testing
}  // namespace protocol
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PROTOCOL_TESTING_WORLD_H_
