// After a restart: the journal replayed, each unfinished handover decided
// from the record, and NICs without a handover brought in line with the
// record (RepairNic), never against a handover that may still need them.
#include "daemon/protocol/handover_internal.h"

#include <algorithm>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {

void HandoverMachine::OnRecover(const RecoverEvent& event) {
  NH_CHECK(!recovered_) << "node " << config_.node_id << ": Recover twice";
  recovered_ = true;
  for (const auto& [bdf, record] : event.records) SeeRecord(bdf, record);
  for (const auto& [bdf, hook] : event.hooks) hook_epochs_[bdf] = hook.epoch;

  for (const JournalRecord& raw : event.journal) {
    absl::StatusOr<UnpackedRecord> record = UnpackJournalRecord(raw);
    NH_CHECK(record.ok()) << "node " << config_.node_id << ": " << record.status().ToString();
    const v1::Handover& snapshot = record->handover;
    Handover* h = Find(snapshot.handover_id());
    if (h == nullptr) {
      auto owned = std::make_unique<Handover>();
      h = owned.get();
      handovers_[snapshot.handover_id()] = std::move(owned);
      order_.push_back(snapshot.handover_id());
    }
    h->res = snapshot;
    h->started = true;
    if (const platform::NicInfo* nic = FindNic(snapshot.bdf())) h->nic = *nic;
    // The role from the snapshot: after a compaction a FINISHED record may
    // be the only one of its handover.
    h->role = snapshot.source_node() == config_.node_id ? Role::kSource : Role::kTarget;
    h->peer = h->role == Role::kSource ? snapshot.target_node() : snapshot.source_node();
    h->e0 = snapshot.from_epoch();
    h->e1 = h->e0 + 1;
    h->ea = h->e1 + 1;
    std::vector<v1::MsiMessage>& messages =
        h->role == Role::kSource ? h->previous : h->target_messages;
    if (record->kind != JournalRecord::FINISHED || raw.awaits_operator()) {
      messages = record->messages;
    }
    // R2: a FAILED handover still waits for its operator after a restart.
    h->awaits_operator = record->kind == JournalRecord::FINISHED && raw.awaits_operator();
    h->retry = h->awaits_operator ? RedoStepFromName(raw.redo_step()) : Wait::kNone;
    h->from_journal = true;
    if (h->role == Role::kSource) {
      // Forward progress needs state the crash lost (the quiesce result, the
      // open calls); recovery only ever finishes or rolls back.
      h->offer_sent = true;
      h->may_have_quiesced = true;
      h->handoff_issued = true;  // unknown: refuse cancels, let the record decide
    }
    if (h->role == Role::kSource && !snapshot.request_id().empty()) {
      by_request_id_[snapshot.request_id()] = snapshot.handover_id();
    }
  }
  // A journal written under a larger history_per_nic keeps more.
  std::set<std::string> journal_nics;
  for (const std::string& id : order_) journal_nics.insert(handovers_.at(id)->bdf());
  for (const std::string& bdf : journal_nics) TrimHistory(bdf);

  std::set<std::string> busy;
  for (const std::string& id : order_) {
    Handover& h = *handovers_[id];
    if (h.done()) continue;
    busy.insert(h.bdf());
    SetPhase(h, h.res.phase(), "recovered after a restart");
    auto it = records_.find(h.bdf());
    if (h.role == Role::kSource) {
      if (it == records_.end()) {
        IssueStepOp(h, Wait::kAbortRead);
      } else {
        SourceReconcile(h, it->second);
      }
    } else {
      if (it == records_.end()) {
        IssueStepOp(h, Wait::kTargetRead);
      } else {
        TargetReconcile(h, it->second, /*may_veto=*/false);
      }
    }
  }
  for (const auto& [bdf, record] : records_) {
    if (busy.count(bdf)) continue;
    auto hook = event.hooks.find(bdf);
    if (hook != event.hooks.end()) RepairNic(bdf, record, hook->second);
  }
}

// A NIC with no handover in flight: the kernel state must agree with the
// record (owner runs it, everyone else has released it). Never against a
// handover that may still need the hook as it is: a FAILED one waiting for
// its operator (R2), or a record naming this node as a handover's source.
void HandoverMachine::RepairNic(const std::string& bdf, const v1::OwnershipRecord& record,
                                const platform::HookStatus& hook) {
  const std::string& me = config_.node_id;
  if (Handover* failed = AwaitingOperator(bdf)) {
    // Its redo is the operator's: resuming a source whose Restore failed
    // would run the NIC with its interrupts at the target.
    NH_LOG(WARNING) << "node " << me << ": " << bdf << " is left as it is (hook "
                    << platform::HookStateName(hook.state) << ", record "
                    << RecordString(record) << "): " << BlockedByFailedText(*failed);
    return;
  }
  bool owner = record.state() == v1::OWNERSHIP_STATE_ACTIVE && record.owner_node() == me;
  PlatformOp op;
  op.bdf = bdf;
  op.epoch = std::max(record.epoch(), hook.epoch);
  if (record.state() != v1::OWNERSHIP_STATE_ACTIVE && record.owner_node() == me) {
    // The record names this node as the source of a handover its journal
    // does not know (the journal was lost). Its hook is never released: the
    // handover may still end with this node as the owner.
    if (record.state() == v1::OWNERSHIP_STATE_PREPARING &&
        hook.state == platform::HookState::kRunning) {
      // Still before the commit point and never quiesced, hence never
      // rerouted: moving the record on to a fresh epoch (which fences the
      // target's offer; it gives its vectors back when it sees the record)
      // and resuming at that epoch restore everything.
      NH_LOG(WARNING) << "node " << me << ": " << bdf << " is " << RecordString(record)
                      << " naming this node as the source, with no handover in the journal; "
                         "rolling back";
      op.kind = OpKind::kCompareAndSwap;
      op.expected = record;
      op.desired = ActiveRecord(me, record.epoch() + 1);
      return IssueRepair(op);
    }
    // Quiesced in PREPARING, the old MSI messages are lost with the journal;
    // in HANDOFF only the target (or an operator) decides.
    NH_LOG(ERROR) << "node " << me << ": " << bdf << " is " << RecordString(record)
                  << " naming this node as the source, its hook is "
                  << platform::HookStateName(hook.state)
                  << " and the journal knows no handover: left as it is; decide with "
                     "`nicctl recover "
                  << bdf << " --decide abort|commit`";
    return;
  }
  if (owner && hook.state == platform::HookState::kQuiesced) {
    op.kind = OpKind::kResume;
  } else if (owner && hook.state == platform::HookState::kDetached) {
    // The owner lost its attach with the journal (or never made it): attach
    // from the rings the source left beside the record for this epoch.
    NH_LOG(WARNING) << "node " << me << " owns " << bdf << " by the record " << RecordString(record)
                    << " but its hook is detached; attaching from the handoff rings";
    op.kind = OpKind::kReadHandoffRings;
    op.epoch = record.epoch();
  } else if (!owner && hook.state != platform::HookState::kDetached) {
    op.kind = OpKind::kRelease;
  } else {
    return;
  }
  IssueRepair(op);
}

// The outcome of a repair (RepairNic, a maintenance quiesce's resume): the
// next call of the repair, or the same one again after a poll.
void HandoverMachine::RepairResult(const PlatformOp& op, const OpResult& result) {
  if (op.kind == OpKind::kReadHandoffRings) {
    if (result.status.code() == absl::StatusCode::kNotFound) {
      NH_LOG(ERROR) << "node " << config_.node_id << ": no handoff rings for "
                    << op.bdf << " at epoch " << op.epoch
                    << "; its hook stays detached until an operator acts";
      return;
    }
    if (result.status.ok()) {
      PlatformOp attach = op;
      attach.kind = OpKind::kAttach;
      attach.rings = result.rings;
      return IssueRepair(attach);
    }
  }
  if (!result.status.ok()) {
    // A CAS that failed may have been refused because the record moved:
    // the repair is retried from what the record says then.
    uint64_t timer = ArmTimer(config_.timeouts.poll);
    timers_[timer] = {TimerKind::kRepair, "", op};
    return;
  }
  if (op.kind == OpKind::kCompareAndSwap &&
      SameRecord(result.record, op.desired)) {
    // A source's rollback without a journal: resume at the new epoch
    // (a no-op on a running NIC, and it moves the hook to that epoch).
    PlatformOp resume;
    resume.bdf = op.bdf;
    resume.kind = OpKind::kResume;
    resume.epoch = op.desired.epoch();
    IssueRepair(resume);
  }
}

void HandoverMachine::IssueRepair(const PlatformOp& op) {
  PlatformOp issued = op;
  issued.op_id = next_id_++;
  ops_[issued.op_id] = {"", issued};
  ready_.ops.push_back(issued);
}

}  // namespace protocol
}  // namespace nichandover
