// Maintenance quiesce (QuiesceNic / ResumeNic): a NIC this node owns held
// quiesced at the record's epoch, without a handover.
#include "daemon/protocol/handover_internal.h"

#include "absl/strings/str_cat.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {

absl::StatusOr<std::string> HandoverMachine::SeenBdf(const std::string& nic) const {
  absl::StatusOr<std::string> bdf = NormalizeBdf(nic, "nic");
  if (bdf.ok() && FindNic(*bdf) == nullptr) {
    return absl::NotFoundError(absl::StrCat("nic: node ", config_.node_id, " does not see ", *bdf));
  }
  return bdf;
}

// A maintenance quiesce: read the record (the NIC must be ACTIVE here), then
// Quiesce at its epoch; the NIC stays held until ResumeNic. Requests that come
// while a step runs wait for its outcome, so a retry never doubles a call.
void HandoverMachine::OnQuiesceNic(const QuiesceNicEvent& e) {
  auto answer = [&](absl::StatusOr<v1::OwnershipRecord> record) {
    ready_.maintenance_answers.push_back({e.request_token, std::move(record)});
  };
  absl::StatusOr<std::string> bdf = SeenBdf(e.nic);
  if (!bdf.ok()) return answer(bdf.status());
  if (e.timeout < absl::ZeroDuration()) {
    return answer(absl::InvalidArgumentError("timeout: must not be negative"));
  }
  if (e.timeout > kMaxQuiesceTimeout) {
    return answer(absl::InvalidArgumentError(
        absl::StrCat("timeout: must be at most ", absl::FormatDuration(kMaxQuiesceTimeout))));
  }
  if (auto it = maintenance_.find(*bdf); it != maintenance_.end()) {
    Maintenance& m = it->second;
    switch (m.step) {
      case Maintenance::Step::kHeld:
        return answer(m.record);
      case Maintenance::Step::kResuming:
        return answer(absl::FailedPreconditionError(
            absl::StrCat("nic: ", *bdf, " is being resumed; quiesce it again afterwards")));
      default:
        m.tokens.push_back(e.request_token);
        return;
    }
  }
  if (Handover* running = LiveHandoverOf(*bdf)) {
    return answer(absl::FailedPreconditionError(
        absl::StrCat("nic: handover ", running->id(), " of ", *bdf, " is running (phase ",
                     PhaseName(running->res.phase()), "); quiesce it when it is done")));
  }
  Maintenance& m = maintenance_[*bdf];
  m.timeout = e.timeout > absl::ZeroDuration() ? e.timeout : config_.timeouts.quiesce;
  m.tokens.push_back(e.request_token);
  IssueMaintenanceOp(*bdf, OpKind::kReadRecord);
}

void HandoverMachine::OnResumeNic(const ResumeNicEvent& e) {
  auto answer = [&](absl::StatusOr<v1::OwnershipRecord> record) {
    ready_.maintenance_answers.push_back({e.request_token, std::move(record)});
  };
  absl::StatusOr<std::string> bdf = SeenBdf(e.nic);
  if (!bdf.ok()) return answer(bdf.status());
  auto it = maintenance_.find(*bdf);
  if (it == maintenance_.end()) {
    // Not held: nothing to reopen (a retry after success lands here too).
    auto known = records_.find(*bdf);
    return answer(known != records_.end() ? known->second : v1::OwnershipRecord());
  }
  Maintenance& m = it->second;
  switch (m.step) {
    case Maintenance::Step::kHeld:
      m.step = Maintenance::Step::kResuming;
      m.tokens.push_back(e.request_token);
      return IssueMaintenanceOp(*bdf, OpKind::kResume);
    case Maintenance::Step::kResuming:
      m.tokens.push_back(e.request_token);
      return;
    default:
      return answer(absl::FailedPreconditionError(absl::StrCat(
          "nic: ", *bdf, " is being quiesced; resume it when the quiesce has answered")));
  }
}

void HandoverMachine::IssueMaintenanceOp(const std::string& bdf, OpKind kind) {
  const Maintenance& m = maintenance_.at(bdf);
  PlatformOp op;
  op.op_id = next_id_++;
  op.kind = kind;
  op.bdf = bdf;
  op.epoch = kind == OpKind::kReadRecord ? 0 : m.record.epoch();
  if (kind == OpKind::kQuiesce) op.timeout = m.timeout;
  ops_[op.op_id] = {"", op};
  maintenance_ops_[op.op_id] = bdf;
  ready_.ops.push_back(op);
}

void HandoverMachine::AnswerMaintenance(const std::string& bdf,
                                        const absl::StatusOr<v1::OwnershipRecord>& answer) {
  Maintenance& m = maintenance_.at(bdf);
  for (uint64_t token : m.tokens) ready_.maintenance_answers.push_back({token, answer});
  m.tokens.clear();
}

void HandoverMachine::MaintenanceResult(uint64_t op_id, const OpResult& result) {
  std::string bdf = maintenance_ops_[op_id];
  maintenance_ops_.erase(op_id);
  Maintenance& m = maintenance_.at(bdf);
  switch (m.step) {
    case Maintenance::Step::kReading: {
      if (!result.status.ok()) {
        AnswerMaintenance(bdf, absl::UnavailableError("arbiter: " + StatusText(result.status)));
        maintenance_.erase(bdf);
        return;
      }
      SeeRecord(bdf, result.record);
      const v1::OwnershipRecord& record = result.record;
      if (record.state() != v1::OWNERSHIP_STATE_ACTIVE ||
          record.owner_node() != config_.node_id) {
        AnswerMaintenance(bdf, absl::FailedPreconditionError(absl::StrCat(
                                   "nic: node ", config_.node_id, " does not run ", bdf,
                                   " (the record is ", RecordString(record),
                                   "); quiesce it on its owner")));
        maintenance_.erase(bdf);
        return;
      }
      if (Handover* running = LiveHandoverOf(bdf)) {
        // A peer's offer may have started one while the record was read.
        AnswerMaintenance(bdf, absl::FailedPreconditionError(absl::StrCat(
                                   "nic: handover ", running->id(), " of ", bdf, " is running")));
        maintenance_.erase(bdf);
        return;
      }
      m.record = record;
      m.step = Maintenance::Step::kQuiescing;
      return IssueMaintenanceOp(bdf, OpKind::kQuiesce);
    }
    case Maintenance::Step::kQuiescing: {
      if (result.status.ok()) {
        m.step = Maintenance::Step::kHeld;
        return AnswerMaintenance(bdf, m.record);
      }
      // A drain past its deadline (or a leaking gate) leaves the gates
      // closed: reopen them, the NIC was not meant to stop for nothing.
      // Refusals before anything happened need no resume.
      absl::StatusCode code = result.status.code();
      bool may_be_closed = code != absl::StatusCode::kFailedPrecondition &&
                           code != absl::StatusCode::kNotFound &&
                           code != absl::StatusCode::kInvalidArgument &&
                           code != absl::StatusCode::kPermissionDenied &&
                           code != absl::StatusCode::kUnimplemented;
      if (may_be_closed) {
        PlatformOp resume;
        resume.kind = OpKind::kResume;
        resume.bdf = bdf;
        resume.epoch = m.record.epoch();
        IssueRepair(resume);
      }
      AnswerMaintenance(bdf, absl::Status(code, absl::StrCat("hook: quiesce of ", bdf, ": ",
                                                             result.status.message())));
      maintenance_.erase(bdf);
      return;
    }
    case Maintenance::Step::kResuming: {
      if (!result.status.ok()) {
        // Still held: the operator may retry the resume.
        m.step = Maintenance::Step::kHeld;
        return AnswerMaintenance(bdf, absl::Status(result.status.code(),
                                                   absl::StrCat("hook: resume of ", bdf, ": ",
                                                                result.status.message())));
      }
      AnswerMaintenance(bdf, m.record);
      maintenance_.erase(bdf);
      return;
    }
    case Maintenance::Step::kHeld:
      return;
  }
}

}  // namespace protocol
}  // namespace nichandover
