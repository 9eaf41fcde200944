#include "daemon/peer_service.h"

#include "absl/strings/str_cat.h"
#include "daemon/node_info.h"

namespace nichandover {
namespace daemon {

PeerServiceImpl::PeerServiceImpl(const v1::DaemonConfig& config, const PeerAuth* auth)
    : config_(config), auth_(auth) {}

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

}  // namespace daemon
}  // namespace nichandover
