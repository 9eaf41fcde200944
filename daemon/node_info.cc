#include "daemon/node_info.h"

#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "daemon/config.h"

namespace nichandover {
namespace daemon {

v1::Node LocalNode(const v1::DaemonConfig& config) {
  v1::Node node;
  node.set_name(absl::StrCat("nodes/", config.node_id()));
  node.set_node_id(config.node_id());
  for (const auto& cpu : config.cpus()) {
    auto* out = node.add_cpus();
    out->set_cpu(cpu.cpu());
    out->set_apic_id(cpu.apic_id());
  }
  node.set_platform(PlatformName(config));
  node.set_local(true);
  node.set_state(v1::NODE_STATE_REACHABLE);
  node.set_version(kVersion);
  return node;
}

}  // namespace daemon
}  // namespace nichandover
