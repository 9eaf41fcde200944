#include "sim/control_server.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "kernel_control.grpc.pb.h"

namespace nichandover {
namespace sim {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// One RingState per queue, in queue order; INVALID_ARGUMENT when the queue
// numbers are not 0..n-1 each once.
absl::StatusOr<std::vector<RingState>> FromProto(
    const google::protobuf::RepeatedPtrField<v1::RingState>& rings) {
  std::vector<RingState> out(rings.size());
  std::vector<bool> seen(rings.size(), false);
  for (const v1::RingState& p : rings) {
    if (p.queue() >= static_cast<uint32_t>(rings.size()) || seen[p.queue()]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ring states must name queues 0..%d once each (queue %d)", rings.size() - 1,
          p.queue()));
    }
    seen[p.queue()] = true;
    RingState& r = out[p.queue()];
    r.rx_next_to_clean = p.rx_next_to_clean();
    r.rx_next_to_use = p.rx_next_to_use();
    r.tx_next_to_clean = p.tx_next_to_clean();
    r.tx_next_to_use = p.tx_next_to_use();
  }
  return out;
}

void ToProto(const std::vector<RingState>& rings,
             google::protobuf::RepeatedPtrField<v1::RingState>* out) {
  for (uint32_t q = 0; q < rings.size(); ++q) {
    v1::RingState* p = out->Add();
    p->set_queue(q);
    p->set_rx_next_to_clean(rings[q].rx_next_to_clean);
    p->set_rx_next_to_use(rings[q].rx_next_to_use);
    p->set_tx_next_to_clean(rings[q].tx_next_to_clean);
    p->set_tx_next_to_use(rings[q].tx_next_to_use);
  }
}

std::vector<pci::RawMsiMessage> FromProto(
    const google::protobuf::RepeatedPtrField<v1::Message>& messages) {
  std::vector<pci::RawMsiMessage> out;
  for (const v1::Message& m : messages) out.push_back({m.address(), m.data()});
  return out;
}

void ToProto(const std::vector<pci::RawMsiMessage>& messages, v1::MessagesResponse* response) {
  for (const pci::RawMsiMessage& m : messages) {
    v1::Message* p = response->add_messages();
    p->set_address(m.address);
    p->set_data(m.data);
  }
}

template <typename Request>
Fence FenceOf(const Request& request) {
  return Fence{request.epoch(), request.op_id()};
}

static_assert(static_cast<int>(HandOffStage::kDoorbellRung) == v1::HAND_OFF_STAGE_DOORBELL_RUNG &&
                  static_cast<int>(HandOffStage::kNothing) == v1::HAND_OFF_STAGE_NOTHING,
              "HandOffStage and the proto's stages in the same order");

// WaitEvents holds a server thread: bounded.
constexpr absl::Duration kMaxWaitEventsTimeout = absl::Seconds(60);

absl::StatusOr<Ownership> FromProto(const Machine& machine, const v1::Record& record) {
  if (record.state() > static_cast<uint32_t>(OwnershipState::kHandoff)) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown record state %d", record.state()));
  }
  if (record.epoch() > kMaxEpoch) {
    return absl::InvalidArgumentError("epoch does not fit the record's 40 bits");
  }
  Ownership o;
  o.state = static_cast<OwnershipState>(record.state());
  o.epoch = record.epoch();
  for (auto [id, index] : {std::pair{&record.owner_node(), &o.owner},
                           std::pair{&record.target_node(), &o.target}}) {
    if (id->empty()) continue;
    absl::StatusOr<int> node = machine.NodeIndex(*id);
    if (!node.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("the record names %s, which is no node of the machine", *id));
    }
    *index = *node;
  }
  return o;
}

void ToProto(const Machine& machine, const Ownership& o, v1::Record* record) {
  record->set_state(static_cast<uint32_t>(o.state));
  record->set_owner_node(o.owner == kNoNode ? "" : machine.node_id(o.owner));
  record->set_target_node(o.target == kNoNode ? "" : machine.node_id(o.target));
  record->set_epoch(o.epoch);
}

void ToProto(const QuiesceOutcome& outcome, v1::QuiesceResponse* response) {
  response->set_drained_tx_packets(outcome.drained_tx_packets);
  response->set_drained_rx_packets(outcome.drained_rx_packets);
  response->set_held_xmits(outcome.held_xmits);
  response->set_polls_while_quiesced(outcome.polls_while_quiesced);
  ToProto(outcome.rings, response->mutable_rings());
}

}  // namespace

class ControlServer::Service final : public v1::KernelControl::Service {
 public:
  explicit Service(Kernel* kernel) : kernel_(kernel) {}
  Kernel& kernel() { return *kernel_; }

  grpc::Status Quiesce(grpc::ServerContext*, const v1::QuiesceRequest* request,
                       v1::QuiesceResponse* response) override {
    auto outcome = kernel_->Quiesce(request->bdf(), FenceOf(*request),
                                    absl::Microseconds(request->timeout_us()));
    if (!outcome.ok()) return ToGrpc(outcome.status());
    ToProto(*outcome, response);
    return grpc::Status::OK;
  }

  grpc::Status Resume(grpc::ServerContext*, const v1::EpochRequest* request,
                      v1::Empty*) override {
    return ToGrpc(kernel_->Resume(request->bdf(), FenceOf(*request)));
  }

  grpc::Status Attach(grpc::ServerContext*, const v1::AttachRequest* request,
                      v1::Empty*) override {
    absl::StatusOr<std::vector<RingState>> rings = FromProto(request->rings());
    if (!rings.ok()) return ToGrpc(rings.status());
    return ToGrpc(kernel_->Attach(request->bdf(), FenceOf(*request), *rings));
  }

  grpc::Status Release(grpc::ServerContext*, const v1::EpochRequest* request,
                       v1::Empty*) override {
    return ToGrpc(kernel_->Release(request->bdf(), FenceOf(*request)));
  }

  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest* request,
                      v1::StatusResponse* response) override {
    auto status = kernel_->Status(request->bdf());
    if (!status.ok()) return ToGrpc(status.status());
    switch (status->state) {
      case KernelHookState::kDetached:
        response->set_state(v1::HOOK_STATE_DETACHED);
        break;
      case KernelHookState::kRunning:
        response->set_state(v1::HOOK_STATE_RUNNING);
        break;
      case KernelHookState::kQuiesced:
        response->set_state(v1::HOOK_STATE_QUIESCED);
        break;
    }
    response->set_epoch(status->epoch);
    response->set_held_xmits(status->held_xmits);
    response->set_polls_while_quiesced(status->polls_while_quiesced);
    response->set_drained_tx_packets(status->drained_tx_packets);
    ToProto(status->rings, response->mutable_rings());
    for (uint8_t v : status->active_vectors) response->add_active_vectors(v);
    for (uint8_t v : status->reserved_vectors) response->add_reserved_vectors(v);
    response->set_node_id(kernel_->node_id());
    response->set_pid(getpid());
    response->set_armed(status->armed);
    response->set_armed_epoch(status->armed_epoch);
    return grpc::Status::OK;
  }

  grpc::Status ReserveVectors(grpc::ServerContext*, const v1::ReserveRequest* request,
                              v1::MessagesResponse* response) override {
    auto messages = kernel_->ReserveVectors(request->bdf(), FenceOf(*request), request->count());
    if (!messages.ok()) return ToGrpc(messages.status());
    ToProto(*messages, response);
    return grpc::Status::OK;
  }

  grpc::Status ReleaseVectors(grpc::ServerContext*, const v1::EpochRequest* request,
                              v1::Empty*) override {
    return ToGrpc(kernel_->ReleaseVectors(request->bdf(), FenceOf(*request)));
  }

  grpc::Status Reroute(grpc::ServerContext*, const v1::MessagesRequest* request,
                       v1::MessagesResponse* response) override {
    auto previous =
        kernel_->Reroute(request->bdf(), FenceOf(*request), FromProto(request->messages()));
    if (!previous.ok()) return ToGrpc(previous.status());
    ToProto(*previous, response);
    return grpc::Status::OK;
  }

  grpc::Status Restore(grpc::ServerContext*, const v1::MessagesRequest* request,
                       v1::Empty*) override {
    return ToGrpc(
        kernel_->Restore(request->bdf(), FenceOf(*request), FromProto(request->messages())));
  }

  grpc::Status Arm(grpc::ServerContext*, const v1::ArmRequest* request, v1::Empty*) override {
    absl::StatusOr<Ownership> handoff = FromProto(kernel_->machine(), request->handoff());
    if (!handoff.ok()) return ToGrpc(handoff.status());
    return ToGrpc(kernel_->Arm(request->bdf(), FenceOf(*request), *handoff));
  }

  grpc::Status HandOff(grpc::ServerContext*, const v1::HandOffRequest* request,
                       v1::HandOffResponse* response) override {
    Machine& machine = kernel_->machine();
    absl::StatusOr<Ownership> expected = FromProto(machine, request->expected());
    if (!expected.ok()) return ToGrpc(expected.status());
    absl::StatusOr<Ownership> desired = FromProto(machine, request->desired());
    if (!desired.ok()) return ToGrpc(desired.status());
    HandOffOutcome outcome = kernel_->HandOff(
        request->bdf(), FenceOf(*request), *expected, *desired,
        FromProto(request->target_messages()), absl::Microseconds(request->drain_timeout_us()));
    if (!outcome.status.ok()) {
      const std::string& stage =
          v1::HandOffStage_Name(static_cast<v1::HandOffStage>(outcome.reached));
      return ToGrpc(absl::Status(outcome.status.code(),
                                 absl::StrFormat("%s (reached %s)", outcome.status.message(),
                                                 stage)));
    }
    response->set_reached(static_cast<v1::HandOffStage>(outcome.reached));
    ToProto(outcome.quiesce, response->mutable_quiesce());
    for (const pci::RawMsiMessage& m : outcome.previous) {
      v1::Message* p = response->add_previous();
      p->set_address(m.address);
      p->set_data(m.data);
    }
    ToProto(machine, outcome.record, response->mutable_record());
    return grpc::Status::OK;
  }

  grpc::Status WaitEvents(grpc::ServerContext*, const v1::WaitEventsRequest* request,
                          v1::WaitEventsResponse* response) override {
    const absl::Duration timeout =
        std::min(absl::Milliseconds(request->timeout_ms()), kMaxWaitEventsTimeout);
    KernelEvents events = kernel_->WaitEvents(request->after_seq(), timeout);
    for (const KernelEvent& e : events.events) {
      v1::KernelEvent* p = response->add_events();
      p->set_seq(e.seq);
      p->set_kind(e.kind == KernelEvent::Kind::kCommitted ? v1::KernelEvent::KIND_COMMITTED
                                                          : v1::KernelEvent::KIND_NOT_COMMITTED);
      p->set_bdf(e.bdf);
      p->set_epoch(e.epoch);
      ToProto(kernel_->machine(), e.record, p->mutable_record());
      p->set_message(e.message);
    }
    response->set_last_seq(events.last_seq);
    return grpc::Status::OK;
  }

  grpc::Status InjectFault(grpc::ServerContext*, const v1::InjectFaultRequest* request,
                           v1::Empty*) override {
    absl::StatusOr<FaultPoint> point = ParseFaultPoint(request->point());
    if (!point.ok()) return ToGrpc(point.status());
    absl::StatusOr<FaultAction> action = ParseFaultAction(request->action());
    if (!action.ok()) return ToGrpc(action.status());
    return ToGrpc(kernel_->InjectFault(*point, *action));
  }

 private:
  Kernel* kernel_;
};

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(
    Kernel* kernel, const std::string& socket_path) {
  if (socket_path.empty() || socket_path.size() >= 108) {  // sizeof(sockaddr_un::sun_path)
    return absl::InvalidArgumentError(
        "control socket path must be 1..107 bytes (unix socket limit): " + socket_path);
  }
  unlink(socket_path.c_str());  // a stale socket of a previous kernel
  auto server = std::unique_ptr<ControlServer>(new ControlServer());
  server->service_ = std::make_unique<Service>(kernel);
  server->socket_path_ = socket_path;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr) {
    return absl::UnavailableError("cannot listen on unix:" + socket_path);
  }
  return server;
}

ControlServer::~ControlServer() { Shutdown(); }

void ControlServer::Shutdown() {
  if (server_ == nullptr) return;
  // The server waits for its handlers: the long polls and held fault
  // points must let go first.
  service_->kernel().StopWaiters();
  // Calls still running after a second are cancelled: a kernel going down
  // must not wait on a client.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_.reset();
  unlink(socket_path_.c_str());
}

void ControlServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace sim
}  // namespace nichandover
