// PeerService: the handover protocol's node-to-node messages.
#ifndef NICHANDOVER_DAEMON_PEER_SERVICE_H_
#define NICHANDOVER_DAEMON_PEER_SERVICE_H_

#include "absl/time/time.h"
#include "daemon/engine/node_engine.h"
#include "daemon/peer_auth.h"
#include "nichandover/v1/config.pb.h"
#include "nichandover/v1/peer_service.grpc.pb.h"

namespace nichandover {
namespace daemon {

class PeerServiceImpl final : public v1::PeerService::Service {
 public:
  PeerServiceImpl(const v1::DaemonConfig& config, const PeerAuth* auth,
                  engine::NodeEngine* engine);

  grpc::Status Hello(grpc::ServerContext* context, const v1::HelloRequest* request,
                     v1::HelloResponse* response) override;
  grpc::Status Offer(grpc::ServerContext* context, const v1::OfferRequest* request,
                     v1::OfferResponse* response) override;
  grpc::Status Commit(grpc::ServerContext* context, const v1::CommitRequest* request,
                      v1::CommitResponse* response) override;
  grpc::Status Abort(grpc::ServerContext* context, const v1::AbortRequest* request,
                     v1::AbortResponse* response) override;
  grpc::Status QueryHandover(grpc::ServerContext* context,
                             const v1::QueryHandoverRequest* request,
                             v1::QueryHandoverResponse* response) override;

 private:
  // Authenticates, hands the request to the engine, unpacks the answer.
  template <typename Request, typename Response>
  grpc::Status Forward(grpc::ServerContext* context, const Request& request,
                       Response* response);

  const v1::DaemonConfig& config_;
  const PeerAuth* auth_;
  engine::NodeEngine* engine_;
  absl::Duration answer_timeout_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PEER_SERVICE_H_
