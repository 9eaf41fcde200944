#include "daemon/platform/vm/vm_platform.h"

#include "absl/strings/str_cat.h"
#include "common/address.h"
#include "common/log.h"
#include "daemon/platform/linux/linux_hook.h"
#include "daemon/platform/linux/linux_router.h"
#include "daemon/platform/vm/agent_client.h"
#include "daemon/platform/vm/vm_hook.h"
#include "daemon/platform/vm/vm_inventory.h"
#include "daemon/platform/vm/vm_router.h"
#include "grpcpp/grpcpp.h"
#include "hook/client/hook_client.h"

namespace nichandover {
namespace platform {
namespace vm {

absl::StatusOr<Platform> MakeVmPlatformWith(const VmMachineAccess& access,
                                            const v1::VmPlatformConfig& config,
                                            const v1::DaemonConfig& daemon) {
  if (config.vm_name().empty()) {
    return absl::InvalidArgumentError("vm platform: vm_name is required (the agent's name of this VM)");
  }
  if (access.agent == nullptr) return absl::InvalidArgumentError("vm platform: no agent stub");
  if (!access.linux.open_module) return absl::InvalidArgumentError("vm platform: no module transport");
  auto agent = std::make_shared<AgentClient>(access.agent, config.vm_name());
  linux_backend::ModuleConnection module(access.linux.open_module);
  GuestView guest(access.linux.sysfs_root);
  NH_LOG(INFO) << "vm platform for node " << daemon.node_id() << ": VM " << config.vm_name()
               << ", host agent at " << config.agent_address();
  Platform platform;
  platform.name = "vm";
  platform.inventory = std::make_unique<VmInventory>(agent, access.linux);
  platform.hook = std::make_unique<VmHook>(std::make_unique<linux_backend::LinuxHook>(module),
                                           agent, guest, access.probe_wait);
  platform.router = std::make_unique<VmRouter>(
      std::make_unique<linux_backend::LinuxRouter>(module), agent, guest);
  platform.arbiter = std::make_unique<AgentArbiter>(agent);
  return platform;
}

absl::StatusOr<Platform> MakeVmPlatform(const v1::VmPlatformConfig& config,
                                        const v1::DaemonConfig& daemon) {
  auto address = ParseAddress(config.agent_address());
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("vm platform: agent_address: ", address.status().message()));
  }
  VmMachineAccess access;
  access.linux.open_module = hook::OpenGenericNetlink;
  access.agent = vmhost::VmAgent::NewStub(
      grpc::CreateChannel(address->GrpcUri(), grpc::InsecureChannelCredentials()));
  return MakeVmPlatformWith(access, config, daemon);
}

}  // namespace vm
}  // namespace platform
}  // namespace nichandover
