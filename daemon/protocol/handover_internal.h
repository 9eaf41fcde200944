// Internals of HandoverMachine shared by the files it is written in (one per
// role or job; docs/architecture.md lists them): what a handover waits for,
// what the machine keeps per handover, and the wording of the reasons it
// gives. Only daemon/protocol includes this.
#ifndef NICHANDOVER_DAEMON_PROTOCOL_HANDOVER_INTERNAL_H_
#define NICHANDOVER_DAEMON_PROTOCOL_HANDOVER_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/protocol/handover_machine.h"

namespace nichandover {
namespace protocol {

// What a handover waits for. Each value names the platform call, peer call or
// timer whose outcome moves the handover on.
enum class HandoverMachine::Wait {
  kNone,
  // Source, before the journal knows the handover.
  kReadRecord,
  kReadMessages,
  // Source, forward.
  kOffer,
  kPrepareCas,
  kQuiesce,
  kReroute,
  kWriteRings,
  kHandoffCas,
  kHandOff,  // the kernel commit path's one call (instead of the four above)
  kCommit,
  kOutcomePoll,  // timer: look at the record again
  kOutcomeRead,
  kRelease,
  // Source, rollback.
  kAbortRead,
  kAbortCas,
  kRestore,
  kResume,
  // Target.
  kOfferRead,  // the record, before an Offer is taken
  kReserve,
  kArm,         // the kernel commit path: arm this node's kernel
  kCommitWait,  // timer: no Commit came, look at the record
  kTargetRead,
  kReadRings,
  kCommitCas,
  kVetoCas,
  kAttach,
  kReleaseReservation,
  // Either: a failed step is redone when this timer fires.
  kRetry,
};

enum class Role { kSource, kTarget };

struct HandoverMachine::Handover {
  v1::Handover res;
  Role role = Role::kSource;
  Wait wait = Wait::kNone;
  Wait retry = Wait::kNone;  // what kRetry redoes
  std::string peer;          // the other node
  // from_epoch, the handover's epoch, and the epoch an abort establishes.
  uint64_t e0 = 0, e1 = 0, ea = 0;
  std::vector<v1::MsiMessage> previous;  // source: routing before
  std::vector<v1::MsiMessage> target_messages;
  uint32_t vector_count = 0;  // target: how many messages to reserve
  std::vector<v1::QueueRingState> rings;
  bool rings_known = false;
  bool started = false;  // its first record is in the journal
  bool offer_sent = false;
  bool may_have_quiesced = false;
  bool handoff_issued = false;  // the commit point may have been passed
  bool abort_sent = false;
  bool committed = false;  // target: the record names us ACTIVE
  bool veto_allowed = false;
  bool abort_requested = false;  // target: Abort came while reserving or arming
  // Target: its kernel is armed for HANDOFF(peer, self, e1) (the Accept
  // says so). Source: the target said so in its Accept.
  bool armed = false;
  // Source: why the kernel's HandOff failed, the error of a rollback the
  // record then decides (kept aside: the record may still say committed).
  absl::Status handoff_error;
  bool has_known = false;        // `known` is the record as it stands
  v1::OwnershipRecord known;
  uint64_t op = 0, call = 0, step_timer = 0, deadline_timer = 0;
  int failures = 0;
  absl::Duration timeout;
  std::vector<uint64_t> create_tokens;
  std::vector<uint64_t> offer_tokens;
  std::vector<uint64_t> commit_tokens;
  // The NIC as it was when the handover began (a copy: the inventory may
  // change, and grow, while the handover runs; the Offer's facts do not).
  platform::NicInfo nic;
  // FAILED and not yet decided by an operator: blocks new handovers of the
  // NIC and keeps RepairNic away from it (rules R1, R2 in docs/protocol.md).
  bool awaits_operator = false;
  // Restored from the journal after a restart: the state a step needs (the
  // rings, open calls) is gone, so an operator's redo reconciles from the
  // record instead of repeating the step.
  bool from_journal = false;

  bool done() const { return res.done(); }
  const std::string& id() const { return res.handover_id(); }
  const std::string& bdf() const { return res.bdf(); }
};

// ---------------------------------------------------------------- reasons.cc

// "OFFERING" for HANDOVER_PHASE_OFFERING.
std::string PhaseName(v1::HandoverPhase phase);
// The error a handover carries: a gRPC code, a stable reason, a message.
v1::Error MakeError(absl::StatusCode code, const std::string& reason, const std::string& message);
// "UNAVAILABLE: injected fault".
std::string StatusText(const absl::Status& status);
// Why a NIC with a FAILED handover takes no new one (rule R1).
std::string BlockedByFailedText(const HandoverMachine::Handover& h);

}  // namespace protocol
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PROTOCOL_HANDOVER_INTERNAL_H_
