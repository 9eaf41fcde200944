// HandoverMachine's frame: the event dispatch, the queries, the lookups the
// roles share. The roles and jobs live in their own files (see
// handover_internal.h and docs/architecture.md).
#include "daemon/protocol/handover_machine.h"

#include <algorithm>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/protocol/handover_internal.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {

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
        } else if constexpr (std::is_same_v<T, KernelEventEvent>) {
          OnKernelEvent(e);
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
      out.push_back(FinishedRecord(h));
    } else if (h.role == Role::kSource) {
      out.push_back(MakeJournalRecord(JournalRecord::SOURCE_STARTED, h.res, h.previous));
    } else {
      out.push_back(MakeJournalRecord(JournalRecord::TARGET_RESERVED, h.res, h.target_messages));
    }
  }
  return out;
}

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
  if (latest == nullptr || !latest->awaits_operator || latest->retry == Wait::kNone) {
    return nullptr;
  }
  // Only while the record is still the one this handover left behind.
  if (record.epoch() != latest->e1 && record.epoch() != latest->ea) return nullptr;
  return latest;
}

HandoverMachine::Handover* HandoverMachine::AwaitingOperator(const std::string& bdf) {
  for (auto& [id, h] : handovers_) {
    if (h->bdf() == bdf && h->done() && h->awaits_operator) return h.get();
  }
  return nullptr;
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

void HandoverMachine::TrimHistory(const std::string& bdf) {
  std::vector<std::string> forget;
  size_t finished = 0;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    const Handover& h = *handovers_.at(*it);
    // R1: a FAILED handover waiting for its operator is never forgotten.
    if (h.bdf() != bdf || !h.done() || h.awaits_operator) continue;
    if (++finished > std::max<size_t>(config_.history_per_nic, 1)) forget.push_back(*it);
  }
  for (const std::string& id : forget) {
    const Handover& h = *handovers_.at(id);
    auto by_request = by_request_id_.find(h.res.request_id());
    if (by_request != by_request_id_.end() && by_request->second == id) {
      by_request_id_.erase(by_request);
    }
    handovers_.erase(id);
    order_.erase(std::find(order_.begin(), order_.end(), id));
  }
}

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
  if (context.op.kind == OpKind::kHandOff && e.result.status.ok() &&
      e.result.handoff.reached >= platform::HandOffStage::kRingsWritten) {
    SeeRecord(context.op.bdf, e.result.handoff.record);
  }
  if (context.handover_id.empty()) return RepairResult(context.op, e.result);
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

}  // namespace protocol
}  // namespace nichandover
