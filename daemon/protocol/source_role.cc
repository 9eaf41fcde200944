// The source role: CreateHandover and CancelHandover, the Offer, the
// forward path to HANDOFF, Commit and Abort, and the source's decisions from
// the record (SourceReconcile).
#include "daemon/protocol/handover_internal.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {

void HandoverMachine::FailCreate(Handover& h, const absl::Status& status) {
  CancelStepTimer(h);
  for (uint64_t token : h.create_tokens) ready_.answers.push_back({token, status});
  by_request_id_.erase(h.res.request_id());
  handovers_.erase(h.id());
}

void HandoverMachine::OnCreate(const CreateHandoverEvent& e) {
  auto answer = [&](absl::StatusOr<v1::Handover> result) {
    ready_.answers.push_back({e.request_token, std::move(result)});
  };
  if (absl::Status valid = CheckRequestId(e.request_id); !valid.ok()) return answer(valid);
  absl::StatusOr<std::string> bdf = NormalizeBdf(e.nic, "nic");
  if (!bdf.ok()) return answer(bdf.status());
  if (e.timeout < absl::ZeroDuration()) {
    return answer(absl::InvalidArgumentError("timeout: must not be negative"));
  }
  if (e.timeout > kMaxHandoverTimeout) {
    return answer(absl::InvalidArgumentError(
        absl::StrCat("timeout: must be at most ", absl::FormatDuration(kMaxHandoverTimeout))));
  }
  if (!v1::CommitPath_IsValid(e.commit_path)) {
    return answer(absl::InvalidArgumentError(
        absl::StrCat("commit_path: unknown value ", static_cast<int>(e.commit_path))));
  }
  const absl::Duration timeout =
      e.timeout > absl::ZeroDuration() ? e.timeout : config_.timeouts.handover;
  if (auto it = by_request_id_.find(e.request_id); it != by_request_id_.end()) {
    // A retry repeats its request exactly; anything else under the same id
    // is another request.
    Handover& h = *handovers_[it->second];
    const absl::Duration had = absl::Seconds(h.res.timeout().seconds()) +
                               absl::Nanoseconds(h.res.timeout().nanos());
    if (h.bdf() != *bdf || h.res.target_node() != e.target_node || had != timeout ||
        h.res.requested_commit_path() != e.commit_path) {
      return answer(absl::AlreadyExistsError(absl::StrCat(
          "request_id: \"", e.request_id, "\" was used for handover ", h.id(), " of ", h.bdf(),
          " to ", h.res.target_node(), " with timeout ", absl::FormatDuration(had),
          h.res.requested_commit_path() == v1::COMMIT_PATH_UNSPECIFIED
              ? ""
              : " and commit path " + v1::CommitPath_Name(h.res.requested_commit_path()))));
    }
    if (!h.started) {
      h.create_tokens.push_back(e.request_token);
      return;
    }
    return answer(h.res);
  }
  const platform::NicInfo* nic = FindNic(*bdf);
  if (nic == nullptr) {
    return answer(absl::NotFoundError(
        absl::StrCat("nic: node ", config_.node_id, " does not see ", *bdf)));
  }
  if (e.target_node.empty()) return answer(absl::InvalidArgumentError("target_node: required"));
  if (e.commit_path == v1::COMMIT_PATH_KERNEL && !config_.kernel_commit) {
    return answer(absl::FailedPreconditionError(absl::StrCat(
        "commit_path: KERNEL, but node ", config_.node_id,
        " has no kernel commit path (its platform has none, or kernel_commit is off)")));
  }
  if (e.target_node == config_.node_id) {
    return answer(absl::InvalidArgumentError(absl::StrCat(
        "target_node: \"", e.target_node, "\" is this node; hand over to another node")));
  }
  if (!IsPeer(e.target_node)) {
    return answer(
        absl::NotFoundError(absl::StrCat("target_node: unknown node \"", e.target_node, "\"")));
  }
  if (nic->interrupts.mode() != v1::INTERRUPT_MODE_MSI &&
      nic->interrupts.mode() != v1::INTERRUPT_MODE_MSIX) {
    return answer(absl::FailedPreconditionError(absl::StrCat(
        "nic: ", *bdf, " uses no MSI or MSI-X; its interrupts cannot be routed per node")));
  }
  if (Handover* running = LiveHandoverOf(*bdf)) {
    return answer(absl::FailedPreconditionError(
        absl::StrCat("nic: handover ", running->id(), " of ", *bdf, " is still running (phase ",
                     PhaseName(running->res.phase()), ")")));
  }
  if (Handover* failed = AwaitingOperator(*bdf)) {
    return answer(absl::FailedPreconditionError(BlockedByFailedText(*failed)));
  }
  if (auto held = maintenance_.find(*bdf); held != maintenance_.end()) {
    return answer(absl::FailedPreconditionError(absl::StrCat(
        "nic: ", *bdf, " is quiesced for maintenance on node ", config_.node_id,
        "; resume it first (nicctl nic resume ", *bdf, ")")));
  }
  if (Find(e.handover_id) != nullptr || e.handover_id.empty()) {
    return answer(absl::InternalError(
        absl::StrCat("handover_id \"", e.handover_id, "\" is not unique")));
  }
  auto owned = std::make_unique<Handover>();
  Handover& h = *owned;
  handovers_[e.handover_id] = std::move(owned);
  by_request_id_[e.request_id] = e.handover_id;
  h.role = Role::kSource;
  h.nic = *nic;
  h.peer = e.target_node;
  h.timeout = timeout;
  h.create_tokens.push_back(e.request_token);
  h.res.set_name("handovers/" + e.handover_id);
  h.res.set_handover_id(e.handover_id);
  h.res.set_request_id(e.request_id);
  h.res.set_bdf(*bdf);
  h.res.set_source_node(config_.node_id);
  h.res.set_target_node(e.target_node);
  h.res.set_requested_commit_path(e.commit_path);
  h.res.mutable_timeout()->set_seconds(absl::ToInt64Seconds(h.timeout));
  h.res.mutable_timeout()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(h.timeout % absl::Seconds(1))));
  SetPhase(h, v1::HANDOVER_PHASE_PENDING, "");
  IssueStepOp(h, Wait::kReadRecord);
}

void HandoverMachine::OnCancel(const CancelHandoverEvent& e) {
  auto answer = [&](absl::StatusOr<v1::Handover> result) {
    ready_.answers.push_back({e.request_token, std::move(result)});
  };
  Handover* h = Find(e.handover_id);
  if (h == nullptr || !h->started) {
    return answer(absl::NotFoundError(absl::StrCat("handover_id: no handover \"", e.handover_id,
                                                   "\" on node ", config_.node_id)));
  }
  if (h->done()) {
    return answer(absl::FailedPreconditionError(absl::StrCat(
        "handover_id: ", h->id(), " is already done (", PhaseName(h->res.phase()), ")")));
  }
  if (h->role == Role::kTarget) {
    return answer(absl::FailedPreconditionError(absl::StrCat(
        "handover_id: ", h->id(), " is coordinated by its source node ", h->peer,
        "; cancel it there")));
  }
  if (h->wait == Wait::kHandOff) {
    return answer(absl::FailedPreconditionError(absl::StrCat(
        "handover_id: ", h->id(), " is in its kernel hand-off, which may pass the commit point; "
        "it completes or rolls back by itself")));
  }
  if (h->handoff_issued) {
    return answer(absl::FailedPreconditionError(absl::StrCat(
        "handover_id: ", h->id(), " is past its commit point (record HANDOFF); it completes")));
  }
  h->res.set_cancel_requested(true);
  if (h->res.phase() != v1::HANDOVER_PHASE_ROLLING_BACK) {
    BeginAbort(*h, absl::StatusCode::kCancelled, "CANCELLED",
               e.reason.empty() ? "cancelled by an operator" : "cancelled: " + e.reason);
  }
  answer(h->res);
}

void HandoverMachine::SendCommit(Handover& h) {
  v1::CommitRequest request;
  request.set_handover_id(h.id());
  request.set_source_node(config_.node_id);
  request.set_bdf(h.bdf());
  request.set_epoch(h.e1);
  if (h.rings_known) {
    for (const v1::QueueRingState& ring : h.rings) *request.add_rings() = ring;
  }
  CancelStepTimer(h);
  h.wait = Wait::kCommit;
  h.op = 0;
  h.call = next_id_++;
  calls_[h.call] = h.id();
  ready_.sends.push_back({h.call, h.peer, request, config_.timeouts.peer_call});
}

void HandoverMachine::SendAbort(Handover& h) {
  if (h.abort_sent || !h.offer_sent) return;
  h.abort_sent = true;
  v1::AbortRequest request;
  request.set_handover_id(h.id());
  request.set_source_node(config_.node_id);
  request.set_bdf(h.bdf());
  request.set_epoch(h.e1);
  request.set_reason(h.res.error().reason());
  // Fire and forget: a lost Abort costs the target one look at the record.
  uint64_t call = next_id_++;
  ready_.sends.push_back({call, h.peer, request, config_.timeouts.peer_call});
}

void HandoverMachine::OnPeerResponse(const PeerResponseEvent& e) {
  auto it = calls_.find(e.call_id);
  if (it == calls_.end()) return;  // fire-and-forget, or a duplicate answer
  std::string id = it->second;
  calls_.erase(it);
  Handover* h = Find(id);
  if (h == nullptr || h->done() || h->call != e.call_id) return;
  h->call = 0;
  if (h->wait == Wait::kOffer) {
    if (!e.status.ok()) {
      return BeginAbort(*h, absl::StatusCode::kUnavailable, "PEER_UNAVAILABLE",
                        absl::StrCat("offer to ", h->peer, " failed: ", StatusText(e.status)));
    }
    const auto* response = std::get_if<v1::OfferResponse>(&e.body);
    NH_CHECK(response != nullptr) << "node " << config_.node_id << ": offer answered wrongly";
    if (!response->accepted()) {
      h->offer_sent = false;  // a refusing target holds nothing: no Abort needed
      const std::string message = absl::StrCat(
          h->peer, " refused (", v1::RefusalReason_Name(response->refusal_reason()).substr(15),
          "): ", response->refusal_message());
      if (!h->res.has_error()) {
        h->res.mutable_error()->CopyFrom(
            MakeError(absl::StatusCode::kFailedPrecondition, "TARGET_REFUSED", message));
        h->res.mutable_error()->set_refusal_reason(response->refusal_reason());
      }
      return BeginAbort(*h, absl::StatusCode::kFailedPrecondition, "TARGET_REFUSED", message);
    }
    if (static_cast<uint32_t>(response->target_messages_size()) !=
        h->nic.interrupts.vectors_enabled()) {
      return BeginAbort(*h, absl::StatusCode::kInternal, "BAD_ACCEPT",
                        absl::StrCat(h->peer, " reserved ", response->target_messages_size(),
                                     " messages for ", h->nic.interrupts.vectors_enabled(),
                                     " vectors"));
    }
    return OnAccept(*h, *response);
  }
  if (h->wait == Wait::kCommit) {
    const auto* response = std::get_if<v1::CommitResponse>(&e.body);
    if (e.status.ok() && response != nullptr && response->committed()) {
      SetPhase(*h, v1::HANDOVER_PHASE_ATTACHING, h->peer + " committed");
      return IssueStepOp(*h, Wait::kRelease);
    }
    // Lost, or not (yet) committed: only the target decides now; look at the
    // record again after a while (and resend Commit if still HANDOFF).
    return ArmWait(*h, Wait::kOutcomePoll, config_.timeouts.poll);
  }
}

// The target reserved its messages (and maybe armed its kernel): choose the
// commit path, then move the record to PREPARING.
void HandoverMachine::OnAccept(Handover& h, const v1::OfferResponse& response) {
  h.target_messages.assign(response.target_messages().begin(),
                           response.target_messages().end());
  h.armed = response.armed();
  const v1::CommitPath requested = h.res.requested_commit_path();
  const bool kernel =
      h.armed && config_.kernel_commit && requested != v1::COMMIT_PATH_DAEMON;
  if (requested == v1::COMMIT_PATH_KERNEL && !kernel) {
    // A target that does not know commit_path (an older version) accepts
    // without arming; KERNEL was asked for, so this handover rolls back.
    return BeginAbort(h, absl::StatusCode::kFailedPrecondition, "UNSUPPORTED",
                      absl::StrCat(h.peer, " accepted without arming its kernel; the KERNEL "
                                           "commit path was requested"));
  }
  h.res.set_commit_path(kernel ? v1::COMMIT_PATH_KERNEL : v1::COMMIT_PATH_DAEMON);
  SetPhase(h, v1::HANDOVER_PHASE_QUIESCING,
           "accepted by " + h.peer + (kernel ? ", kernel commit path" : ""));
  h.may_have_quiesced = true;  // once the CAS may have landed, assume the worst
  IssueStepOp(h, Wait::kPrepareCas);
}

// The kernel's HandOff answered. Won: as after the HANDOFF CAS of the daemon
// path (Commit, then Release). Anything else: the record decides, as after a
// restart (PREPARING: roll back; HANDOFF or later: the target commits).
void HandoverMachine::HandOffDone(Handover& h, const OpResult& r) {
  if (!r.status.ok()) {
    h.handoff_error = r.status;
    h.has_known = false;
    return IssueStepOp(h, Wait::kOutcomeRead);
  }
  const platform::HandOffResult& done = r.handoff;
  if (done.reached >= platform::HandOffStage::kQuiesced) {
    h.rings = done.quiesce.rings;
    h.rings_known = true;
    h.res.mutable_stats()->set_drained_tx_packets(done.quiesce.drained_tx_packets);
    h.res.mutable_stats()->set_drained_rx_packets(done.quiesce.drained_rx_packets);
    h.res.mutable_stats()->set_held_xmits(done.quiesce.held_xmits);
    h.res.mutable_stats()->set_polls_while_quiesced(done.quiesce.polls_while_quiesced);
  }
  const v1::OwnershipRecord handoff = HandoffRecord(config_.node_id, h.peer, h.e1);
  if (done.reached >= platform::HandOffStage::kHandedOff && SameRecord(done.record, handoff)) {
    SetPhase(h, v1::HANDOVER_PHASE_HANDING_OFF,
             absl::StrCat("handed off by the kernel: ", done.quiesce.drained_tx_packets,
                          " TX completions drained, ",
                          done.reached == platform::HandOffStage::kDoorbellRung
                              ? "doorbell rung"
                              : "doorbell not rung"));
    return SourceReconcile(h, done.record);
  }
  // It ran to the CAS and lost: the record moved under it (an operator's
  // abort). Read it again rather than trust a value from inside the call.
  h.handoff_error = absl::AbortedError(
      absl::StrCat("its CAS found ",
                   done.reached >= platform::HandOffStage::kRingsWritten
                       ? RecordString(done.record)
                       : std::string("no record (stopped at ") +
                             platform::HandOffStageName(done.reached) + ")"));
  h.has_known = false;
  IssueStepOp(h, Wait::kOutcomeRead);
}

void HandoverMachine::BeginAbort(Handover& h, absl::StatusCode code, const std::string& reason,
                                 const std::string& message) {
  if (h.done()) return;
  if (!h.res.has_error()) h.res.mutable_error()->CopyFrom(MakeError(code, reason, message));
  SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, message);
  if (h.has_known) return SourceReconcile(h, h.known);
  IssueStepOp(h, Wait::kAbortRead);
}

void HandoverMachine::SourceResult(Handover& h, const OpResult& r) {
  const absl::Status& status = r.status;
  switch (h.wait) {
    case Wait::kReadRecord: {
      if (!status.ok()) {
        return FailCreate(h, absl::UnavailableError("arbiter: " + StatusText(status)));
      }
      if (r.record.state() != v1::OWNERSHIP_STATE_ACTIVE ||
          r.record.owner_node() != config_.node_id) {
        return FailCreate(h, absl::FailedPreconditionError(
                                 absl::StrCat("nic: node ", config_.node_id, " does not own ",
                                              h.bdf(), " (record ", RecordString(r.record), ")")));
      }
      h.e0 = r.record.epoch();
      h.e1 = h.e0 + 1;
      h.ea = h.e0 + 2;
      h.res.set_from_epoch(h.e0);
      h.res.set_to_epoch(h.e1);
      h.known = r.record;
      h.has_known = true;
      return IssueStepOp(h, Wait::kReadMessages);
    }
    case Wait::kReadMessages: {
      if (!status.ok()) return FailCreate(h, absl::UnavailableError("router: " + StatusText(status)));
      h.previous = r.messages;
      h.started = true;
      order_.push_back(h.id());
      SetPhase(h, v1::HANDOVER_PHASE_OFFERING, "");
      Persist(h, JournalRecord::SOURCE_STARTED);
      for (uint64_t token : h.create_tokens) ready_.answers.push_back({token, h.res});
      h.create_tokens.clear();
      h.deadline_timer = ArmTimer(h.timeout);
      timers_[h.deadline_timer] = {TimerKind::kDeadline, h.id(), {}};
      v1::OfferRequest offer;
      offer.set_handover_id(h.id());
      offer.set_source_node(config_.node_id);
      offer.set_target_node(h.peer);
      offer.set_bdf(h.bdf());
      offer.set_vendor_id(h.nic.vendor_id);
      offer.set_device_id(h.nic.device_id);
      offer.set_driver(h.nic.driver);
      offer.set_new_epoch(h.e1);
      offer.set_interrupt_mode(h.nic.interrupts.mode());
      offer.set_vector_count(h.nic.interrupts.vectors_enabled());
      offer.set_queue_count(h.nic.queue_count);
      offer.set_commit_path(h.res.requested_commit_path());
      h.offer_sent = true;
      h.wait = Wait::kOffer;
      h.call = next_id_++;
      calls_[h.call] = h.id();
      ready_.sends.push_back({h.call, h.peer, offer, config_.timeouts.peer_call});
      return;
    }
    case Wait::kPrepareCas:
      if (!status.ok()) {
        h.has_known = false;  // the CAS may or may not have landed
        return BeginAbort(h, status.code(), "ARBITER_FAILED", "prepare: " + StatusText(status));
      }
      h.known = r.record;
      h.has_known = true;
      if (!SameRecord(r.record, PreparingRecord(config_.node_id, h.peer, h.e1))) {
        return BeginAbort(h, absl::StatusCode::kAborted, "OWNERSHIP_CHANGED",
                          "the record changed to " + RecordString(r.record));
      }
      if (h.res.commit_path() == v1::COMMIT_PATH_KERNEL) {
        // The kernel's one call ends with the HANDOFF CAS: from its issue
        // on, the commit point may be passed at any moment.
        h.handoff_issued = true;
        h.has_known = false;
        return IssueStepOp(h, Wait::kHandOff);
      }
      return IssueStepOp(h, Wait::kQuiesce);
    case Wait::kHandOff:
      return HandOffDone(h, r);
    case Wait::kQuiesce:
      if (!status.ok()) {
        return BeginAbort(h, status.code(), "QUIESCE_FAILED", "quiesce: " + StatusText(status));
      }
      h.rings = r.quiesce.rings;
      h.rings_known = true;
      h.res.mutable_stats()->set_drained_tx_packets(r.quiesce.drained_tx_packets);
      h.res.mutable_stats()->set_drained_rx_packets(r.quiesce.drained_rx_packets);
      h.res.mutable_stats()->set_held_xmits(r.quiesce.held_xmits);
      h.res.mutable_stats()->set_polls_while_quiesced(r.quiesce.polls_while_quiesced);
      SetPhase(h, v1::HANDOVER_PHASE_REROUTING,
               absl::StrCat("quiesced: ", r.quiesce.drained_tx_packets,
                            " TX completions drained"));
      return IssueStepOp(h, Wait::kReroute);
    case Wait::kReroute:
      if (!status.ok()) {
        return BeginAbort(h, status.code(), "REROUTE_FAILED", "reroute: " + StatusText(status));
      }
      return IssueStepOp(h, Wait::kWriteRings);
    case Wait::kWriteRings:
      if (!status.ok()) {
        return BeginAbort(h, status.code(), "ARBITER_FAILED", "handoff rings: " + StatusText(status));
      }
      // From here the commit point may be passed at any moment.
      h.handoff_issued = true;
      h.has_known = false;
      return IssueStepOp(h, Wait::kHandoffCas);
    case Wait::kHandoffCas:
      if (!status.ok()) return IssueStepOp(h, Wait::kOutcomeRead);
      return SourceReconcile(h, r.record);
    case Wait::kOutcomeRead:
    case Wait::kAbortRead:
      if (!status.ok()) return RetryLater(h, h.wait, status);
      return SourceReconcile(h, r.record);
    case Wait::kAbortCas:
      if (!status.ok()) {
        h.has_known = false;
        return RetryLater(h, Wait::kAbortRead, status);
      }
      return SourceReconcile(h, r.record);
    case Wait::kRelease:
      if (!status.ok()) return RetryLater(h, Wait::kRelease, status);
      return Finish(h, v1::HANDOVER_PHASE_COMMITTED);
    case Wait::kRestore:
      if (!status.ok()) return RetryLater(h, Wait::kRestore, status);
      return IssueStepOp(h, Wait::kResume);
    case Wait::kResume:
      if (!status.ok()) return RetryLater(h, Wait::kResume, status);
      return Finish(h, v1::HANDOVER_PHASE_ROLLED_BACK);
    default:
      NH_LOG(WARNING) << "node " << config_.node_id << ": unexpected result for " << h.id();
  }
}

// The source decides from the record as it stands. Only ever forward to the
// target's commit once HANDOFF is seen; otherwise back to ACTIVE(S, ea).
void HandoverMachine::SourceReconcile(Handover& h, const v1::OwnershipRecord& record) {
  const std::string& me = config_.node_id;
  h.known = record;
  h.has_known = true;
  if (SameRecord(record, ActiveRecord(me, h.e0)) ||
      SameRecord(record, PreparingRecord(me, h.peer, h.e1))) {
    if (h.res.phase() != v1::HANDOVER_PHASE_ROLLING_BACK) {
      if (!h.res.has_error() && !h.handoff_error.ok()) {
        h.res.mutable_error()->CopyFrom(MakeError(h.handoff_error.code(), "HANDOFF_FAILED",
                                                  "hand-off: " + StatusText(h.handoff_error)));
      }
      if (!h.res.has_error()) {
        h.res.mutable_error()->CopyFrom(MakeError(absl::StatusCode::kAborted, "RECOVERED",
                                                  "rolled back after a restart of the source"));
      }
      SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, "record " + RecordString(record));
    }
    h.handoff_issued = false;
    return IssueStepOp(h, Wait::kAbortCas);
  }
  if (SameRecord(record, HandoffRecord(me, h.peer, h.e1))) {
    h.handoff_issued = true;
    if (h.res.phase() != v1::HANDOVER_PHASE_HANDING_OFF) {
      SetPhase(h, v1::HANDOVER_PHASE_HANDING_OFF, "record " + RecordString(record));
    }
    return SendCommit(h);
  }
  if (SameRecord(record, ActiveRecord(me, h.ea))) {
    if (h.res.phase() != v1::HANDOVER_PHASE_ROLLING_BACK) {
      if (!h.res.has_error()) {
        h.res.mutable_error()->CopyFrom(MakeError(
            absl::StatusCode::kAborted, "RECORD_ROLLED_BACK",
            "the record was rolled back to " + RecordString(record) +
                " (by this node before a restart, by an operator, or by the target)"));
      }
      SetPhase(h, v1::HANDOVER_PHASE_ROLLING_BACK, "record " + RecordString(record));
    }
    SendAbort(h);
    if (h.may_have_quiesced) return IssueStepOp(h, Wait::kRestore);
    return Finish(h, v1::HANDOVER_PHASE_ROLLED_BACK);
  }
  if (SameRecord(record, ActiveRecord(h.peer, h.e1)) || record.epoch() > h.e1) {
    // Committed by the target (and maybe moved on since): let go.
    h.handoff_issued = true;
    h.res.clear_error();
    SetPhase(h, v1::HANDOVER_PHASE_ATTACHING, "record " + RecordString(record));
    return IssueStepOp(h, Wait::kRelease);
  }
  h.res.mutable_error()->CopyFrom(
      MakeError(absl::StatusCode::kInternal, "RECORD_CONTRADICTS",
                absl::StrCat("record ", RecordString(record), " contradicts handover epochs ",
                             h.e0, "->", h.e1, "; run `nicctl recover`")));
  h.retry = Wait::kNone;  // no step to redo: the operator decides
  Finish(h, v1::HANDOVER_PHASE_FAILED);
}

}  // namespace protocol
}  // namespace nichandover
