#include "daemon/platform/fake/fake_platform.h"

#include <functional>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/platform/fake/machine_file.h"
#include "daemon/platform/fake/machine_model.h"
#include "daemon/platform/ownership_record.h"

namespace nichandover {
namespace platform {
namespace fake {
namespace {

using StateChange = std::function<absl::Status(FakeMachineState*)>;

constexpr absl::Duration kHangPollInterval = absl::Milliseconds(5);

// The knob for (node, operation): one for this node first, else one for all.
FakeFault* FindFault(FakeMachineState* state, const std::string& node_id, FakeOperation operation) {
  FakeFault* for_all = nullptr;
  for (FakeFault& fault : *state->mutable_faults()) {
    if (fault.operation() != operation) continue;
    if (fault.node_id() == node_id) return &fault;
    if (fault.node_id().empty()) for_all = &fault;
  }
  return for_all;
}

// One node's access to the machine: every operation goes through Run, which
// applies the fault knobs first.
class NodeSession {
 public:
  NodeSession(std::string state_path, std::string node_id)
      : file_(std::move(state_path)), node_id_(std::move(node_id)) {}

  const std::string& node_id() const { return node_id_; }
  const std::string& path() const { return file_.path(); }

  // Runs `body` as `operation` after the knobs. A hanging knob blocks the
  // call, polling the file, until it is cleared or its hang_max_ms passes;
  // if `hang_limit` passes first, `body` runs with *hang_timed_out set.
  absl::Status Run(FakeOperation operation, const std::function<absl::Status(FakeMachineState*, bool)>& body,
                   absl::Duration hang_limit = absl::InfiniteDuration()) {
    const absl::Time start = absl::Now();
    bool counted = false;
    for (;;) {
      bool hanging = false;
      absl::Status status = file_.Update([&](FakeMachineState* state) -> absl::Status {
        FakeFault* fault = FindFault(state, node_id_, operation);
        // A spent knob (its fail count used up) stays listed but is inert.
        if (fault == nullptr || (!fault->hang() && fault->fail_code() == 0)) {
          return body(state, false);
        }
        if (!counted) {
          fault->set_hits(fault->hits() + 1);
          counted = true;
        }
        bool hang_timed_out = false;
        if (fault->hang()) {
          absl::Duration elapsed = absl::Now() - start;
          bool hang_over =
              fault->hang_max_ms() > 0 && elapsed >= absl::Milliseconds(fault->hang_max_ms());
          hang_timed_out = !hang_over && elapsed >= hang_limit;
          if (!hang_over && !hang_timed_out) {
            hanging = true;
            return absl::OkStatus();
          }
        }
        if (fault->fail_code() != 0 && !hang_timed_out) {
          auto code = static_cast<absl::StatusCode>(fault->fail_code());
          if (!fault->fail_always()) {
            fault->set_fail_times(fault->fail_times() > 0 ? fault->fail_times() - 1 : 0);
            if (fault->fail_times() == 0) fault->set_fail_code(0);
          }
          AppendHistory(state, absl::StrCat(node_id_, " ", FakeOperationName(operation),
                                            ": injected ", absl::StatusCodeToString(code)));
          return absl::Status(code, absl::StrCat("injected fault: ", FakeOperationName(operation),
                                                 " on ", node_id_, " (fake-machine knob)"));
        }
        return body(state, hang_timed_out);
      });
      if (!hanging) return status;
      absl::SleepFor(kHangPollInterval);
    }
  }

  // Run for a body that ignores hangs' time limits.
  absl::Status Run(FakeOperation operation, const StateChange& body) {
    return Run(operation, [&body](FakeMachineState* state, bool) { return body(state); });
  }

  void Log(FakeMachineState* state, const std::string& what) {
    AppendHistory(state, absl::StrCat(node_id_, " ", what));
  }

 private:
  MachineFile file_;
  std::string node_id_;
};

// The NIC and this node's hook for it, after the fence.
struct FencedNic {
  FakeNic* nic;
  FakeHook* hook;
};

Fence HighestFence(const FakeHook& hook) { return Fence{hook.epoch(), hook.op_id()}; }

// The call's fence becomes the node's highest for the NIC.
void Adopt(FakeHook* hook, const Fence& fence) {
  hook->set_epoch(fence.epoch);
  hook->set_op_id(fence.op_id);
}

absl::StatusOr<FencedNic> FenceNic(FakeMachineState* state, const std::string& node_id,
                                   const std::string& bdf, const Fence& fence,
                                   const char* operation) {
  absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
  if (!nic.ok()) return nic.status();
  FakeHook* hook = HookFor(*nic, node_id);
  absl::Status status =
      CheckFence(HighestFence(*hook), fence, absl::StrCat(operation, " of ", bdf, " on ", node_id));
  if (!status.ok()) return status;
  const uint64_t epoch = fence.epoch;
  // Epochs come from the record: a call can be at most one ahead of it (a
  // handover's epoch before its PREPARING CAS). A hook that adopted a later
  // one would refuse every real handover after it (an epoch poisoned by a
  // forged Offer).
  if ((*nic)->has_ownership() && epoch > (*nic)->ownership().epoch() + 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        operation, " of ", bdf, " on ", node_id, " with epoch ", epoch,
        " refused: the ownership record is at epoch ", (*nic)->ownership().epoch()));
  }
  return FencedNic{*nic, hook};
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

// Hook::Quiesce on a fenced NIC (and the first stage of FastPath::HandOff).
absl::Status QuiesceFenced(NodeSession& session, FakeMachineState* state, const FencedNic& fenced,
                           const Fence& fence, bool drain_timed_out, absl::Duration timeout,
                           QuiesceResult* result) {
  FakeNic* nic = fenced.nic;
  FakeHook* hook = fenced.hook;
  const std::string& bdf = nic->bdf();
  if (hook->state() == FAKE_HOOK_DETACHED) {
    return absl::FailedPreconditionError(
        absl::StrCat("quiesce of ", bdf, ": not running on ", session.node_id()));
  }
  Adopt(hook, fence);
  // The gates close and the vectors are masked before the drain, so
  // they stay closed when the drain times out.
  bool was_running = hook->state() == FAKE_HOOK_RUNNING;
  hook->set_state(FAKE_HOOK_QUIESCED);
  SetMasked(nic, true);
  if (drain_timed_out) {
    session.Log(state, absl::StrCat("quiesce ", bdf, " ", FenceText(fence), ": drain timed out"));
    return absl::DeadlineExceededError(absl::StrCat(
        "quiesce of ", bdf, " on ", session.node_id(), ": drain did not finish within ",
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
  session.Log(state, absl::StrCat("quiesce ", bdf, " ", FenceText(fence)));
  return absl::OkStatus();
}

// Hook::Attach on a fenced NIC with a driver (and the armed kernel's own
// attach): running, the rings imported unless it already ran, the vectors
// unmasked and pending interrupts replayed, its reservation in use.
void AttachFenced(NodeSession& session, FakeMachineState* state, const FencedNic& fenced,
                  const Fence& fence, const std::vector<v1::QueueRingState>& rings,
                  const char* who) {
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
    if (reservations->Get(i).node_id() == session.node_id()) reservations->DeleteSubrange(i, 1);
  }
  // An arm rests on the reservation: it is used up too (whoever attached).
  auto* arms = nic->mutable_arms();
  for (int i = arms->size() - 1; i >= 0; --i) {
    if (arms->Get(i).node_id() == session.node_id()) arms->DeleteSubrange(i, 1);
  }
  session.Log(state, absl::StrCat(who, " ", nic->bdf(), " ", FenceText(fence)));
}

class FakeInventory : public Inventory {
 public:
  explicit FakeInventory(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::StatusOr<std::vector<NicInfo>> ListNics() override {
    std::vector<NicInfo> nics;
    absl::Status status = session_->Run(FAKE_OP_LIST_NICS, [&](FakeMachineState* state) {
      for (FakeNic& nic : *state->mutable_nics()) nics.push_back(InfoOf(*state, &nic));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return nics;
  }

  absl::StatusOr<NicInfo> GetNic(const std::string& bdf) override {
    NicInfo info;
    absl::Status status = session_->Run(FAKE_OP_GET_NIC, [&](FakeMachineState* state) {
      absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
      if (!nic.ok()) return nic.status();
      info = InfoOf(*state, *nic);
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return info;
  }

 private:
  NicInfo InfoOf(const FakeMachineState& state, FakeNic* nic) {
    NicInfo info;
    info.bdf = nic->bdf();
    info.vendor_id = static_cast<uint16_t>(nic->vendor_id());
    info.device_id = static_cast<uint16_t>(nic->device_id());
    info.class_code = nic->class_code();
    const FakeHook* hook = HookFor(nic, session_->node_id());
    info.driver = hook->driver();
    info.netdev = hook->netdev();
    info.queue_count = nic->queue_count();
    info.interrupts = InterruptLayoutOf(state, *nic);
    return info;
  }

  std::shared_ptr<NodeSession> session_;
};

class FakeHookImpl : public Hook {
 public:
  explicit FakeHookImpl(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::StatusOr<QuiesceResult> Quiesce(const std::string& bdf, const Fence& fence,
                                        absl::Duration timeout) override {
    QuiesceResult result;
    absl::Status status = session_->Run(
        FAKE_OP_QUIESCE,
        [&](FakeMachineState* state, bool drain_timed_out) -> absl::Status {
          absl::StatusOr<FencedNic> fenced =
              FenceNic(state, session_->node_id(), bdf, fence, "quiesce");
          if (!fenced.ok()) return fenced.status();
          return QuiesceFenced(*session_, state, *fenced, fence, drain_timed_out, timeout,
                               &result);
        },
        timeout);
    if (!status.ok()) return status;
    return result;
  }

  absl::Status Resume(const std::string& bdf, const Fence& fence) override {
    return session_->Run(FAKE_OP_RESUME, [&](FakeMachineState* state) -> absl::Status {
      absl::StatusOr<FencedNic> fenced = FenceNic(state, session_->node_id(), bdf, fence, "resume");
      if (!fenced.ok()) return fenced.status();
      FakeNic* nic = fenced->nic;
      FakeHook* hook = fenced->hook;
      if (hook->state() == FAKE_HOOK_DETACHED) {
        return absl::FailedPreconditionError(
            absl::StrCat("resume of ", bdf, ": not attached on ", session_->node_id()));
      }
      Adopt(hook, fence);
      hook->set_state(FAKE_HOOK_RUNNING);
      SetMasked(nic, false);
      session_->Log(state, absl::StrCat("resume ", bdf, " ", FenceText(fence)));
      return absl::OkStatus();
    });
  }

  absl::Status Attach(const std::string& bdf, const Fence& fence,
                      const std::vector<v1::QueueRingState>& rings) override {
    return session_->Run(FAKE_OP_ATTACH, [&](FakeMachineState* state) -> absl::Status {
      absl::StatusOr<FencedNic> fenced = FenceNic(state, session_->node_id(), bdf, fence, "attach");
      if (!fenced.ok()) return fenced.status();
      FakeHook* hook = fenced->hook;
      if (hook->driver().empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("attach of ", bdf, ": no driver bound on ", session_->node_id()));
      }
      AttachFenced(*session_, state, *fenced, fence, rings, "attach");
      return absl::OkStatus();
    });
  }

  absl::Status Release(const std::string& bdf, const Fence& fence) override {
    return session_->Run(FAKE_OP_RELEASE, [&](FakeMachineState* state) -> absl::Status {
      absl::StatusOr<FencedNic> fenced =
          FenceNic(state, session_->node_id(), bdf, fence, "release");
      if (!fenced.ok()) return fenced.status();
      FakeHook* hook = fenced->hook;
      if (hook->state() == FAKE_HOOK_RUNNING) {
        return absl::FailedPreconditionError(absl::StrCat(
            "release of ", bdf, ": still running on ", session_->node_id(), " (quiesce first)"));
      }
      Adopt(hook, fence);
      hook->set_state(FAKE_HOOK_DETACHED);
      session_->Log(state, absl::StrCat("release ", bdf, " ", FenceText(fence)));
      return absl::OkStatus();
    });
  }

  absl::StatusOr<HookStatus> Status(const std::string& bdf) override {
    HookStatus result;
    absl::Status status = session_->Run(FAKE_OP_HOOK_STATUS, [&](FakeMachineState* state) {
      absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
      if (!nic.ok()) return nic.status();
      const FakeHook* hook = HookFor(*nic, session_->node_id());
      result.state = ToHookState(hook->state());
      result.epoch = hook->epoch();
      result.held_xmits = hook->held_xmits();
      result.polls_while_quiesced = hook->polls_while_quiesced();
      result.drained_tx_packets = hook->drained_tx_packets();
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return result;
  }

 private:
  std::shared_ptr<NodeSession> session_;
};

class FakeRouter : public Router {
 public:
  explicit FakeRouter(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::StatusOr<std::vector<v1::MsiMessage>> ReadMessages(const std::string& bdf) override {
    std::vector<v1::MsiMessage> messages;
    absl::Status status = session_->Run(FAKE_OP_READ_MESSAGES, [&](FakeMachineState* state) {
      absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
      if (!nic.ok()) return nic.status();
      messages = MessagesOf(**nic);
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return messages;
  }

  absl::StatusOr<std::vector<v1::MsiMessage>> Reroute(
      const std::string& bdf, const Fence& fence,
      const std::vector<v1::MsiMessage>& target) override {
    std::vector<v1::MsiMessage> previous;
    absl::Status status =
        session_->Run(FAKE_OP_REROUTE, [&](FakeMachineState* state) -> absl::Status {
          absl::StatusOr<FencedNic> fenced =
              FenceNic(state, session_->node_id(), bdf, fence, "reroute");
          if (!fenced.ok()) return fenced.status();
          FakeNic* nic = fenced->nic;
          FakeHook* hook = fenced->hook;
          if (nic->interrupt_remapping()) {
            return absl::FailedPreconditionError(absl::StrCat(
                "reroute of ", bdf, ": interrupt remapping is on (messages are IRTE handles)"));
          }
          if (hook->state() != FAKE_HOOK_QUIESCED) {
            return absl::FailedPreconditionError(
                absl::StrCat("reroute of ", bdf, ": not quiesced on ", session_->node_id()));
          }
          absl::Status status = CheckMessageCount(*nic, target.size(), "reroute");
          if (!status.ok()) return status;
          Adopt(hook, fence);
          previous = MessagesOf(*nic);
          WriteMessagesMasked(nic, target);
          session_->Log(state, absl::StrCat("reroute ", bdf, " ", FenceText(fence)));
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    return previous;
  }

  absl::Status Restore(const std::string& bdf, const Fence& fence,
                       const std::vector<v1::MsiMessage>& previous) override {
    return session_->Run(FAKE_OP_RESTORE, [&](FakeMachineState* state) -> absl::Status {
      absl::StatusOr<FencedNic> fenced =
          FenceNic(state, session_->node_id(), bdf, fence, "restore");
      if (!fenced.ok()) return fenced.status();
      FakeNic* nic = fenced->nic;
      FakeHook* hook = fenced->hook;
      absl::Status status = CheckMessageCount(*nic, previous.size(), "restore");
      if (!status.ok()) return status;
      Adopt(hook, fence);
      WriteMessagesMasked(nic, previous);
      session_->Log(state, absl::StrCat("restore ", bdf, " ", FenceText(fence)));
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<v1::MsiMessage>> ReserveTargetMessages(const std::string& bdf,
                                                                    const Fence& fence,
                                                                    uint32_t count) override {
    std::vector<v1::MsiMessage> reserved;
    absl::Status status = session_->Run(FAKE_OP_RESERVE, [&](FakeMachineState* state) -> absl::Status {
      absl::StatusOr<const FakeNode*> node = FindNode(*state, session_->node_id());
      if (!node.ok()) return node.status();
      absl::StatusOr<FencedNic> fenced =
          FenceNic(state, session_->node_id(), bdf, fence, "reserve");
      if (!fenced.ok()) return fenced.status();
      FakeNic* nic = fenced->nic;
      FakeHook* hook = fenced->hook;
      FakeReservation* mine = nullptr;
      for (FakeReservation& reservation : *nic->mutable_reservations()) {
        if (reservation.node_id() == session_->node_id()) mine = &reservation;
      }
      // A repeated offer (the source retried) gets the same messages.
      if (mine != nullptr && mine->epoch() == fence.epoch &&
          mine->messages_size() == static_cast<int>(count)) {
        reserved.assign(mine->messages().begin(), mine->messages().end());
        return absl::OkStatus();
      }
      if (mine != nullptr) mine->clear_messages();
      absl::StatusOr<std::vector<v1::MsiMessage>> messages = Allocate(*state, **node, bdf, count);
      if (!messages.ok()) return messages.status();
      if (mine == nullptr) mine = nic->add_reservations();
      mine->set_node_id(session_->node_id());
      mine->set_epoch(fence.epoch);
      mine->mutable_messages()->Assign(messages->begin(), messages->end());
      Adopt(hook, fence);
      reserved = *std::move(messages);
      session_->Log(state,
                    absl::StrCat("reserve ", count, " vectors for ", bdf, " ", FenceText(fence)));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return reserved;
  }

  absl::Status ReleaseReservation(const std::string& bdf, const Fence& fence) override {
    return session_->Run(FAKE_OP_RELEASE_RESERVATION, [&](FakeMachineState* state) -> absl::Status {
      absl::StatusOr<FencedNic> fenced =
          FenceNic(state, session_->node_id(), bdf, fence, "release reservation");
      if (!fenced.ok()) return fenced.status();
      Adopt(fenced->hook, fence);
      auto* reservations = fenced->nic->mutable_reservations();
      for (int i = reservations->size() - 1; i >= 0; --i) {
        const FakeReservation& reservation = reservations->Get(i);
        if (reservation.node_id() == session_->node_id()) {
          reservations->DeleteSubrange(i, 1);
          session_->Log(state, absl::StrCat("release reservation ", bdf, " ", FenceText(fence)));
        }
      }
      // Without its reservation the kernel has nothing to commit onto.
      auto* arms = fenced->nic->mutable_arms();
      for (int i = arms->size() - 1; i >= 0; --i) {
        if (arms->Get(i).node_id() == session_->node_id()) {
          arms->DeleteSubrange(i, 1);
          session_->Log(state, absl::StrCat("disarm ", bdf, " ", FenceText(fence)));
        }
      }
      return absl::OkStatus();
    });
  }

 private:
  // Free (APIC ID, vector) pairs on the node: not reserved for another NIC
  // and not programmed in any NIC that points at the node. One vector per
  // message, round-robin over the node's CPUs.
  absl::StatusOr<std::vector<v1::MsiMessage>> Allocate(const FakeMachineState& state,
                                                       const FakeNode& node, const std::string& bdf,
                                                       uint32_t count) {
    if (node.cpus().empty()) {
      return absl::FailedPreconditionError(absl::StrCat("node ", node.node_id(), " has no CPUs"));
    }
    std::set<std::pair<uint32_t, uint32_t>> used;
    for (const FakeNic& nic : state.nics()) {
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

  std::shared_ptr<NodeSession> session_;
};

class FakeArbiter : public Arbiter {
 public:
  explicit FakeArbiter(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::StatusOr<v1::OwnershipRecord> Read(const std::string& bdf) override {
    v1::OwnershipRecord record;
    absl::Status status = session_->Run(FAKE_OP_READ_RECORD, [&](FakeMachineState* state) {
      absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
      if (!nic.ok()) return nic.status();
      record = (*nic)->ownership();
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return record;
  }

  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired) override {
    v1::OwnershipRecord after;
    absl::Status status =
        session_->Run(FAKE_OP_COMPARE_AND_SWAP, [&](FakeMachineState* state) -> absl::Status {
          absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
          if (!nic.ok()) return nic.status();
          absl::Status valid = CheckCompareAndSwap(bdf, expected, desired);
          if (!valid.ok()) return valid;
          after = SwapIfSame((*nic)->mutable_ownership(), expected, desired);
          if (SameRecord(after, desired)) {
            session_->Log(state, absl::StrCat("cas ", bdf, " ", RecordString(expected), " -> ",
                                              RecordString(desired)));
          }
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    return after;
  }

  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings) override {
    return session_->Run(FAKE_OP_WRITE_HANDOFF_RINGS, [&](FakeMachineState* state) -> absl::Status {
      absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
      if (!nic.ok()) return nic.status();
      FakeHandoffRings* handoff = (*nic)->mutable_handoff();
      absl::Status fenced = CheckFence(Fence{handoff->epoch(), handoff->op_id()}, fence,
                                       absl::StrCat("handoff rings write of ", bdf));
      if (!fenced.ok()) return fenced;
      handoff->set_epoch(fence.epoch);
      handoff->set_op_id(fence.op_id);
      handoff->mutable_rings()->Assign(rings.begin(), rings.end());
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch) override {
    std::vector<v1::QueueRingState> rings;
    absl::Status status =
        session_->Run(FAKE_OP_READ_HANDOFF_RINGS, [&](FakeMachineState* state) -> absl::Status {
          absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
          if (!nic.ok()) return nic.status();
          if (!(*nic)->has_handoff() || (*nic)->handoff().epoch() != epoch) {
            return absl::NotFoundError(
                absl::StrCat("no handoff rings for ", bdf, " at epoch ", epoch));
          }
          rings.assign((*nic)->handoff().rings().begin(), (*nic)->handoff().rings().end());
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    return rings;
  }

 private:
  std::shared_ptr<NodeSession> session_;
};

// Kernel events a kernel keeps for WaitEvents (older ones are dropped: a
// daemon that fell this far behind reads the record anyway).
constexpr int kKernelEventsKept = 64;

// The kernel commit path of one node. The source side (HandOff) is one
// atomic update of the machine: quiesce, reroute, rings beside the record,
// the CAS PREPARING -> HANDOFF and the doorbell, with the fences of the
// Hook, Router and Arbiter calls it stands for. The target side is the
// node's kernel emulated in its daemon's process: WaitEvents takes the
// doorbells rung for this node, and for each one commits (CAS HANDOFF ->
// ACTIVE) and attaches exactly when the kernel is armed for that NIC and
// epoch and the record is the armed HANDOFF, in one update of the machine.
// It waits for doorbells on the machine file with inotify, not by polling.
// Unlike a real kernel, this one commits only while its daemon waits for
// events: a dead target daemon leaves the doorbell rung until the daemon
// restarts (then its recovery, or this kernel, finishes the handover).
class FakeFastPath : public FastPath {
 public:
  explicit FakeFastPath(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::Status Arm(const std::string& bdf, const Fence& fence,
                   const v1::OwnershipRecord& handoff) override {
    return session_->Run(FAKE_OP_ARM, [&](FakeMachineState* state) -> absl::Status {
      const std::string& self = session_->node_id();
      if (handoff.state() != v1::OWNERSHIP_STATE_HANDOFF || handoff.target_node() != self ||
          handoff.epoch() != fence.epoch || handoff.owner_node().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("arm of ", bdf, " on ", self, ": ", RecordString(handoff),
                         " is not HANDOFF(source, ", self, ", ", fence.epoch, ")"));
      }
      absl::StatusOr<FencedNic> fenced = FenceNic(state, self, bdf, fence, "arm");
      if (!fenced.ok()) return fenced.status();
      bool reserved = false;
      for (const FakeReservation& reservation : fenced->nic->reservations()) {
        reserved = reserved || (reservation.node_id() == self && reservation.epoch() == fence.epoch);
      }
      if (!reserved) {
        return absl::FailedPreconditionError(absl::StrCat(
            "arm of ", bdf, " on ", self, ": no vectors reserved at epoch ", fence.epoch));
      }
      Adopt(fenced->hook, fence);
      FakeArm* arm = nullptr;
      for (FakeArm& existing : *fenced->nic->mutable_arms()) {
        if (existing.node_id() == self) arm = &existing;
      }
      if (arm == nullptr) arm = fenced->nic->add_arms();
      arm->set_node_id(self);
      arm->set_epoch(fence.epoch);
      arm->set_op_id(fence.op_id);
      *arm->mutable_handoff() = handoff;
      session_->Log(state, absl::StrCat("arm ", bdf, " epoch=", fence.epoch, " ",
                                        RecordString(handoff), " ", FenceText(fence)));
      return absl::OkStatus();
    });
  }

  absl::StatusOr<HandOffResult> HandOff(const HandOffRequest& request) override {
    HandOffResult result;
    const std::string& bdf = request.bdf;
    const Fence& fence = request.fence;
    absl::Status status = session_->Run(
        FAKE_OP_HANDOFF,
        [&](FakeMachineState* state, bool drain_timed_out) -> absl::Status {
          result = HandOffResult();
          absl::Status valid = CheckCompareAndSwap(bdf, request.expected, request.desired);
          if (!valid.ok()) return valid;
          if (request.desired.state() != v1::OWNERSHIP_STATE_HANDOFF ||
              request.desired.epoch() != fence.epoch) {
            return absl::InvalidArgumentError(absl::StrCat(
                "hand-off of ", bdf, ": ", RecordString(request.desired), " is not HANDOFF at ",
                FenceText(fence)));
          }
          absl::StatusOr<FencedNic> fenced =
              FenceNic(state, session_->node_id(), bdf, fence, "hand-off");
          if (!fenced.ok()) return fenced.status();
          FakeNic* nic = fenced->nic;
          absl::Status step = QuiesceFenced(*session_, state, *fenced, fence, drain_timed_out,
                                            request.drain_timeout, &result.quiesce);
          if (!step.ok()) return step;
          result.reached = HandOffStage::kQuiesced;
          if (nic->interrupt_remapping()) {
            return absl::FailedPreconditionError(absl::StrCat(
                "hand-off of ", bdf, ": interrupt remapping is on (messages are IRTE handles)"));
          }
          step = CheckMessageCount(*nic, request.target_messages.size(), "hand-off");
          if (!step.ok()) return step;
          result.previous = MessagesOf(*nic);
          WriteMessagesMasked(nic, request.target_messages);
          result.reached = HandOffStage::kRerouted;
          FakeHandoffRings* handoff = nic->mutable_handoff();
          step = CheckFence(Fence{handoff->epoch(), handoff->op_id()}, fence,
                            absl::StrCat("handoff rings write of ", bdf));
          if (!step.ok()) return step;
          handoff->set_epoch(fence.epoch);
          handoff->set_op_id(fence.op_id);
          *handoff->mutable_rings() = nic->rings();
          result.reached = HandOffStage::kRingsWritten;
          result.record =
              SwapIfSame(nic->mutable_ownership(), request.expected, request.desired);
          if (!SameRecord(result.record, request.desired)) {
            session_->Log(state, absl::StrCat("hand-off ", bdf, " ", FenceText(fence),
                                              ": cas lost to ", RecordString(result.record)));
            return absl::OkStatus();
          }
          result.reached = HandOffStage::kHandedOff;
          session_->Log(state, absl::StrCat("hand-off ", bdf, " ", FenceText(fence), " cas ",
                                            RecordString(request.expected), " -> ",
                                            RecordString(request.desired)));
          RingDoorbell(state, request.desired.target_node(), bdf, fence.epoch);
          result.reached = HandOffStage::kDoorbellRung;
          return absl::OkStatus();
        },
        request.drain_timeout);
    if (!status.ok()) return status;
    return result;
  }

  absl::StatusOr<KernelEvents> WaitEvents(uint64_t after_seq, absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      // Opened before the look, so that a doorbell rung after it wakes the
      // wait below.
      MachineFileWatch watch(session_->path());
      if (!watch.status().ok()) return watch.status();
      KernelEvents out;
      absl::Status status = session_->Run(FAKE_OP_WAIT_EVENTS, [&](FakeMachineState* state) {
        FakeKernel* kernel = KernelOf(state, session_->node_id());
        while (kernel->doorbells_size() > 0) {
          const FakeDoorbell doorbell = kernel->doorbells(0);
          kernel->mutable_doorbells()->DeleteSubrange(0, 1);
          TakeDoorbell(state, doorbell);
          kernel = KernelOf(state, session_->node_id());
        }
        // A kernel whose numbers are below after_seq restarted: all it has.
        const bool restarted = kernel->last_seq() < after_seq;
        for (const FakeKernelEvent& e : kernel->events()) {
          if (!restarted && e.seq() <= after_seq) continue;
          KernelEvent event;
          event.seq = e.seq();
          event.kind = e.committed() ? KernelEvent::Kind::kCommitted
                                     : KernelEvent::Kind::kNotCommitted;
          event.bdf = e.bdf();
          event.epoch = e.epoch();
          event.record = e.record();
          event.message = e.message();
          out.events.push_back(std::move(event));
        }
        out.last_seq = kernel->last_seq();
        return absl::OkStatus();
      });
      if (!status.ok()) return status;
      if (!out.events.empty()) return out;
      absl::StatusOr<bool> changed = watch.Wait(deadline);
      if (!changed.ok()) return changed.status();
      if (!*changed) return out;
    }
  }

 private:
  // What this node's kernel does when its doorbell rings for (bdf, epoch).
  void TakeDoorbell(FakeMachineState* state, const FakeDoorbell& doorbell) {
    const std::string& self = session_->node_id();
    FakeKernelEvent event;
    event.set_bdf(doorbell.bdf());
    event.set_epoch(doorbell.epoch());
    absl::StatusOr<FakeNic*> nic = FindNic(state, doorbell.bdf());
    const FakeArm* arm = nullptr;
    if (nic.ok()) {
      event.mutable_record()->CopyFrom((*nic)->ownership());
      for (const FakeArm& candidate : (*nic)->arms()) {
        if (candidate.node_id() == self) arm = &candidate;
      }
    }
    if (!nic.ok()) {
      event.set_message(std::string(nic.status().message()));
    } else if (arm == nullptr || arm->epoch() != doorbell.epoch()) {
      event.set_message(absl::StrCat("not armed for ", doorbell.bdf(), " at epoch ",
                                     doorbell.epoch()));
    } else if (!SameRecord((*nic)->ownership(), arm->handoff())) {
      event.set_message(absl::StrCat("the record is ", RecordString((*nic)->ownership()),
                                     ", not the armed ", RecordString(arm->handoff())));
    } else {
      FakeHook* hook = HookFor(*nic, self);
      // The kernel acts on its own, under the arm's epoch: only a newer
      // epoch on this node's hook stops it. It never lowers the hook's
      // fence (its daemon may have made a later call of the same epoch).
      const Fence armed{arm->epoch(), arm->op_id()};
      const Fence highest = HighestFence(*hook);
      const Fence fence = highest.epoch == armed.epoch && highest.op_id > armed.op_id
                              ? highest
                              : armed;
      const v1::OwnershipRecord desired = ActiveRecord(self, arm->epoch());
      if (hook->driver().empty()) {
        event.set_message(absl::StrCat("no driver bound on ", self));
      } else if (highest.epoch > armed.epoch) {
        event.set_message(absl::StrCat("the hook is at epoch ", highest.epoch, ", past the arm's ",
                                       armed.epoch));
      } else {
        const v1::OwnershipRecord handoff = arm->handoff();
        v1::OwnershipRecord after = SwapIfSame((*nic)->mutable_ownership(), handoff, desired);
        session_->Log(state, absl::StrCat("kernel-commit ", doorbell.bdf(), " epoch=",
                                          doorbell.epoch(), " ", RecordString(handoff), " -> ",
                                          RecordString(desired), " => ok"));
        std::vector<v1::QueueRingState> rings;
        if ((*nic)->handoff().epoch() == arm->epoch()) {
          rings.assign((*nic)->handoff().rings().begin(), (*nic)->handoff().rings().end());
        }
        // AttachFenced uses the arm up (`arm` points into it: read before).
        AttachFenced(*session_, state, FencedNic{*nic, hook}, fence, rings, "kernel-attach");
        event.set_committed(true);
        *event.mutable_record() = after;
      }
    }
    FakeKernel* kernel = KernelOf(state, self);
    if (!event.committed()) {
      kernel->set_ignored_doorbells(kernel->ignored_doorbells() + 1);
      session_->Log(state, absl::StrCat("kernel-commit ", doorbell.bdf(), " epoch=",
                                        doorbell.epoch(), " => ignored (", event.message(), ")"));
    }
    kernel->set_last_seq(kernel->last_seq() + 1);
    event.set_seq(kernel->last_seq());
    *kernel->add_events() = std::move(event);
    if (kernel->events_size() > kKernelEventsKept) {
      kernel->mutable_events()->DeleteSubrange(0, kernel->events_size() - kKernelEventsKept);
    }
  }

  std::shared_ptr<NodeSession> session_;
};

}  // namespace

absl::StatusOr<Platform> MakeFakePlatform(const std::string& state_path, const std::string& node_id) {
  absl::StatusOr<FakeMachineState> state = MachineFile(state_path).Read();
  if (!state.ok()) return state.status();
  absl::StatusOr<const FakeNode*> node = FindNode(*state, node_id);
  if (!node.ok()) return node.status();
  auto session = std::make_shared<NodeSession>(state_path, node_id);
  Platform platform;
  platform.name = "fake";
  platform.inventory = std::make_unique<FakeInventory>(session);
  platform.hook = std::make_unique<FakeHookImpl>(session);
  platform.router = std::make_unique<FakeRouter>(session);
  platform.arbiter = std::make_unique<FakeArbiter>(session);
  platform.fast_path = std::make_unique<FakeFastPath>(session);
  return platform;
}

}  // namespace fake
}  // namespace platform
}  // namespace nichandover
