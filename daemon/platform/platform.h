// The platform seam: everything nichandoverd needs from the machine it runs
// on, behind four small interfaces. Backends: fake (tests; state in a file
// shared by the daemons of a test), sim (the simulated multi-OS machine),
// linux (libpci + sysfs + the kernel module), vm (host agent + hypervisor).
//
// Calls are synchronous and may block (a quiesce waits for the driver); the
// daemon runs them off its protocol thread and bounds them with timers, so an
// implementation never needs its own threads. Every operation that changes the
// data path, the routing or the handoff rings carries a Fence (common/fence.h):
// the handover's epoch and the daemon's operation id. The kernel side keeps
// the highest fence it accepted per device (per node for the hook and the
// router; vm keeps the router's in the host agent) and refuses a lower one
// with FAILED_PRECONDITION naming both fences: a lower epoch
// fences a stale daemon instance, a lower operation id at the same epoch a
// late call (of a crashed instance, or one the daemon timed out and retried).
#ifndef NICHANDOVER_DAEMON_PLATFORM_PLATFORM_H_
#define NICHANDOVER_DAEMON_PLATFORM_PLATFORM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/fence.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace platform {

using ::nichandover::Fence;

// What a node knows of one NIC (PCI function).
struct NicInfo {
  std::string bdf;  // "0000:03:00.0"
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;
  std::string driver;  // "" when no driver is bound on this node
  std::string netdev;  // "" when no interface exists on this node
  uint32_t queue_count = 1;
  // Interrupt capability and its current programming (vectors decoded).
  v1::InterruptLayout interrupts;
};

// Lists the NICs this node can see.
class Inventory {
 public:
  virtual ~Inventory() = default;
  virtual absl::StatusOr<std::vector<NicInfo>> ListNics() = 0;
  // NOT_FOUND when the node does not see that function.
  virtual absl::StatusOr<NicInfo> GetNic(const std::string& bdf) = 0;
};

// What a quiesce drained and where the rings stopped.
struct QuiesceResult {
  uint64_t drained_tx_packets = 0;
  uint64_t drained_rx_packets = 0;
  uint64_t held_xmits = 0;            // transmit attempts held at the gate
  uint64_t polls_while_quiesced = 0;  // must stay 0
  std::vector<v1::QueueRingState> rings;
};

// The hook's view of one device on this node.
enum class HookState {
  kDetached,   // this node does not run the NIC
  kRunning,    // gates open, NAPI enabled, vectors unmasked
  kQuiesced,   // gates closed, drained, NAPI disabled, vectors masked
};

struct HookStatus {
  HookState state = HookState::kDetached;
  uint64_t epoch = 0;  // highest epoch seen for the device
  uint64_t held_xmits = 0;
  uint64_t polls_while_quiesced = 0;
  uint64_t drained_tx_packets = 0;
};

// The node's kernel-side hook: gates the data path at dev_hard_start_xmit and
// net_rx_action's NAPI poll. Operations with a fence below the highest the
// node accepted for the device fail with FAILED_PRECONDITION; a retry with
// the same fence is admitted again. NOT_FOUND for a device the machine does
// not have.
class Hook {
 public:
  virtual ~Hook() = default;
  // Source: close the gates, drain TX completions and RX within `timeout`,
  // disable NAPI, mask the vectors. DEADLINE_EXCEEDED if the drain does not
  // finish (the gates stay closed; Resume reopens them).
  virtual absl::StatusOr<QuiesceResult> Quiesce(const std::string& bdf, const Fence& fence,
                                                absl::Duration timeout) = 0;
  // Source, after an abort: the exact reverse of Quiesce.
  virtual absl::Status Resume(const std::string& bdf, const Fence& fence) = 0;
  // Target, after winning the commit: start running the NIC from `rings`,
  // unmask the vectors and replay pending interrupts.
  virtual absl::Status Attach(const std::string& bdf, const Fence& fence,
                              const std::vector<v1::QueueRingState>& rings) = 0;
  // Source, after the target committed: forget the device (stays gated).
  virtual absl::Status Release(const std::string& bdf, const Fence& fence) = 0;
  virtual absl::StatusOr<HookStatus> Status(const std::string& bdf) = 0;
};

// Rewrites a NIC's interrupt messages (MSI/MSI-X) and reserves messages on
// this node's CPUs for NICs it is offered.
class Router {
 public:
  virtual ~Router() = default;
  // The messages programmed in the device now, one per vector.
  virtual absl::StatusOr<std::vector<v1::MsiMessage>> ReadMessages(const std::string& bdf) = 0;
  // Source: mask each vector, write `target`, read back and compare, leave
  // masked (Attach unmasks). Returns the messages it replaced, for Restore.
  // FAILED_PRECONDITION when interrupt remapping is on.
  virtual absl::StatusOr<std::vector<v1::MsiMessage>> Reroute(
      const std::string& bdf, const Fence& fence, const std::vector<v1::MsiMessage>& target) = 0;
  // Source, on rollback: write `previous` back the same careful way.
  virtual absl::Status Restore(const std::string& bdf, const Fence& fence,
                               const std::vector<v1::MsiMessage>& previous) = 0;
  // Target, on an offer: reserve `count` vectors on this node's CPUs and
  // return the messages that reach them. RESOURCE_EXHAUSTED when there are
  // not enough free vectors.
  virtual absl::StatusOr<std::vector<v1::MsiMessage>> ReserveTargetMessages(const std::string& bdf,
                                                                            const Fence& fence,
                                                                            uint32_t count) = 0;
  // Target, on abort: give the reservation back (no-op if there is none).
  virtual absl::Status ReleaseReservation(const std::string& bdf, const Fence& fence) = 0;
};

// The NIC's ownership record, in what all nodes of the machine share (shared
// memory, or the hypervisor's host agent). Changed only by compare-and-swap.
class Arbiter {
 public:
  virtual ~Arbiter() = default;
  // NOT_FOUND when the machine has no record for the NIC.
  virtual absl::StatusOr<v1::OwnershipRecord> Read(const std::string& bdf) = 0;
  // Replaces the record with `desired` iff it equals `expected` (all fields).
  // Returns the record after the call: equal to `desired` iff this call won.
  virtual absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(
      const std::string& bdf, const v1::OwnershipRecord& expected,
      const v1::OwnershipRecord& desired) = 0;
  // Ring state stored beside the record by the source before HANDOFF, so the
  // target can attach even if the source dies right after the CAS.
  virtual absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                         const std::vector<v1::QueueRingState>& rings) = 0;
  // Refused (FAILED_PRECONDITION) when rings with a higher fence are stored:
  // a late write of an aborted attempt must not replace a later HANDOFF's.
  // NOT_FOUND when none was written for that epoch.
  virtual absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(
      const std::string& bdf, uint64_t epoch) = 0;
};

// ---------------------------------------------------------------- kernel commit path
//
// docs/protocol.md, "The kernel commit path": everything that can happen
// before the blackout does (Offer/Accept, the target's reservation, the
// PREPARING CAS, both journal syncs); then the target daemon arms its kernel
// and the source daemon makes one kernel call that quiesces, reroutes,
// writes the rings beside the record, CASes PREPARING -> HANDOFF and rings
// the target kernel's doorbell (an interrupt on the machine's fabric). The
// armed target kernel, woken by the doorbell, CASes HANDOFF -> ACTIVE(T, e1),
// attaches from the rings, unmasks and opens its gates with no daemon in
// between; the daemons learn it from KernelEvents and journal afterwards.

// The source's one call.
struct HandOffRequest {
  std::string bdf;
  Fence fence;                         // the handover's epoch e1
  v1::OwnershipRecord expected;        // PREPARING(S, T, e1)
  v1::OwnershipRecord desired;         // HANDOFF(S, T, e1)
  // The target's reserved messages, one per vector (its Accept).
  std::vector<v1::MsiMessage> target_messages;
  absl::Duration drain_timeout = absl::ZeroDuration();  // as Hook::Quiesce's
};

// How far a HandOff got, in order.
enum class HandOffStage {
  kNothing,
  kQuiesced,      // gates closed, drained, NAPI disabled, vectors masked
  kRerouted,      // every vector masked and holding target_messages
  kRingsWritten,  // the rings beside the record at e1
  kHandedOff,     // the CAS PREPARING -> HANDOFF won: the commit point
  kDoorbellRung,  // the target kernel's doorbell rung
};
const char* HandOffStageName(HandOffStage stage);

struct HandOffResult {
  HandOffStage reached = HandOffStage::kNothing;
  QuiesceResult quiesce;                 // from kQuiesced
  std::vector<v1::MsiMessage> previous;  // what Reroute replaced, from kRerouted
  // The record after the CAS: `desired` iff it won. From kRingsWritten; or
  // at kNothing when the call found the record not `expected` before it
  // touched the NIC (the CAS is lost already; the NIC still runs here, so
  // there is nothing to restore and `previous` is empty).
  v1::OwnershipRecord record;
};

// Something a node's kernel did on its own.
struct KernelEvent {
  enum class Kind {
    // The armed kernel won HANDOFF(S, self, epoch) -> ACTIVE(self, epoch)
    // and runs the NIC (attached, unmasked, gates open).
    kCommitted,
    // The armed kernel was rung but did not commit: the record was not the
    // HANDOFF it was armed for (a stale or foreign doorbell), its CAS lost,
    // or the attach failed (`message`); the arm stays until released.
    kNotCommitted,
  };
  uint64_t seq = 0;  // grows per kernel boot; see FastPath::WaitEvents
  Kind kind = Kind::kCommitted;
  std::string bdf;
  uint64_t epoch = 0;
  v1::OwnershipRecord record;  // as the kernel left or found it
  std::string message;
};

struct KernelEvents {
  std::vector<KernelEvent> events;  // oldest first
  uint64_t last_seq = 0;            // pass it as `after_seq` next time
};

class FastPath {
 public:
  virtual ~FastPath() = default;
  // Target, after ReserveTargetMessages at the same epoch: commit and attach
  // alone when the record becomes exactly `handoff` (HANDOFF(S, self, e1))
  // and the doorbell rings. FAILED_PRECONDITION without a reservation at
  // that epoch, or for a lower fence. ReleaseReservation disarms. Survives
  // the daemon (not the kernel).
  virtual absl::Status Arm(const std::string& bdf, const Fence& fence,
                           const v1::OwnershipRecord& handoff) = 0;
  // Source, record PREPARING(S, T, e1) (its CAS won): the one kernel call.
  // OK when it ran to the CAS (won or lost: see HandOffResult::record);
  // an error otherwise (drain timeout, fence, read-back mismatch,
  // transport), with the NIC possibly quiesced and rerouted: the caller
  // reads the record and rolls back or carries on from what it finds.
  virtual absl::StatusOr<HandOffResult> HandOff(const HandOffRequest& request) = 0;
  // Waits up to `timeout` for events newer than `after_seq` and returns them
  // (none on timeout). A kernel that restarted numbers from 1 again: when
  // its newest seq is below `after_seq`, everything it has is returned.
  virtual absl::StatusOr<KernelEvents> WaitEvents(uint64_t after_seq,
                                                  absl::Duration timeout) = 0;
};

// One backend's parts.
struct Platform {
  std::string name;  // "fake", "sim", "linux", "vm"
  std::unique_ptr<Inventory> inventory;
  std::unique_ptr<Hook> hook;
  std::unique_ptr<Router> router;
  std::unique_ptr<Arbiter> arbiter;
  // Null when the backend has no kernel commit path (vm; linux without a
  // contract driver that provides the record and doorbell).
  std::unique_ptr<FastPath> fast_path;
};

const char* HookStateName(HookState state);

}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_PLATFORM_H_
