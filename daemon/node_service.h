// NodeService: the API nicctl and orchestration tools call.
#ifndef NICHANDOVER_DAEMON_NODE_SERVICE_H_
#define NICHANDOVER_DAEMON_NODE_SERVICE_H_

#include <atomic>
#include <memory>

#include "daemon/config.h"
#include "daemon/drain.h"
#include "daemon/engine/node_engine.h"
#include "daemon/peer_client.h"
#include "daemon/platform/platform.h"
#include "nichandover/v1/config.pb.h"
#include "nichandover/v1/node_service.grpc.pb.h"

namespace nichandover {
namespace daemon {

// Unary calls run on the gRPC server's threads (bounded by the server's
// resource quota, daemon/server.cc); WatchHandover streams use the callback
// API and hold no thread while they wait for a change.
class NodeServiceImpl final
    : public v1::NodeService::WithCallbackMethod_WatchHandover<v1::NodeService::Service> {
 public:
  // WatchHandover and WatchDrain streams open at once (WatchHandover holds
  // no thread; WatchDrain, one per drain, holds a server thread); beyond this
  // many a new one is RESOURCE_EXHAUSTED (docs/configuration.md, "Limits").
  static constexpr int kMaxWatchStreams = 128;

  NodeServiceImpl(const v1::DaemonConfig& config, PeerClient* peers,
                  platform::Platform* platform, engine::NodeEngine* engine);

  grpc::Status ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest* request,
                         v1::ListNodesResponse* response) override;
  grpc::Status ListNics(grpc::ServerContext* context, const v1::ListNicsRequest* request,
                        v1::ListNicsResponse* response) override;
  grpc::Status GetNic(grpc::ServerContext* context, const v1::GetNicRequest* request,
                      v1::Nic* response) override;
  grpc::Status CreateHandover(grpc::ServerContext* context,
                              const v1::CreateHandoverRequest* request,
                              v1::Handover* response) override;
  grpc::Status GetHandover(grpc::ServerContext* context, const v1::GetHandoverRequest* request,
                           v1::Handover* response) override;
  grpc::Status ListHandovers(grpc::ServerContext* context,
                             const v1::ListHandoversRequest* request,
                             v1::ListHandoversResponse* response) override;
  grpc::ServerWriteReactor<v1::HandoverEvent>* WatchHandover(
      grpc::CallbackServerContext* context, const v1::WatchHandoverRequest* request) override;
  grpc::Status CancelHandover(grpc::ServerContext* context,
                              const v1::CancelHandoverRequest* request,
                              v1::Handover* response) override;
  grpc::Status RecoverNic(grpc::ServerContext* context, const v1::RecoverNicRequest* request,
                          v1::RecoverNicResponse* response) override;
  grpc::Status QuiesceNic(grpc::ServerContext* context, const v1::QuiesceNicRequest* request,
                          v1::Nic* response) override;
  grpc::Status ResumeNic(grpc::ServerContext* context, const v1::ResumeNicRequest* request,
                         v1::Nic* response) override;
  grpc::Status DrainNode(grpc::ServerContext* context, const v1::DrainNodeRequest* request,
                         v1::Drain* response) override;
  grpc::Status GetDrain(grpc::ServerContext* context, const v1::GetDrainRequest* request,
                        v1::Drain* response) override;
  grpc::Status WatchDrain(grpc::ServerContext* context, const v1::WatchDrainRequest* request,
                          grpc::ServerWriter<v1::Drain>* writer) override;
  grpc::Status CancelDrain(grpc::ServerContext* context, const v1::CancelDrainRequest* request,
                           v1::Drain* response) override;

 private:

  // The BDF a user's NIC name stands for: a BDF in either form, a resource
  // name, or a netdev name on this node. INVALID_ARGUMENT / NOT_FOUND naming
  // `field`.
  absl::StatusOr<std::string> ResolveNic(const std::string& nic, const std::string& field);
  v1::Nic DescribeNic(const platform::NicInfo& info);
  // The NIC as GetNic describes it, after a maintenance call on `bdf`.
  grpc::Status DescribeAfter(const std::string& bdf,
                             const absl::StatusOr<v1::OwnershipRecord>& outcome,
                             v1::Nic* response);

  const v1::DaemonConfig& config_;
  PeerClient* peers_;
  platform::Platform* platform_;
  engine::NodeEngine* engine_;
  Timeouts timeouts_;
  std::atomic<int> watch_streams_{0};
  // Declared last: its threads use the members above until it is destroyed.
  std::unique_ptr<DrainManager> drains_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_NODE_SERVICE_H_
