#include "daemon/platform/fake/memory_machine.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/platform/fake/machine_model.h"
#include "daemon/platform/ownership_record.h"

namespace nichandover {
namespace platform {
namespace fake {
namespace {

// Kernel events a kernel keeps for WaitEvents (older ones are dropped: a
// daemon that fell this far behind reads the record anyway).
constexpr int kKernelEventsKept = 64;

Fence HighestFence(const FakeHook& hook) { return Fence{hook.epoch(), hook.op_id()}; }

// The call's fence becomes the node's highest for the NIC.
void Adopt(FakeHook* hook, const Fence& fence) {
  hook->set_epoch(fence.epoch);
  hook->set_op_id(fence.op_id);
}

void SetMasked(FakeNic* nic, bool masked) {
  for (FakeVector& vector : *nic->mutable_vectors()) vector.set_masked(masked);
}

HookState ToHookState(FakeHookState state) {
  switch (state) {
    case FAKE_HOOK_RUNNING:
      return HookState::kRunning;
    case FAKE_HOOK_QUIESCED:
      return HookState::kQuiesced;
    default:
      return HookState::kDetached;
  }
}

absl::Status CheckMessageCount(const FakeNic& nic, size_t count, const char* what) {
  if (count != static_cast<size_t>(nic.vectors_size())) {
    return absl::InvalidArgumentError(absl::StrCat(what, " for ", nic.bdf(), " has ", count,
                                                   " messages, the NIC has ", nic.vectors_size(),
                                                   " vectors"));
  }
  return absl::OkStatus();
}

std::vector<v1::MsiMessage> MessagesOf(const FakeNic& nic) {
  std::vector<v1::MsiMessage> messages;
  for (const FakeVector& vector : nic.vectors()) messages.push_back(vector.message());
  return messages;
}

// Masks every vector, writes `messages`, reads back: the careful order the
// Router contract prescribes (the fake's writes cannot fail to stick).
void WriteMessagesMasked(FakeNic* nic, const std::vector<v1::MsiMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    FakeVector* vector = nic->mutable_vectors(static_cast<int>(i));
    vector->set_masked(true);
    *vector->mutable_message() = messages[i];
  }
}

// The rings beside the record take the write when its fence is not lower
// than the stored one's.
absl::Status StoreHandoffRings(FakeNic* nic, const Fence& fence,
                               const std::vector<v1::QueueRingState>& rings) {
  FakeHandoffRings* handoff = nic->mutable_handoff();
  absl::Status fenced = CheckFence(Fence{handoff->epoch(), handoff->op_id()}, fence,
                                   absl::StrCat("handoff rings write of ", nic->bdf()));
  if (!fenced.ok()) return fenced;
  handoff->set_epoch(fence.epoch);
  handoff->set_op_id(fence.op_id);
  handoff->mutable_rings()->Assign(rings.begin(), rings.end());
  return absl::OkStatus();
}

}  // namespace

void MemoryMachine::Log(const std::string& what) {
  AppendHistory(state_, absl::StrCat(node_id_, " ", what));
}

absl::StatusOr<MemoryMachine::FencedNic> MemoryMachine::FenceNic(const std::string& bdf,
                                                                 const Fence& fence,
                                                                 const char* operation) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  FakeHook* hook = HookFor(*nic, node_id_);
  absl::Status status =
      CheckFence(HighestFence(*hook), fence, absl::StrCat(operation, " of ", bdf, " on ", node_id_));
  if (!status.ok()) return status;
  // Epochs come from the record: a call can be at most one ahead of it (a
  // handover's epoch before its PREPARING CAS). A hook that adopted a later
  // one would refuse every real handover after it (an epoch poisoned by a
  // forged Offer).
  if ((*nic)->has_ownership() && fence.epoch > (*nic)->ownership().epoch() + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        operation, " of ", bdf, " on ", node_id_, " with epoch ", fence.epoch,
        " refused: the ownership record is at epoch ", (*nic)->ownership().epoch()));
  }
  return FencedNic{*nic, hook};
}

// ---------------------------------------------------------------- inventory

NicInfo MemoryMachine::InfoOf(FakeNic* nic) {
  NicInfo info;
  info.bdf = nic->bdf();
  info.vendor_id = static_cast<uint16_t>(nic->vendor_id());
  info.device_id = static_cast<uint16_t>(nic->device_id());
  info.class_code = nic->class_code();
  const FakeHook* hook = HookFor(nic, node_id_);
  info.driver = hook->driver();
  info.netdev = hook->netdev();
  info.queue_count = nic->queue_count();
  info.interrupts = InterruptLayoutOf(*state_, *nic);
  return info;
}

std::vector<NicInfo> MemoryMachine::ListNics() {
  std::vector<NicInfo> nics;
  for (FakeNic& nic : *state_->mutable_nics()) nics.push_back(InfoOf(&nic));
  return nics;
}

absl::StatusOr<NicInfo> MemoryMachine::GetNic(const std::string& bdf) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  return InfoOf(*nic);
}

// ---------------------------------------------------------------- hook

absl::Status MemoryMachine::QuiesceFenced(const FencedNic& fenced, const Fence& fence,
                                          bool drain_timed_out, absl::Duration timeout,
                                          QuiesceResult* result) {
  FakeNic* nic = fenced.nic;
  FakeHook* hook = fenced.hook;
  const std::string& bdf = nic->bdf();
  if (hook->state() == FAKE_HOOK_DETACHED) {
    return absl::FailedPreconditionError(
        absl::StrCat("quiesce of ", bdf, ": not running on ", node_id_));
  }
  Adopt(hook, fence);
  // The gates close and the vectors are masked before the drain, so they
  // stay closed when the drain times out.
  bool was_running = hook->state() == FAKE_HOOK_RUNNING;
  hook->set_state(FAKE_HOOK_QUIESCED);
  SetMasked(nic, true);
  if (drain_timed_out) {
    Log(absl::StrCat("quiesce ", bdf, " ", FenceText(fence), ": drain timed out"));
    return absl::DeadlineExceededError(
        absl::StrCat("quiesce of ", bdf, " on ", node_id_, ": drain did not finish within ",
                     absl::FormatDuration(timeout), " (gates stay closed)"));
  }
  if (was_running) {
    hook->set_drained_tx_packets(nic->tx_in_flight());
    hook->set_drained_rx_packets(nic->rx_pending());
    nic->set_tx_in_flight(0);
    nic->set_rx_pending(0);
    for (v1::QueueRingState& ring : *nic->mutable_rings()) {
      ring.set_tx_next_to_clean(ring.tx_next_to_use());
      ring.set_rx_next_to_clean(ring.rx_next_to_use());
    }
  }
  result->drained_tx_packets = was_running ? hook->drained_tx_packets() : 0;
  result->drained_rx_packets = was_running ? hook->drained_rx_packets() : 0;
  result->held_xmits = hook->held_xmits();
  result->polls_while_quiesced = hook->polls_while_quiesced();
  result->rings.assign(nic->rings().begin(), nic->rings().end());
  Log(absl::StrCat("quiesce ", bdf, " ", FenceText(fence)));
  return absl::OkStatus();
}

// Hook::Attach on a fenced NIC with a driver (and the armed kernel's own
// attach): running, the rings imported unless it already ran, the vectors
// unmasked and pending interrupts replayed, its reservation in use.
void MemoryMachine::AttachFenced(const FencedNic& fenced, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings, const char* who) {
  FakeNic* nic = fenced.nic;
  FakeHook* hook = fenced.hook;
  Adopt(hook, fence);
  if (hook->state() != FAKE_HOOK_RUNNING) {
    hook->set_state(FAKE_HOOK_RUNNING);
    if (!rings.empty()) nic->mutable_rings()->Assign(rings.begin(), rings.end());
  }
  for (FakeVector& vector : *nic->mutable_vectors()) {
    vector.set_masked(false);
    vector.set_pending(false);
  }
  auto* reservations = nic->mutable_reservations();
  for (int i = reservations->size() - 1; i >= 0; --i) {
    if (reservations->Get(i).node_id() == node_id_) reservations->DeleteSubrange(i, 1);
  }
  // An arm rests on the reservation: it is used up too (whoever attached).
  auto* arms = nic->mutable_arms();
  for (int i = arms->size() - 1; i >= 0; --i) {
    if (arms->Get(i).node_id() == node_id_) arms->DeleteSubrange(i, 1);
  }
  Log(absl::StrCat(who, " ", nic->bdf(), " ", FenceText(fence)));
}

absl::StatusOr<QuiesceResult> MemoryMachine::Quiesce(const std::string& bdf, const Fence& fence,
                                                     bool drain_timed_out,
                                                     absl::Duration timeout) {
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "quiesce");
  if (!fenced.ok()) return fenced.status();
  QuiesceResult result;
  absl::Status status = QuiesceFenced(*fenced, fence, drain_timed_out, timeout, &result);
  if (!status.ok()) return status;
  return result;
}

absl::Status MemoryMachine::Resume(const std::string& bdf, const Fence& fence) {
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "resume");
  if (!fenced.ok()) return fenced.status();
  FakeHook* hook = fenced->hook;
  if (hook->state() == FAKE_HOOK_DETACHED) {
    return absl::FailedPreconditionError(
        absl::StrCat("resume of ", bdf, ": not attached on ", node_id_));
  }
  Adopt(hook, fence);
  hook->set_state(FAKE_HOOK_RUNNING);
  SetMasked(fenced->nic, false);
  Log(absl::StrCat("resume ", bdf, " ", FenceText(fence)));
  return absl::OkStatus();
}

absl::Status MemoryMachine::Attach(const std::string& bdf, const Fence& fence,
                                   const std::vector<v1::QueueRingState>& rings) {
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "attach");
  if (!fenced.ok()) return fenced.status();
  if (fenced->hook->driver().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("attach of ", bdf, ": no driver bound on ", node_id_));
  }
  AttachFenced(*fenced, fence, rings, "attach");
  return absl::OkStatus();
}

absl::Status MemoryMachine::Release(const std::string& bdf, const Fence& fence) {
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "release");
  if (!fenced.ok()) return fenced.status();
  FakeHook* hook = fenced->hook;
  if (hook->state() == FAKE_HOOK_RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrCat("release of ", bdf, ": still running on ", node_id_, " (quiesce first)"));
  }
  Adopt(hook, fence);
  hook->set_state(FAKE_HOOK_DETACHED);
  Log(absl::StrCat("release ", bdf, " ", FenceText(fence)));
  return absl::OkStatus();
}

absl::StatusOr<HookStatus> MemoryMachine::Status(const std::string& bdf) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  const FakeHook* hook = HookFor(*nic, node_id_);
  HookStatus result;
  result.state = ToHookState(hook->state());
  result.epoch = hook->epoch();
  result.held_xmits = hook->held_xmits();
  result.polls_while_quiesced = hook->polls_while_quiesced();
  result.drained_tx_packets = hook->drained_tx_packets();
  return result;
}

// ---------------------------------------------------------------- router

absl::StatusOr<std::vector<v1::MsiMessage>> MemoryMachine::ReadMessages(const std::string& bdf) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  return MessagesOf(**nic);
}

absl::StatusOr<std::vector<v1::MsiMessage>> MemoryMachine::Reroute(
    const std::string& bdf, const Fence& fence, const std::vector<v1::MsiMessage>& target) {
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "reroute");
  if (!fenced.ok()) return fenced.status();
  FakeNic* nic = fenced->nic;
  if (nic->interrupt_remapping()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "reroute of ", bdf, ": interrupt remapping is on (messages are IRTE handles)"));
  }
  if (fenced->hook->state() != FAKE_HOOK_QUIESCED) {
    return absl::FailedPreconditionError(
        absl::StrCat("reroute of ", bdf, ": not quiesced on ", node_id_));
  }
  absl::Status status = CheckMessageCount(*nic, target.size(), "reroute");
  if (!status.ok()) return status;
  Adopt(fenced->hook, fence);
  std::vector<v1::MsiMessage> previous = MessagesOf(*nic);
  WriteMessagesMasked(nic, target);
  Log(absl::StrCat("reroute ", bdf, " ", FenceText(fence)));
  return previous;
}

absl::Status MemoryMachine::Restore(const std::string& bdf, const Fence& fence,
                                    const std::vector<v1::MsiMessage>& previous) {
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "restore");
  if (!fenced.ok()) return fenced.status();
  absl::Status status = CheckMessageCount(*fenced->nic, previous.size(), "restore");
  if (!status.ok()) return status;
  Adopt(fenced->hook, fence);
  WriteMessagesMasked(fenced->nic, previous);
  Log(absl::StrCat("restore ", bdf, " ", FenceText(fence)));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::MsiMessage>> MemoryMachine::ReserveTargetMessages(
    const std::string& bdf, const Fence& fence, uint32_t count) {
  absl::StatusOr<const FakeNode*> node = FindNode(*state_, node_id_);
  if (!node.ok()) return node.status();
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "reserve");
  if (!fenced.ok()) return fenced.status();
  FakeNic* nic = fenced->nic;
  FakeReservation* mine = nullptr;
  for (FakeReservation& reservation : *nic->mutable_reservations()) {
    if (reservation.node_id() == node_id_) mine = &reservation;
  }
  // A repeated offer (the source retried) gets the same messages; its fence
  // was accepted, so it is the highest now like any other's.
  if (mine != nullptr && mine->epoch() == fence.epoch &&
      mine->messages_size() == static_cast<int>(count)) {
    Adopt(fenced->hook, fence);
    return std::vector<v1::MsiMessage>(mine->messages().begin(), mine->messages().end());
  }
  if (mine != nullptr) mine->clear_messages();
  absl::StatusOr<std::vector<v1::MsiMessage>> messages = Allocate(**node, bdf, count);
  if (!messages.ok()) return messages.status();
  if (mine == nullptr) mine = nic->add_reservations();
  mine->set_node_id(node_id_);
  mine->set_epoch(fence.epoch);
  mine->mutable_messages()->Assign(messages->begin(), messages->end());
  Adopt(fenced->hook, fence);
  Log(absl::StrCat("reserve ", count, " vectors for ", bdf, " ", FenceText(fence)));
  return messages;
}

absl::Status MemoryMachine::ReleaseReservation(const std::string& bdf, const Fence& fence) {
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "release reservation");
  if (!fenced.ok()) return fenced.status();
  Adopt(fenced->hook, fence);
  auto* reservations = fenced->nic->mutable_reservations();
  for (int i = reservations->size() - 1; i >= 0; --i) {
    if (reservations->Get(i).node_id() == node_id_) {
      reservations->DeleteSubrange(i, 1);
      Log(absl::StrCat("release reservation ", bdf, " ", FenceText(fence)));
    }
  }
  // Without its reservation the kernel has nothing to commit onto.
  auto* arms = fenced->nic->mutable_arms();
  for (int i = arms->size() - 1; i >= 0; --i) {
    if (arms->Get(i).node_id() == node_id_) {
      arms->DeleteSubrange(i, 1);
      Log(absl::StrCat("disarm ", bdf, " ", FenceText(fence)));
    }
  }
  return absl::OkStatus();
}

// Free (APIC ID, vector) pairs on the node: not reserved for another NIC and
// not programmed in any NIC that points at the node. One vector per message,
// round-robin over the node's CPUs.
absl::StatusOr<std::vector<v1::MsiMessage>> MemoryMachine::Allocate(const FakeNode& node,
                                                                    const std::string& bdf,
                                                                    uint32_t count) {
  if (node.cpus().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("node ", node.node_id(), " has no CPUs"));
  }
  std::set<std::pair<uint32_t, uint32_t>> used;
  for (const FakeNic& nic : state_->nics()) {
    if (!nic.interrupt_remapping()) {
      for (const FakeVector& vector : nic.vectors()) {
        used.emplace(MsiDestinationApic(vector.message()), MsiVector(vector.message()));
      }
    }
    for (const FakeReservation& reservation : nic.reservations()) {
      if (reservation.node_id() != node.node_id() || nic.bdf() == bdf) continue;
      for (const v1::MsiMessage& message : reservation.messages()) {
        used.emplace(MsiDestinationApic(message), MsiVector(message));
      }
    }
  }
  std::vector<v1::MsiMessage> messages;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t apic = node.cpus(static_cast<int>(i % node.cpus_size())).apic_id();
    bool found = false;
    for (uint32_t vector = FirstVector(node); vector <= LastVector(node); ++vector) {
      if (used.insert({apic, vector}).second) {
        messages.push_back(EncodeMsi(apic, vector));
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "node ", node.node_id(), " has no free vector on APIC ID ", apic, " for ", bdf,
          " (range 0x", absl::Hex(FirstVector(node)), "..0x", absl::Hex(LastVector(node)), ")"));
    }
  }
  return messages;
}

// ---------------------------------------------------------------- arbiter

absl::StatusOr<v1::OwnershipRecord> MemoryMachine::ReadRecord(const std::string& bdf) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  return (*nic)->ownership();
}

absl::StatusOr<v1::OwnershipRecord> MemoryMachine::CompareAndSwap(
    const std::string& bdf, const v1::OwnershipRecord& expected,
    const v1::OwnershipRecord& desired) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  absl::Status valid = CheckCompareAndSwap(bdf, expected, desired);
  if (!valid.ok()) return valid;
  v1::OwnershipRecord after = SwapIfSame((*nic)->mutable_ownership(), expected, desired);
  if (SameRecord(after, desired)) {
    Log(absl::StrCat("cas ", bdf, " ", RecordString(expected), " -> ", RecordString(desired)));
  }
  return after;
}

absl::Status MemoryMachine::WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                              const std::vector<v1::QueueRingState>& rings) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  return StoreHandoffRings(*nic, fence, rings);
}

absl::StatusOr<std::vector<v1::QueueRingState>> MemoryMachine::ReadHandoffRings(
    const std::string& bdf, uint64_t epoch) {
  absl::StatusOr<FakeNic*> nic = FindNic(state_, bdf);
  if (!nic.ok()) return nic.status();
  if (!(*nic)->has_handoff() || (*nic)->handoff().epoch() != epoch) {
    return absl::NotFoundError(absl::StrCat("no handoff rings for ", bdf, " at epoch ", epoch));
  }
  return std::vector<v1::QueueRingState>((*nic)->handoff().rings().begin(),
                                         (*nic)->handoff().rings().end());
}

// ---------------------------------------------------------------- fast path

absl::Status MemoryMachine::Arm(const std::string& bdf, const Fence& fence,
                                const v1::OwnershipRecord& handoff) {
  if (handoff.state() != v1::OWNERSHIP_STATE_HANDOFF || handoff.target_node() != node_id_ ||
      handoff.epoch() != fence.epoch || handoff.owner_node().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("arm of ", bdf, " on ", node_id_, ": ",
                                                   RecordString(handoff),
                                                   " is not HANDOFF(source, ", node_id_, ", ",
                                                   fence.epoch, ")"));
  }
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "arm");
  if (!fenced.ok()) return fenced.status();
  bool reserved = false;
  for (const FakeReservation& reservation : fenced->nic->reservations()) {
    reserved = reserved || (reservation.node_id() == node_id_ && reservation.epoch() == fence.epoch);
  }
  if (!reserved) {
    return absl::FailedPreconditionError(absl::StrCat("arm of ", bdf, " on ", node_id_,
                                                      ": no vectors reserved at epoch ",
                                                      fence.epoch));
  }
  Adopt(fenced->hook, fence);
  FakeArm* arm = nullptr;
  for (FakeArm& existing : *fenced->nic->mutable_arms()) {
    if (existing.node_id() == node_id_) arm = &existing;
  }
  if (arm == nullptr) arm = fenced->nic->add_arms();
  arm->set_node_id(node_id_);
  arm->set_epoch(fence.epoch);
  arm->set_op_id(fence.op_id);
  *arm->mutable_handoff() = handoff;
  Log(absl::StrCat("arm ", bdf, " epoch=", fence.epoch, " ", RecordString(handoff), " ",
                   FenceText(fence)));
  return absl::OkStatus();
}

absl::StatusOr<HandOffResult> MemoryMachine::HandOff(const HandOffRequest& request,
                                                     bool drain_timed_out,
                                                     const StageCheck& after_stage) {
  const std::string& bdf = request.bdf;
  const Fence& fence = request.fence;
  HandOffResult result;
  auto stop = [&]() -> absl::Status {
    return after_stage ? after_stage(result) : absl::OkStatus();
  };
  absl::Status valid = CheckCompareAndSwap(bdf, request.expected, request.desired);
  if (!valid.ok()) return valid;
  if (request.desired.state() != v1::OWNERSHIP_STATE_HANDOFF ||
      request.desired.epoch() != fence.epoch) {
    return absl::InvalidArgumentError(absl::StrCat("hand-off of ", bdf, ": ",
                                                   RecordString(request.desired),
                                                   " is not HANDOFF at ", FenceText(fence)));
  }
  absl::StatusOr<FencedNic> fenced = FenceNic(bdf, fence, "hand-off");
  if (!fenced.ok()) return fenced.status();
  FakeNic* nic = fenced->nic;
  absl::Status step = stop();
  if (!step.ok()) return step;
  step = QuiesceFenced(*fenced, fence, drain_timed_out, request.drain_timeout, &result.quiesce);
  if (!step.ok()) return step;
  result.reached = HandOffStage::kQuiesced;
  if (step = stop(); !step.ok()) return step;
  if (nic->interrupt_remapping()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "hand-off of ", bdf, ": interrupt remapping is on (messages are IRTE handles)"));
  }
  step = CheckMessageCount(*nic, request.target_messages.size(), "hand-off");
  if (!step.ok()) return step;
  result.previous = MessagesOf(*nic);
  WriteMessagesMasked(nic, request.target_messages);
  result.reached = HandOffStage::kRerouted;
  if (step = stop(); !step.ok()) return step;
  step = StoreHandoffRings(nic, fence, result.quiesce.rings);
  if (!step.ok()) return step;
  result.reached = HandOffStage::kRingsWritten;
  if (step = stop(); !step.ok()) return step;
  result.record = SwapIfSame(nic->mutable_ownership(), request.expected, request.desired);
  if (!SameRecord(result.record, request.desired)) {
    Log(absl::StrCat("hand-off ", bdf, " ", FenceText(fence), ": cas lost to ",
                     RecordString(result.record)));
    return result;
  }
  result.reached = HandOffStage::kHandedOff;
  Log(absl::StrCat("hand-off ", bdf, " ", FenceText(fence), " cas ",
                   RecordString(request.expected), " -> ", RecordString(request.desired)));
  if (step = stop(); !step.ok()) return step;
  RingDoorbell(state_, request.desired.target_node(), bdf, fence.epoch);
  result.reached = HandOffStage::kDoorbellRung;
  return result;
}

std::vector<KernelEvent> MemoryMachine::TakeDoorbells() {
  std::vector<KernelEvent> events;
  FakeKernel* kernel = KernelOf(state_, node_id_);
  while (kernel->doorbells_size() > 0) {
    const FakeDoorbell doorbell = kernel->doorbells(0);
    kernel->mutable_doorbells()->DeleteSubrange(0, 1);
    events.push_back(TakeDoorbell(doorbell));
    kernel = KernelOf(state_, node_id_);
  }
  return events;
}

KernelEvents MemoryMachine::EventsAfter(uint64_t after_seq) {
  KernelEvents out;
  FakeKernel* kernel = KernelOf(state_, node_id_);
  // A kernel whose numbers are below after_seq restarted: all it has.
  const bool restarted = kernel->last_seq() < after_seq;
  for (const FakeKernelEvent& e : kernel->events()) {
    if (!restarted && e.seq() <= after_seq) continue;
    KernelEvent event;
    event.seq = e.seq();
    event.kind = e.committed() ? KernelEvent::Kind::kCommitted : KernelEvent::Kind::kNotCommitted;
    event.bdf = e.bdf();
    event.epoch = e.epoch();
    event.record = e.record();
    event.message = e.message();
    out.events.push_back(std::move(event));
  }
  out.last_seq = kernel->last_seq();
  return out;
}

// What this node's kernel does when its doorbell rings for (bdf, epoch).
KernelEvent MemoryMachine::TakeDoorbell(const FakeDoorbell& doorbell) {
  FakeKernelEvent event;
  event.set_bdf(doorbell.bdf());
  event.set_epoch(doorbell.epoch());
  absl::StatusOr<FakeNic*> nic = FindNic(state_, doorbell.bdf());
  const FakeArm* arm = nullptr;
  if (nic.ok()) {
    event.mutable_record()->CopyFrom((*nic)->ownership());
    for (const FakeArm& candidate : (*nic)->arms()) {
      if (candidate.node_id() == node_id_) arm = &candidate;
    }
  }
  if (!nic.ok()) {
    event.set_message(std::string(nic.status().message()));
  } else if (arm == nullptr || arm->epoch() != doorbell.epoch()) {
    event.set_message(
        absl::StrCat("not armed for ", doorbell.bdf(), " at epoch ", doorbell.epoch()));
  } else if (!SameRecord((*nic)->ownership(), arm->handoff())) {
    event.set_message(absl::StrCat("the record is ", RecordString((*nic)->ownership()),
                                   ", not the armed ", RecordString(arm->handoff())));
  } else {
    FakeHook* hook = HookFor(*nic, node_id_);
    // The kernel acts on its own, under the arm's epoch: only a newer epoch
    // on this node's hook stops it. It never lowers the hook's fence (its
    // daemon may have made a later call of the same epoch).
    const Fence armed{arm->epoch(), arm->op_id()};
    const Fence highest = HighestFence(*hook);
    const Fence fence =
        highest.epoch == armed.epoch && highest.op_id > armed.op_id ? highest : armed;
    const v1::OwnershipRecord desired = ActiveRecord(node_id_, arm->epoch());
    if (hook->driver().empty()) {
      event.set_message(absl::StrCat("no driver bound on ", node_id_));
    } else if (highest.epoch > armed.epoch) {
      event.set_message(absl::StrCat("the hook is at epoch ", highest.epoch,
                                     ", past the arm's ", armed.epoch));
    } else {
      const v1::OwnershipRecord handoff = arm->handoff();
      v1::OwnershipRecord after = SwapIfSame((*nic)->mutable_ownership(), handoff, desired);
      Log(absl::StrCat("kernel-commit ", doorbell.bdf(), " epoch=", doorbell.epoch(), " ",
                       RecordString(handoff), " -> ", RecordString(desired), " => ok"));
      std::vector<v1::QueueRingState> rings;
      if ((*nic)->handoff().epoch() == arm->epoch()) {
        rings.assign((*nic)->handoff().rings().begin(), (*nic)->handoff().rings().end());
      }
      // AttachFenced uses the arm up (`arm` points into it: read before).
      AttachFenced(FencedNic{*nic, hook}, fence, rings, "kernel-attach");
      event.set_committed(true);
      *event.mutable_record() = after;
    }
  }
  FakeKernel* kernel = KernelOf(state_, node_id_);
  if (!event.committed()) {
    kernel->set_ignored_doorbells(kernel->ignored_doorbells() + 1);
    Log(absl::StrCat("kernel-commit ", doorbell.bdf(), " epoch=", doorbell.epoch(),
                     " => ignored (", event.message(), ")"));
  }
  kernel->set_last_seq(kernel->last_seq() + 1);
  event.set_seq(kernel->last_seq());
  KernelEvent out;
  out.seq = event.seq();
  out.kind = event.committed() ? KernelEvent::Kind::kCommitted : KernelEvent::Kind::kNotCommitted;
  out.bdf = event.bdf();
  out.epoch = event.epoch();
  out.record = event.record();
  out.message = event.message();
  *kernel->add_events() = std::move(event);
  if (kernel->events_size() > kKernelEventsKept) {
    kernel->mutable_events()->DeleteSubrange(0, kernel->events_size() - kKernelEventsKept);
  }
  return out;
}

}  // namespace fake
}  // namespace platform
}  // namespace nichandover
