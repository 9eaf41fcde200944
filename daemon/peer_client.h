// Channels and stubs to the other nodes' PeerService, one per configured peer.
#ifndef NICHANDOVER_DAEMON_PEER_CLIENT_H_
#define NICHANDOVER_DAEMON_PEER_CLIENT_H_

#include <map>
#include <memory>
#include <mutex>
#include <vector>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/peer_auth.h"
#include "nichandover/v1/config.pb.h"
#include "nichandover/v1/peer_service.grpc.pb.h"

namespace nichandover {
namespace daemon {

class PeerClient {
 public:
  PeerClient(const v1::DaemonConfig& config, PeerAuth auth);

  // nullptr for a node that is not a configured peer.
  v1::PeerService::StubInterface* Stub(const std::string& node_id);

  // A context for a call to a peer: identity, secret and deadline set.
  std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) const;

  // PeerService.Hello: the peer's self-description (its CPUs are remembered).
  absl::StatusOr<v1::Node> Hello(const std::string& node_id, absl::Duration timeout);

  // The APIC IDs of each peer as its last successful Hello described them.
  std::map<std::string, std::vector<uint32_t>> KnownCpus() const;

 private:
  std::string self_;
  PeerAuth auth_;
  absl::flat_hash_map<std::string, std::unique_ptr<v1::PeerService::Stub>> stubs_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<uint32_t>> known_cpus_;
};

// grpc::Status → absl::Status, keeping code and message.
absl::Status ToAbslStatus(const grpc::Status& status);
// absl::Status → grpc::Status, keeping code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PEER_CLIENT_H_
