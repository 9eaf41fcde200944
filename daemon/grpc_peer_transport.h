// PeerTransport over PeerService gRPC calls.
#ifndef NICHANDOVER_DAEMON_GRPC_PEER_TRANSPORT_H_
#define NICHANDOVER_DAEMON_GRPC_PEER_TRANSPORT_H_

#include "daemon/engine/peer_transport.h"
#include "daemon/peer_client.h"

namespace nichandover {
namespace daemon {

class GrpcPeerTransport final : public engine::PeerTransport {
 public:
  explicit GrpcPeerTransport(PeerClient* peers) : peers_(peers) {}
  void Send(const std::string& to_node, const protocol::PeerRequestBody& body,
            absl::Duration deadline, Callback done) override;

 private:
  PeerClient* peers_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_GRPC_PEER_TRANSPORT_H_
