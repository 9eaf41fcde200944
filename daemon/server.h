// nichandoverd's gRPC servers: NodeService for operators on every `listen`
// address, PeerService for the other nodes' daemons on every `peer_listen`
// address, each with the standard health service and server reflection.
#ifndef NICHANDOVER_DAEMON_SERVER_H_
#define NICHANDOVER_DAEMON_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/engine/node_engine.h"
#include "daemon/grpc_peer_transport.h"
#include "daemon/journal/file_journal.h"
#include "daemon/metrics.h"
#include "daemon/metrics_server.h"
#include "daemon/node_service.h"
#include "daemon/platform/platform.h"
#include "daemon/peer_auth.h"
#include "daemon/peer_client.h"
#include "daemon/peer_service.h"
#include "grpcpp/grpcpp.h"
#include "nichandover/v1/config.pb.h"

namespace nichandover {
namespace daemon {

class Daemon {
 public:
  // The gRPC server's limits (docs/configuration.md, "Limits").
  static constexpr int kMaxServerThreads = 64;
  static constexpr int kMaxStreamsPerConnection = 256;
  static constexpr absl::Duration kMaxConnectionIdle = absl::Minutes(10);

  // Opens the journal (state_dir/journal), builds the platform backend,
  // recovers the handover engine, then binds every listen and peer_listen
  // address (removing a stale unix socket left by a crashed daemon, refusing
  // one a live daemon serves; operator sockets mode 0660 with the operator
  // group, or 0600; peer sockets 0600) and starts serving.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(v1::DaemonConfig config);
  // The same over a platform the caller built (tests: a backend over
  // stand-ins, such as the linux backend over a fake hook module).
  static absl::StatusOr<std::unique_ptr<Daemon>> StartWithPlatform(v1::DaemonConfig config,
                                                                   platform::Platform platform);

  ~Daemon();

  // The addresses actually served (TCP port 0 resolved to the chosen port):
  // the operators' (NodeService) and the peers' (PeerService).
  const std::vector<std::string>& serving_addresses() const { return serving_; }
  const std::vector<std::string>& peer_addresses() const { return peer_serving_; }
  // Where metrics are served ("" when metrics_listen is not set).
  std::string metrics_address() const {
    return metrics_server_ ? metrics_server_->address() : "";
  }

  // Stops accepting calls, lets running ones finish within `grace`, then
  // cancels them; removes the unix sockets it created.
  void Shutdown(absl::Duration grace);

 private:
  Daemon() = default;
  // The nichandover_nics gauge's reader: inventory, records, maintenance holds.
  absl::Status ReadNicStates(std::vector<NicMetricState>* out);

  v1::DaemonConfig config_;
  std::unique_ptr<PeerAuth> auth_;
  std::unique_ptr<PeerClient> peers_;
  std::unique_ptr<platform::Platform> platform_;
  std::unique_ptr<journal::FileJournal> journal_;
  std::shared_ptr<Metrics> metrics_;
  std::unique_ptr<GrpcPeerTransport> transport_;
  std::unique_ptr<engine::NodeEngine> engine_;
  std::unique_ptr<NodeServiceImpl> node_service_;
  std::unique_ptr<PeerServiceImpl> peer_service_;
  std::unique_ptr<grpc::Server> server_;       // operators: NodeService
  std::unique_ptr<grpc::Server> peer_server_;  // peers: PeerService (none without peer_listen)
  std::unique_ptr<MetricsServer> metrics_server_;
  std::vector<std::string> serving_;
  std::vector<std::string> peer_serving_;
  std::vector<std::string> unix_paths_;
  bool shut_down_ = false;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_SERVER_H_
