// NodeService: the API nicctl and orchestration tools call.
#ifndef NICHANDOVER_DAEMON_NODE_SERVICE_H_
#define NICHANDOVER_DAEMON_NODE_SERVICE_H_

#include "daemon/config.h"
#include "daemon/peer_client.h"
#include "nichandover/v1/config.pb.h"
#include "nichandover/v1/node_service.grpc.pb.h"

namespace nichandover {
namespace daemon {

class NodeServiceImpl final : public v1::NodeService::Service {
 public:
  NodeServiceImpl(const v1::DaemonConfig& config, PeerClient* peers);

  grpc::Status ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest* request,
                         v1::ListNodesResponse* response) override;

 private:
  const v1::DaemonConfig& config_;
  PeerClient* peers_;
  Timeouts timeouts_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_NODE_SERVICE_H_
