// The handover protocol of one node, as a pure state machine (docs/protocol.md).
//
//   HandoverMachine machine(config);
//   machine.Step(RecoverEvent{...});          // always first
//   for (;;) {
//     Ready ready = machine.TakeReady();
//     journal.AppendAndSync(ready.records);   // BEFORE any action below
//     execute ready.ops / sends / answers / timers, feed results back:
//     machine.Step(OpDoneEvent{...}); ...
//   }
//
// One machine per node handles every NIC and handover of that node, as source
// and as target. It does no I/O, reads no clock and starts no threads: time is
// only timers it asks for, the world only events it is given. Not thread-safe;
// the daemon steps it from one thread.
#ifndef NICHANDOVER_DAEMON_PROTOCOL_HANDOVER_MACHINE_H_
#define NICHANDOVER_DAEMON_PROTOCOL_HANDOVER_MACHINE_H_

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/platform/platform.h"
#include "daemon/protocol/events.h"

namespace nichandover {
namespace protocol {

// Abstract durations the machine puts into timers and deadlines; the daemon
// fills them from TimeoutConfig.
struct Timeouts {
  absl::Duration peer_call = absl::Seconds(2);  // deadline of each PeerSend
  absl::Duration quiesce = absl::Seconds(2);    // Hook::Quiesce's own timeout
  absl::Duration reroute = absl::Seconds(1);    // Router calls
  absl::Duration attach = absl::Seconds(2);     // Hook attach/resume/release
  absl::Duration handover = absl::Seconds(30);  // whole handover, default
  absl::Duration arbiter = absl::Seconds(1);    // Arbiter calls
  // Between two looks at the record while waiting for the other side.
  absl::Duration poll = absl::Seconds(1);
  // A failing step after the decision (release, restore, attach...) is
  // retried this many times, then the handover is FAILED for an operator.
  int max_retries = 5;
};

// Limits of what a request may ask for (docs/protocol.md, "Limits").
// A handover's overall deadline and a maintenance quiesce's drain bound.
inline constexpr absl::Duration kMaxHandoverTimeout = absl::Hours(24);
inline constexpr absl::Duration kMaxQuiesceTimeout = absl::Hours(1);
// Vectors an Offer may ask the target to reserve (the MSI-X table maximum).
inline constexpr uint32_t kMaxOfferVectors = 2048;
// Longest string fields a request may carry, in bytes. Longer ones are
// INVALID_ARGUMENT naming the field and the size (the value is not echoed).
inline constexpr size_t kMaxNicBytes = 64;          // a BDF or an interface name
inline constexpr size_t kMaxNodeIdBytes = 63;       // as in the config
inline constexpr size_t kMaxRequestIdBytes = 128;
inline constexpr size_t kMaxHandoverIdBytes = 256;  // ids or "handovers/ID"
inline constexpr size_t kMaxTextBytes = 1024;       // reasons, driver names, tokens

// OK, or INVALID_ARGUMENT naming `request_id`: missing, longer than
// kMaxRequestIdBytes, or a character outside [A-Za-z0-9._:-]. The one check
// of request ids: the gRPC service and the machine both use it.
absl::Status CheckRequestId(const std::string& id);

struct FieldLimit {
  const char* field;
  const std::string& value;
  size_t max_bytes;
};
// OK, or INVALID_ARGUMENT for the first field longer than its limit.
absl::Status CheckFieldLengths(std::initializer_list<FieldLimit> fields);
// A request_id as CreateHandover and RecoverNic take it: 1-128 characters of
// [A-Za-z0-9._:-]. The daemon's API and the machine check it with this one.
bool ValidRequestId(const std::string& id);

struct MachineConfig {
  std::string node_id;
  // The other nodes of the machine (node_ids).
  std::vector<std::string> peers;
  // The NICs this node sees (its Inventory at start-up).
  std::vector<platform::NicInfo> nics;
  Timeouts timeouts;
  // Finished handovers kept per NIC for GetHandover/ListHandovers (and the
  // journal's compaction): the newest this many of each NIC; older finished
  // ones are forgotten. Live handovers are always kept, and so are FAILED
  // ones waiting for an operator (R1). At least 1.
  size_t history_per_nic = 100;
  // This node's platform has the kernel commit path (Platform::fast_path)
  // and the daemon's config allows it: as target it arms its kernel on an
  // Offer that allows it, as source it hands off in one kernel call when
  // the target armed.
  bool kernel_commit = false;
};

// "0000:03:00.0" from "0000:03:00.0", "03:00.0" or "nics/0000:03:00.0";
// INVALID_ARGUMENT naming `field` otherwise. (request_validation.cc)
absl::StatusOr<std::string> NormalizeBdf(const std::string& nic, const std::string& field);

class HandoverMachine {
 public:
  explicit HandoverMachine(MachineConfig config);
  ~HandoverMachine();
  HandoverMachine(const HandoverMachine&) = delete;
  HandoverMachine& operator=(const HandoverMachine&) = delete;

  // Feeds one event. The first event must be a RecoverEvent.
  void Step(Event event);
  // What the Steps since the last call produced (records first, see Ready).
  Ready TakeReady();
  bool HasReady() const { return !ready_.empty(); }

  const std::string& node_id() const { return config_.node_id; }
  // NOT_FOUND naming handover_id when unknown.
  absl::StatusOr<v1::Handover> GetHandover(const std::string& handover_id) const;
  // The handover a CreateHandover request_id started; NOT_FOUND if none.
  absl::StatusOr<v1::Handover> GetHandoverByRequestId(const std::string& request_id) const;
  // Newest first; only those of `bdf` when it is not empty.
  std::vector<v1::Handover> ListHandovers(const std::string& bdf) const;
  // Whether `bdf` is quiesced for maintenance here (held, or on its way in
  // or out of the hold).
  bool HeldForMaintenance(const std::string& bdf) const { return maintenance_.count(bdf) > 0; }
  // Handovers not yet done (either role).
  std::vector<v1::Handover> LiveHandovers() const;
  // A journal that replays to the machine's current state: one record per
  // known handover. The journal may replace its contents with these (after
  // syncing them) to compact.
  std::vector<JournalRecord> CompactedJournal() const;

  struct Handover;  // internal, defined in handover_internal.h

 private:
  enum class Wait;  // what a handover waits for (handover_internal.h)

  // The private members by the file that implements them.

  // handover_machine.cc: dispatch and the lookups every role uses.
  void OnInventory(const InventoryEvent& event);
  void OnPeerRequest(const PeerRequestEvent& event);
  void OnOpDone(const OpDoneEvent& event);
  void OnTimer(const TimerFiredEvent& event);
  void SeeRecord(const std::string& bdf, const v1::OwnershipRecord& record);
  uint64_t KnownEpoch(const std::string& bdf) const;
  const platform::NicInfo* FindNic(const std::string& bdf) const;
  bool IsPeer(const std::string& node) const;
  Handover* Find(const std::string& handover_id);
  Handover* LiveHandoverOf(const std::string& bdf);
  // The NIC's newest handover if it ended FAILED on a step that can be
  // redone and `record` is still what it left behind; nullptr otherwise.
  Handover* FailedHandoverAt(const std::string& bdf, const v1::OwnershipRecord& record);
  // A handover of `bdf` that ended FAILED and waits for an operator (R1).
  Handover* AwaitingOperator(const std::string& bdf);
  // Forgets `bdf`'s finished handovers beyond config_.history_per_nic,
  // oldest first.
  void TrimHistory(const std::string& bdf);

  // source_role.cc
  void OnCreate(const CreateHandoverEvent& event);
  void FailCreate(Handover& h, const absl::Status& status);
  void OnCancel(const CancelHandoverEvent& event);
  void OnPeerResponse(const PeerResponseEvent& event);
  void SendCommit(Handover& h);
  void SendAbort(Handover& h);
  void BeginAbort(Handover& h, absl::StatusCode code, const std::string& reason,
                  const std::string& message);
  void SourceResult(Handover& h, const OpResult& result);
  void SourceReconcile(Handover& h, const v1::OwnershipRecord& record);
  void OnAccept(Handover& h, const v1::OfferResponse& response);
  void HandOffDone(Handover& h, const OpResult& r);

  // target_role.cc
  void OnOffer(uint64_t token, const std::string& from, const v1::OfferRequest& request);
  void TakeOffer(Handover& h, const OpResult& r);
  // Refuses an Offer not yet taken and forgets it.
  void DropOffer(Handover& h, v1::RefusalReason reason, const std::string& message);
  void OnCommit(uint64_t token, const v1::CommitRequest& request);
  void OnAbort(uint64_t token, const v1::AbortRequest& request);
  void OnQuery(uint64_t token, const v1::QueryHandoverRequest& request);
  void TargetResult(Handover& h, const OpResult& result);
  void TargetReconcile(Handover& h, const v1::OwnershipRecord& record, bool may_veto);
  // The kernel commit path: the Offer's reservation is made; arm this
  // node's kernel when the Offer allows it, then answer.
  void ArmOrAccept(Handover& h);
  // Answers the Offer's callers Accept (armed or not), waits for Commit.
  void AcceptOffer(Handover& h, bool armed);
  void ArmResult(Handover& h, const OpResult& r);
  void OnKernelEvent(const KernelEventEvent& event);

  // handover_effects.cc: the calls, timers, phases and journal records of a
  // handover's steps.
  void IssueStepOp(Handover& h, Wait wait);
  void RetryLater(Handover& h, Wait redo, const absl::Status& why);
  void Finish(Handover& h, v1::HandoverPhase phase);
  void ArmWait(Handover& h, Wait wait, absl::Duration after);
  uint64_t ArmTimer(absl::Duration after);
  void CancelStepTimer(Handover& h);
  void SetPhase(Handover& h, v1::HandoverPhase phase, const std::string& detail);
  void Publish(const Handover& h);
  void AnswerOffers(Handover& h, bool accepted, v1::RefusalReason reason,
                    const std::string& message);
  void AnswerCommits(Handover& h, bool committed, const std::string& message);
  void Persist(const Handover& h, JournalRecord::Kind kind);
  JournalRecord FinishedRecord(const Handover& h) const;
  static const std::vector<std::pair<Wait, std::string>>& RedoSteps();
  static std::string RedoStepName(Wait wait);
  static Wait RedoStepFromName(const std::string& name);

  // restart_recovery.cc
  void OnRecover(const RecoverEvent& event);
  void RepairNic(const std::string& bdf, const v1::OwnershipRecord& record,
                 const platform::HookStatus& hook);
  void IssueRepair(const PlatformOp& op);
  void RepairResult(const PlatformOp& op, const OpResult& result);

  // operator_recovery.cc
  void OnRecoverNic(const RecoverNicEvent& event);
  void RecoverNicResult(uint64_t op_id, const OpResult& result);
  // A FAILED handover live again, then on from the record (docs/protocol.md,
  // rules R1 and R2).
  void ReviveFailed(Handover& h);
  void ReconcileRevived(Handover& h, const v1::OwnershipRecord& record);

  // maintenance.cc
  void OnQuiesceNic(const QuiesceNicEvent& event);
  void OnResumeNic(const ResumeNicEvent& event);
  // The BDF `nic` names if this node sees it; INVALID_ARGUMENT / NOT_FOUND.
  absl::StatusOr<std::string> SeenBdf(const std::string& nic) const;
  void IssueMaintenanceOp(const std::string& bdf, OpKind kind);
  void AnswerMaintenance(const std::string& bdf, const absl::StatusOr<v1::OwnershipRecord>& answer);
  void MaintenanceResult(uint64_t op_id, const OpResult& result);

  MachineConfig config_;
  bool recovered_ = false;
  Ready ready_;
  uint64_t next_id_ = 1;  // op ids, call ids and timer ids share one counter

  std::map<std::string, std::unique_ptr<Handover>> handovers_;
  std::deque<std::string> order_;  // started handovers, oldest first
  std::map<std::string, std::string> by_request_id_;
  // Aborts that arrived before their offer (reordered), so it is refused.
  std::set<std::string> aborted_unknown_;

  struct OpContext {
    std::string handover_id;  // empty for a repair
    PlatformOp op;            // repairs are retried as they were issued
  };
  std::map<uint64_t, OpContext> ops_;
  // Operator recoveries waiting for their read or CAS, by op id.
  struct NicRecovery {
    RecoverNicEvent request;
    std::string bdf;
    bool cas_issued = false;
  };
  std::map<uint64_t, NicRecovery> recoveries_;
  // Answers of finished recoveries by request_id (idempotent retries).
  std::map<std::string, v1::RecoverNicResponse> recoveries_done_;
  // NICs quiesced for maintenance (QuiesceNic) or on their way in or out,
  // by BDF. Not journalled: a restart resumes them (RepairNic).
  struct Maintenance {
    enum class Step { kReading, kQuiescing, kHeld, kResuming };
    Step step = Step::kReading;
    v1::OwnershipRecord record;  // ACTIVE(self) as read; its epoch fences the hook calls
    absl::Duration timeout;      // the quiesce's drain bound
    std::vector<uint64_t> tokens;  // requests waiting for the current step
  };
  std::map<std::string, Maintenance> maintenance_;
  std::map<uint64_t, std::string> maintenance_ops_;  // op id -> BDF
  std::map<uint64_t, std::string> calls_;  // call id -> handover id
  enum class TimerKind { kStep, kDeadline, kRepair };
  struct TimerContext {
    TimerKind kind = TimerKind::kStep;
    std::string handover_id;
    PlatformOp repair;
  };
  std::map<uint64_t, TimerContext> timers_;

  std::map<std::string, v1::OwnershipRecord> records_;  // last seen, per BDF
  std::map<std::string, uint64_t> hook_epochs_;         // at recovery, per BDF
};

}  // namespace protocol
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PROTOCOL_HANDOVER_MACHINE_H_
