#include "daemon/platform/sim/sim_platform.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "grpcpp/grpcpp.h"
#include "kernel_control.grpc.pb.h"
#include "pci/interrupt_layout.h"
#include "pci/msi.h"
#include "sim/config_space_image.h"
#include "daemon/platform/sim/machine_arbiter.h"
#include "sim/machine.h"

namespace nichandover {
namespace platform {
namespace sim {
namespace {

using ::nichandover::sim::Machine;
namespace control = ::nichandover::sim::v1;

// Calls that do not carry their own timeout.
constexpr absl::Duration kCallTimeout = absl::Seconds(5);

absl::Status FromGrpc(const grpc::Status& status, const char* what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrFormat("%s: %s", what, status.error_message()));
}

// One node's connection to the shared memory and to its kernel, shared by
// the four parts.
struct Node {
  std::shared_ptr<Machine> machine;
  int index = 0;
  std::string node_id;
  std::unique_ptr<control::KernelControl::Stub> kernel;

  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return context;
  }
  // NOT_FOUND for a BDF that is no NIC of the machine.
  absl::StatusOr<int> Nic(const std::string& bdf) const {
    absl::StatusOr<int> nic = machine->NicIndex(bdf);
    if (!nic.ok()) return absl::NotFoundError(absl::StrFormat("%s sees no NIC %s", node_id, bdf));
    return nic;
  }
};

control::RingState ToControl(const v1::QueueRingState& r) {
  control::RingState c;
  c.set_queue(r.queue());
  c.set_rx_next_to_clean(r.rx_next_to_clean());
  c.set_rx_next_to_use(r.rx_next_to_use());
  c.set_tx_next_to_clean(r.tx_next_to_clean());
  c.set_tx_next_to_use(r.tx_next_to_use());
  return c;
}

v1::QueueRingState FromControl(const control::RingState& c) {
  v1::QueueRingState r;
  r.set_queue(c.queue());
  r.set_rx_next_to_clean(c.rx_next_to_clean());
  r.set_rx_next_to_use(c.rx_next_to_use());
  r.set_tx_next_to_clean(c.tx_next_to_clean());
  r.set_tx_next_to_use(c.tx_next_to_use());
  return r;
}

std::vector<v1::MsiMessage> FromControl(
    const google::protobuf::RepeatedPtrField<control::Message>& messages) {
  std::vector<v1::MsiMessage> out;
  for (const control::Message& m : messages) {
    v1::MsiMessage msg;
    msg.set_address(m.address());
    msg.set_data(m.data());
    out.push_back(msg);
  }
  return out;
}

void ToControl(const std::vector<v1::MsiMessage>& messages,
               google::protobuf::RepeatedPtrField<control::Message>* out) {
  for (const v1::MsiMessage& m : messages) {
    control::Message* c = out->Add();
    c->set_address(m.address());
    c->set_data(m.data());
  }
}

QuiesceResult FromControl(const control::QuiesceResponse& response) {
  QuiesceResult result;
  result.drained_tx_packets = response.drained_tx_packets();
  result.drained_rx_packets = response.drained_rx_packets();
  result.held_xmits = response.held_xmits();
  result.polls_while_quiesced = response.polls_while_quiesced();
  for (const auto& r : response.rings()) result.rings.push_back(FromControl(r));
  return result;
}

control::Record ToControl(const v1::OwnershipRecord& record) {
  control::Record c;
  c.set_state(static_cast<uint32_t>(record.state()));
  c.set_owner_node(record.owner_node());
  c.set_target_node(record.target_node());
  c.set_epoch(record.epoch());
  return c;
}

v1::OwnershipRecord FromControl(const control::Record& c) {
  v1::OwnershipRecord record;
  record.set_state(static_cast<v1::OwnershipState>(c.state()));
  record.set_owner_node(c.owner_node());
  record.set_target_node(c.target_node());
  record.set_epoch(c.epoch());
  return record;
}

HandOffStage FromControl(control::HandOffStage stage) {
  switch (stage) {
    case control::HAND_OFF_STAGE_QUIESCED:
      return HandOffStage::kQuiesced;
    case control::HAND_OFF_STAGE_REROUTED:
      return HandOffStage::kRerouted;
    case control::HAND_OFF_STAGE_RINGS_WRITTEN:
      return HandOffStage::kRingsWritten;
    case control::HAND_OFF_STAGE_HANDED_OFF:
      return HandOffStage::kHandedOff;
    case control::HAND_OFF_STAGE_DOORBELL_RUNG:
      return HandOffStage::kDoorbellRung;
    default:
      return HandOffStage::kNothing;
  }
}

class SimInventory : public Inventory {
 public:
  explicit SimInventory(std::shared_ptr<Node> node) : node_(std::move(node)) {}

  absl::StatusOr<std::vector<NicInfo>> ListNics() override {
    std::vector<NicInfo> nics;
    for (int i = 0; i < node_->machine->nic_count(); ++i) {
      absl::StatusOr<NicInfo> nic = GetNic(node_->machine->bdf(i));
      if (!nic.ok()) return nic.status();
      nics.push_back(*std::move(nic));
    }
    return nics;
  }

  absl::StatusOr<NicInfo> GetNic(const std::string& bdf) override {
    absl::StatusOr<int> index = node_->Nic(bdf);
    if (!index.ok()) return index.status();
    Machine& m = *node_->machine;
    ::nichandover::sim::SimConfigSpace config(m.nic(*index), m.layout().device_bell);
    ::nichandover::sim::SimBarMemory bars(m.nic(*index), m.layout().device_bell);
    NicInfo info;
    info.bdf = bdf;
    absl::StatusOr<uint16_t> vendor = config.Read16(0x00);
    absl::StatusOr<uint16_t> device = config.Read16(0x02);
    absl::StatusOr<uint32_t> class_rev = config.Read32(0x08);
    if (!vendor.ok() || !device.ok() || !class_rev.ok()) {
      return absl::DataLossError("config space unreadable");
    }
    info.vendor_id = *vendor;
    info.device_id = *device;
    info.class_code = *class_rev >> 8;
    info.driver = kSimDriver;  // every simulated kernel has the driver loaded
    // The netdev the node's driver registered for this NIC while it runs it.
    info.netdev = m.nic(*index).running_node.load() == node_->index
                      ? SimNetdev(*index)
                      : "";
    info.queue_count = m.nic(*index).queue_count;
    absl::StatusOr<v1::InterruptLayout> layout = pci::DecodeInterruptLayout(config, &bars);
    if (!layout.ok()) return layout.status();
    info.interrupts = *layout;
    return info;
  }

 private:
  std::shared_ptr<Node> node_;
};

class SimHook : public Hook {
 public:
  explicit SimHook(std::shared_ptr<Node> node) : node_(std::move(node)) {}

  absl::StatusOr<QuiesceResult> Quiesce(const std::string& bdf, const Fence& fence,
                                        absl::Duration timeout) override {
    control::QuiesceRequest request;
    request.set_bdf(bdf);
    request.set_epoch(fence.epoch);
    request.set_op_id(fence.op_id);
    request.set_timeout_us(absl::ToInt64Microseconds(timeout));
    control::QuiesceResponse response;
    // The kernel bounds the drain by `timeout`; the call gets a margin on top.
    auto context = node_->Context(timeout + absl::Seconds(1));
    absl::Status s = FromGrpc(node_->kernel->Quiesce(context.get(), request, &response), "quiesce");
    if (!s.ok()) return s;
    return FromControl(response);
  }

  absl::Status Resume(const std::string& bdf, const Fence& fence) override {
    control::Empty empty;
    auto context = node_->Context(kCallTimeout);
    return FromGrpc(node_->kernel->Resume(context.get(), Epoch(bdf, fence), &empty), "resume");
  }

  absl::Status Attach(const std::string& bdf, const Fence& fence,
                      const std::vector<v1::QueueRingState>& rings) override {
    control::AttachRequest request;
    request.set_bdf(bdf);
    request.set_epoch(fence.epoch);
    request.set_op_id(fence.op_id);
    for (const auto& r : rings) *request.add_rings() = ToControl(r);
    control::Empty empty;
    auto context = node_->Context(kCallTimeout);
    return FromGrpc(node_->kernel->Attach(context.get(), request, &empty), "attach");
  }

  absl::Status Release(const std::string& bdf, const Fence& fence) override {
    control::Empty empty;
    auto context = node_->Context(kCallTimeout);
    return FromGrpc(node_->kernel->Release(context.get(), Epoch(bdf, fence), &empty), "release");
  }

  absl::StatusOr<HookStatus> Status(const std::string& bdf) override {
    control::StatusRequest request;
    request.set_bdf(bdf);
    control::StatusResponse response;
    auto context = node_->Context(kCallTimeout);
    absl::Status s = FromGrpc(node_->kernel->Status(context.get(), request, &response), "status");
    if (!s.ok()) return s;
    HookStatus status;
    switch (response.state()) {
      case control::HOOK_STATE_RUNNING:
        status.state = HookState::kRunning;
        break;
      case control::HOOK_STATE_QUIESCED:
        status.state = HookState::kQuiesced;
        break;
      default:
        status.state = HookState::kDetached;
    }
    status.epoch = response.epoch();
    status.held_xmits = response.held_xmits();
    status.polls_while_quiesced = response.polls_while_quiesced();
    status.drained_tx_packets = response.drained_tx_packets();
    return status;
  }

 private:
  static control::EpochRequest Epoch(const std::string& bdf, const Fence& fence) {
    control::EpochRequest request;
    request.set_bdf(bdf);
    request.set_epoch(fence.epoch);
    request.set_op_id(fence.op_id);
    return request;
  }

  std::shared_ptr<Node> node_;
};

class SimRouter : public Router {
 public:
  explicit SimRouter(std::shared_ptr<Node> node) : node_(std::move(node)) {}

  absl::StatusOr<std::vector<v1::MsiMessage>> ReadMessages(const std::string& bdf) override {
    absl::StatusOr<int> index = node_->Nic(bdf);
    if (!index.ok()) return index.status();
    Machine& m = *node_->machine;
    ::nichandover::sim::SimConfigSpace config(m.nic(*index), m.layout().device_bell);
    ::nichandover::sim::SimBarMemory bars(m.nic(*index), m.layout().device_bell);
    absl::StatusOr<pci::MsixCapability> cap =
        pci::ReadMsixCapability(config, ::nichandover::sim::kMsixCapabilityOffset);
    if (!cap.ok()) return cap.status();
    std::vector<v1::MsiMessage> messages;
    for (uint32_t i = 0; i < cap->table_size(); ++i) {
      absl::StatusOr<pci::MsixTableEntry> entry = pci::ReadMsixEntry(bars, *cap, i);
      if (!entry.ok()) return entry.status();
      v1::MsiMessage message;
      message.set_address(entry->address());
      message.set_data(entry->data);
      messages.push_back(message);
    }
    return messages;
  }

  absl::StatusOr<std::vector<v1::MsiMessage>> Reroute(
      const std::string& bdf, const Fence& fence,
      const std::vector<v1::MsiMessage>& target) override {
    control::MessagesRequest request = Messages(bdf, fence, target);
    control::MessagesResponse response;
    auto context = node_->Context(kCallTimeout);
    absl::Status s = FromGrpc(node_->kernel->Reroute(context.get(), request, &response), "reroute");
    if (!s.ok()) return s;
    return FromControl(response.messages());
  }

  absl::Status Restore(const std::string& bdf, const Fence& fence,
                       const std::vector<v1::MsiMessage>& previous) override {
    control::Empty empty;
    auto context = node_->Context(kCallTimeout);
    return FromGrpc(node_->kernel->Restore(context.get(), Messages(bdf, fence, previous), &empty),
                    "restore");
  }

  absl::StatusOr<std::vector<v1::MsiMessage>> ReserveTargetMessages(const std::string& bdf,
                                                                    const Fence& fence,
                                                                    uint32_t count) override {
    control::ReserveRequest request;
    request.set_bdf(bdf);
    request.set_epoch(fence.epoch);
    request.set_op_id(fence.op_id);
    request.set_count(count);
    control::MessagesResponse response;
    auto context = node_->Context(kCallTimeout);
    absl::Status s =
        FromGrpc(node_->kernel->ReserveVectors(context.get(), request, &response), "reserve");
    if (!s.ok()) return s;
    return FromControl(response.messages());
  }

  absl::Status ReleaseReservation(const std::string& bdf, const Fence& fence) override {
    control::EpochRequest request;
    request.set_bdf(bdf);
    request.set_epoch(fence.epoch);
    request.set_op_id(fence.op_id);
    control::Empty empty;
    auto context = node_->Context(kCallTimeout);
    return FromGrpc(node_->kernel->ReleaseVectors(context.get(), request, &empty),
                    "release reservation");
  }

 private:
  static control::MessagesRequest Messages(const std::string& bdf, const Fence& fence,
                                           const std::vector<v1::MsiMessage>& messages) {
    control::MessagesRequest request;
    request.set_bdf(bdf);
    request.set_epoch(fence.epoch);
    request.set_op_id(fence.op_id);
    ToControl(messages, request.mutable_messages());
    return request;
  }

  std::shared_ptr<Node> node_;
};

// The kernel commit path over the kernel's control socket: Arm, HandOff and
// the events long poll (kernel_control.proto).
class SimFastPath : public FastPath {
 public:
  explicit SimFastPath(std::shared_ptr<Node> node) : node_(std::move(node)) {}

  absl::Status Arm(const std::string& bdf, const Fence& fence,
                   const v1::OwnershipRecord& handoff) override {
    control::ArmRequest request;
    request.set_bdf(bdf);
    request.set_epoch(fence.epoch);
    request.set_op_id(fence.op_id);
    *request.mutable_handoff() = ToControl(handoff);
    control::Empty empty;
    auto context = node_->Context(kCallTimeout);
    return FromGrpc(node_->kernel->Arm(context.get(), request, &empty), "arm");
  }

  absl::StatusOr<HandOffResult> HandOff(const HandOffRequest& request) override {
    control::HandOffRequest call;
    call.set_bdf(request.bdf);
    call.set_epoch(request.fence.epoch);
    call.set_op_id(request.fence.op_id);
    *call.mutable_expected() = ToControl(request.expected);
    *call.mutable_desired() = ToControl(request.desired);
    ToControl(request.target_messages, call.mutable_target_messages());
    call.set_drain_timeout_us(absl::ToInt64Microseconds(request.drain_timeout));
    control::HandOffResponse response;
    // The kernel bounds the drain; the rest is a few memory writes.
    auto context = node_->Context(request.drain_timeout + kCallTimeout);
    absl::Status s =
        FromGrpc(node_->kernel->HandOff(context.get(), call, &response), "hand-off");
    if (!s.ok()) return s;
    HandOffResult result;
    result.reached = FromControl(response.reached());
    result.quiesce = FromControl(response.quiesce());
    result.previous = FromControl(response.previous());
    result.record = FromControl(response.record());
    return result;
  }

  absl::StatusOr<KernelEvents> WaitEvents(uint64_t after_seq, absl::Duration timeout) override {
    control::WaitEventsRequest request;
    request.set_after_seq(after_seq);
    request.set_timeout_ms(absl::ToInt64Milliseconds(std::max(timeout, absl::ZeroDuration())));
    control::WaitEventsResponse response;
    auto context = node_->Context(timeout + kCallTimeout);
    absl::Status s =
        FromGrpc(node_->kernel->WaitEvents(context.get(), request, &response), "wait events");
    if (!s.ok()) return s;
    KernelEvents events;
    events.last_seq = response.last_seq();
    for (const control::KernelEvent& e : response.events()) {
      KernelEvent event;
      event.seq = e.seq();
      event.kind = e.kind() == control::KernelEvent::KIND_COMMITTED
                       ? KernelEvent::Kind::kCommitted
                       : KernelEvent::Kind::kNotCommitted;
      event.bdf = e.bdf();
      event.epoch = e.epoch();
      event.record = FromControl(e.record());
      event.message = e.message();
      events.events.push_back(std::move(event));
    }
    return events;
  }

 private:
  std::shared_ptr<Node> node_;
};

}  // namespace

absl::StatusOr<Platform> MakeSimPlatform(const v1::SimPlatformConfig& sim,
                                         const v1::DaemonConfig& config) {
  if (sim.machine_path().empty() || sim.kernel_socket().empty()) {
    return absl::InvalidArgumentError("sim platform: machine_path and kernel_socket are required");
  }
  absl::StatusOr<std::unique_ptr<Machine>> machine = Machine::Open(sim.machine_path());
  if (!machine.ok()) return machine.status();
  absl::StatusOr<int> index = (*machine)->NodeIndex(config.node_id());
  if (!index.ok()) return index.status();
  for (const v1::CpuConfig& cpu : config.cpus()) {
    if ((*machine)->NodeOfApicId(cpu.apic_id()) != *index) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "config gives %s APIC ID %d, which the machine %s does not give this node",
          config.node_id(), cpu.apic_id(), sim.machine_path()));
    }
  }
  auto node = std::make_shared<Node>();
  node->machine = std::move(*machine);
  node->index = *index;
  node->node_id = config.node_id();
  node->kernel = control::KernelControl::NewStub(
      grpc::CreateChannel("unix:" + sim.kernel_socket(), grpc::InsecureChannelCredentials()));
  Platform platform;
  platform.name = "sim";
  platform.inventory = std::make_unique<SimInventory>(node);
  platform.hook = std::make_unique<SimHook>(node);
  platform.router = std::make_unique<SimRouter>(node);
  platform.arbiter = MakeMachineArbiter(node->machine, config.node_id());
  platform.fast_path = std::make_unique<SimFastPath>(node);
  return platform;
}

}  // namespace sim
}  // namespace platform
}  // namespace nichandover
