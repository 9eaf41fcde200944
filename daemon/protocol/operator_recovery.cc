// Operator recovery (RecoverNic): one CAS deciding a handover stuck without
// its peer, or the redo of a FAILED handover's step (rules R1 and R2 in
// docs/protocol.md).
#include "daemon/protocol/handover_internal.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {

void HandoverMachine::OnRecoverNic(const RecoverNicEvent& e) {
  auto answer = [&](absl::StatusOr<v1::RecoverNicResponse> response) {
    ready_.recover_answers.push_back({e.request_token, std::move(response)});
  };
  if (absl::Status valid = CheckRequestId(e.request_id); !valid.ok()) return answer(valid);
  if (auto it = recoveries_done_.find(e.request_id); it != recoveries_done_.end()) return answer(it->second);
  absl::StatusOr<std::string> bdf = NormalizeBdf(e.nic, "nic");
  if (!bdf.ok()) return answer(bdf.status());
  if (FindNic(*bdf) == nullptr) {
    return answer(absl::NotFoundError(
        absl::StrCat("nic: node ", config_.node_id, " does not see ", *bdf)));
  }
  if (e.decision != v1::RECOVERY_DECISION_COMMIT && e.decision != v1::RECOVERY_DECISION_ABORT) {
    return answer(absl::InvalidArgumentError("decision: COMMIT or ABORT"));
  }
  PlatformOp op;
  op.op_id = next_id_++;
  op.kind = OpKind::kReadRecord;
  op.bdf = *bdf;
  ops_[op.op_id] = {"", op};
  recoveries_[op.op_id] = {e, *bdf, false};
  ready_.ops.push_back(op);
}

// The decision is one CAS from the record as read; whatever handover this
// node runs for the NIC (or has left FAILED for the operator) then
// reconciles from the record the CAS left.
void HandoverMachine::RecoverNicResult(uint64_t op_id, const OpResult& result) {
  NicRecovery recovery = std::move(recoveries_[op_id]);
  recoveries_.erase(op_id);
  auto answer = [&](absl::StatusOr<v1::RecoverNicResponse> response) {
    if (response.ok()) recoveries_done_[recovery.request.request_id] = *response;
    ready_.recover_answers.push_back({recovery.request.request_token, std::move(response)});
  };
  if (!result.status.ok()) {
    return answer(absl::UnavailableError("arbiter: " + StatusText(result.status)));
  }
  const v1::OwnershipRecord& record = result.record;
  SeeRecord(recovery.bdf, record);
  Handover* local = LiveHandoverOf(recovery.bdf);
  // A FAILED handover the record still names (R1/R2): the decision is its.
  Handover* failed = local == nullptr ? FailedHandoverAt(recovery.bdf, record) : nullptr;
  auto respond = [&]() {
    v1::RecoverNicResponse response;
    *response.mutable_ownership() = record;
    if (local != nullptr) *response.mutable_handover() = local->res;
    return response;
  };
  if (recovery.cas_issued) {
    if (failed != nullptr && record.epoch() >= failed->e1) {
      ReviveFailed(*failed);
      local = failed;
      ReconcileRevived(*failed, record);
      return answer(respond());
    }
    if (local != nullptr && record.epoch() >= local->e1) {
      if (recovery.request.decision == v1::RECOVERY_DECISION_ABORT && !local->res.has_error()) {
        local->res.mutable_error()->CopyFrom(MakeError(
            absl::StatusCode::kAborted, "OPERATOR_ABORTED", "rolled back by an operator"));
      }
      if (local->role == Role::kSource) {
        SourceReconcile(*local, record);
      } else {
        TargetReconcile(*local, record, /*may_veto=*/false);
      }
    }
    return answer(respond());
  }
  bool commit = recovery.request.decision == v1::RECOVERY_DECISION_COMMIT;
  v1::OwnershipRecord desired;
  if (record.state() == v1::OWNERSHIP_STATE_ACTIVE) {
    // The record already decided. With a handover of the NIC still live here
    // that is its answer; with none, the operator asked about nothing.
    if (local != nullptr) return answer(respond());
    if (failed != nullptr) {
      // A handover that gave up on a step after the record decided (a
      // restore, resume, attach or release that kept failing): the operator
      // has fixed the cause, so redo the step the record calls for.
      ReviveFailed(*failed);
      local = failed;
      if (failed->from_journal) {
        ReconcileRevived(*failed, record);
      } else {
        SetPhase(*failed,
                 record.owner_node() == failed->res.source_node()
                     ? v1::HANDOVER_PHASE_ROLLING_BACK
                     : v1::HANDOVER_PHASE_ATTACHING,
                 "operator recovery: record " + RecordString(record));
        IssueStepOp(*failed, failed->retry);
      }
      return answer(respond());
    }
    if (Handover* stuck = AwaitingOperator(recovery.bdf)) {
      // FAILED with no step to redo, or the record has moved on without it:
      // the operator's decision closes it, and the NIC takes handovers again.
      stuck->awaits_operator = false;
      stuck->res.mutable_error()->set_message(
          absl::StrCat(stuck->res.error().message(), "; closed by an operator (record ",
                       RecordString(record), ")"));
      Persist(*stuck, JournalRecord::FINISHED);
      Publish(*stuck);
      local = stuck;
      return answer(respond());
    }
    return answer(absl::FailedPreconditionError(
        absl::StrCat("nic: nothing to decide, no handover of ", recovery.bdf,
                     " is in transit (the record is ", RecordString(record), ")")));
  }
  Handover* mine = local != nullptr ? local : failed;
  if (commit) {
    if (record.state() != v1::OWNERSHIP_STATE_HANDOFF) {
      return answer(absl::FailedPreconditionError(absl::StrCat(
          "decision: COMMIT needs the record in HANDOFF, it is ", RecordString(record),
          "; the source has not handed off, use ABORT")));
    }
    if (record.target_node() != config_.node_id || mine == nullptr ||
        mine->role != Role::kTarget || mine->e1 != record.epoch()) {
      return answer(absl::FailedPreconditionError(absl::StrCat(
          "decision: COMMIT runs on the target ", record.target_node(),
          ", which holds the reservation")));
    }
    desired = ActiveRecord(record.target_node(), record.epoch());
  } else {
    desired = ActiveRecord(record.owner_node(), record.epoch() + 1);
  }
  PlatformOp op;
  op.op_id = next_id_++;
  op.kind = OpKind::kCompareAndSwap;
  op.bdf = recovery.bdf;
  op.expected = record;
  op.desired = desired;
  ops_[op.op_id] = {"", op};
  recovery.cas_issued = true;
  recoveries_[op.op_id] = std::move(recovery);
  ready_.ops.push_back(op);
}

void HandoverMachine::ReviveFailed(Handover& h) {
  h.res.set_done(false);
  h.failures = 0;
  h.awaits_operator = false;
  h.res.mutable_error()->set_message(
      absl::StrCat(h.res.error().message(), "; retried by an operator"));
}

// A FAILED handover restored from the journal (or one whose record the
// operator's CAS just moved): the step it failed on may need state a restart
// lost (the rings, the open calls), so it goes on from the record as a
// restarted daemon would: the source restores and resumes, or releases; the
// target attaches, or gives its reservation back.
void HandoverMachine::ReconcileRevived(Handover& h, const v1::OwnershipRecord& record) {
  if (h.role == Role::kSource) return SourceReconcile(h, record);
  TargetReconcile(h, record, /*may_veto=*/false);
}

}  // namespace protocol
}  // namespace nichandover
