#include "sim/control_server.h"

#include <unistd.h>

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

}  // namespace

class ControlServer::Service final : public v1::KernelControl::Service {
 public:
  explicit Service(Kernel* kernel) : kernel_(kernel) {}

  grpc::Status Quiesce(grpc::ServerContext*, const v1::QuiesceRequest* request,
                       v1::QuiesceResponse* response) override {
    auto outcome = kernel_->Quiesce(request->bdf(), FenceOf(*request),
                                    absl::Microseconds(request->timeout_us()));
    if (!outcome.ok()) return ToGrpc(outcome.status());
    response->set_drained_tx_packets(outcome->drained_tx_packets);
    response->set_drained_rx_packets(outcome->drained_rx_packets);
    response->set_held_xmits(outcome->held_xmits);
    response->set_polls_while_quiesced(outcome->polls_while_quiesced);
    ToProto(outcome->rings, response->mutable_rings());
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
