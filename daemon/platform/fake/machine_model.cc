#include "daemon/platform/fake/machine_model.h"

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace platform {
namespace fake {
namespace {

constexpr uint64_t kMsiAddressBase = 0xFEE00000u;

struct OperationName {
  FakeOperation operation;
  const char* name;
};

constexpr OperationName kOperationNames[] = {
    {FAKE_OP_LIST_NICS, "list-nics"},
    {FAKE_OP_GET_NIC, "get-nic"},
    {FAKE_OP_QUIESCE, "quiesce"},
    {FAKE_OP_RESUME, "resume"},
    {FAKE_OP_ATTACH, "attach"},
    {FAKE_OP_RELEASE, "release"},
    {FAKE_OP_HOOK_STATUS, "hook-status"},
    {FAKE_OP_READ_MESSAGES, "read-messages"},
    {FAKE_OP_REROUTE, "reroute"},
    {FAKE_OP_RESTORE, "restore"},
    {FAKE_OP_RESERVE, "reserve"},
    {FAKE_OP_RELEASE_RESERVATION, "release-reservation"},
    {FAKE_OP_READ_RECORD, "read-record"},
    {FAKE_OP_COMPARE_AND_SWAP, "cas"},
    {FAKE_OP_WRITE_HANDOFF_RINGS, "write-rings"},
    {FAKE_OP_READ_HANDOFF_RINGS, "read-rings"},
    {FAKE_OP_ARM, "arm"},
    {FAKE_OP_HANDOFF, "hand-off"},
    {FAKE_OP_WAIT_EVENTS, "wait-events"},
};

}  // namespace

v1::MsiMessage EncodeMsi(uint32_t apic_id, uint32_t vector) {
  v1::MsiMessage message;
  message.set_address(kMsiAddressBase | (uint64_t{apic_id & 0xFF} << 12));
  message.set_data(vector & 0xFF);
  return message;
}

uint32_t MsiDestinationApic(const v1::MsiMessage& message) {
  return static_cast<uint32_t>((message.address() >> 12) & 0xFF);
}

uint32_t MsiVector(const v1::MsiMessage& message) { return message.data() & 0xFF; }

absl::StatusOr<FakeNic*> FindNic(FakeMachineState* state, const std::string& bdf) {
  for (FakeNic& nic : *state->mutable_nics()) {
    if (nic.bdf() == bdf) return &nic;
  }
  return absl::NotFoundError(absl::StrCat("no NIC ", bdf, " on the fake machine"));
}

absl::StatusOr<const FakeNic*> FindNic(const FakeMachineState& state, const std::string& bdf) {
  for (const FakeNic& nic : state.nics()) {
    if (nic.bdf() == bdf) return &nic;
  }
  return absl::NotFoundError(absl::StrCat("no NIC ", bdf, " on the fake machine"));
}

absl::StatusOr<const FakeNode*> FindNode(const FakeMachineState& state, const std::string& node_id) {
  for (const FakeNode& node : state.nodes()) {
    if (node.node_id() == node_id) return &node;
  }
  return absl::NotFoundError(absl::StrCat("no node ", node_id, " on the fake machine"));
}

FakeHook* HookFor(FakeNic* nic, const std::string& node_id) {
  for (FakeHook& hook : *nic->mutable_hooks()) {
    if (hook.node_id() == node_id) return &hook;
  }
  FakeHook* hook = nic->add_hooks();
  hook->set_node_id(node_id);
  return hook;
}

std::string NodeOfApic(const FakeMachineState& state, uint32_t apic_id) {
  for (const FakeNode& node : state.nodes()) {
    for (const v1::Cpu& cpu : node.cpus()) {
      if (cpu.apic_id() == apic_id) return node.node_id();
    }
  }
  return "";
}

uint32_t FirstVector(const FakeNode& node) {
  return node.first_vector() == 0 && node.last_vector() == 0 ? kDefaultFirstVector
                                                             : node.first_vector();
}

uint32_t LastVector(const FakeNode& node) {
  return node.first_vector() == 0 && node.last_vector() == 0 ? kDefaultLastVector
                                                             : node.last_vector();
}

FakeKernel* KernelOf(FakeMachineState* state, const std::string& node_id) {
  for (FakeKernel& kernel : *state->mutable_kernels()) {
    if (kernel.node_id() == node_id) return &kernel;
  }
  FakeKernel* kernel = state->add_kernels();
  kernel->set_node_id(node_id);
  return kernel;
}

void RingDoorbell(FakeMachineState* state, const std::string& node_id, const std::string& bdf,
                  uint64_t epoch) {
  FakeDoorbell* doorbell = KernelOf(state, node_id)->add_doorbells();
  doorbell->set_bdf(bdf);
  doorbell->set_epoch(epoch);
  AppendHistory(state, absl::StrCat("doorbell ", bdf, " epoch=", epoch, " -> ", node_id));
}

void AppendHistory(FakeMachineState* state, const std::string& line) {
  state->add_history(line);
  if (state->history_size() > kHistoryLimit) {
    state->mutable_history()->DeleteSubrange(0, state->history_size() - kHistoryLimit);
  }
}

const char* FakeOperationName(FakeOperation operation) {
  for (const OperationName& entry : kOperationNames) {
    if (entry.operation == operation) return entry.name;
  }
  return "unspecified";
}

absl::StatusOr<FakeOperation> ParseFakeOperation(const std::string& name) {
  std::string known;
  for (const OperationName& entry : kOperationNames) {
    if (name == entry.name) return entry.operation;
    absl::StrAppend(&known, known.empty() ? "" : ", ", entry.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown operation \"", name, "\"; known: ", known));
}

v1::InterruptLayout InterruptLayoutOf(const FakeMachineState& state, const FakeNic& nic) {
  v1::InterruptLayout layout;
  layout.set_mode(nic.mode());
  layout.set_capability_offset(nic.capability_offset());
  layout.set_enabled(true);
  layout.set_vectors_supported(nic.vectors_size());
  layout.set_vectors_enabled(nic.vectors_size());
  layout.set_address_64bit(true);
  layout.set_per_vector_masking(nic.mode() == v1::INTERRUPT_MODE_MSIX || nic.per_vector_masking());
  for (int i = 0; i < nic.vectors_size(); ++i) {
    const FakeVector& vector = nic.vectors(i);
    v1::InterruptVector* out = layout.add_vectors();
    out->set_index(i);
    *out->mutable_message() = vector.message();
    out->set_masked(vector.masked());
    out->set_pending(vector.pending());
    v1::DecodedRoute* route = out->mutable_route();
    route->set_remappable(nic.interrupt_remapping());
    if (nic.interrupt_remapping()) continue;
    route->set_destination_apic_id(MsiDestinationApic(vector.message()));
    route->set_vector(MsiVector(vector.message()));
    route->set_delivery_mode(v1::DELIVERY_MODE_FIXED);
    route->set_destination_node(NodeOfApic(state, route->destination_apic_id()));
  }
  return layout;
}

}  // namespace fake
}  // namespace platform
}  // namespace nichandover
