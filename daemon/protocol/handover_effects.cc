// The effects of a handover's steps and the journal rules: the platform call
// each wait makes, timers, phases and updates, the records that must be
// durable before an action, retries and the end of a handover.
#include "daemon/protocol/handover_internal.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {

uint64_t HandoverMachine::ArmTimer(absl::Duration after) {
  uint64_t id = next_id_++;
  ready_.timers.push_back({id, after});
  return id;
}

void HandoverMachine::CancelStepTimer(Handover& h) {
  if (h.step_timer != 0) {
    timers_.erase(h.step_timer);
    ready_.cancel_timers.push_back(h.step_timer);
    h.step_timer = 0;
  }
}

void HandoverMachine::ArmWait(Handover& h, Wait wait, absl::Duration after) {
  CancelStepTimer(h);
  h.wait = wait;
  h.op = 0;
  h.call = 0;
  h.step_timer = ArmTimer(after);
  timers_[h.step_timer] = {TimerKind::kStep, h.id(), {}};
}

void HandoverMachine::Publish(const Handover& h) {
  if (h.started) ready_.updates.push_back(h.res);
}

void HandoverMachine::SetPhase(Handover& h, v1::HandoverPhase phase, const std::string& detail) {
  if (h.res.phase() == phase && detail.empty()) return;
  h.res.set_phase(phase);
  v1::PhaseRecord* record = h.res.add_phases();
  record->set_phase(phase);
  record->set_detail(detail);
  Publish(h);
}

void HandoverMachine::Persist(const Handover& h, JournalRecord::Kind kind) {
  if (kind == JournalRecord::FINISHED) {
    ready_.records.push_back(FinishedRecord(h));
    return;
  }
  ready_.records.push_back(MakeJournalRecord(
      kind, h.res, kind == JournalRecord::SOURCE_STARTED ? h.previous : h.target_messages));
}

// A FAILED handover that waits for an operator keeps in the journal what a
// redo after a restart needs (rule R2): the step and the messages.
JournalRecord HandoverMachine::FinishedRecord(const Handover& h) const {
  if (!h.awaits_operator) return MakeJournalRecord(JournalRecord::FINISHED, h.res, {});
  JournalRecord record = MakeJournalRecord(
      JournalRecord::FINISHED, h.res, h.role == Role::kSource ? h.previous : h.target_messages);
  record.set_awaits_operator(true);
  record.set_redo_step(RedoStepName(h.retry));
  return record;
}

// The steps RetryLater may give up on, by the names the journal keeps (R2).
// The names are durable: never rename one.
const std::vector<std::pair<HandoverMachine::Wait, std::string>>& HandoverMachine::RedoSteps() {
  static const auto* steps = new std::vector<std::pair<Wait, std::string>>{
      {Wait::kOutcomeRead, "OUTCOME_READ"},
      {Wait::kAbortRead, "ABORT_READ"},
      {Wait::kRelease, "RELEASE"},
      {Wait::kRestore, "RESTORE"},
      {Wait::kResume, "RESUME"},
      {Wait::kTargetRead, "TARGET_READ"},
      {Wait::kReadRings, "READ_RINGS"},
      {Wait::kAttach, "ATTACH"},
      {Wait::kReleaseReservation, "RELEASE_RESERVATION"},
  };
  return *steps;
}

std::string HandoverMachine::RedoStepName(Wait wait) {
  for (const auto& [step, name] : RedoSteps()) {
    if (step == wait) return name;
  }
  return "";
}

HandoverMachine::Wait HandoverMachine::RedoStepFromName(const std::string& name) {
  for (const auto& [step, known] : RedoSteps()) {
    if (known == name) return step;
  }
  return Wait::kNone;  // none recorded, or a name this version does not know
}

// Builds the platform call for `wait` from the handover's fields, so a first
// attempt and a retry are the same call.
void HandoverMachine::IssueStepOp(Handover& h, Wait wait) {
  // Which call each wait makes, at which epoch, guarded by which timeout.
  enum class At { kNone, kNew, kAbort };
  struct StepCall {
    Wait wait;
    OpKind kind;
    At epoch;
    absl::Duration Timeouts::*guard;
  };
  static const StepCall kCalls[] = {
      {Wait::kReadRecord, OpKind::kReadRecord, At::kNone, &Timeouts::arbiter},
      {Wait::kOutcomeRead, OpKind::kReadRecord, At::kNone, &Timeouts::arbiter},
      {Wait::kAbortRead, OpKind::kReadRecord, At::kNone, &Timeouts::arbiter},
      {Wait::kTargetRead, OpKind::kReadRecord, At::kNone, &Timeouts::arbiter},
      {Wait::kOfferRead, OpKind::kReadRecord, At::kNone, &Timeouts::arbiter},
      {Wait::kReadMessages, OpKind::kReadMessages, At::kNone, &Timeouts::reroute},
      {Wait::kPrepareCas, OpKind::kCompareAndSwap, At::kNone, &Timeouts::arbiter},
      {Wait::kHandoffCas, OpKind::kCompareAndSwap, At::kNone, &Timeouts::arbiter},
      {Wait::kAbortCas, OpKind::kCompareAndSwap, At::kNone, &Timeouts::arbiter},
      {Wait::kCommitCas, OpKind::kCompareAndSwap, At::kNone, &Timeouts::arbiter},
      {Wait::kVetoCas, OpKind::kCompareAndSwap, At::kNone, &Timeouts::arbiter},
      {Wait::kQuiesce, OpKind::kQuiesce, At::kNew, &Timeouts::quiesce},
      {Wait::kReroute, OpKind::kReroute, At::kNew, &Timeouts::reroute},
      {Wait::kWriteRings, OpKind::kWriteHandoffRings, At::kNew, &Timeouts::arbiter},
      {Wait::kReadRings, OpKind::kReadHandoffRings, At::kNew, &Timeouts::arbiter},
      {Wait::kRelease, OpKind::kRelease, At::kNew, &Timeouts::attach},
      {Wait::kRestore, OpKind::kRestore, At::kAbort, &Timeouts::reroute},
      {Wait::kResume, OpKind::kResume, At::kAbort, &Timeouts::attach},
      {Wait::kReserve, OpKind::kReserveMessages, At::kNew, &Timeouts::reroute},
      {Wait::kArm, OpKind::kArm, At::kNew, &Timeouts::reroute},
      {Wait::kHandOff, OpKind::kHandOff, At::kNew, &Timeouts::quiesce},
      {Wait::kAttach, OpKind::kAttach, At::kNew, &Timeouts::attach},
      {Wait::kReleaseReservation, OpKind::kReleaseReservation, At::kNew, &Timeouts::reroute},
  };
  const StepCall* call = nullptr;
  for (const StepCall& c : kCalls) {
    if (c.wait == wait) call = &c;
  }
  NH_CHECK(call != nullptr) << "node " << config_.node_id << ": no platform call for wait "
                            << static_cast<int>(wait);
  PlatformOp op;
  op.bdf = h.bdf();
  op.kind = call->kind;
  op.epoch = call->epoch == At::kNew ? h.e1 : call->epoch == At::kAbort ? h.ea : 0;
  absl::Duration guard = config_.timeouts.*(call->guard);
  const std::string& me = config_.node_id;
  switch (wait) {
    case Wait::kPrepareCas:
      op.expected = ActiveRecord(me, h.e0);
      op.desired = PreparingRecord(me, h.peer, h.e1);
      break;
    case Wait::kHandoffCas:
      op.expected = PreparingRecord(me, h.peer, h.e1);
      op.desired = HandoffRecord(me, h.peer, h.e1);
      break;
    case Wait::kAbortCas:
      // From whatever pre-commit state the record is in (ACTIVE(S,e0) or
      // PREPARING): the fresh epoch fences every late call of this attempt.
      op.expected = h.known;
      op.desired = ActiveRecord(me, h.ea);
      break;
    case Wait::kCommitCas:
      op.expected = HandoffRecord(h.peer, me, h.e1);
      op.desired = ActiveRecord(me, h.e1);
      break;
    case Wait::kVetoCas:
      // The source never moved the record: make sure it never will for this
      // offer, so the reservation can go.
      op.expected = ActiveRecord(h.peer, h.e0);
      op.desired = ActiveRecord(h.peer, h.ea);
      break;
    case Wait::kQuiesce:
      op.timeout = config_.timeouts.quiesce;
      guard += config_.timeouts.arbiter;  // the hook's own timeout answers first
      break;
    case Wait::kArm:
      op.desired = HandoffRecord(h.peer, me, h.e1);
      break;
    case Wait::kHandOff:
      // Drain, reroute, rings beside the record and the CAS in one kernel
      // call: its drain bound answers first, the rest are quick steps.
      op.expected = PreparingRecord(me, h.peer, h.e1);
      op.desired = HandoffRecord(me, h.peer, h.e1);
      op.messages = h.target_messages;
      op.timeout = config_.timeouts.quiesce;
      guard += config_.timeouts.reroute + 2 * config_.timeouts.arbiter;
      break;
    case Wait::kReroute:
      op.messages = h.target_messages;
      break;
    case Wait::kRestore:
      op.messages = h.previous;
      break;
    case Wait::kWriteRings:
    case Wait::kAttach:
      op.rings = h.rings;
      break;
    case Wait::kReserve:
      op.count = h.vector_count;
      break;
    default:
      break;
  }
  CancelStepTimer(h);
  op.op_id = next_id_++;
  h.wait = wait;
  h.op = op.op_id;
  h.call = 0;
  ops_[op.op_id] = {h.id(), op};
  ready_.ops.push_back(op);
  h.step_timer = ArmTimer(guard);
  timers_[h.step_timer] = {TimerKind::kStep, h.id(), {}};
}

void HandoverMachine::RetryLater(Handover& h, Wait redo, const absl::Status& why) {
  ++h.failures;
  h.retry = redo;  // also what an operator's recovery redoes after FAILED
  if (h.failures > config_.timeouts.max_retries) {
    h.res.mutable_error()->CopyFrom(MakeError(
        why.code(), "STEP_FAILED",
        absl::StrCat("gave up after ", h.failures, " attempts: ", StatusText(why),
                     "; run `nicctl recover` for ", h.bdf())));
    Finish(h, v1::HANDOVER_PHASE_FAILED);
    return;
  }
  ArmWait(h, Wait::kRetry, config_.timeouts.poll);
}

void HandoverMachine::Finish(Handover& h, v1::HandoverPhase phase) {
  CancelStepTimer(h);
  if (h.deadline_timer != 0) {
    timers_.erase(h.deadline_timer);
    ready_.cancel_timers.push_back(h.deadline_timer);
    h.deadline_timer = 0;
  }
  h.wait = Wait::kNone;
  h.op = 0;
  h.call = 0;
  h.res.set_done(true);
  // R1: a FAILED handover blocks its NIC until an operator decides it.
  h.awaits_operator = phase == v1::HANDOVER_PHASE_FAILED;
  if (phase == v1::HANDOVER_PHASE_COMMITTED) h.res.clear_error();
  if (phase != v1::HANDOVER_PHASE_COMMITTED && !h.res.has_error()) {
    h.res.mutable_error()->CopyFrom(
        MakeError(absl::StatusCode::kAborted, "ABORTED", "the handover was rolled back"));
  }
  if (phase == v1::HANDOVER_PHASE_ROLLED_BACK) h.res.set_to_epoch(h.ea);
  SetPhase(h, phase, "");
  if (h.started) Persist(h, JournalRecord::FINISHED);
  AnswerOffers(h, false, v1::REFUSAL_REASON_NOT_ACCEPTING, "the handover ended");
  AnswerCommits(h, phase == v1::HANDOVER_PHASE_COMMITTED, "");
  TrimHistory(std::string(h.bdf()));
}

void HandoverMachine::AnswerOffers(Handover& h, bool accepted, v1::RefusalReason reason,
                                   const std::string& message) {
  for (uint64_t token : h.offer_tokens) {
    v1::OfferResponse response;
    response.set_accepted(accepted);
    if (accepted) {
      response.set_armed(h.armed);
      for (const v1::MsiMessage& m : h.target_messages) *response.add_target_messages() = m;
    } else {
      response.set_refusal_reason(reason);
      response.set_refusal_message(message);
    }
    ready_.peer_answers.push_back({token, response});
  }
  h.offer_tokens.clear();
}

void HandoverMachine::AnswerCommits(Handover& h, bool committed, const std::string& message) {
  for (uint64_t token : h.commit_tokens) {
    v1::CommitResponse response;
    response.set_committed(committed);
    if (auto it = records_.find(h.bdf()); it != records_.end()) {
      *response.mutable_ownership() = it->second;
    }
    response.set_message(message);
    ready_.peer_answers.push_back({token, response});
  }
  h.commit_tokens.clear();
}

}  // namespace protocol
}  // namespace nichandover
