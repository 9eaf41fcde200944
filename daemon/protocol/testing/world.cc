#include "daemon/protocol/testing/world.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "daemon/platform/fake/machine_model.h"
#include "daemon/platform/fake/memory_machine.h"
#include "daemon/protocol/format.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {
namespace testing {

// World's side of a NIC: the spec and what the checks need. The NIC itself
// (record, rings beside it, vectors, hooks, reservations, arms) lives in
// World::machine_, changed only by the in-memory platform.
struct World::Nic {
  NicSpec spec;
  uint64_t generation = 0;  // bumps with the traffic before each quiesce
  // Where the rings stopped at the last quiesce of a running hook: an
  // attach must start from there.
  std::vector<v1::QueueRingState> stopped_rings;
};

namespace {

using platform::fake::FakeHook;
using platform::fake::FakeNic;
using platform::fake::MemoryMachine;

// The packets in flight a quiesce of a running NIC drains (World's traffic).
constexpr uint64_t kTxInFlight = 3;

bool SameRings(const std::vector<v1::QueueRingState>& a,
               const std::vector<v1::QueueRingState>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].SerializeAsString() != b[i].SerializeAsString()) return false;
  }
  return true;
}

struct Fault {
  FaultAction action = FaultAction::kFail;
  int skip = 0;
  int count = 0;
  absl::StatusCode code = absl::StatusCode::kUnavailable;
};

std::string RequestType(const PeerRequestBody& body) {
  if (std::holds_alternative<v1::OfferRequest>(body)) return "Offer";
  if (std::holds_alternative<v1::CommitRequest>(body)) return "Commit";
  if (std::holds_alternative<v1::AbortRequest>(body)) return "Abort";
  return "Query";
}

std::string ResponseType(const PeerResponseBody& body) {
  if (const auto* offer = std::get_if<v1::OfferResponse>(&body)) {
    return offer->accepted() ? "Accept" : "Refuse";
  }
  if (const auto* commit = std::get_if<v1::CommitResponse>(&body)) {
    return commit->committed() ? "Committed" : "NotCommitted";
  }
  if (std::holds_alternative<v1::AbortResponse>(body)) return "Aborted";
  return "QueryAnswer";
}

// Calls that carry a Fence to the platform (the engine stamps one on each).
bool Fenced(OpKind kind) {
  switch (kind) {
    case OpKind::kReadRecord:
    case OpKind::kCompareAndSwap:
    case OpKind::kReadMessages:
    case OpKind::kReadHandoffRings:
      return false;
    default:
      return true;
  }
}

// The machine's op ids change with every code change; traces leave them
// out. A fenced call shows the fence's operation id (`op=<incarnation>.
// <counter>`, the daemon's, as the platform sees it) after its epoch.
std::string OpText(const PlatformOp& op, const platform::Fence& fence) {
  std::string text = OpString(op);
  text = text.substr(text.find(' ', 3) + 1);
  if (!Fenced(op.kind)) return text;
  size_t epoch = text.find(" epoch=");
  if (epoch == std::string::npos) return text;
  size_t end = text.find(' ', epoch + 1);
  if (end == std::string::npos) end = text.size();
  text.insert(end, absl::StrCat(" op=", fence.op_id >> 32, ".", fence.op_id & 0xffffffffu));
  return text;
}

// OpResultString, and for a hand-off that failed part-way how far it got
// (docs/protocol.md, "Traces"): its stages up to `reached` took effect, the
// record only once its CAS won.
std::string ResultText(const PlatformOp& op, const OpResult& result) {
  std::string text = OpResultString(op.kind, result);
  const platform::HandOffResult& done = result.handoff;
  if (op.kind == OpKind::kHandOff && !result.status.ok() &&
      done.reached != platform::HandOffStage::kNothing) {
    absl::StrAppend(&text, " reached=", platform::HandOffStageName(done.reached), " record=",
                    done.reached >= platform::HandOffStage::kHandedOff ? RecordString(done.record)
                                                                       : "-");
  }
  return text;
}

template <typename T>
void Into(absl::StatusOr<T> answer, absl::Status* status, T* out) {
  if (answer.ok()) {
    *out = *std::move(answer);
  } else {
    *status = answer.status();
  }
}

std::string RequestHandoverId(const PeerRequestBody& body) {
  return std::visit([](auto&& r) { return r.handover_id(); }, body);
}

}  // namespace

std::string World::Message::type() const {
  return is_request ? RequestType(request) : ResponseType(response);
}

std::string World::Message::Describe() const {
  return absl::StrCat(from, " -> ", to, ": ",
                      is_request ? PeerRequestString(request) : PeerResponseString(response));
}

struct World::Node {
  std::string id;
  uint32_t apic = 0;
  std::unique_ptr<HandoverMachine> machine;
  uint64_t incarnation = 1;
  std::vector<JournalRecord> journal;  // durable: survives crashes
  std::deque<Event> inbox;
  bool pumping = false;
  std::map<uint64_t, absl::Duration> timers;  // armed, by id (arming order)
  // The daemon's operation counter (its fences are incarnation.counter).
  uint64_t op_counter = 0;
  std::map<OpKind, Fault> faults;
  std::set<std::string> crash_on_receive;
  struct HungCall {
    PlatformOp op;
    platform::Fence fence;    // stamped when the daemon made the call
    uint64_t incarnation = 0;  // of the daemon that made it
  };
  std::vector<HungCall> hung;
  std::map<std::string, v1::HandoverPhase> shown_phase;
  // Calls this node received and has not answered: token -> message.
  std::map<uint64_t, Message> open_calls;
  std::vector<OpDoneEvent> held;  // results not yet given to the daemon
  bool kernel_commit = false;     // MachineConfig::kernel_commit from the next start
  // World's faults on the kernel commit path (the arms live in machine_):
  // a HandOff stop knob, KernelEvents to lose.
  struct HandOffStop {
    platform::HandOffStage after = platform::HandOffStage::kNothing;
    absl::StatusCode code = absl::StatusCode::kDeadlineExceeded;
  };
  std::optional<HandOffStop> handoff_stop;
  int lose_kernel_events = 0;
};

World::World(TraceFn trace, Timeouts timeouts) : trace_(std::move(trace)), timeouts_(timeouts) {}
World::~World() = default;

World::Node& World::node(const std::string& id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    Violation("script names unknown node " + id);
    static Node dummy;
    return dummy;
  }
  return *it->second;
}

const World::Node& World::node(const std::string& id) const { return *nodes_.at(id); }

void World::AddNode(const std::string& id, uint32_t free_vectors) {
  auto n = std::make_unique<Node>();
  n->id = id;
  n->apic = static_cast<uint32_t>(node_order_.size());
  platform::fake::FakeNode* machine_node = machine_.add_nodes();
  machine_node->set_node_id(id);
  machine_node->add_cpus()->set_apic_id(n->apic);
  // `free_vectors` vectors from 0x40 (0x40..0x3f: none).
  machine_node->set_first_vector(0x40);
  machine_node->set_last_vector(0x40 + free_vectors - 1);
  node_order_.push_back(id);
  nodes_[id] = std::move(n);
}

void World::SetKernelCommit(const std::string& id, bool on) { node(id).kernel_commit = on; }

void World::AddNic(const NicSpec& spec) {
  auto nic = std::make_unique<Nic>();
  nic->spec = spec;
  Node& owner = node(spec.owner);
  FakeNic* model = machine_.add_nics();
  model->set_bdf(spec.bdf);
  model->set_vendor_id(0x8086);
  model->set_device_id(0x10d3);
  model->set_queue_count(spec.queues);
  model->set_mode(v1::INTERRUPT_MODE_MSIX);
  for (uint32_t v = 0; v < spec.vectors; ++v) {
    *model->add_vectors()->mutable_message() = platform::fake::EncodeMsi(owner.apic, 0x30 + v);
  }
  for (const v1::QueueRingState& ring : RingsOf(*nic)) *model->add_rings() = ring;
  *model->mutable_ownership() = ActiveRecord(spec.owner, 1);
  for (const std::string& id : node_order_) {
    FakeHook* hook = model->add_hooks();
    hook->set_node_id(id);
    if (spec.no_driver.count(id) == 0) hook->set_driver(spec.driver);
    if (id == spec.owner) {
      hook->set_state(platform::fake::FAKE_HOOK_RUNNING);
      hook->set_epoch(1);
    }
  }
  last_record_epoch_[spec.bdf] = 1;
  nics_[spec.bdf] = std::move(nic);
}

void World::StartAll() {
  for (const std::string& id : node_order_) Restart(id);
}

std::vector<std::string> World::nodes() const { return node_order_; }

std::vector<std::string> World::nics() const {
  std::vector<std::string> out;
  for (const auto& [bdf, nic] : nics_) out.push_back(bdf);
  return out;
}

bool World::IsUp(const std::string& id) const { return node(id).machine != nullptr; }

bool World::HasLiveHandovers() const {
  for (const auto& [id, n] : nodes_) {
    if (n->machine && !n->machine->LiveHandovers().empty()) return true;
  }
  return false;
}

bool World::NicIdle(const std::string& bdf) const {
  for (const auto& [id, n] : nodes_) {
    if (!n->machine) continue;
    for (const v1::Handover& h : n->machine->LiveHandovers()) {
      if (h.bdf() == bdf) return false;
    }
  }
  return true;
}

std::string World::RecordOwner(const std::string& bdf) const {
  return RecordOf(bdf).owner_node();
}

platform::fake::FakeNic& World::ModelNic(const std::string& bdf) {
  return **platform::fake::FindNic(&machine_, bdf);
}

const v1::OwnershipRecord& World::RecordOf(const std::string& bdf) const {
  return (*platform::fake::FindNic(machine_, bdf))->ownership();
}

platform::HookState World::HookStateOf(const std::string& node, const std::string& bdf) {
  return MemoryMachine(&machine_, node).Status(bdf)->state;
}

std::vector<v1::MsiMessage> World::RoutingOf(const std::string& bdf) {
  return *MemoryMachine(&machine_, "").ReadMessages(bdf);
}

std::string World::NodeOfApic(uint32_t apic) const {
  for (const auto& [id, n] : nodes_) {
    if (n->apic == apic) return id;
  }
  return absl::StrCat("apic", apic);
}

std::vector<v1::QueueRingState> World::RingsOf(const Nic& nic) const {
  std::vector<v1::QueueRingState> rings;
  for (uint32_t q = 0; q < nic.spec.queues; ++q) {
    v1::QueueRingState r;
    r.set_queue(q);
    uint32_t base = static_cast<uint32_t>(nic.generation * 10 + q);
    r.set_rx_next_to_clean(base);
    r.set_rx_next_to_use(base + 4);
    r.set_tx_next_to_clean(base + 1);
    r.set_tx_next_to_use(base + 1);
    rings.push_back(r);
  }
  return rings;
}

void World::Violation(const std::string& what) {
  if (std::find(violations_.begin(), violations_.end(), what) != violations_.end()) return;
  violations_.push_back(what);
  trace_("VIOLATION: " + what);
}

// ------------------------------------------------------------------ nodes

void World::Feed(Node& n, Event event) {
  if (!n.machine) return;
  n.inbox.push_back(std::move(event));
  Pump(n);
}

void World::Pump(Node& n) {
  if (n.pumping) return;
  n.pumping = true;
  while (n.machine && !n.inbox.empty()) {
    Event event = std::move(n.inbox.front());
    n.inbox.pop_front();
    n.machine->Step(std::move(event));
    HandleReady(n, n.machine->TakeReady());
    CheckInvariants();
  }
  n.pumping = false;
}

void World::CheckPersisted(Node& n, const std::string& what, const std::string& handover_id,
                           JournalRecord::Kind kind) {
  for (const JournalRecord& record : n.journal) {
    absl::StatusOr<UnpackedRecord> unpacked = UnpackJournalRecord(record);
    if (unpacked.ok() && unpacked->kind == kind && unpacked->handover.handover_id() == handover_id) {
      return;
    }
  }
  Violation(absl::StrCat(n.id, " did ", what, " for ", handover_id, " before persisting ",
                         JournalRecord::Kind_Name(kind)));
}

void World::HandleReady(Node& n, Ready ready) {
  // The persistence rule: records first, synced, then the actions.
  for (const JournalRecord& record : ready.records) {
    n.journal.push_back(record);
    trace_(absl::StrCat(n.id, ": persist ", JournalRecordString(record)));
  }
  for (const v1::Handover& h : ready.updates) {
    auto& shown = n.shown_phase[h.handover_id()];
    if (shown == h.phase()) continue;
    shown = h.phase();
    std::string detail = h.phases_size() > 0 ? h.phases(h.phases_size() - 1).detail() : "";
    trace_(absl::StrCat(n.id, ": ", h.handover_id(), " ", PhaseString(h.phase()),
                        detail.empty() ? "" : " (" + detail + ")"));
  }
  for (uint64_t timer : ready.cancel_timers) n.timers.erase(timer);
  for (const TimerArm& timer : ready.timers) n.timers[timer.timer_id] = timer.after;
  uint64_t incarnation = n.incarnation;
  for (const PlatformOp& op : ready.ops) {
    if (op.kind == OpKind::kCompareAndSwap &&
        op.desired.state() == v1::OWNERSHIP_STATE_PREPARING) {
      bool found = false;
      for (const JournalRecord& record : n.journal) {
        absl::StatusOr<UnpackedRecord> u = UnpackJournalRecord(record);
        found |= u.ok() && u->kind == JournalRecord::SOURCE_STARTED &&
                 u->handover.bdf() == op.bdf && u->handover.to_epoch() == op.desired.epoch();
      }
      if (!found) Violation(n.id + " moved the record to PREPARING before persisting its start");
    }
    if (op.kind == OpKind::kReserveMessages) {
      bool found = false;
      for (const JournalRecord& record : n.journal) {
        absl::StatusOr<UnpackedRecord> u = UnpackJournalRecord(record);
        found |= u.ok() && u->kind == JournalRecord::TARGET_RESERVED &&
                 u->handover.bdf() == op.bdf && u->handover.to_epoch() == op.epoch;
      }
      if (!found) Violation(n.id + " reserved vectors before persisting TARGET_RESERVED");
    }
    ExecuteOp(n, op);
    if (n.incarnation != incarnation) return;  // crashed: the rest is lost
  }
  for (const PeerSend& send : ready.sends) {
    Message m;
    m.id = next_message_++;
    m.from = n.id;
    m.to = send.to_node;
    m.is_request = true;
    m.call_id = send.call_id;
    m.caller_incarnation = n.incarnation;
    m.request = send.body;
    if (m.type() == "Offer") {
      CheckPersisted(n, "Offer", RequestHandoverId(m.request), JournalRecord::SOURCE_STARTED);
    }
    trace_(absl::StrCat(n.id, ": send ", m.type(), " ", RequestHandoverId(m.request), " to ", m.to));
    network_.push_back(std::move(m));
  }
  for (const PeerAnswer& answer : ready.peer_answers) {
    auto it = n.open_calls.find(answer.call_token);
    if (it == n.open_calls.end()) continue;
    Message request = std::move(it->second);
    n.open_calls.erase(it);
    Message m;
    m.id = next_message_++;
    m.from = n.id;
    m.to = request.from;
    m.is_request = false;
    m.call_id = request.call_id;
    m.caller_incarnation = request.caller_incarnation;
    m.response = answer.body;
    if (m.type() == "Accept") {
      CheckPersisted(n, "Accept", RequestHandoverId(request.request),
                     JournalRecord::TARGET_RESERVED);
    }
    network_.push_back(std::move(m));
  }
  for (const RecoverNicAnswer& answer : ready.recover_answers) {
    if (answer.response.ok()) {
      trace_(absl::StrCat(n.id, ": recover answer OK record ",
                          RecordString(answer.response->ownership()),
                          answer.response->has_handover()
                              ? " handover " + HandoverString(answer.response->handover())
                              : ""));
    } else {
      trace_(absl::StrCat(n.id, ": recover answer ",
                          absl::StatusCodeToString(answer.response.status().code()), " \"",
                          answer.response.status().message(), "\""));
    }
  }
  for (const MaintenanceAnswer& answer : ready.maintenance_answers) {
    if (answer.record.ok()) {
      trace_(absl::StrCat(n.id, ": maintenance answer OK record ", RecordString(*answer.record)));
    } else {
      trace_(absl::StrCat(n.id, ": maintenance answer ",
                          absl::StatusCodeToString(answer.record.status().code()), " \"",
                          answer.record.status().message(), "\""));
    }
  }
  for (const RequestAnswer& answer : ready.answers) {
    if (answer.handover.ok()) {
      trace_(absl::StrCat(n.id, ": answer OK ", HandoverString(*answer.handover)));
    } else {
      trace_(absl::StrCat(n.id, ": answer ", absl::StatusCodeToString(answer.handover.status().code()),
                          " \"", answer.handover.status().message(), "\""));
    }
  }
}

void World::ExecuteOp(Node& n, const PlatformOp& op) {
  Fault fault;
  if (auto it = n.faults.find(op.kind); it != n.faults.end() && it->second.count > 0) {
    if (it->second.skip > 0) {
      --it->second.skip;
    } else {
      fault = it->second;
      --it->second.count;
    }
  }
  // Stamped as the engine does, in the order the machine asked.
  const platform::Fence fence{op.epoch, (n.incarnation << 32) | ++n.op_counter};
  std::string line = absl::StrCat(n.id, ": ", OpText(op, fence), " => ");
  if (fault.count > 0) {
    switch (fault.action) {
      case FaultAction::kFail: {
        OpResult result;
        result.status = absl::Status(fault.code, "injected fault");
        trace_(line + OpResultString(op.kind, result));
        n.inbox.push_back(OpDoneEvent{op.op_id, result});
        return;
      }
      case FaultAction::kHang:
        trace_(line + "hangs");
        n.hung.push_back({op, fence, n.incarnation});
        return;
      case FaultAction::kCrashBefore:
        trace_(line + "not run: the daemon crashes first");
        Crash(n.id);
        return;
      case FaultAction::kCrashAfter: {
        OpResult result = Apply(n, op, fence);
        trace_(line + ResultText(op, result) + ", then the daemon crashes");
        CheckInvariants();
        Crash(n.id);
        return;
      }
      case FaultAction::kLoseAnswer: {
        OpResult result = Apply(n, op, fence);
        trace_(line + ResultText(op, result) + ", the answer is lost");
        return;
      }
    }
  }
  OpResult result = Apply(n, op, fence);
  trace_(line + ResultText(op, result));
  if (hold_results_) {
    n.held.push_back(OpDoneEvent{op.op_id, result});
  } else {
    n.inbox.push_back(OpDoneEvent{op.op_id, result});
  }
}

void World::HoldResults(bool hold) {
  hold_results_ = hold;
  if (hold) return;
  for (const std::string& id : node_order_) {
    Node& n = *nodes_[id];
    std::vector<OpDoneEvent> held = std::move(n.held);
    n.held.clear();
    for (OpDoneEvent& e : held) Feed(n, std::move(e));
  }
}

size_t World::HeldResults() const {
  size_t count = 0;
  for (const auto& [id, n] : nodes_) count += n->held.size();
  return count;
}

void World::CompleteAt(size_t index) {
  size_t total = HeldResults();
  if (total == 0) return;
  index %= total;
  for (const std::string& id : node_order_) {
    Node& n = *nodes_[id];
    if (index >= n.held.size()) {
      index -= n.held.size();
      continue;
    }
    OpDoneEvent e = std::move(n.held[index]);
    n.held.erase(n.held.begin() + static_cast<long>(index));
    return Feed(n, std::move(e));
  }
}

// The platform: every call goes through the one in-memory platform
// (daemon/platform/fake/memory_machine.h) on machine_, as node n, with the
// fence the daemon stamped. Around it World adds the traffic a quiesce
// drains and its checks (attach from where the source stopped).
OpResult World::Apply(Node& n, const PlatformOp& op, const platform::Fence& fence) {
  OpResult r;
  MemoryMachine machine(&machine_, n.id);
  auto nic_it = nics_.find(op.bdf);
  Nic* nic = nic_it == nics_.end() ? nullptr : nic_it->second.get();
  const bool was_running =
      nic != nullptr && HookStateOf(n.id, op.bdf) == platform::HookState::kRunning;
  if (was_running && (op.kind == OpKind::kQuiesce || op.kind == OpKind::kHandOff)) {
    // Traffic since the last quiesce: the rings moved, packets in flight.
    ++nic->generation;
    FakeNic& model = ModelNic(op.bdf);
    model.clear_rings();
    for (const v1::QueueRingState& ring : RingsOf(*nic)) *model.add_rings() = ring;
    model.set_tx_in_flight(kTxInFlight);
  }
  switch (op.kind) {
    case OpKind::kReadRecord:
      Into(machine.ReadRecord(op.bdf), &r.status, &r.record);
      break;
    case OpKind::kCompareAndSwap:
      Into(machine.CompareAndSwap(op.bdf, op.expected, op.desired), &r.status, &r.record);
      break;
    case OpKind::kWriteHandoffRings:
      r.status = machine.WriteHandoffRings(op.bdf, fence, op.rings);
      break;
    case OpKind::kReadHandoffRings:
      Into(machine.ReadHandoffRings(op.bdf, op.epoch), &r.status, &r.rings);
      break;
    case OpKind::kQuiesce:
      Into(machine.Quiesce(op.bdf, fence, /*drain_timed_out=*/false, op.timeout), &r.status,
           &r.quiesce);
      break;
    case OpKind::kResume:
      r.status = machine.Resume(op.bdf, fence);
      break;
    case OpKind::kAttach:
      r.status = machine.Attach(op.bdf, fence, op.rings);
      if (r.status.ok() && nic != nullptr && !SameRings(op.rings, nic->stopped_rings)) {
        Violation(n.id + " attached " + op.bdf +
                  " from rings that are not where the source stopped");
      }
      break;
    case OpKind::kRelease:
      r.status = machine.Release(op.bdf, fence);
      break;
    case OpKind::kReadMessages:
      Into(machine.ReadMessages(op.bdf), &r.status, &r.messages);
      break;
    case OpKind::kReroute:
      Into(machine.Reroute(op.bdf, fence, op.messages), &r.status, &r.messages);
      break;
    case OpKind::kRestore:
      r.status = machine.Restore(op.bdf, fence, op.messages);
      break;
    case OpKind::kReserveMessages:
      Into(machine.ReserveTargetMessages(op.bdf, fence, op.count), &r.status, &r.messages);
      break;
    case OpKind::kReleaseReservation:
      r.status = machine.ReleaseReservation(op.bdf, fence);
      break;
    case OpKind::kArm:
      r.status = machine.Arm(op.bdf, fence, op.desired);
      break;
    case OpKind::kHandOff:
      ApplyHandOff(n, op, fence, r);
      break;
  }
  if (was_running && HookStateOf(n.id, op.bdf) == platform::HookState::kQuiesced) {
    const FakeNic& model = ModelNic(op.bdf);
    nic->stopped_rings.assign(model.rings().begin(), model.rings().end());
  }
  return r;
}

// The source kernel's one call; a stop knob ends it after a stage with an
// error, leaving the stages before in place (as a real kernel that fails
// mid-way would: the caller reads the record and decides). The doorbell it
// rings waits in World (doorbells_) until a test delivers or loses it.
void World::ApplyHandOff(Node& n, const PlatformOp& op, const platform::Fence& fence,
                         OpResult& r) {
  std::optional<Node::HandOffStop> stop = n.handoff_stop;
  n.handoff_stop.reset();
  auto stop_after = [&](const platform::HandOffResult& so_far) {
    if (!stop || stop->after != so_far.reached) return absl::OkStatus();
    r.handoff = so_far;  // what the call did before it failed
    return absl::Status(stop->code, absl::StrCat("injected fault after ",
                                                 platform::HandOffStageName(so_far.reached)));
  };
  absl::StatusOr<platform::HandOffResult> done =
      MemoryMachine(&machine_, n.id)
          .HandOff(HandOffRequestOf(op, fence), /*drain_timed_out=*/false, stop_after);
  if (done.ok()) {
    r.handoff = *std::move(done);
  } else {
    r.status = done.status();
  }
  for (platform::fake::FakeKernel& kernel : *machine_.mutable_kernels()) {
    for (const platform::fake::FakeDoorbell& rung : kernel.doorbells()) {
      doorbells_.push_back({n.id, kernel.node_id(), rung.bdf(), rung.epoch()});
    }
    kernel.clear_doorbells();
  }
}

void World::StopHandOffAfter(const std::string& id, platform::HandOffStage stage,
                             absl::StatusCode code) {
  node(id).handoff_stop = Node::HandOffStop{stage, code};
}

void World::LoseKernelEvents(const std::string& id, int count) {
  node(id).lose_kernel_events = count;
}

// The target kernel woken by a doorbell: the in-memory platform's kernel
// commits and attaches alone when armed for exactly this NIC and epoch and
// the record is exactly the armed HANDOFF.
void World::RingKernel(const Doorbell& d, bool lost) {
  trace_(absl::StrCat(d.from, ": doorbell ", d.bdf, " epoch=", d.epoch, " -> ", d.to,
                      lost ? " lost" : ""));
  if (lost) return;
  auto nic_it = nics_.find(d.bdf);
  if (nic_it == nics_.end() || nodes_.count(d.to) == 0) return;
  Nic& nic = *nic_it->second;
  Node& t = node(d.to);
  const v1::OwnershipRecord handoff = HandoffRecord(d.from, d.to, d.epoch);
  const v1::OwnershipRecord active = ActiveRecord(d.to, d.epoch);
  std::string line = absl::StrCat(t.id, ": kernel-commit ", d.bdf, " epoch=", d.epoch, " ",
                                  RecordString(handoff), " -> ", RecordString(active), " => ");
  platform::fake::RingDoorbell(&machine_, d.to, d.bdf, d.epoch);
  for (const platform::KernelEvent& event : MemoryMachine(&machine_, d.to).TakeDoorbells()) {
    if (event.kind == platform::KernelEvent::Kind::kCommitted) {
      const FakeNic& model = ModelNic(d.bdf);
      if (model.handoff().epoch() != d.epoch) {
        Violation(t.id + "'s kernel committed " + d.bdf + " with no handoff rings at its epoch");
      } else if (!SameRings({model.handoff().rings().begin(), model.handoff().rings().end()},
                            nic.stopped_rings)) {
        Violation(t.id + "'s kernel attached " + d.bdf +
                  " from rings that are not where the source stopped");
      }
      trace_(line + "ok");
    } else if (absl::StartsWith(event.message, "the record is ")) {
      trace_(line + "lost (" + RecordString(event.record) + ")");
    } else {
      trace_(line + "ignored (" + event.message + ")");
    }
    CheckInvariants();
    EmitKernelEvent(t, event);
  }
}

// A KernelEvent reaches the node's daemon (WaitEvents), unless it is down
// or a knob loses it: a hint either way, the machine reads the record.
void World::EmitKernelEvent(Node& n, const platform::KernelEvent& event) {
  const bool lost = !n.machine || n.lose_kernel_events > 0;
  if (n.machine && n.lose_kernel_events > 0) --n.lose_kernel_events;
  trace_(absl::StrCat(n.id, ": kernel-event ",
                      event.kind == platform::KernelEvent::Kind::kCommitted ? "committed"
                                                                            : "not-committed",
                      " ", event.bdf, " epoch=", event.epoch, lost ? " lost" : ""));
  if (!lost) Feed(n, KernelEventEvent{event});
}

std::vector<World::Doorbell> World::TakeDoorbells(const std::string& to, int limit) {
  std::vector<Doorbell> picked;
  for (auto it = doorbells_.begin(); it != doorbells_.end();) {
    if ((to.empty() || it->to == to) && (limit < 0 || static_cast<int>(picked.size()) < limit)) {
      picked.push_back(*it);
      it = doorbells_.erase(it);
    } else {
      ++it;
    }
  }
  return picked;
}

int World::DeliverDoorbells(const std::string& to, int limit) {
  std::vector<Doorbell> picked = TakeDoorbells(to, limit);
  for (const Doorbell& d : picked) RingKernel(d, /*lost=*/false);
  return static_cast<int>(picked.size());
}

int World::LoseDoorbells(const std::string& to, int limit) {
  std::vector<Doorbell> picked = TakeDoorbells(to, limit);
  for (const Doorbell& d : picked) RingKernel(d, /*lost=*/true);
  return static_cast<int>(picked.size());
}

void World::RingDoorbell(const std::string& from, const std::string& to, const std::string& bdf,
                         uint64_t epoch) {
  RingKernel({from, to, bdf, epoch}, /*lost=*/false);
}

void World::DeliverDoorbellAt(size_t index) {
  if (doorbells_.empty()) return;
  auto it = doorbells_.begin() + static_cast<long>(index % doorbells_.size());
  Doorbell d = *it;
  doorbells_.erase(it);
  RingKernel(d, /*lost=*/false);
}

void World::LoseDoorbellAt(size_t index) {
  if (doorbells_.empty()) return;
  auto it = doorbells_.begin() + static_cast<long>(index % doorbells_.size());
  Doorbell d = *it;
  doorbells_.erase(it);
  RingKernel(d, /*lost=*/true);
}

void World::CompactJournal(const std::string& id) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  size_t before = n.journal.size();
  n.journal = n.machine->CompactedJournal();
  trace_(absl::StrCat(id, ": journal compacted from ", before, " to ", n.journal.size(),
                      " records"));
}

void World::LoseJournal(const std::string& id) {
  Node& n = node(id);
  trace_(absl::StrCat(id, ": journal lost (", n.journal.size(), " records)"));
  n.journal.clear();
}

void World::Crash(const std::string& id) {
  Node& n = node(id);
  if (!n.machine) return;
  trace_(id + ": CRASH");
  n.machine.reset();
  n.inbox.clear();
  n.held.clear();
  n.timers.clear();
  n.shown_phase.clear();
  ++n.incarnation;
  n.op_counter = 0;
  // Callers of calls it had not answered see the connection break.
  std::map<uint64_t, Message> open = std::move(n.open_calls);
  n.open_calls.clear();
  for (auto& [token, message] : open) FailCall(message, absl::UnavailableError("connection reset"));
}

void World::Restart(const std::string& id) {
  Node& n = node(id);
  if (n.machine) return;
  MachineConfig config;
  config.node_id = id;
  config.timeouts = timeouts_;
  config.history_per_nic = history_per_nic_;
  config.kernel_commit = n.kernel_commit;
  for (const std::string& other : node_order_) {
    if (other != id) config.peers.push_back(other);
  }
  RecoverEvent recover;
  recover.journal = n.journal;
  for (const auto& [bdf, nic] : nics_) {
    config.nics.push_back(NicInfoOf(id, *nic));
    recover.records[bdf] = RecordOf(bdf);
    recover.hooks[bdf] = *MemoryMachine(&machine_, id).Status(bdf);
  }
  n.machine = std::make_unique<HandoverMachine>(config);
  if (n.incarnation > 1) {
    trace_(absl::StrCat(id, ": RESTART (journal: ", n.journal.size(), " records)"));
  }
  Feed(n, recover);
}

platform::NicInfo World::NicInfoOf(const std::string& node, const Nic& nic) const {
  platform::NicInfo info;
  info.bdf = nic.spec.bdf;
  info.vendor_id = 0x8086;
  info.device_id = 0x10d3;
  info.driver = nic.spec.no_driver.count(node) ? "" : nic.spec.driver;
  info.queue_count = nic.spec.queues;
  info.interrupts.set_mode(v1::INTERRUPT_MODE_MSIX);
  info.interrupts.set_vectors_enabled(nic.spec.vectors);
  return info;
}

void World::ChangeInventory(const std::string& id, const std::string& bdf, uint32_t vectors,
                            int hotplugged) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  InventoryEvent e;
  if (!bdf.empty()) {
    platform::NicInfo info = NicInfoOf(id, *nics_.at(bdf));
    info.interrupts.set_vectors_enabled(vectors);
    e.nics.push_back(info);
  }
  for (int i = 0; i < hotplugged; ++i) {
    platform::NicInfo info;
    info.bdf = absl::StrFormat("0000:%02x:%02x.0", 0x80 + i / 32, i % 32);
    info.driver = "e1000e";
    info.interrupts.set_mode(v1::INTERRUPT_MODE_MSIX);
    info.interrupts.set_vectors_enabled(2);
    e.nics.push_back(info);
  }
  trace_(absl::StrCat(id, ": inventory ", e.nics.size(), " NICs"));
  Feed(n, e);
}

// ------------------------------------------------------------------ requests

void World::Create(const std::string& id, const std::string& handover_id,
                   const std::string& request_id, const std::string& nic, const std::string& to,
                   v1::CommitPath commit_path) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  CreateHandoverEvent e;
  e.request_token = next_token_++;
  e.handover_id = handover_id;
  e.request_id = request_id;
  e.nic = nic;
  e.target_node = to;
  e.commit_path = commit_path;
  Feed(n, e);
}

void World::Cancel(const std::string& id, const std::string& handover_id) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  CancelHandoverEvent e;
  e.request_token = next_token_++;
  e.handover_id = handover_id;
  e.reason = "test";
  Feed(n, e);
}

void World::RecoverNic(const std::string& id, const std::string& request_id,
                       const std::string& nic, v1::RecoveryDecision decision) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  RecoverNicEvent e;
  e.request_token = next_token_++;
  e.request_id = request_id;
  e.nic = nic;
  e.decision = decision;
  Feed(n, e);
}

void World::QuiesceNic(const std::string& id, const std::string& nic, absl::Duration timeout) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  QuiesceNicEvent e;
  e.request_token = next_token_++;
  e.nic = nic;
  e.timeout = timeout;
  Feed(n, e);
}

void World::ResumeNic(const std::string& id, const std::string& nic) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  ResumeNicEvent e;
  e.request_token = next_token_++;
  e.nic = nic;
  Feed(n, e);
}

// ------------------------------------------------------------------ network

void World::FailCall(const Message& m, absl::Status status) {
  Node& caller = node(m.caller());
  if (!caller.machine || caller.incarnation != m.caller_incarnation) return;
  PeerResponseEvent e;
  e.call_id = m.call_id;
  e.status = std::move(status);
  Feed(caller, e);
}

void World::DeliverMessage(Message m) {
  if (m.is_request) {
    Node& callee = node(m.to);
    if (!callee.machine) {
      trace_(m.Describe() + " (" + m.to + " is down: UNAVAILABLE)");
      return FailCall(m, absl::UnavailableError(m.to + " is down"));
    }
    if (callee.crash_on_receive.count(m.type())) {
      callee.crash_on_receive.erase(m.type());
      trace_(m.Describe() + " (" + m.to + " crashes on receipt)");
      Crash(m.to);
      return FailCall(m, absl::UnavailableError("connection reset"));
    }
    trace_(m.Describe());
    uint64_t token = next_token_++;
    PeerRequestEvent e;
    e.call_token = token;
    e.from_node = m.from;
    e.body = m.request;
    callee.open_calls[token] = std::move(m);
    return Feed(callee, e);
  }
  Node& caller = node(m.to);
  if (!caller.machine || caller.incarnation != m.caller_incarnation) {
    trace_(m.Describe() + " (caller gone)");
    return;
  }
  trace_(m.Describe());
  PeerResponseEvent e;
  e.call_id = m.call_id;
  e.body = m.response;
  Feed(caller, e);
}

namespace {
template <typename M>
bool Matches(const MessageFilter& f, const M& m) {
  return (f.from.empty() || f.from == m.from) && (f.to.empty() || f.to == m.to) &&
         (f.type.empty() || f.type == m.type());
}
}  // namespace

std::vector<World::Message> World::Take(const MessageFilter& filter) {
  std::vector<Message> picked;
  for (auto it = network_.begin(); it != network_.end();) {
    if (Matches(filter, *it) && (filter.limit < 0 || static_cast<int>(picked.size()) < filter.limit)) {
      picked.push_back(std::move(*it));
      it = network_.erase(it);
    } else {
      ++it;
    }
  }
  return picked;
}

int World::Deliver(const MessageFilter& filter) {
  std::vector<Message> picked = Take(filter);
  for (Message& m : picked) DeliverMessage(std::move(m));
  return static_cast<int>(picked.size());
}

int World::Drop(const MessageFilter& filter) {
  std::vector<Message> picked = Take(filter);
  for (Message& m : picked) {
    trace_("dropped " + m.Describe());
    FailCall(m, absl::DeadlineExceededError("no answer before the deadline"));
  }
  return static_cast<int>(picked.size());
}

int World::Duplicate(const MessageFilter& filter) {
  std::vector<Message> copies;
  for (const Message& m : network_) {
    if (Matches(filter, m) && (filter.limit < 0 || static_cast<int>(copies.size()) < filter.limit)) {
      copies.push_back(m);
    }
  }
  for (Message& m : copies) {
    trace_("duplicated " + m.Describe());
    m.id = next_message_++;
    network_.push_back(std::move(m));
  }
  return static_cast<int>(copies.size());
}

int World::Expire(const MessageFilter& filter) {
  int count = 0;
  std::vector<Message> expired;
  for (const Message& m : network_) {
    if (m.is_request && Matches(filter, m) && (filter.limit < 0 || count < filter.limit)) {
      expired.push_back(m);
      ++count;
    }
  }
  for (const Message& m : expired) {
    trace_("deadline passed for " + m.Describe() + " (still in flight)");
    FailCall(m, absl::DeadlineExceededError("no answer before the deadline"));
  }
  return count;
}

void World::Stabilize() {
  for (int round = 0; !network_.empty(); ++round) {
    if (round > 10000) return Violation("messages never stop flowing");
    Message m = std::move(network_.front());
    network_.pop_front();
    DeliverMessage(std::move(m));
  }
}

void World::DeliverAt(size_t index) {
  if (network_.empty()) return;
  auto it = network_.begin() + static_cast<long>(index % network_.size());
  Message m = std::move(*it);
  network_.erase(it);
  DeliverMessage(std::move(m));
}

void World::DropAt(size_t index) {
  if (network_.empty()) return;
  auto it = network_.begin() + static_cast<long>(index % network_.size());
  Message m = std::move(*it);
  network_.erase(it);
  trace_("dropped " + m.Describe());
  FailCall(m, absl::DeadlineExceededError("no answer before the deadline"));
}

void World::DuplicateAt(size_t index) {
  if (network_.empty()) return;
  Message m = network_[index % network_.size()];
  m.id = next_message_++;
  network_.push_back(std::move(m));
}

int World::FireTimers(const std::string& id, absl::Duration after) {
  Node& n = node(id);
  std::vector<uint64_t> due;
  for (const auto& [timer, duration] : n.timers) {
    if (after == absl::ZeroDuration() || duration == after) due.push_back(timer);
  }
  int fired = 0;
  for (uint64_t timer : due) {
    auto it = n.timers.find(timer);
    if (it == n.timers.end()) continue;  // cancelled by an earlier one
    trace_(absl::StrCat(id, ": timer ", absl::FormatDuration(it->second), " fired"));
    n.timers.erase(it);
    ++fired;
    Feed(n, TimerFiredEvent{timer});
  }
  return fired;
}

// ------------------------------------------------------------------ faults

void World::SetFault(const std::string& id, OpKind kind, FaultAction action, int count,
                     absl::StatusCode code, int skip) {
  node(id).faults[kind] = Fault{action, skip, count, code};
}

void World::CrashOnReceive(const std::string& id, const std::string& type) {
  node(id).crash_on_receive.insert(type);
}

void World::ClearFaults() {
  for (auto& [id, n] : nodes_) {
    n->faults.clear();
    n->crash_on_receive.clear();
  }
}

int World::ReleaseHung(const std::string& id) {
  Node& n = node(id);
  std::vector<Node::HungCall> hung = std::move(n.hung);
  n.hung.clear();
  for (auto& [op, fence, incarnation] : hung) {
    OpResult result = Apply(n, op, fence);
    bool same = n.machine && incarnation == n.incarnation;
    trace_(absl::StrCat(id, ": late ", OpText(op, fence), " => ", ResultText(op, result),
                        same ? "" : " (its daemon is gone)"));
    CheckInvariants();
    if (same) Feed(n, OpDoneEvent{op.op_id, result});
  }
  return static_cast<int>(hung.size());
}

// ------------------------------------------------------------------ checks

void World::CheckInvariants() {
  for (const auto& [bdf, nic] : nics_) {
    std::vector<std::string> running;
    for (const std::string& id : node_order_) {
      if (HookStateOf(id, bdf) == platform::HookState::kRunning) running.push_back(id);
    }
    if (running.size() > 1) {
      Violation(absl::StrCat(bdf, " runs on ", absl::StrJoin(running, " and ")));
    }
    const v1::OwnershipRecord& record = RecordOf(bdf);
    if (running.size() == 1) {
      for (const v1::MsiMessage& m : RoutingOf(bdf)) {
        if (NodeOfApic(platform::fake::MsiDestinationApic(m)) != running[0]) {
          Violation(absl::StrCat(bdf, " runs on ", running[0], " but an interrupt goes to ",
                                 NodeOfApic(platform::fake::MsiDestinationApic(m))));
          break;
        }
      }
    }
    uint64_t& last = last_record_epoch_[bdf];
    if (record.epoch() < last) {
      Violation(absl::StrCat(bdf, " record epoch went back from ", last, " to ", record.epoch()));
    }
    last = std::max(last, record.epoch());
  }
}

std::vector<std::string> World::CheckSettled() {
  std::vector<std::string> problems;
  for (const auto& [bdf, nic] : nics_) {
    const v1::OwnershipRecord record = RecordOf(bdf);
    if (record.state() != v1::OWNERSHIP_STATE_ACTIVE) {
      problems.push_back(absl::StrCat(bdf, " record stuck in ", RecordString(record)));
      continue;
    }
    for (const std::string& id : node_order_) {
      bool runs = HookStateOf(id, bdf) == platform::HookState::kRunning;
      if (id == record.owner_node() && !runs) {
        problems.push_back(absl::StrCat(bdf, " owner ", id, " does not run it"));
      }
      if (id != record.owner_node() && runs) {
        problems.push_back(absl::StrCat(bdf, " runs on ", id, " which is not the owner"));
      }
    }
    for (const v1::MsiMessage& m : RoutingOf(bdf)) {
      if (NodeOfApic(platform::fake::MsiDestinationApic(m)) != record.owner_node()) {
        problems.push_back(absl::StrCat(bdf, " interrupts go to ", NodeOfApic(platform::fake::MsiDestinationApic(m)),
                                        ", owner is ", record.owner_node()));
        break;
      }
    }
  }
  for (const std::string& id : node_order_) {
    const Node& n = *nodes_[id];
    if (!n.machine) {
      problems.push_back(id + " is down");
      continue;
    }
    for (const v1::Handover& h : n.machine->LiveHandovers()) {
      problems.push_back(absl::StrCat(id, " has a stuck handover: ", HandoverString(h)));
    }
  }
  return problems;
}

void World::PrintOwners() {
  for (const auto& [bdf, nic] : nics_) {
    std::set<std::string> routed;
    for (const v1::MsiMessage& m : RoutingOf(bdf)) routed.insert(NodeOfApic(platform::fake::MsiDestinationApic(m)));
    std::vector<std::string> hooks;
    for (const std::string& id : node_order_) {
      platform::HookStatus hook = *MemoryMachine(&machine_, id).Status(bdf);
      hooks.push_back(absl::StrCat(id, "=", platform::HookStateName(hook.state), "@", hook.epoch));
    }
    trace_(absl::StrCat(bdf, " record=", RecordString(RecordOf(bdf)), " irq->",
                        absl::StrJoin(routed, ","), " hooks: ", absl::StrJoin(hooks, " ")));
  }
}

void World::PrintHandovers(const std::string& id) {
  Node& n = node(id);
  if (!n.machine) return trace_(id + " is down");
  std::vector<v1::Handover> list = n.machine->ListHandovers("");
  if (list.empty()) trace_(id + ": no handovers");
  for (const v1::Handover& h : list) trace_(absl::StrCat(id, ": ", HandoverString(h)));
}

void World::PrintJournal(const std::string& id) {
  for (const JournalRecord& record : node(id).journal) {
    trace_(absl::StrCat(id, ": ", JournalRecordString(record)));
  }
}

}  // namespace testing
}  // namespace protocol
}  // namespace nichandover
