#include "daemon/platform/fake/fake_machine.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/platform/fake/machine_model.h"

namespace nichandover {
namespace platform {
namespace fake {
namespace {

constexpr uint32_t kMsixCapabilityOffset = 0x70;
constexpr uint32_t kMsiCapabilityOffset = 0x50;
constexpr uint32_t kMaxInFlight = 8;

const char* HookStateText(FakeHookState state) {
  switch (state) {
    case FAKE_HOOK_RUNNING:
      return "running";
    case FAKE_HOOK_QUIESCED:
      return "quiesced";
    default:
      return "detached";
  }
}

std::string RecordText(const v1::OwnershipRecord& record) {
  std::string text = absl::StrCat(v1::OwnershipState_Name(record.state()), " owner=", record.owner_node());
  if (!record.target_node().empty()) absl::StrAppend(&text, " target=", record.target_node());
  absl::StrAppend(&text, " epoch=", record.epoch());
  return text;
}

absl::Status BuildNic(const FakeMachineState& state, const FakeNicSpec& spec, FakeNic* nic) {
  if (spec.bdf().empty()) return absl::InvalidArgumentError("NIC spec without bdf");
  nic->set_bdf(spec.bdf());
  nic->set_vendor_id(spec.vendor_id() != 0 ? spec.vendor_id() : 0x8086);
  nic->set_device_id(spec.device_id() != 0 ? spec.device_id() : 0x10c9);
  nic->set_class_code(spec.class_code() != 0 ? spec.class_code() : 0x020000);
  nic->set_queue_count(spec.queue_count() != 0 ? spec.queue_count() : 1);
  nic->set_mode(spec.mode() != v1::INTERRUPT_MODE_UNSPECIFIED ? spec.mode()
                                                               : v1::INTERRUPT_MODE_MSIX);
  nic->set_capability_offset(nic->mode() == v1::INTERRUPT_MODE_MSIX ? kMsixCapabilityOffset
                                                                     : kMsiCapabilityOffset);
  nic->set_per_vector_masking(spec.per_vector_masking());
  nic->set_interrupt_remapping(spec.interrupt_remapping());
  for (uint32_t queue = 0; queue < nic->queue_count(); ++queue) nic->add_rings()->set_queue(queue);

  uint64_t epoch = spec.epoch() != 0 ? spec.epoch() : 1;
  absl::StatusOr<const FakeNode*> owner = FindNode(state, spec.owner_node());
  if (!owner.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("NIC ", spec.bdf(), ": owner_node \"", spec.owner_node(), "\" is not a node"));
  }
  if ((*owner)->cpus().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("node ", spec.owner_node(), " has no CPUs"));
  }
  uint32_t vectors = spec.vector_count() != 0 ? spec.vector_count() : 1;
  for (uint32_t i = 0; i < vectors; ++i) {
    const FakeNode& node = **owner;
    uint32_t apic = node.cpus(static_cast<int>(i % node.cpus_size())).apic_id();
    uint32_t vector = FirstVector(node) + static_cast<uint32_t>(state.nics_size()) * vectors + i;
    if (vector > LastVector(node)) {
      return absl::InvalidArgumentError(absl::StrCat("NIC ", spec.bdf(), ": node ", node.node_id(),
                                                     " has too few vectors for its NICs"));
    }
    *nic->add_vectors()->mutable_message() = EncodeMsi(apic, vector);
  }
  v1::OwnershipRecord* record = nic->mutable_ownership();
  record->set_state(v1::OWNERSHIP_STATE_ACTIVE);
  record->set_owner_node(spec.owner_node());
  record->set_epoch(epoch);

  for (const FakeNode& node : state.nodes()) {
    FakeHook* hook = nic->add_hooks();
    hook->set_node_id(node.node_id());
    auto driver = spec.drivers().find(node.node_id());
    hook->set_driver(driver != spec.drivers().end() ? driver->second : spec.default_driver());
    if (!hook->driver().empty()) hook->set_netdev(absl::StrCat("eth", state.nics_size()));
    if (node.node_id() == spec.owner_node()) {
      if (hook->driver().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("NIC ", spec.bdf(), ": owner ", node.node_id(), " has no driver"));
      }
      hook->set_state(FAKE_HOOK_RUNNING);
      hook->set_epoch(epoch);
    }
  }
  for (const auto& entry : spec.drivers()) {
    if (!FindNode(state, entry.first).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("NIC ", spec.bdf(), ": driver for unknown node \"", entry.first, "\""));
    }
  }
  return absl::OkStatus();
}

std::string InterruptNode(const FakeMachineState& state, const FakeNic& nic, const FakeVector& vector) {
  if (nic.interrupt_remapping()) return "?";
  return NodeOfApic(state, MsiDestinationApic(vector.message()));
}

}  // namespace

FakeMachineSpec SimpleMachineSpec(int nodes, int cpus_per_node, const std::vector<std::string>& bdfs,
                                  uint32_t vectors) {
  FakeMachineSpec spec;
  for (int n = 0; n < nodes; ++n) {
    FakeNode* node = spec.add_nodes();
    node->set_node_id(absl::StrCat("node", n));
    for (int c = 0; c < cpus_per_node; ++c) {
      v1::Cpu* cpu = node->add_cpus();
      cpu->set_cpu(c);
      cpu->set_apic_id(static_cast<uint32_t>(n * 16 + c));
    }
  }
  for (const std::string& bdf : bdfs) {
    FakeNicSpec* nic = spec.add_nics();
    nic->set_bdf(bdf);
    nic->set_queue_count(2);
    nic->set_mode(v1::INTERRUPT_MODE_MSIX);
    nic->set_vector_count(vectors);
    nic->set_owner_node("node0");
    nic->set_epoch(1);
    nic->set_default_driver("igb");
  }
  return spec;
}

absl::Status FakeMachine::Create(const FakeMachineSpec& spec) {
  FakeMachineState state;
  std::set<std::string> node_ids;
  std::set<uint32_t> apic_ids;
  for (const FakeNode& node : spec.nodes()) {
    if (node.node_id().empty()) return absl::InvalidArgumentError("node without node_id");
    if (!node_ids.insert(node.node_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("node ", node.node_id(), " listed twice"));
    }
    for (const v1::Cpu& cpu : node.cpus()) {
      if (!apic_ids.insert(cpu.apic_id()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("APIC ID ", cpu.apic_id(), " of node ", node.node_id(), " used twice"));
      }
    }
    if (FirstVector(node) < 0x20 || LastVector(node) > 0xff || FirstVector(node) > LastVector(node)) {
      return absl::InvalidArgumentError(
          absl::StrCat("node ", node.node_id(), ": vector range must lie within 0x20..0xff"));
    }
    *state.add_nodes() = node;
  }
  std::set<std::string> bdfs;
  for (const FakeNicSpec& nic_spec : spec.nics()) {
    if (!bdfs.insert(nic_spec.bdf()).second) {
      return absl::InvalidArgumentError(absl::StrCat("NIC ", nic_spec.bdf(), " listed twice"));
    }
    FakeNic nic;
    absl::Status status = BuildNic(state, nic_spec, &nic);
    if (!status.ok()) return status;
    *state.add_nics() = std::move(nic);
  }
  AppendHistory(&state, "machine created");
  return file_.Write(state);
}

absl::StatusOr<NicView> FakeMachine::Inspect(const std::string& bdf) const {
  absl::StatusOr<FakeMachineState> state = file_.Read();
  if (!state.ok()) return state.status();
  absl::StatusOr<const FakeNic*> nic = FindNic(*state, bdf);
  if (!nic.ok()) return nic.status();
  NicView view;
  view.bdf = bdf;
  view.ownership = (*nic)->ownership();
  for (const FakeHook& hook : (*nic)->hooks()) {
    NodeNicView node;
    node.node_id = hook.node_id();
    node.state = hook.state();
    node.hook_epoch = hook.epoch();
    node.driver = hook.driver();
    for (const FakeReservation& reservation : (*nic)->reservations()) {
      if (reservation.node_id() == hook.node_id()) node.reserved_vectors = reservation.messages_size();
    }
    if (hook.state() == FAKE_HOOK_RUNNING) view.running_nodes.push_back(hook.node_id());
    view.nodes.push_back(node);
  }
  for (const FakeVector& vector : (*nic)->vectors()) {
    view.interrupt_nodes.push_back(InterruptNode(*state, **nic, vector));
    view.masked.push_back(vector.masked());
  }
  view.rings.assign((*nic)->rings().begin(), (*nic)->rings().end());
  return view;
}

absl::Status FakeMachine::CheckSafe(const std::string& bdf) const {
  absl::StatusOr<NicView> view = Inspect(bdf);
  if (!view.ok()) return view.status();
  if (view->running_nodes.size() > 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        bdf, " runs on several nodes at once: ", absl::StrJoin(view->running_nodes, ", ")));
  }
  if (view->running_nodes.size() == 1) {
    const std::string& runner = view->running_nodes[0];
    for (size_t i = 0; i < view->interrupt_nodes.size(); ++i) {
      if (view->interrupt_nodes[i] != runner) {
        return absl::FailedPreconditionError(
            absl::StrCat(bdf, " runs on ", runner, " but vector ", i, " reaches \"",
                         view->interrupt_nodes[i], "\""));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status FakeMachine::CheckSettled(const std::string& bdf) const {
  absl::Status safe = CheckSafe(bdf);
  if (!safe.ok()) return safe;
  absl::StatusOr<NicView> view = Inspect(bdf);
  if (!view.ok()) return view.status();
  const v1::OwnershipRecord& record = view->ownership;
  if (record.state() != v1::OWNERSHIP_STATE_ACTIVE) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf, ": ownership record is not settled: ", RecordText(record)));
  }
  if (view->running_nodes.size() != 1 || view->running_nodes[0] != record.owner_node()) {
    return absl::FailedPreconditionError(
        absl::StrCat(bdf, ": record names ", record.owner_node(), " but running on [",
                     absl::StrJoin(view->running_nodes, ", "), "]"));
  }
  for (size_t i = 0; i < view->masked.size(); ++i) {
    if (view->masked[i]) {
      return absl::FailedPreconditionError(absl::StrCat(bdf, ": vector ", i, " is still masked"));
    }
  }
  // The owner's hook may lag the record (a rollback before the quiesce
  // fences late messages with a fresh record epoch without touching the
  // running hook), but never run ahead of it: that would mean a hook
  // operation carried an epoch no record ever granted.
  for (const NodeNicView& node : view->nodes) {
    if (node.node_id == record.owner_node() && node.hook_epoch > record.epoch()) {
      return absl::FailedPreconditionError(absl::StrCat(bdf, ": owner hook at epoch ",
                                                        node.hook_epoch, ", record at epoch ",
                                                        record.epoch()));
    }
  }
  return absl::OkStatus();
}

absl::Status FakeMachine::SetFault(const FakeFault& fault) {
  if (fault.operation() == FAKE_OP_UNSPECIFIED) {
    return absl::InvalidArgumentError("fault without an operation");
  }
  if (!fault.hang() && fault.fail_code() == 0) {
    return absl::InvalidArgumentError("fault that neither hangs nor fails");
  }
  if (fault.fail_code() < 0 || fault.fail_code() > 16) {
    return absl::InvalidArgumentError(absl::StrCat("fail_code ", fault.fail_code(), " is not a status code"));
  }
  return file_.Update([&](FakeMachineState* state) -> absl::Status {
    if (!fault.node_id().empty()) {
      absl::StatusOr<const FakeNode*> node = FindNode(*state, fault.node_id());
      if (!node.ok()) return node.status();
    }
    FakeFault* slot = nullptr;
    for (FakeFault& existing : *state->mutable_faults()) {
      if (existing.node_id() == fault.node_id() && existing.operation() == fault.operation()) {
        slot = &existing;
      }
    }
    if (slot == nullptr) slot = state->add_faults();
    *slot = fault;
    slot->set_hits(0);
    if (slot->fail_code() != 0 && !slot->fail_always() && slot->fail_times() == 0) {
      slot->set_fail_times(1);
    }
    return absl::OkStatus();
  });
}

absl::Status FakeMachine::ClearFaults(const std::string& node_id, FakeOperation operation) {
  return file_.Update([&](FakeMachineState* state) {
    auto* faults = state->mutable_faults();
    for (int i = faults->size() - 1; i >= 0; --i) {
      const FakeFault& fault = faults->Get(i);
      bool node_matches = node_id.empty() || fault.node_id() == node_id;
      bool operation_matches = operation == FAKE_OP_UNSPECIFIED || fault.operation() == operation;
      if (node_matches && operation_matches) faults->DeleteSubrange(i, 1);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<uint64_t> FakeMachine::FaultHits(const std::string& node_id,
                                                FakeOperation operation) const {
  absl::StatusOr<FakeMachineState> state = file_.Read();
  if (!state.ok()) return state.status();
  for (const FakeFault& fault : state->faults()) {
    if (fault.node_id() == node_id && fault.operation() == operation) return fault.hits();
  }
  return 0;
}

absl::Status FakeMachine::RunTraffic(const std::string& bdf, uint32_t packets) {
  return file_.Update([&](FakeMachineState* state) -> absl::Status {
    absl::StatusOr<FakeNic*> nic = FindNic(state, bdf);
    if (!nic.ok()) return nic.status();
    FakeHook* runner = nullptr;
    FakeHook* holder = nullptr;
    for (FakeHook& hook : *(*nic)->mutable_hooks()) {
      if (hook.state() == FAKE_HOOK_RUNNING) runner = &hook;
      if (hook.state() == FAKE_HOOK_QUIESCED) holder = &hook;
    }
    if (runner == nullptr && holder != nullptr) {
      holder->set_held_xmits(holder->held_xmits() + packets);
      return absl::OkStatus();
    }
    if (runner == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("no node runs ", bdf));
    }
    uint32_t in_flight = std::min(packets, kMaxInFlight);
    uint64_t tx_in_flight = 0;
    uint64_t rx_pending = 0;
    for (v1::QueueRingState& ring : *(*nic)->mutable_rings()) {
      ring.set_tx_next_to_use((ring.tx_next_to_use() + packets) % kRingSize);
      ring.set_rx_next_to_use((ring.rx_next_to_use() + packets) % kRingSize);
      ring.set_tx_next_to_clean((ring.tx_next_to_use() + kRingSize - in_flight) % kRingSize);
      ring.set_rx_next_to_clean((ring.rx_next_to_use() + kRingSize - in_flight) % kRingSize);
      tx_in_flight += in_flight;
      rx_pending += in_flight;
    }
    (*nic)->set_tx_in_flight(tx_in_flight);
    (*nic)->set_rx_pending(rx_pending);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> FakeMachine::Describe() const {
  absl::StatusOr<FakeMachineState> state = file_.Read();
  if (!state.ok()) return state.status();
  std::string out = absl::StrCat("fake machine ", path(), " (generation ", state->generation(), ")\n");
  for (const FakeNode& node : state->nodes()) {
    std::vector<std::string> cpus;
    for (const v1::Cpu& cpu : node.cpus()) cpus.push_back(absl::StrCat(cpu.cpu(), "=apic", cpu.apic_id()));
    absl::StrAppend(&out, "node ", node.node_id(), ": cpus ", absl::StrJoin(cpus, " "), ", vectors 0x",
                    absl::Hex(FirstVector(node)), "..0x", absl::Hex(LastVector(node)), "\n");
  }
  for (const FakeNic& nic : state->nics()) {
    absl::StrAppend(&out, "nic ", nic.bdf(), ": ", RecordText(nic.ownership()), "\n");
    for (const FakeHook& hook : nic.hooks()) {
      absl::StrAppend(&out, "  hook ", hook.node_id(), ": ", HookStateText(hook.state()), " epoch ",
                      hook.epoch(), " driver ", hook.driver().empty() ? "-" : hook.driver(),
                      " held_xmits ", hook.held_xmits(), "\n");
    }
    for (int i = 0; i < nic.vectors_size(); ++i) {
      const FakeVector& vector = nic.vectors(i);
      absl::StrAppend(&out, "  vector ", i, ": address 0x", absl::Hex(vector.message().address()),
                      " data 0x", absl::Hex(vector.message().data()), " -> ",
                      InterruptNode(*state, nic, vector), vector.masked() ? " masked" : "", "\n");
    }
    for (const FakeReservation& reservation : nic.reservations()) {
      absl::StrAppend(&out, "  reserved on ", reservation.node_id(), ": ",
                      reservation.messages_size(), " vectors, epoch ", reservation.epoch(), "\n");
    }
    for (const FakeArm& arm : nic.arms()) {
      absl::StrAppend(&out, "  kernel of ", arm.node_id(), " armed for ", RecordText(arm.handoff()),
                      "\n");
    }
  }
  for (const FakeKernel& kernel : state->kernels()) {
    absl::StrAppend(&out, "kernel ", kernel.node_id(), ": ", kernel.doorbells_size(),
                    " doorbells pending, last event ", kernel.last_seq(), ", ",
                    kernel.ignored_doorbells(), " doorbells ignored\n");
  }
  for (const FakeFault& fault : state->faults()) {
    absl::StrAppend(&out, "fault ", fault.node_id().empty() ? "*" : fault.node_id(), " ",
                    FakeOperationName(fault.operation()), ":", fault.hang() ? " hang" : "");
    if (fault.hang() && fault.hang_max_ms() > 0) absl::StrAppend(&out, " max ", fault.hang_max_ms(), "ms");
    if (fault.fail_code() != 0) {
      absl::StrAppend(&out, " fail ", absl::StatusCodeToString(static_cast<absl::StatusCode>(fault.fail_code())),
                      fault.fail_always() ? " always" : absl::StrCat(" x", fault.fail_times()));
    }
    absl::StrAppend(&out, " (hits ", fault.hits(), ")\n");
  }
  for (const std::string& line : state->history()) absl::StrAppend(&out, "history: ", line, "\n");
  return out;
}

}  // namespace fake
}  // namespace platform
}  // namespace nichandover
