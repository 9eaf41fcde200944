#include "tests/testing/node_client.h"

#include "grpcpp/grpcpp.h"

namespace nichandover {
namespace testing {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  return s.ok() ? absl::OkStatus()
                : absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

void SetDeadline(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

std::unique_ptr<v1::NodeService::Stub> NodeServiceStub(const std::string& address) {
  return v1::NodeService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

absl::StatusOr<v1::Handover> StartHandover(const std::string& address, const std::string& nic,
                                           const std::string& target,
                                           const std::string& request_id,
                                           absl::Duration rpc_timeout) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, rpc_timeout);
  v1::CreateHandoverRequest request;
  request.set_request_id(request_id);
  request.set_nic(nic);
  request.set_target_node(target);
  v1::Handover handover;
  grpc::Status s = NodeServiceStub(address)->CreateHandover(&ctx, request, &handover);
  if (!s.ok()) return FromGrpc(s);
  return handover;
}

absl::StatusOr<v1::Handover> GetHandover(const std::string& address,
                                         const std::string& handover_id,
                                         absl::Duration rpc_timeout) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, rpc_timeout);
  v1::GetHandoverRequest request;
  request.set_handover_id(handover_id);
  v1::Handover handover;
  grpc::Status s = NodeServiceStub(address)->GetHandover(&ctx, request, &handover);
  if (!s.ok()) return FromGrpc(s);
  return handover;
}

absl::StatusOr<bool> AnyHandoverLive(const std::string& address, absl::Duration rpc_timeout) {
  auto stub = NodeServiceStub(address);
  v1::ListHandoversRequest request;
  request.set_page_size(1000);
  do {
    grpc::ClientContext ctx;
    SetDeadline(ctx, rpc_timeout);
    v1::ListHandoversResponse page;
    grpc::Status s = stub->ListHandovers(&ctx, request, &page);
    if (!s.ok()) return FromGrpc(s);
    for (const auto& h : page.handovers()) {
      if (!h.done()) return true;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return false;
}

}  // namespace testing
}  // namespace nichandover
