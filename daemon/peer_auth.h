// How daemons recognise each other on PeerService calls.
//
// Every call carries the caller's node id and the cluster's shared secret
// (config peer_auth.secret_file, required whenever a node has peers) in
// metadata. The callee accepts only node ids from its own peer list with the
// right secret (compared in constant time). See docs/configuration.md.
#ifndef NICHANDOVER_DAEMON_PEER_AUTH_H_
#define NICHANDOVER_DAEMON_PEER_AUTH_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "nichandover/v1/config.pb.h"

namespace nichandover {
namespace daemon {

inline constexpr char kNodeIdMetadata[] = "x-nichandover-node";
inline constexpr char kSecretMetadata[] = "x-nichandover-secret";

class PeerAuth {
 public:
  // Reads the secret file named in the config, if any.
  static absl::StatusOr<PeerAuth> FromConfig(const v1::DaemonConfig& config);

  // Adds this node's identity (and the secret) to an outgoing call.
  void Decorate(grpc::ClientContext* context) const;

  // OK with the caller's node id, or UNAUTHENTICATED / PERMISSION_DENIED.
  grpc::Status Verify(const grpc::ServerContext& context, std::string* caller) const;

 private:
  std::string self_;
  std::string secret_;
  absl::flat_hash_set<std::string> peers_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PEER_AUTH_H_
