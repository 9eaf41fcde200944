#include "daemon/peer_client.h"

#include "absl/strings/str_cat.h"
#include "common/address.h"
#include "common/log.h"

namespace nichandover {
namespace daemon {

PeerClient::PeerClient(const v1::DaemonConfig& config, PeerAuth auth)
    : self_(config.node_id()), auth_(std::move(auth)) {
  for (const auto& peer : config.peers()) {
    auto addr = ParseAddress(peer.address());
    NH_CHECK(addr.ok()) << "config validation let through " << peer.address();
    grpc::ChannelArguments args;
    // Peers are few and long-lived; reconnect quickly after a restart so a
    // recovering node is heard from soon.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    auto channel = grpc::CreateCustomChannel(addr->GrpcUri(),
                                             grpc::InsecureChannelCredentials(), args);
    stubs_[peer.node_id()] = v1::PeerService::NewStub(channel);
  }
}

v1::PeerService::StubInterface* PeerClient::Stub(const std::string& node_id) {
  auto it = stubs_.find(node_id);
  return it == stubs_.end() ? nullptr : it->second.get();
}

std::unique_ptr<grpc::ClientContext> PeerClient::NewContext(absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  auth_.Decorate(context.get());
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

absl::StatusOr<v1::Node> PeerClient::Hello(const std::string& node_id, absl::Duration timeout) {
  auto* stub = Stub(node_id);
  if (stub == nullptr) {
    return absl::NotFoundError(absl::StrCat("node '", node_id, "' is not a configured peer"));
  }
  v1::HelloRequest request;
  request.set_node_id(self_);
  v1::HelloResponse response;
  auto context = NewContext(timeout);
  grpc::Status status = stub->Hello(context.get(), request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  std::vector<uint32_t> apics;
  for (const auto& cpu : response.node().cpus()) apics.push_back(cpu.apic_id());
  {
    std::lock_guard<std::mutex> lock(mu_);
    known_cpus_[node_id] = std::move(apics);
  }
  return response.node();
}

std::map<std::string, std::vector<uint32_t>> PeerClient::KnownCpus() const {
  std::lock_guard<std::mutex> lock(mu_);
  return known_cpus_;
}

absl::Status ToAbslStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace daemon
}  // namespace nichandover
