#include "daemon/peer_service.h"

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/node_info.h"
#include "daemon/peer_client.h"
#include "daemon/protocol/handover_machine.h"

namespace nichandover {
namespace daemon {

PeerServiceImpl::PeerServiceImpl(const v1::DaemonConfig& config, const PeerAuth* auth,
                                 engine::NodeEngine* engine)
    : config_(config),
      auth_(auth),
      engine_(engine),
      answer_timeout_(EffectiveTimeouts(config).peer_call) {}

grpc::Status PeerServiceImpl::Hello(grpc::ServerContext* context,
                                    const v1::HelloRequest* request,
                                    v1::HelloResponse* response) {
  std::string caller;
  if (grpc::Status s = auth_->Verify(*context, &caller); !s.ok()) return s;
  if (request->node_id() != caller) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("node_id '", request->node_id(),
                                     "' differs from the caller's identity '", caller, "'"));
  }
  *response->mutable_node() = LocalNode(config_);
  return grpc::Status::OK;
}

template <typename Request, typename Response>
grpc::Status PeerServiceImpl::Forward(grpc::ServerContext* context, const Request& request,
                                      Response* response) {
  std::string caller;
  if (grpc::Status s = auth_->Verify(*context, &caller); !s.ok()) return s;
  // The caller's deadline bounds the wait; the machine answers at once or
  // after one platform call (an Offer reserves vectors).
  absl::Duration wait = answer_timeout_;
  auto deadline = absl::FromChrono(context->deadline());
  if (deadline < absl::InfiniteFuture()) wait = std::min(wait, deadline - absl::Now());
  auto answer = engine_->HandlePeerRequest(caller, protocol::PeerRequestBody(request), wait);
  if (!answer.ok()) return ToGrpcStatus(answer.status());
  auto* body = std::get_if<Response>(&*answer);
  if (body == nullptr) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "the machine answered with another type");
  }
  *response = std::move(*body);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::Offer(grpc::ServerContext* context, const v1::OfferRequest* request,
                                    v1::OfferResponse* response) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"handover_id", request->handover_id(), protocol::kMaxHandoverIdBytes},
           {"source_node", request->source_node(), protocol::kMaxNodeIdBytes},
           {"target_node", request->target_node(), protocol::kMaxNodeIdBytes},
           {"bdf", request->bdf(), protocol::kMaxNicBytes},
           {"driver", request->driver(), protocol::kMaxTextBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  return Forward(context, *request, response);
}

grpc::Status PeerServiceImpl::Commit(grpc::ServerContext* context,
                                     const v1::CommitRequest* request,
                                     v1::CommitResponse* response) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"handover_id", request->handover_id(), protocol::kMaxHandoverIdBytes},
           {"source_node", request->source_node(), protocol::kMaxNodeIdBytes},
           {"bdf", request->bdf(), protocol::kMaxNicBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  return Forward(context, *request, response);
}

grpc::Status PeerServiceImpl::Abort(grpc::ServerContext* context, const v1::AbortRequest* request,
                                    v1::AbortResponse* response) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"handover_id", request->handover_id(), protocol::kMaxHandoverIdBytes},
           {"reason", request->reason(), protocol::kMaxTextBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  return Forward(context, *request, response);
}

grpc::Status PeerServiceImpl::QueryHandover(grpc::ServerContext* context,
                                            const v1::QueryHandoverRequest* request,
                                            v1::QueryHandoverResponse* response) {
  if (absl::Status s = protocol::CheckFieldLengths(
          {{"handover_id", request->handover_id(), protocol::kMaxHandoverIdBytes},
           {"bdf", request->bdf(), protocol::kMaxNicBytes}});
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  return Forward(context, *request, response);
}

}  // namespace daemon
}  // namespace nichandover
