// The target role: Offers checked against the record, the reservation,
// Commit, Abort and Query from the source, and the target's decisions from
// the record (TargetReconcile).
#include "daemon/protocol/handover_internal.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {
namespace {

// Aborts remembered for offers not seen yet (a reordering window, not history).
constexpr size_t kAbortedUnknownLimit = 1000;

}  // namespace

void HandoverMachine::OnOffer(uint64_t token, const std::string& from,
                              const v1::OfferRequest& request) {
  auto refuse = [&](v1::RefusalReason reason, const std::string& message) {
    v1::OfferResponse response;
    response.set_accepted(false);
    response.set_refusal_reason(reason);
    response.set_refusal_message(message);
    ready_.peer_answers.push_back({token, response});
  };
  if (Handover* h = Find(request.handover_id())) {
    if (h->role != Role::kTarget) {
      return refuse(v1::REFUSAL_REASON_UNSUPPORTED, "this node is the handover's source");
    }
    if (h->done() || h->abort_requested) {
      return refuse(v1::REFUSAL_REASON_NOT_ACCEPTING,
                    absl::StrCat("handover ", h->id(), " already ended"));
    }
    // A duplicate: answered like the first once the reservation is made. A
    // restarted target no longer has the messages; the source's first answer
    // (or its broken call) has decided the offer anyway.
    h->offer_tokens.push_back(token);
    if (h->wait == Wait::kOfferRead || h->wait == Wait::kReserve || h->wait == Wait::kArm) {
      return;
    }
    if (h->target_messages.empty()) {
      return AnswerOffers(*h, false, v1::REFUSAL_REASON_NOT_ACCEPTING,
                          "this node restarted since it accepted; see the first answer");
    }
    return AnswerOffers(*h, true, v1::REFUSAL_REASON_UNSPECIFIED, "");
  }
  if (aborted_unknown_.count(request.handover_id())) {
    return refuse(v1::REFUSAL_REASON_NOT_ACCEPTING,
                  absl::StrCat("handover ", request.handover_id(), " was aborted"));
  }
  if (request.target_node() != config_.node_id) {
    return refuse(v1::REFUSAL_REASON_UNSUPPORTED,
                  absl::StrCat("offer is for ", request.target_node(), ", this is ",
                               config_.node_id));
  }
  if (from != request.source_node() || !IsPeer(from)) {
    return refuse(v1::REFUSAL_REASON_NOT_ACCEPTING,
                  absl::StrCat("\"", request.source_node(), "\" is not a peer of this node"));
  }
  absl::StatusOr<std::string> bdf = NormalizeBdf(request.bdf(), "bdf");
  const platform::NicInfo* nic = bdf.ok() ? FindNic(*bdf) : nullptr;
  if (nic == nullptr) {
    return refuse(v1::REFUSAL_REASON_UNSUPPORTED,
                  absl::StrCat("node ", config_.node_id, " does not see ", request.bdf()));
  }
  if (nic->driver.empty()) {
    return refuse(v1::REFUSAL_REASON_NO_DRIVER,
                  absl::StrCat("no driver for ", *bdf, " on ", config_.node_id,
                               (request.driver().empty() ? "" : " (want " + request.driver() + ")")));
  }
  if (request.vector_count() == 0) {
    return refuse(v1::REFUSAL_REASON_UNSUPPORTED, "the offer names no interrupt vectors");
  }
  if (Handover* running = LiveHandoverOf(*bdf)) {
    return refuse(v1::REFUSAL_REASON_BUSY,
                  absl::StrCat("handover ", running->id(), " of ", *bdf, " is running here"));
  }
  if (Handover* failed = AwaitingOperator(*bdf)) {
    return refuse(v1::REFUSAL_REASON_BUSY, BlockedByFailedText(*failed));
  }
  if (request.interrupt_mode() != v1::INTERRUPT_MODE_MSI &&
      request.interrupt_mode() != v1::INTERRUPT_MODE_MSIX) {
    return refuse(v1::REFUSAL_REASON_UNSUPPORTED,
                  absl::StrCat("interrupt mode ", request.interrupt_mode(),
                               " is neither MSI nor MSI-X"));
  }
  if (request.vector_count() > kMaxOfferVectors) {
    return refuse(v1::REFUSAL_REASON_UNSUPPORTED,
                  absl::StrCat("the offer names ", request.vector_count(),
                               " vectors; MSI-X has at most ", kMaxOfferVectors));
  }
  if (!v1::CommitPath_IsValid(request.commit_path())) {
    return refuse(v1::REFUSAL_REASON_UNSUPPORTED,
                  absl::StrCat("commit_path: unknown value ", request.commit_path()));
  }
  if (request.commit_path() == v1::COMMIT_PATH_KERNEL && !config_.kernel_commit) {
    return refuse(v1::REFUSAL_REASON_UNSUPPORTED,
                  absl::StrCat("node ", config_.node_id,
                               " has no kernel commit path (its platform has none, or "
                               "kernel_commit is off); the offer asks for KERNEL"));
  }
  if (request.new_epoch() <= KnownEpoch(*bdf)) {
    return refuse(v1::REFUSAL_REASON_STALE_EPOCH,
                  absl::StrCat("epoch ", request.new_epoch(), " is not newer than ",
                               KnownEpoch(*bdf)));
  }
  // Not in the history (nor the journal) until the record confirms the
  // offer: a refused Offer leaves no trace.
  auto owned = std::make_unique<Handover>();
  Handover& h = *owned;
  handovers_[request.handover_id()] = std::move(owned);
  h.role = Role::kTarget;
  h.nic = *nic;
  h.peer = from;
  h.e1 = request.new_epoch();
  h.e0 = h.e1 - 1;
  h.ea = h.e1 + 1;
  h.offer_tokens.push_back(token);
  h.vector_count = request.vector_count();
  h.res.set_name("handovers/" + request.handover_id());
  h.res.set_handover_id(request.handover_id());
  h.res.set_bdf(*bdf);
  h.res.set_source_node(from);
  h.res.set_target_node(config_.node_id);
  h.res.set_from_epoch(h.e0);
  h.res.set_to_epoch(h.e1);
  h.res.set_requested_commit_path(request.commit_path());
  IssueStepOp(h, Wait::kOfferRead);
}

// The record decides whether an Offer is real: the source must own the NIC
// and the offer's epoch must be the record's next one. An epoch the record
// has not reached would otherwise reach this node's kernel (reserve, attach)
// and fence every later, real handover out.
void HandoverMachine::TakeOffer(Handover& h, const OpResult& r) {
  std::string refusal;
  v1::RefusalReason reason = v1::REFUSAL_REASON_NOT_ACCEPTING;
  if (!r.status.ok()) {
    refusal = "cannot read the ownership record: " + StatusText(r.status);
  } else if (!SameRecord(r.record, ActiveRecord(h.peer, h.e0))) {
    reason = r.record.epoch() + 1 == h.e1 ? v1::REFUSAL_REASON_NOT_ACCEPTING
                                          : v1::REFUSAL_REASON_STALE_EPOCH;
    refusal = absl::StrCat("the offer for epoch ", h.e1, " from ", h.peer,
                           " does not follow the record ", RecordString(r.record),
                           " (want ", RecordString(ActiveRecord(h.peer, h.e0)), ")");
  }
  if (!refusal.empty()) {
    NH_LOG(WARNING) << "node " << config_.node_id << ": refused offer " << h.id() << ": "
                    << refusal;
    return DropOffer(h, reason, refusal);
  }
  SetPhase(h, v1::HANDOVER_PHASE_OFFERING, "offered by " + h.peer);
  // The intent is durable before the vectors are reserved, so a restart can
  // always find (and give back) what it may have reserved.
  h.started = true;
  order_.push_back(h.id());
  Persist(h, JournalRecord::TARGET_RESERVED);
  Publish(h);
  IssueStepOp(h, Wait::kReserve);
}

void HandoverMachine::DropOffer(Handover& h, v1::RefusalReason reason,
                                const std::string& message) {
  CancelStepTimer(h);
  if (h.op != 0) ops_.erase(h.op);
  AnswerOffers(h, false, reason, message);
  handovers_.erase(h.id());
}

void HandoverMachine::OnCommit(uint64_t token, const v1::CommitRequest& request) {
  Handover* h = Find(request.handover_id());
  auto refuse = [&](const std::string& message) {
    v1::CommitResponse response;
    response.set_committed(false);
    if (auto it = records_.find(request.bdf()); it != records_.end()) {
      *response.mutable_ownership() = it->second;
    }
    response.set_message(message);
    ready_.peer_answers.push_back({token, response});
  };
  if (h == nullptr || h->role != Role::kTarget || !h->started) {
    return refuse(absl::StrCat("no reservation for handover ", request.handover_id()));
  }
  if (request.epoch() != h->e1) {
    return refuse(absl::StrCat("epoch ", request.epoch(), " does not match the offer's ", h->e1));
  }
  h->commit_tokens.push_back(token);
  if (h->done()) {
    AnswerCommits(*h, h->res.phase() == v1::HANDOVER_PHASE_COMMITTED, "");
    return;
  }
  if (h->committed) {
    AnswerCommits(*h, true, "");
    return;
  }
  if (!h->rings_known && request.rings_size() > 0) {
    h->rings.assign(request.rings().begin(), request.rings().end());
    h->rings_known = true;
  }
  // Busy with the record already (a duplicate Commit or a timer got there
  // first): the answer goes out with that outcome.
  if (h->wait == Wait::kCommitWait) {
    SetPhase(*h, v1::HANDOVER_PHASE_HANDING_OFF, "commit received");
    IssueStepOp(*h, h->rings_known ? Wait::kCommitCas : Wait::kReadRings);
  }
}

void HandoverMachine::OnAbort(uint64_t token, const v1::AbortRequest& request) {
  ready_.peer_answers.push_back({token, v1::AbortResponse()});
  Handover* h = Find(request.handover_id());
  if (h == nullptr) {
    // Reordered before its Offer: remember, so the Offer is refused.
    if (aborted_unknown_.size() >= kAbortedUnknownLimit) {
      aborted_unknown_.erase(aborted_unknown_.begin());
    }
    aborted_unknown_.insert(request.handover_id());
    return;
  }
  if (h->role != Role::kTarget || h->done() || h->committed) return;
  if (request.epoch() != h->e1) return;
  if (!h->started) {
    // Still checking the offer against the record: it is refused.
    aborted_unknown_.insert(h->id());
    return DropOffer(*h, v1::REFUSAL_REASON_NOT_ACCEPTING, "aborted");
  }
  // The source sends Abort only after its CAS moved the record to
  // ACTIVE(source, ea): no Commit for this epoch can win any more.
  h->res.mutable_error()->CopyFrom(MakeError(
      absl::StatusCode::kAborted, "SOURCE_ABORTED",
      request.reason().empty() ? "the source aborted" : "the source aborted: " + request.reason()));
  if (h->wait == Wait::kReserve || h->wait == Wait::kArm) {
    h->abort_requested = true;
    return;
  }
  AnswerOffers(*h, false, v1::REFUSAL_REASON_NOT_ACCEPTING, "aborted");
  AnswerCommits(*h, false, "aborted");
  SetPhase(*h, v1::HANDOVER_PHASE_ROLLING_BACK, "");
  IssueStepOp(*h, Wait::kReleaseReservation);
}

void HandoverMachine::OnQuery(uint64_t token, const v1::QueryHandoverRequest& request) {
  v1::QueryHandoverResponse response;
  response.set_state(v1::PEER_HANDOVER_STATE_UNKNOWN);
  Handover* h = Find(request.handover_id());
  if (h != nullptr && h->started) {
    if (h->res.phase() == v1::HANDOVER_PHASE_COMMITTED || h->committed) {
      response.set_state(v1::PEER_HANDOVER_STATE_COMMITTED);
    } else if (h->done()) {
      response.set_state(v1::PEER_HANDOVER_STATE_ABORTED);
    } else if (h->role == Role::kTarget) {
      response.set_state(v1::PEER_HANDOVER_STATE_RESERVED);
    }
  }
  std::string bdf = h != nullptr ? h->bdf() : request.bdf();
  if (auto it = records_.find(bdf); it != records_.end()) *response.mutable_ownership() = it->second;
  ready_.peer_answers.push_back({token, response});
}

void HandoverMachine::TargetResult(Handover& h, const OpResult& r) {
  const absl::Status& status = r.status;
  switch (h.wait) {
    case Wait::kOfferRead:
      return TakeOffer(h, r);
    case Wait::kReserve: {
      if (!status.ok()) {
        bool exhausted = status.code() == absl::StatusCode::kResourceExhausted;
        AnswerOffers(h, false,
                     exhausted ? v1::REFUSAL_REASON_NO_VECTORS : v1::REFUSAL_REASON_NOT_ACCEPTING,
                     "reserve: " + StatusText(status));
        h.res.mutable_error()->CopyFrom(
            MakeError(status.code(), "RESERVE_FAILED", "reserve: " + StatusText(status)));
        // A definite refusal reserved nothing; after anything else (a timeout,
        // a broken call) give back whatever may have been reserved.
        if (exhausted || status.code() == absl::StatusCode::kFailedPrecondition) {
          return Finish(h, v1::HANDOVER_PHASE_ROLLED_BACK);
        }
        SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, "");
        return IssueStepOp(h, Wait::kReleaseReservation);
      }
      h.target_messages = r.messages;
      if (h.abort_requested) {
        AnswerOffers(h, false, v1::REFUSAL_REASON_NOT_ACCEPTING, "aborted");
        SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, "");
        return IssueStepOp(h, Wait::kReleaseReservation);
      }
      return ArmOrAccept(h);
    }
    case Wait::kArm:
      return ArmResult(h, r);
    case Wait::kTargetRead:
      if (!status.ok()) return RetryLater(h, Wait::kTargetRead, status);
      return TargetReconcile(h, r.record, h.veto_allowed);
    case Wait::kVetoCas:
      if (!status.ok()) return RetryLater(h, Wait::kTargetRead, status);
      return TargetReconcile(h, r.record, /*may_veto=*/false);
    case Wait::kCommitCas:
      if (!status.ok()) return RetryLater(h, Wait::kTargetRead, status);
      return TargetReconcile(h, r.record, /*may_veto=*/false);
    case Wait::kReadRings:
      if (!status.ok()) return RetryLater(h, Wait::kReadRings, status);
      h.rings = r.rings;
      h.rings_known = true;
      return IssueStepOp(h, h.committed ? Wait::kAttach : Wait::kCommitCas);
    case Wait::kAttach:
      if (!status.ok()) return RetryLater(h, Wait::kAttach, status);
      return Finish(h, v1::HANDOVER_PHASE_COMMITTED);
    case Wait::kReleaseReservation:
      if (!status.ok()) return RetryLater(h, Wait::kReleaseReservation, status);
      return Finish(h, v1::HANDOVER_PHASE_ROLLED_BACK);
    default:
      NH_LOG(WARNING) << "node " << config_.node_id << ": unexpected result for " << h.id();
  }
}

void HandoverMachine::ArmOrAccept(Handover& h) {
  if (config_.kernel_commit && h.res.requested_commit_path() != v1::COMMIT_PATH_DAEMON) {
    return IssueStepOp(h, Wait::kArm);
  }
  AcceptOffer(h, /*armed=*/false);
}

void HandoverMachine::AcceptOffer(Handover& h, bool armed) {
  h.armed = armed;
  h.res.set_commit_path(armed ? v1::COMMIT_PATH_KERNEL : v1::COMMIT_PATH_DAEMON);
  AnswerOffers(h, true, v1::REFUSAL_REASON_UNSPECIFIED, "");
  ArmWait(h, Wait::kCommitWait, config_.timeouts.handover + config_.timeouts.peer_call);
}

// The arm is an optimization of the commit, never needed for safety: an
// armed kernel commits only on a doorbell for exactly this epoch while the
// record is exactly HANDOFF(peer, self, e1), the CAS this daemon would make
// on the source's Commit. So a failed arm (or one whose outcome is unknown:
// it may have landed) falls back to the daemon path, which works whether or
// not the kernel is armed, unless the Offer asked for KERNEL: then it is
// refused (UNSUPPORTED when the platform has no kernel path) and the
// reservation, and with it any arm, given back.
void HandoverMachine::ArmResult(Handover& h, const OpResult& r) {
  if (h.abort_requested) {
    AnswerOffers(h, false, v1::REFUSAL_REASON_NOT_ACCEPTING, "aborted");
    SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, "");
    return IssueStepOp(h, Wait::kReleaseReservation);
  }
  if (r.status.ok()) return AcceptOffer(h, /*armed=*/true);
  const std::string message = "arm: " + StatusText(r.status);
  if (h.res.requested_commit_path() != v1::COMMIT_PATH_KERNEL) {
    if (r.status.code() != absl::StatusCode::kUnimplemented) {
      NH_LOG(WARNING) << "node " << config_.node_id << ": " << h.id() << ": " << message
                      << "; taking the daemon commit path";
    }
    return AcceptOffer(h, /*armed=*/false);
  }
  AnswerOffers(h, false,
               r.status.code() == absl::StatusCode::kUnimplemented
                   ? v1::REFUSAL_REASON_UNSUPPORTED
                   : v1::REFUSAL_REASON_NOT_ACCEPTING,
               message);
  h.res.mutable_error()->CopyFrom(MakeError(r.status.code(), "ARM_FAILED", message));
  SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, "");
  IssueStepOp(h, Wait::kReleaseReservation);
}

// A hint from this node's kernel (it reads the record before acting): a
// commit it made alone moves a handover waiting for its Commit on at once.
void HandoverMachine::OnKernelEvent(const KernelEventEvent& e) {
  const platform::KernelEvent& event = e.event;
  if (event.kind != platform::KernelEvent::Kind::kCommitted) {
    NH_LOG(INFO) << "node " << config_.node_id << ": the kernel did not commit " << event.bdf
                 << " at epoch " << event.epoch << " (record " << RecordString(event.record)
                 << "): " << event.message;
    return;
  }
  Handover* h = LiveHandoverOf(event.bdf);
  if (h == nullptr || h->role != Role::kTarget || !h->started || h->e1 != event.epoch) {
    NH_LOG(INFO) << "node " << config_.node_id << ": the kernel committed " << event.bdf
                 << " at epoch " << event.epoch << "; no handover here waits for it";
    return;
  }
  // Busy with the record or a step already: that path gets there itself.
  if (h->wait != Wait::kCommitWait) return;
  SetPhase(*h, v1::HANDOVER_PHASE_HANDING_OFF,
           absl::StrCat("the kernel committed at epoch ", event.epoch));
  h->veto_allowed = false;
  IssueStepOp(*h, Wait::kTargetRead);
}

// The target decides from the record as it stands: commit from HANDOFF, wait
// while the source may still move, let go once the record moved past us.
void HandoverMachine::TargetReconcile(Handover& h, const v1::OwnershipRecord& record,
                                      bool may_veto) {
  const std::string& me = config_.node_id;
  h.veto_allowed = false;
  if (SameRecord(record, HandoffRecord(h.peer, me, h.e1))) {
    SetPhase(h, v1::HANDOVER_PHASE_HANDING_OFF, "record " + RecordString(record));
    return IssueStepOp(h, h.rings_known ? Wait::kCommitCas : Wait::kReadRings);
  }
  if (SameRecord(record, ActiveRecord(me, h.e1))) {
    h.committed = true;
    h.res.clear_error();
    AnswerCommits(h, true, "");
    SetPhase(h, v1::HANDOVER_PHASE_ATTACHING, "");
    return IssueStepOp(h, h.rings_known ? Wait::kAttach : Wait::kReadRings);
  }
  if (SameRecord(record, PreparingRecord(h.peer, me, h.e1))) {
    AnswerCommits(h, false, "the record is not in HANDOFF yet");
    return ArmWait(h, Wait::kCommitWait, config_.timeouts.poll);
  }
  if (SameRecord(record, ActiveRecord(h.peer, h.e0))) {
    AnswerCommits(h, false, "the record is not in HANDOFF");
    if (may_veto) return IssueStepOp(h, Wait::kVetoCas);
    return ArmWait(h, Wait::kCommitWait, config_.timeouts.handover + config_.timeouts.peer_call);
  }
  // Moved past this offer (aborted by the source, vetoed by us, or later).
  if (!h.res.has_error()) {
    h.res.mutable_error()->CopyFrom(
        MakeError(absl::StatusCode::kAborted, "SOURCE_ABORTED",
                  "the record moved to " + RecordString(record) + " without this node"));
  }
  AnswerCommits(h, false, "aborted");
  SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, "record " + RecordString(record));
  IssueStepOp(h, Wait::kReleaseReservation);
}

}  // namespace protocol
}  // namespace nichandover
