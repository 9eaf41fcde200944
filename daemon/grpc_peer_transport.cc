#include "daemon/grpc_peer_transport.h"

#include <thread>

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace daemon {
namespace {

// One blocking unary call; the callers run it on a thread of its own.
template <typename Request, typename Response, typename Method>
absl::StatusOr<protocol::PeerResponseBody> Call(v1::PeerService::StubInterface* stub,
                                                grpc::ClientContext* ctx, Method method,
                                                const Request& request) {
  Response response;
  grpc::Status status = (stub->*method)(ctx, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return protocol::PeerResponseBody(std::move(response));
}

}  // namespace

void GrpcPeerTransport::Send(const std::string& to_node, const protocol::PeerRequestBody& body,
                             absl::Duration deadline, Callback done) {
  v1::PeerService::StubInterface* stub = peers_->Stub(to_node);
  if (stub == nullptr) {
    done(absl::NotFoundError(absl::StrCat("node '", to_node, "' is not a configured peer")));
    return;
  }
  std::shared_ptr<grpc::ClientContext> ctx = peers_->NewContext(deadline);
  // Peer messages are rare (a few per handover); a thread each keeps the
  // transport simple and never blocks the protocol thread.
  std::thread([stub, ctx, body, done = std::move(done)] {
    using S = v1::PeerService::StubInterface;
    absl::StatusOr<protocol::PeerResponseBody> answer;
    if (auto* r = std::get_if<v1::OfferRequest>(&body)) {
      answer = Call<v1::OfferRequest, v1::OfferResponse>(stub, ctx.get(), &S::Offer, *r);
    } else if (auto* r = std::get_if<v1::CommitRequest>(&body)) {
      answer = Call<v1::CommitRequest, v1::CommitResponse>(stub, ctx.get(), &S::Commit, *r);
    } else if (auto* r = std::get_if<v1::AbortRequest>(&body)) {
      answer = Call<v1::AbortRequest, v1::AbortResponse>(stub, ctx.get(), &S::Abort, *r);
    } else if (auto* r = std::get_if<v1::QueryHandoverRequest>(&body)) {
      answer = Call<v1::QueryHandoverRequest, v1::QueryHandoverResponse>(stub, ctx.get(),
                                                                         &S::QueryHandover, *r);
    }
    done(std::move(answer));
  }).detach();
}

}  // namespace daemon
}  // namespace nichandover
