#include "daemon/grpc_peer_transport.h"

#include <memory>

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace daemon {
namespace {

// One unary call on gRPC's callback API: no thread waits for the answer.
// The call's state lives until gRPC reports its end.
template <typename Request, typename Response, typename Method>
void Call(v1::PeerService::StubInterface* stub, std::unique_ptr<grpc::ClientContext> ctx,
          Method method, const Request& request, engine::PeerTransport::Callback done) {
  struct State {
    std::unique_ptr<grpc::ClientContext> ctx;
    Request request;
    Response response;
    engine::PeerTransport::Callback done;
  };
  auto state = std::make_shared<State>();
  state->ctx = std::move(ctx);
  state->request = request;
  state->done = std::move(done);
  (stub->async()->*method)(state->ctx.get(), &state->request, &state->response,
                           [state](grpc::Status status) {
                             if (!status.ok()) {
                               state->done(ToAbslStatus(status));
                             } else {
                               state->done(protocol::PeerResponseBody(std::move(state->response)));
                             }
                           });
}

}  // namespace

void GrpcPeerTransport::Send(const std::string& to_node, const protocol::PeerRequestBody& body,
                             absl::Duration deadline, Callback done) {
  v1::PeerService::StubInterface* stub = peers_->Stub(to_node);
  if (stub == nullptr) {
    done(absl::NotFoundError(absl::StrCat("node '", to_node, "' is not a configured peer")));
    return;
  }
  std::unique_ptr<grpc::ClientContext> ctx = peers_->NewContext(deadline);
  using A = v1::PeerService::StubInterface::async_interface;
  using Done = std::function<void(grpc::Status)>;
  using OfferMethod = void (A::*)(grpc::ClientContext*, const v1::OfferRequest*,
                                  v1::OfferResponse*, Done);
  using CommitMethod = void (A::*)(grpc::ClientContext*, const v1::CommitRequest*,
                                   v1::CommitResponse*, Done);
  using AbortMethod = void (A::*)(grpc::ClientContext*, const v1::AbortRequest*,
                                  v1::AbortResponse*, Done);
  using QueryMethod = void (A::*)(grpc::ClientContext*, const v1::QueryHandoverRequest*,
                                  v1::QueryHandoverResponse*, Done);
  if (auto* r = std::get_if<v1::OfferRequest>(&body)) {
    Call<v1::OfferRequest, v1::OfferResponse>(stub, std::move(ctx), OfferMethod(&A::Offer), *r,
                                              std::move(done));
  } else if (auto* r = std::get_if<v1::CommitRequest>(&body)) {
    Call<v1::CommitRequest, v1::CommitResponse>(stub, std::move(ctx), CommitMethod(&A::Commit),
                                                *r, std::move(done));
  } else if (auto* r = std::get_if<v1::AbortRequest>(&body)) {
    Call<v1::AbortRequest, v1::AbortResponse>(stub, std::move(ctx), AbortMethod(&A::Abort), *r,
                                              std::move(done));
  } else if (auto* r = std::get_if<v1::QueryHandoverRequest>(&body)) {
    Call<v1::QueryHandoverRequest, v1::QueryHandoverResponse>(
        stub, std::move(ctx), QueryMethod(&A::QueryHandover), *r, std::move(done));
  } else {
    done(absl::InternalError("a peer message of no known kind"));
  }
}

}  // namespace daemon
}  // namespace nichandover
