#include "daemon/protocol/handover_machine.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "daemon/protocol/records.h"

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
  bool abort_requested = false;  // target: Abort came while reserving
  bool has_known = false;        // `known` is the record as it stands
  v1::OwnershipRecord known;
  uint64_t op = 0, call = 0, step_timer = 0, deadline_timer = 0;
  int failures = 0;
  absl::Duration timeout;
  std::vector<uint64_t> create_tokens;
  std::vector<uint64_t> offer_tokens;
  std::vector<uint64_t> commit_tokens;
  const platform::NicInfo* nic = nullptr;

  bool done() const { return res.done(); }
  const std::string& id() const { return res.handover_id(); }
  const std::string& bdf() const { return res.bdf(); }
};

namespace {

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }


std::string PhaseName(v1::HandoverPhase phase) {
  std::string name = v1::HandoverPhase_Name(phase);
  return absl::StartsWith(name, "HANDOVER_PHASE_") ? name.substr(15) : name;
}

v1::Error MakeError(absl::StatusCode code, const std::string& reason,
                    const std::string& message) {
  v1::Error error;
  error.set_code(static_cast<int>(code));
  error.set_reason(reason);
  error.set_message(message);
  return error;
}

std::string StatusText(const absl::Status& status) {
  return std::string(absl::StatusCodeToString(status.code())) + ": " +
         std::string(status.message());
}

}  // namespace

absl::StatusOr<std::string> NormalizeBdf(const std::string& nic, const std::string& field) {
  std::string text = nic;
  if (absl::StartsWith(text, "nics/")) text = text.substr(5);
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() == 2) parts.insert(parts.begin(), "0000");
  auto malformed = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", nic, "\" is not a PCI address (want DDDD:BB:DD.F, e.g. 0000:03:00.0)"));
  };
  if (parts.size() != 3 || parts[0].size() != 4 || parts[1].size() != 2) return malformed();
  std::vector<std::string> dev_fn = absl::StrSplit(parts[2], '.');
  if (dev_fn.size() != 2 || dev_fn[0].size() != 2 || dev_fn[1].size() != 1) return malformed();
  for (const std::string& p : {parts[0], parts[1], dev_fn[0], dev_fn[1]}) {
    for (char c : p) {
      if (!IsHex(c)) return malformed();
    }
  }
  unsigned device = std::stoul(dev_fn[0], nullptr, 16);
  unsigned function = std::stoul(dev_fn[1], nullptr, 16);
  if (device > 0x1f || function > 7) return malformed();
  return absl::AsciiStrToLower(absl::StrCat(parts[0], ":", parts[1], ":", dev_fn[0], ".",
                                            dev_fn[1]));
}

bool ValidRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

absl::Status CheckFieldLengths(std::initializer_list<FieldLimit> fields) {
  for (const FieldLimit& f : fields) {
    if (f.value.size() > f.max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(f.field, ": ", f.value.size(),
                                                     " bytes long; at most ", f.max_bytes));
    }
  }
  return absl::OkStatus();
}

HandoverMachine::HandoverMachine(MachineConfig config) : config_(std::move(config)) {}
HandoverMachine::~HandoverMachine() = default;

Ready HandoverMachine::TakeReady() {
  Ready out = std::move(ready_);
  ready_ = Ready();
  return out;
}

void HandoverMachine::Step(Event event) {
  if (!recovered_) {
    NH_CHECK(std::holds_alternative<RecoverEvent>(event))
        << "node " << config_.node_id << ": the first event must be Recover";
  }
  std::visit(
      [this](auto&& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, RecoverEvent>) {
          OnRecover(e);
        } else if constexpr (std::is_same_v<T, CreateHandoverEvent>) {
          OnCreate(e);
        } else if constexpr (std::is_same_v<T, CancelHandoverEvent>) {
          OnCancel(e);
        } else if constexpr (std::is_same_v<T, RecoverNicEvent>) {
          OnRecoverNic(e);
        } else if constexpr (std::is_same_v<T, QuiesceNicEvent>) {
          OnQuiesceNic(e);
        } else if constexpr (std::is_same_v<T, ResumeNicEvent>) {
          OnResumeNic(e);
        } else if constexpr (std::is_same_v<T, InventoryEvent>) {
          OnInventory(e);
        } else if constexpr (std::is_same_v<T, PeerRequestEvent>) {
          OnPeerRequest(e);
        } else if constexpr (std::is_same_v<T, PeerResponseEvent>) {
          OnPeerResponse(e);
        } else if constexpr (std::is_same_v<T, OpDoneEvent>) {
          OnOpDone(e);
        } else if constexpr (std::is_same_v<T, TimerFiredEvent>) {
          OnTimer(e);
        }
      },
      event);
}

void HandoverMachine::OnInventory(const InventoryEvent& e) {
  for (const platform::NicInfo& fresh : e.nics) {
    bool known = false;
    for (platform::NicInfo& nic : config_.nics) {
      if (nic.bdf == fresh.bdf) {
        nic = fresh;
        known = true;
      }
    }
    if (!known) config_.nics.push_back(fresh);
  }
}

// ------------------------------------------------------------------ queries

absl::StatusOr<v1::Handover> HandoverMachine::GetHandover(const std::string& handover_id) const {
  auto it = handovers_.find(handover_id);
  if (it == handovers_.end() || !it->second->started) {
    return absl::NotFoundError(
        absl::StrCat("handover_id: no handover \"", handover_id, "\" on node ", config_.node_id));
  }
  return it->second->res;
}

absl::StatusOr<v1::Handover> HandoverMachine::GetHandoverByRequestId(
    const std::string& request_id) const {
  auto it = by_request_id_.find(request_id);
  if (it == by_request_id_.end()) {
    return absl::NotFoundError(absl::StrCat("request_id: no handover \"", request_id, "\""));
  }
  return GetHandover(it->second);
}

std::vector<v1::Handover> HandoverMachine::ListHandovers(const std::string& bdf) const {
  std::vector<v1::Handover> out;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    const Handover& h = *handovers_.at(*it);
    if (bdf.empty() || h.bdf() == bdf) out.push_back(h.res);
  }
  return out;
}

std::vector<v1::Handover> HandoverMachine::LiveHandovers() const {
  std::vector<v1::Handover> out;
  for (const auto& [id, h] : handovers_) {
    if (h->started && !h->done()) out.push_back(h->res);
  }
  return out;
}

std::vector<JournalRecord> HandoverMachine::CompactedJournal() const {
  std::vector<JournalRecord> out;
  for (const std::string& id : order_) {
    const Handover& h = *handovers_.at(id);
    if (h.done()) {
      out.push_back(MakeJournalRecord(JournalRecord::FINISHED, h.res, {}));
    } else if (h.role == Role::kSource) {
      out.push_back(MakeJournalRecord(JournalRecord::SOURCE_STARTED, h.res, h.previous));
    } else {
      out.push_back(MakeJournalRecord(JournalRecord::TARGET_RESERVED, h.res, h.target_messages));
    }
  }
  return out;
}

// ------------------------------------------------------------------ helpers

HandoverMachine::Handover* HandoverMachine::Find(const std::string& handover_id) {
  auto it = handovers_.find(handover_id);
  return it == handovers_.end() ? nullptr : it->second.get();
}

HandoverMachine::Handover* HandoverMachine::FailedHandoverAt(const std::string& bdf,
                                                            const v1::OwnershipRecord& record) {
  Handover* latest = nullptr;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    auto found = handovers_.find(*it);
    if (found == handovers_.end() || found->second->bdf() != bdf) continue;
    latest = found->second.get();
    break;
  }
  if (latest == nullptr || latest->res.phase() != v1::HANDOVER_PHASE_FAILED ||
      latest->retry == Wait::kNone) {
    return nullptr;
  }
  // Only while the record is still the one this handover left behind.
  if (record.epoch() != latest->e1 && record.epoch() != latest->ea) return nullptr;
  return latest;
}

HandoverMachine::Handover* HandoverMachine::LiveHandoverOf(const std::string& bdf) {
  for (auto& [id, h] : handovers_) {
    if (h->bdf() == bdf && !h->done()) return h.get();
  }
  return nullptr;
}

const platform::NicInfo* HandoverMachine::FindNic(const std::string& bdf) const {
  for (const platform::NicInfo& nic : config_.nics) {
    if (nic.bdf == bdf) return &nic;
  }
  return nullptr;
}

bool HandoverMachine::IsPeer(const std::string& node) const {
  return std::find(config_.peers.begin(), config_.peers.end(), node) != config_.peers.end();
}

void HandoverMachine::SeeRecord(const std::string& bdf, const v1::OwnershipRecord& record) {
  auto it = records_.find(bdf);
  if (it == records_.end() || record.epoch() >= it->second.epoch()) records_[bdf] = record;
}

uint64_t HandoverMachine::KnownEpoch(const std::string& bdf) const {
  uint64_t epoch = 0;
  if (auto it = records_.find(bdf); it != records_.end()) epoch = it->second.epoch();
  if (auto it = hook_epochs_.find(bdf); it != hook_epochs_.end()) {
    epoch = std::max(epoch, it->second);
  }
  return epoch;
}

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
  const std::vector<v1::MsiMessage>& messages =
      kind == JournalRecord::SOURCE_STARTED   ? h.previous
      : kind == JournalRecord::TARGET_RESERVED ? h.target_messages
                                               : std::vector<v1::MsiMessage>();
  ready_.records.push_back(MakeJournalRecord(kind, h.res, messages));
}

void HandoverMachine::TrimHistory() {
  while (order_.size() > config_.history_limit) {
    auto victim = std::find_if(order_.begin(), order_.end(),
                               [this](const std::string& id) { return handovers_[id]->done(); });
    if (victim == order_.end()) return;
    Handover& h = *handovers_[*victim];
    if (by_request_id_.count(h.res.request_id()) &&
        by_request_id_[h.res.request_id()] == h.id()) {
      by_request_id_.erase(h.res.request_id());
    }
    handovers_.erase(*victim);
    order_.erase(victim);
  }
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
  h.retry = redo;
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
  TrimHistory();
}

void HandoverMachine::AnswerOffers(Handover& h, bool accepted, v1::RefusalReason reason,
                                   const std::string& message) {
  for (uint64_t token : h.offer_tokens) {
    v1::OfferResponse response;
    response.set_accepted(accepted);
    if (accepted) {
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

// ------------------------------------------------------------------ recovery

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
    h->nic = FindNic(snapshot.bdf());
    h->e0 = snapshot.from_epoch();
    if (record->kind == JournalRecord::SOURCE_STARTED) {
      h->role = Role::kSource;
      h->peer = snapshot.target_node();
      h->e1 = h->e0 + 1;
      h->previous = record->messages;
    } else if (record->kind == JournalRecord::TARGET_RESERVED) {
      h->role = Role::kTarget;
      h->peer = snapshot.source_node();
      h->e1 = h->e0 + 1;
      h->target_messages = record->messages;
    }
    h->ea = h->e1 + 1;
    if (h->role == Role::kSource && !snapshot.request_id().empty()) {
      by_request_id_[snapshot.request_id()] = snapshot.handover_id();
    }
  }

  std::set<std::string> busy;
  for (const std::string& id : order_) {
    Handover& h = *handovers_[id];
    if (h.done()) continue;
    busy.insert(h.bdf());
    SetPhase(h, h.res.phase(), "recovered after a restart");
    auto it = records_.find(h.bdf());
    if (h.role == Role::kSource) {
      // Forward progress needs state the crash lost (the quiesce result, the
      // open calls); recovery only ever finishes or rolls back.
      h.offer_sent = true;
      h.may_have_quiesced = true;
      h.handoff_issued = true;  // unknown: refuse cancels, let the record decide
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
// record (owner runs it, everyone else has released it).
void HandoverMachine::RepairNic(const std::string& bdf, const v1::OwnershipRecord& record,
                                const platform::HookStatus& hook) {
  bool owner = record.state() == v1::OWNERSHIP_STATE_ACTIVE &&
               record.owner_node() == config_.node_id;
  PlatformOp op;
  op.bdf = bdf;
  op.epoch = std::max(record.epoch(), hook.epoch);
  if (record.state() == v1::OWNERSHIP_STATE_PREPARING && record.owner_node() == config_.node_id) {
    // The record names this node as the source of a handover its journal
    // does not know (the journal was lost): still before the commit point,
    // so this node rolls back. With its hook still running the NIC was never
    // quiesced, hence never rerouted: moving the record on to a fresh epoch
    // (which fences the target's offer; it gives its vectors back when it
    // sees the record) and resuming at that epoch restore everything.
    // Quiesced, the old MSI messages are lost with the journal: only an
    // operator can decide (nicctl recover).
    if (hook.state == platform::HookState::kRunning) {
      NH_LOG(WARNING) << "node " << config_.node_id << ": " << bdf << " is "
                      << RecordString(record)
                      << " naming this node as the source, with no handover in the journal; "
                         "rolling back";
      op.kind = OpKind::kCompareAndSwap;
      op.expected = record;
      op.desired = ActiveRecord(config_.node_id, record.epoch() + 1);
      return IssueRepair(op);
    }
    NH_LOG(ERROR) << "node " << config_.node_id << ": " << bdf << " is " << RecordString(record)
                  << " naming this node as the source, its hook is "
                  << platform::HookStateName(hook.state)
                  << " and the journal knows no handover: the old interrupt routing is lost; "
                     "decide with `nicctl recover "
                  << bdf << " --decide abort`";
    return;
  }
  if (owner && hook.state == platform::HookState::kQuiesced) {
    op.kind = OpKind::kResume;
  } else if (!owner && hook.state != platform::HookState::kDetached) {
    op.kind = OpKind::kRelease;
  } else {
    if (owner && hook.state == platform::HookState::kDetached) {
      NH_LOG(ERROR) << "node " << config_.node_id << " owns " << bdf
                    << " by the record but its hook is detached; needs `nicctl recover`";
    }
    return;
  }
  IssueRepair(op);
}

void HandoverMachine::IssueRepair(const PlatformOp& op) {
  PlatformOp issued = op;
  issued.op_id = next_id_++;
  ops_[issued.op_id] = {"", issued};
  ready_.ops.push_back(issued);
}

// ------------------------------------------------------------------ requests

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
  if (e.request_id.empty()) {
    return answer(absl::InvalidArgumentError("request_id: required"));
  }
  if (!ValidRequestId(e.request_id)) {
    return answer(absl::InvalidArgumentError(
        "request_id: want 1-128 characters of [A-Za-z0-9._:-]"));
  }
  absl::StatusOr<std::string> bdf = NormalizeBdf(e.nic, "nic");
  if (!bdf.ok()) return answer(bdf.status());
  if (e.timeout < absl::ZeroDuration()) {
    return answer(absl::InvalidArgumentError("timeout: must not be negative"));
  }
  if (e.timeout > kMaxHandoverTimeout) {
    return answer(absl::InvalidArgumentError(
        absl::StrCat("timeout: must be at most ", absl::FormatDuration(kMaxHandoverTimeout))));
  }
  const absl::Duration timeout =
      e.timeout > absl::ZeroDuration() ? e.timeout : config_.timeouts.handover;
  if (auto it = by_request_id_.find(e.request_id); it != by_request_id_.end()) {
    // A retry repeats its request exactly; anything else under the same id
    // is another request.
    Handover& h = *handovers_[it->second];
    const absl::Duration had = absl::Seconds(h.res.timeout().seconds()) +
                               absl::Nanoseconds(h.res.timeout().nanos());
    if (h.bdf() != *bdf || h.res.target_node() != e.target_node || had != timeout) {
      return answer(absl::AlreadyExistsError(absl::StrCat(
          "request_id: \"", e.request_id, "\" was used for handover ", h.id(), " of ", h.bdf(),
          " to ", h.res.target_node(), " with timeout ", absl::FormatDuration(had))));
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
  h.nic = nic;
  h.peer = e.target_node;
  h.timeout = timeout;
  h.create_tokens.push_back(e.request_token);
  h.res.set_name("handovers/" + e.handover_id);
  h.res.set_handover_id(e.handover_id);
  h.res.set_request_id(e.request_id);
  h.res.set_bdf(*bdf);
  h.res.set_source_node(config_.node_id);
  h.res.set_target_node(e.target_node);
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

void HandoverMachine::OnRecoverNic(const RecoverNicEvent& e) {
  auto answer = [&](absl::StatusOr<v1::RecoverNicResponse> response) {
    ready_.recover_answers.push_back({e.request_token, std::move(response)});
  };
  if (e.request_id.empty()) return answer(absl::InvalidArgumentError("request_id: required"));
  if (!ValidRequestId(e.request_id)) {
    return answer(absl::InvalidArgumentError(
        "request_id: want 1-128 characters of [A-Za-z0-9._:-]"));
  }
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
// node runs for the NIC then reconciles from the record the CAS left.
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
  auto respond = [&]() {
    v1::RecoverNicResponse response;
    *response.mutable_ownership() = record;
    if (local != nullptr) *response.mutable_handover() = local->res;
    return response;
  };
  if (recovery.cas_issued) {
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
    if (local == nullptr) {
      // A handover that gave up on a step after the record decided (a
      // restore, resume, attach or release that kept failing): the operator
      // has fixed the cause, so redo the step the record calls for.
      if (Handover* failed = FailedHandoverAt(recovery.bdf, record)) {
        failed->res.set_done(false);
        failed->failures = 0;
        failed->res.mutable_error()->set_message(
            absl::StrCat(failed->res.error().message(), "; retried by an operator"));
        SetPhase(*failed,
                 record.owner_node() == failed->res.source_node()
                     ? v1::HANDOVER_PHASE_ROLLING_BACK
                     : v1::HANDOVER_PHASE_ATTACHING,
                 "operator recovery: record " + RecordString(record));
        IssueStepOp(*failed, failed->retry);
        local = failed;
        return answer(respond());
      }
      return answer(absl::FailedPreconditionError(
          absl::StrCat("nic: nothing to decide, no handover of ", recovery.bdf,
                       " is in transit (the record is ", RecordString(record), ")")));
    }
    return answer(respond());
  }
  if (commit) {
    if (record.state() != v1::OWNERSHIP_STATE_HANDOFF) {
      return answer(absl::FailedPreconditionError(absl::StrCat(
          "decision: COMMIT needs the record in HANDOFF, it is ", RecordString(record),
          "; the source has not handed off, use ABORT")));
    }
    if (record.target_node() != config_.node_id || local == nullptr ||
        local->role != Role::kTarget || local->e1 != record.epoch()) {
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

// ------------------------------------------------------------------ maintenance

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

// ------------------------------------------------------------------ peers

void HandoverMachine::OnPeerRequest(const PeerRequestEvent& e) {
  std::visit(
      [&](auto&& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, v1::OfferRequest>) {
          OnOffer(e.call_token, e.from_node, body);
        } else if constexpr (std::is_same_v<T, v1::CommitRequest>) {
          OnCommit(e.call_token, body);
        } else if constexpr (std::is_same_v<T, v1::AbortRequest>) {
          OnAbort(e.call_token, body);
        } else {
          OnQuery(e.call_token, body);
        }
      },
      e.body);
}

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
    if (h->wait == Wait::kOfferRead || h->wait == Wait::kReserve) return;
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
  h.nic = nic;
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
    if (aborted_unknown_.size() >= config_.history_limit) {
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
  if (h->wait == Wait::kReserve) {
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
        h->nic->interrupts.vectors_enabled()) {
      return BeginAbort(*h, absl::StatusCode::kInternal, "BAD_ACCEPT",
                        absl::StrCat(h->peer, " reserved ", response->target_messages_size(),
                                     " messages for ", h->nic->interrupts.vectors_enabled(),
                                     " vectors"));
    }
    h->target_messages.assign(response->target_messages().begin(),
                              response->target_messages().end());
    SetPhase(*h, v1::HANDOVER_PHASE_QUIESCING, "accepted by " + h->peer);
    h->may_have_quiesced = true;  // once the CAS may have landed, assume the worst
    return IssueStepOp(*h, Wait::kPrepareCas);
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

// ------------------------------------------------------------------ results

void HandoverMachine::OnOpDone(const OpDoneEvent& e) {
  auto it = ops_.find(e.op_id);
  if (it == ops_.end()) return;  // late result of an op given up on
  OpContext context = it->second;
  ops_.erase(it);
  if (recoveries_.count(e.op_id)) return RecoverNicResult(e.op_id, e.result);
  if (maintenance_ops_.count(e.op_id)) return MaintenanceResult(e.op_id, e.result);
  if (context.op.kind == OpKind::kReadRecord || context.op.kind == OpKind::kCompareAndSwap) {
    if (e.result.status.ok()) SeeRecord(context.op.bdf, e.result.record);
  }
  if (context.handover_id.empty()) {
    if (!e.result.status.ok()) {
      // A CAS that failed may have been refused because the record moved:
      // the repair is retried from what the record says then.
      uint64_t timer = ArmTimer(config_.timeouts.poll);
      timers_[timer] = {TimerKind::kRepair, "", context.op};
      return;
    }
    if (context.op.kind == OpKind::kCompareAndSwap &&
        SameRecord(e.result.record, context.op.desired)) {
      // A source's rollback without a journal: resume at the new epoch
      // (a no-op on a running NIC, and it moves the hook to that epoch).
      PlatformOp resume;
      resume.bdf = context.op.bdf;
      resume.kind = OpKind::kResume;
      resume.epoch = context.op.desired.epoch();
      IssueRepair(resume);
    }
    return;
  }
  Handover* h = Find(context.handover_id);
  if (h == nullptr || h->op != e.op_id) return;
  h->op = 0;
  CancelStepTimer(*h);
  if (h->role == Role::kSource) {
    SourceResult(*h, e.result);
  } else {
    TargetResult(*h, e.result);
  }
}

void HandoverMachine::OnTimer(const TimerFiredEvent& e) {
  auto it = timers_.find(e.timer_id);
  if (it == timers_.end()) return;
  TimerContext context = it->second;
  timers_.erase(it);
  if (context.kind == TimerKind::kRepair) return IssueRepair(context.repair);
  Handover* h = Find(context.handover_id);
  if (h == nullptr || h->done()) return;
  if (context.kind == TimerKind::kDeadline) {
    h->deadline_timer = 0;
    if (!h->handoff_issued && h->res.phase() != v1::HANDOVER_PHASE_ROLLING_BACK) {
      BeginAbort(*h, absl::StatusCode::kDeadlineExceeded, "HANDOVER_TIMEOUT",
                 absl::StrCat("the handover's deadline passed in phase ",
                              PhaseName(h->res.phase())));
    }
    return;
  }
  if (h->step_timer != e.timer_id) return;
  h->step_timer = 0;
  if (h->op != 0) {
    // The platform call hangs: give up on it (its late result is ignored).
    ops_.erase(h->op);
    h->op = 0;
    OpResult timed_out;
    timed_out.status = absl::DeadlineExceededError(
        absl::StrCat("no answer from the platform within the step's timeout"));
    return h->role == Role::kSource ? SourceResult(*h, timed_out) : TargetResult(*h, timed_out);
  }
  switch (h->wait) {
    case Wait::kRetry:
      return IssueStepOp(*h, h->retry);
    case Wait::kOutcomePoll:
      return IssueStepOp(*h, Wait::kOutcomeRead);
    case Wait::kCommitWait:
      h->veto_allowed = true;
      return IssueStepOp(*h, Wait::kTargetRead);
    default:
      return;
  }
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
      offer.set_vendor_id(h.nic->vendor_id);
      offer.set_device_id(h.nic->device_id);
      offer.set_driver(h.nic->driver);
      offer.set_new_epoch(h.e1);
      offer.set_interrupt_mode(h.nic->interrupts.mode());
      offer.set_vector_count(h.nic->interrupts.vectors_enabled());
      offer.set_queue_count(h.nic->queue_count);
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
      return IssueStepOp(h, Wait::kQuiesce);
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
  Finish(h, v1::HANDOVER_PHASE_FAILED);
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
      AnswerOffers(h, true, v1::REFUSAL_REASON_UNSPECIFIED, "");
      return ArmWait(h, Wait::kCommitWait, config_.timeouts.handover + config_.timeouts.peer_call);
    }
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
