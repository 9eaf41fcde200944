// What goes into the handover state machine (events) and what comes out of it
// (a Ready: records to persist, then actions to execute). The daemon turns
// gRPC calls, platform call results and timers into events, and Ready actions
// into journal appends, platform calls, gRPC calls and answers.
#ifndef NICHANDOVER_DAEMON_PROTOCOL_EVENTS_H_
#define NICHANDOVER_DAEMON_PROTOCOL_EVENTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/platform/platform.h"
#include "journal_record.pb.h"
#include "nichandover/v1/node_service.pb.h"
#include "nichandover/v1/peer_service.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace protocol {

// ---------------------------------------------------------------- platform

// One platform call, 1:1 with the methods of daemon/platform/platform.h.
enum class OpKind {
  kReadRecord,          // Arbiter::Read(bdf)
  kCompareAndSwap,      // Arbiter::CompareAndSwap(bdf, expected, desired)
  kWriteHandoffRings,   // Arbiter::WriteHandoffRings(bdf, epoch, rings)
  kReadHandoffRings,    // Arbiter::ReadHandoffRings(bdf, epoch)
  kQuiesce,             // Hook::Quiesce(bdf, epoch, timeout)
  kResume,              // Hook::Resume(bdf, epoch)
  kAttach,              // Hook::Attach(bdf, epoch, rings)
  kRelease,             // Hook::Release(bdf, epoch)
  kReadMessages,        // Router::ReadMessages(bdf)
  kReroute,             // Router::Reroute(bdf, epoch, messages)
  kRestore,             // Router::Restore(bdf, epoch, messages)
  kReserveMessages,     // Router::ReserveTargetMessages(bdf, epoch, count)
  kReleaseReservation,  // Router::ReleaseReservation(bdf, epoch)
  kArm,                 // FastPath::Arm(bdf, epoch, desired = HANDOFF(S, self, e1))
  kHandOff,             // FastPath::HandOff(bdf, epoch, expected, desired, messages, timeout)
};

const char* OpKindName(OpKind kind);

struct PlatformOp {
  uint64_t op_id = 0;  // echoed in OpDone
  OpKind kind = OpKind::kReadRecord;
  std::string bdf;
  uint64_t epoch = 0;
  v1::OwnershipRecord expected;  // kCompareAndSwap, kHandOff
  v1::OwnershipRecord desired;   // kCompareAndSwap, kHandOff, kArm
  std::vector<v1::MsiMessage> messages;    // kReroute, kRestore, kHandOff (target's)
  std::vector<v1::QueueRingState> rings;   // kWriteHandoffRings, kAttach
  uint32_t count = 0;                      // kReserveMessages
  absl::Duration timeout = absl::ZeroDuration();  // kQuiesce, kHandOff (drain)
};

// The FastPath::HandOff request a kHandOff op stands for, under `fence`
// (the epoch and the operation id the caller stamped).
inline platform::HandOffRequest HandOffRequestOf(const PlatformOp& op,
                                                 const platform::Fence& fence) {
  platform::HandOffRequest request;
  request.bdf = op.bdf;
  request.fence = fence;
  request.expected = op.expected;
  request.desired = op.desired;
  request.target_messages = op.messages;
  request.drain_timeout = op.timeout;
  return request;
}

// The result of a platform call. Only the field of the call's kind is set.
struct OpResult {
  absl::Status status;
  v1::OwnershipRecord record;              // kReadRecord, kCompareAndSwap
  std::vector<v1::MsiMessage> messages;    // kReadMessages, kReroute, kReserveMessages
  std::vector<v1::QueueRingState> rings;   // kReadHandoffRings
  platform::QuiesceResult quiesce;         // kQuiesce
  platform::HandOffResult handoff;         // kHandOff
};

// ---------------------------------------------------------------- events

// NodeService.CreateHandover. The daemon picks handover_id (unique); the
// machine validates everything else.
struct CreateHandoverEvent {
  uint64_t request_token = 0;  // echoed in the RequestAnswer
  std::string handover_id;
  std::string request_id;
  std::string nic;          // BDF, "03:00.0" short form or "nics/{bdf}"
  std::string target_node;
  absl::Duration timeout = absl::ZeroDuration();  // zero: configured default
  v1::CommitPath commit_path = v1::COMMIT_PATH_UNSPECIFIED;
};

// NodeService.CancelHandover.
struct CancelHandoverEvent {
  uint64_t request_token = 0;
  std::string handover_id;
  std::string reason;
};

// NodeService.RecoverNic: an operator decides a handover stuck without its
// peer. COMMIT is possible only from HANDOFF and only on the target (it holds
// the reservation); ABORT from PREPARING or HANDOFF, on any node: a CAS to
// ACTIVE(source, epoch+1), which races the target's commit CAS (one wins).
struct RecoverNicEvent {
  uint64_t request_token = 0;
  std::string request_id;
  std::string nic;
  v1::RecoveryDecision decision = v1::RECOVERY_DECISION_UNSPECIFIED;
};

// NodeService.QuiesceNic: an operator's maintenance quiesce of a NIC this
// node owns and runs (record ACTIVE(self)); no handover. While the NIC is
// held, CreateHandover of it is refused. Idempotent: a quiesce of a held NIC
// answers at once. Not journalled: a restarted daemon resumes the NIC (an
// owner's hook found quiesced is repaired to running).
struct QuiesceNicEvent {
  uint64_t request_token = 0;  // echoed in the MaintenanceAnswer
  std::string nic;             // as in CreateHandoverEvent.nic
  // Bound of the hook's drain; zero: Timeouts::quiesce.
  absl::Duration timeout = absl::ZeroDuration();
};

// NodeService.ResumeNic: ends a maintenance quiesce. Idempotent: a NIC that
// is not held answers at once.
struct ResumeNicEvent {
  uint64_t request_token = 0;
  std::string nic;
};

using PeerRequestBody = std::variant<v1::OfferRequest, v1::CommitRequest, v1::AbortRequest,
                                     v1::QueryHandoverRequest>;
using PeerResponseBody = std::variant<v1::OfferResponse, v1::CommitResponse, v1::AbortResponse,
                                      v1::QueryHandoverResponse>;

// A PeerService call from another node (already authenticated by the daemon).
struct PeerRequestEvent {
  uint64_t call_token = 0;  // echoed in the PeerAnswer
  std::string from_node;
  PeerRequestBody body;
};

// The outcome of a PeerSend: the answer, or the transport error (UNAVAILABLE,
// DEADLINE_EXCEEDED after the send's deadline).
struct PeerResponseEvent {
  uint64_t call_id = 0;
  absl::Status status;
  PeerResponseBody body;  // valid when status is OK
};

struct OpDoneEvent {
  uint64_t op_id = 0;
  OpResult result;
};

struct TimerFiredEvent {
  uint64_t timer_id = 0;
};

// The first event after a (re)start: the journal replayed in order, and what
// the machine looks like now, read by the daemon before it steps anything.
struct RecoverEvent {
  std::vector<JournalRecord> journal;
  // Ownership record per BDF (NICs without a record are left out).
  std::map<std::string, v1::OwnershipRecord> records;
  // This node's hook status per BDF.
  std::map<std::string, platform::HookStatus> hooks;
};

// What the node's Inventory says of some NICs now (the daemon reads it before
// a request that depends on it: a driver loaded since start, a NIC hot-plugged
// into this VM). Replaces what the machine knew of those NICs; decisions
// already taken are not revisited: a running handover keeps the NIC as it
// was when it began (its Offer's vector count, driver, queues).
struct InventoryEvent {
  std::vector<platform::NicInfo> nics;
};

// Something this node's kernel did alone on the kernel commit path
// (platform::KernelEvent): the daemon forwards each one it reads with
// FastPath::WaitEvents. A hint, never the truth: the machine reads the
// record before acting on it, so a lost, late or duplicated event changes
// only how soon it learns.
struct KernelEventEvent {
  platform::KernelEvent event;
};

using Event = std::variant<CreateHandoverEvent, CancelHandoverEvent, RecoverNicEvent,
                           QuiesceNicEvent, ResumeNicEvent, InventoryEvent,
                           PeerRequestEvent, PeerResponseEvent, OpDoneEvent, TimerFiredEvent,
                           RecoverEvent, KernelEventEvent>;

// ---------------------------------------------------------------- actions

// A PeerService call to make. The daemon gives it `deadline` and reports the
// outcome as a PeerResponseEvent with the same call_id.
struct PeerSend {
  uint64_t call_id = 0;
  std::string to_node;
  PeerRequestBody body;
  absl::Duration deadline = absl::ZeroDuration();
};

// The answer to a PeerRequestEvent.
struct PeerAnswer {
  uint64_t call_token = 0;
  PeerResponseBody body;
};

// The answer to a CreateHandoverEvent or CancelHandoverEvent.
struct RequestAnswer {
  uint64_t request_token = 0;
  absl::StatusOr<v1::Handover> handover;
};

// The answer to a RecoverNicEvent.
struct RecoverNicAnswer {
  uint64_t request_token = 0;
  absl::StatusOr<v1::RecoverNicResponse> response;
};

// The answer to a QuiesceNicEvent or ResumeNicEvent: the ownership record the
// hook call was made under.
struct MaintenanceAnswer {
  uint64_t request_token = 0;
  absl::StatusOr<v1::OwnershipRecord> record;
};

struct TimerArm {
  uint64_t timer_id = 0;
  absl::Duration after = absl::ZeroDuration();
};

// Everything one or more Steps produced. The daemon MUST append and sync
// `records` to the journal before it executes any action of the same Ready
// (ops, sends, answers); see docs/protocol.md, "the persistence rule". The
// actions of one Ready are independent of each other and may run in any order
// or concurrently; ordering between them is expressed by the machine waiting
// for a result before emitting the next action.
struct Ready {
  std::vector<JournalRecord> records;
  std::vector<PlatformOp> ops;
  std::vector<PeerSend> sends;
  std::vector<PeerAnswer> peer_answers;
  std::vector<RequestAnswer> answers;
  std::vector<RecoverNicAnswer> recover_answers;
  std::vector<MaintenanceAnswer> maintenance_answers;
  std::vector<TimerArm> timers;
  std::vector<uint64_t> cancel_timers;
  // Snapshots of handovers that changed, oldest first (for WatchHandover).
  std::vector<v1::Handover> updates;

  bool empty() const {
    return records.empty() && ops.empty() && sends.empty() && peer_answers.empty() &&
           answers.empty() && recover_answers.empty() && maintenance_answers.empty() &&
           timers.empty() &&
           cancel_timers.empty() && updates.empty();
  }
};

}  // namespace protocol
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PROTOCOL_EVENTS_H_
