// PeerService: the handover protocol's node-to-node messages.
#ifndef NICHANDOVER_DAEMON_PEER_SERVICE_H_
#define NICHANDOVER_DAEMON_PEER_SERVICE_H_

#include "daemon/peer_auth.h"
#include "nichandover/v1/config.pb.h"
#include "nichandover/v1/peer_service.grpc.pb.h"

namespace nichandover {
namespace daemon {

class PeerServiceImpl final : public v1::PeerService::Service {
 public:
  PeerServiceImpl(const v1::DaemonConfig& config, const PeerAuth* auth);

  grpc::Status Hello(grpc::ServerContext* context, const v1::HelloRequest* request,
                     v1::HelloResponse* response) override;

 private:
  const v1::DaemonConfig& config_;
  const PeerAuth* auth_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PEER_SERVICE_H_
