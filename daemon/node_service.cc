#include "daemon/node_service.h"

#include <future>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/node_info.h"

namespace nichandover {
namespace daemon {

NodeServiceImpl::NodeServiceImpl(const v1::DaemonConfig& config, PeerClient* peers)
    : config_(config), peers_(peers), timeouts_(EffectiveTimeouts(config)) {}

grpc::Status NodeServiceImpl::ListNodes(grpc::ServerContext* context,
                                        const v1::ListNodesRequest* request,
                                        v1::ListNodesResponse* response) {
  *response->add_nodes() = LocalNode(config_);
  // Probe all peers at once so one dead peer costs one timeout, not N.
  absl::Duration timeout = std::min(timeouts_.peer_call, absl::Seconds(1));
  std::vector<std::future<absl::StatusOr<v1::Node>>> probes;
  if (!request->skip_probe()) {
    for (const auto& peer : config_.peers()) {
      probes.push_back(std::async(std::launch::async, [this, id = peer.node_id(), timeout] {
        return peers_->Hello(id, timeout);
      }));
    }
  }
  for (int i = 0; i < config_.peers_size(); ++i) {
    const auto& peer = config_.peers(i);
    v1::Node* node = response->add_nodes();
    if (!request->skip_probe()) {
      absl::StatusOr<v1::Node> hello = probes[i].get();
      if (hello.ok()) {
        *node = *hello;
        if (node->node_id() != peer.node_id()) {
          node->set_state(v1::NODE_STATE_UNREACHABLE);
          node->set_state_detail(absl::StrCat("the daemon at ", peer.address(),
                                              " says it is node '", hello->node_id(), "'"));
        } else {
          node->set_state(v1::NODE_STATE_REACHABLE);
        }
      } else {
        node->set_state(v1::NODE_STATE_UNREACHABLE);
        node->set_state_detail(std::string(hello.status().message()));
      }
    }
    node->set_name(absl::StrCat("nodes/", peer.node_id()));
    node->set_node_id(peer.node_id());
    node->set_local(false);
    node->set_address(peer.address());
  }
  (void)context;
  return grpc::Status::OK;
}

}  // namespace daemon
}  // namespace nichandover
