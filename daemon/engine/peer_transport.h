// How the engine sends protocol messages to other nodes. The daemon's
// implementation makes PeerService gRPC calls; tests may connect engines
// in-process.
#ifndef NICHANDOVER_DAEMON_ENGINE_PEER_TRANSPORT_H_
#define NICHANDOVER_DAEMON_ENGINE_PEER_TRANSPORT_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/protocol/events.h"

namespace nichandover {
namespace engine {

class PeerTransport {
 public:
  using Callback = std::function<void(absl::StatusOr<protocol::PeerResponseBody>)>;
  virtual ~PeerTransport() = default;
  // Sends `body` to `to_node` and calls `done` exactly once, from any thread,
  // with the answer or the transport error (UNAVAILABLE, DEADLINE_EXCEEDED
  // after `deadline`). Must not block on the answer.
  virtual void Send(const std::string& to_node, const protocol::PeerRequestBody& body,
                    absl::Duration deadline, Callback done) = 0;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_PEER_TRANSPORT_H_
