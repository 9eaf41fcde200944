#include "daemon/platform/fake/fake_platform.h"

#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/platform/fake/machine_file.h"
#include "daemon/platform/fake/machine_model.h"
#include "daemon/platform/fake/memory_machine.h"

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

// The node's view through the one in-memory platform, on the state the
// file holds during one update.
MemoryMachine On(FakeMachineState* state, const NodeSession& session) {
  return MemoryMachine(state, session.node_id());
}

// Runs `call` (a MemoryMachine call answering T) as `operation` and keeps its
// answer in *out.
template <typename T>
absl::Status RunInto(NodeSession& session, FakeOperation operation, T* out,
                     const std::function<absl::StatusOr<T>(MemoryMachine&)>& call) {
  return session.Run(operation, [&](FakeMachineState* state) -> absl::Status {
    MemoryMachine machine = On(state, session);
    absl::StatusOr<T> answer = call(machine);
    if (!answer.ok()) return answer.status();
    *out = *std::move(answer);
    return absl::OkStatus();
  });
}

template <typename T>
absl::StatusOr<T> Answer(absl::Status status, T value) {
  if (!status.ok()) return status;
  return value;
}

class FakeInventory : public Inventory {
 public:
  explicit FakeInventory(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::StatusOr<std::vector<NicInfo>> ListNics() override {
    std::vector<NicInfo> nics;
    absl::Status status = RunInto<std::vector<NicInfo>>(
        *session_, FAKE_OP_LIST_NICS, &nics,
        [](MemoryMachine& machine) -> absl::StatusOr<std::vector<NicInfo>> {
          return machine.ListNics();
        });
    return Answer(status, std::move(nics));
  }

  absl::StatusOr<NicInfo> GetNic(const std::string& bdf) override {
    NicInfo info;
    absl::Status status = RunInto<NicInfo>(*session_, FAKE_OP_GET_NIC, &info,
                                           [&](MemoryMachine& m) { return m.GetNic(bdf); });
    return Answer(status, std::move(info));
  }

 private:
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
          absl::StatusOr<QuiesceResult> done =
              On(state, *session_).Quiesce(bdf, fence, drain_timed_out, timeout);
          if (!done.ok()) return done.status();
          result = *std::move(done);
          return absl::OkStatus();
        },
        timeout);
    return Answer(status, std::move(result));
  }

  absl::Status Resume(const std::string& bdf, const Fence& fence) override {
    return session_->Run(FAKE_OP_RESUME, [&](FakeMachineState* state) {
      return On(state, *session_).Resume(bdf, fence);
    });
  }

  absl::Status Attach(const std::string& bdf, const Fence& fence,
                      const std::vector<v1::QueueRingState>& rings) override {
    return session_->Run(FAKE_OP_ATTACH, [&](FakeMachineState* state) {
      return On(state, *session_).Attach(bdf, fence, rings);
    });
  }

  absl::Status Release(const std::string& bdf, const Fence& fence) override {
    return session_->Run(FAKE_OP_RELEASE, [&](FakeMachineState* state) {
      return On(state, *session_).Release(bdf, fence);
    });
  }

  absl::StatusOr<HookStatus> Status(const std::string& bdf) override {
    HookStatus result;
    absl::Status status = RunInto<HookStatus>(*session_, FAKE_OP_HOOK_STATUS, &result,
                                              [&](MemoryMachine& m) { return m.Status(bdf); });
    return Answer(status, std::move(result));
  }

 private:
  std::shared_ptr<NodeSession> session_;
};

using Messages = std::vector<v1::MsiMessage>;

class FakeRouter : public Router {
 public:
  explicit FakeRouter(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::StatusOr<Messages> ReadMessages(const std::string& bdf) override {
    Messages messages;
    absl::Status status = RunInto<Messages>(*session_, FAKE_OP_READ_MESSAGES, &messages,
                                            [&](MemoryMachine& m) { return m.ReadMessages(bdf); });
    return Answer(status, std::move(messages));
  }

  absl::StatusOr<Messages> Reroute(const std::string& bdf, const Fence& fence,
                                   const Messages& target) override {
    Messages previous;
    absl::Status status =
        RunInto<Messages>(*session_, FAKE_OP_REROUTE, &previous,
                          [&](MemoryMachine& m) { return m.Reroute(bdf, fence, target); });
    return Answer(status, std::move(previous));
  }

  absl::Status Restore(const std::string& bdf, const Fence& fence,
                       const Messages& previous) override {
    return session_->Run(FAKE_OP_RESTORE, [&](FakeMachineState* state) {
      return On(state, *session_).Restore(bdf, fence, previous);
    });
  }

  absl::StatusOr<Messages> ReserveTargetMessages(const std::string& bdf, const Fence& fence,
                                                 uint32_t count) override {
    Messages reserved;
    absl::Status status = RunInto<Messages>(
        *session_, FAKE_OP_RESERVE, &reserved,
        [&](MemoryMachine& m) { return m.ReserveTargetMessages(bdf, fence, count); });
    return Answer(status, std::move(reserved));
  }

  absl::Status ReleaseReservation(const std::string& bdf, const Fence& fence) override {
    return session_->Run(FAKE_OP_RELEASE_RESERVATION, [&](FakeMachineState* state) {
      return On(state, *session_).ReleaseReservation(bdf, fence);
    });
  }

 private:
  std::shared_ptr<NodeSession> session_;
};

class FakeArbiter : public Arbiter {
 public:
  explicit FakeArbiter(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::StatusOr<v1::OwnershipRecord> Read(const std::string& bdf) override {
    v1::OwnershipRecord record;
    absl::Status status = RunInto<v1::OwnershipRecord>(
        *session_, FAKE_OP_READ_RECORD, &record, [&](MemoryMachine& m) { return m.ReadRecord(bdf); });
    return Answer(status, std::move(record));
  }

  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired) override {
    v1::OwnershipRecord after;
    absl::Status status = RunInto<v1::OwnershipRecord>(
        *session_, FAKE_OP_COMPARE_AND_SWAP, &after,
        [&](MemoryMachine& m) { return m.CompareAndSwap(bdf, expected, desired); });
    return Answer(status, std::move(after));
  }

  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings) override {
    return session_->Run(FAKE_OP_WRITE_HANDOFF_RINGS, [&](FakeMachineState* state) {
      return On(state, *session_).WriteHandoffRings(bdf, fence, rings);
    });
  }

  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch) override {
    std::vector<v1::QueueRingState> rings;
    absl::Status status = RunInto<std::vector<v1::QueueRingState>>(
        *session_, FAKE_OP_READ_HANDOFF_RINGS, &rings,
        [&](MemoryMachine& m) { return m.ReadHandoffRings(bdf, epoch); });
    return Answer(status, std::move(rings));
  }

 private:
  std::shared_ptr<NodeSession> session_;
};

// The kernel commit path of one node (MemoryMachine's semantics). The source
// side (HandOff) is one atomic update of the machine. The target side is the
// node's kernel emulated in its daemon's process: WaitEvents takes the
// doorbells rung for this node and lets the node's kernel act on each, in
// one update of the machine. It waits for doorbells on the machine file with
// inotify, not by polling. Unlike a real kernel, this one commits only while
// its daemon waits for events: a dead target daemon leaves the doorbell rung
// until the daemon restarts (then its recovery, or this kernel, finishes the
// handover).
class FakeFastPath : public FastPath {
 public:
  explicit FakeFastPath(std::shared_ptr<NodeSession> session) : session_(std::move(session)) {}

  absl::Status Arm(const std::string& bdf, const Fence& fence,
                   const v1::OwnershipRecord& handoff) override {
    return session_->Run(FAKE_OP_ARM, [&](FakeMachineState* state) {
      return On(state, *session_).Arm(bdf, fence, handoff);
    });
  }

  absl::StatusOr<HandOffResult> HandOff(const HandOffRequest& request) override {
    HandOffResult result;
    absl::Status status = session_->Run(
        FAKE_OP_HANDOFF,
        [&](FakeMachineState* state, bool drain_timed_out) -> absl::Status {
          absl::StatusOr<HandOffResult> done =
              On(state, *session_).HandOff(request, drain_timed_out);
          if (!done.ok()) return done.status();
          result = *std::move(done);
          return absl::OkStatus();
        },
        request.drain_timeout);
    return Answer(status, std::move(result));
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
        MemoryMachine machine = On(state, *session_);
        machine.TakeDoorbells();
        out = machine.EventsAfter(after_seq);
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
