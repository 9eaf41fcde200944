// The local node's self-description, shared by NodeService.ListNodes and
// PeerService.Hello.
#ifndef NICHANDOVER_DAEMON_NODE_INFO_H_
#define NICHANDOVER_DAEMON_NODE_INFO_H_

#include "nichandover/v1/config.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace daemon {

v1::Node LocalNode(const v1::DaemonConfig& config);

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_NODE_INFO_H_
