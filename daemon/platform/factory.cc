#include "daemon/platform/factory.h"

#include "absl/strings/str_cat.h"
#include "daemon/platform/fake/fake_platform.h"
#include "daemon/platform/linux/linux_arbiter.h"
#include "daemon/platform/linux/linux_platform.h"
#include "daemon/platform/sim/sim_platform.h"
#include "daemon/platform/vm/vm_platform.h"

namespace nichandover {
namespace platform {

absl::StatusOr<Platform> MakePlatform(const v1::DaemonConfig& config) {
  const auto& p = config.platform();
  switch (p.backend_case()) {
    case v1::PlatformConfig::kFake:
      return fake::MakeFakePlatform(p.fake().state_path(), config.node_id());
    case v1::PlatformConfig::kLinux: {
      auto arbiter = linux_backend::OpenLinuxArbiter(p.linux(), config);
      if (!arbiter.ok()) return arbiter.status();
      return linux_backend::MakeLinuxPlatform(p.linux(), config, *std::move(arbiter));
    }
    case v1::PlatformConfig::kSim:
      return sim::MakeSimPlatform(p.sim(), config);
    case v1::PlatformConfig::kVm:
      return vm::MakeVmPlatform(p.vm(), config);
    case v1::PlatformConfig::BACKEND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("platform: no backend selected");
}

}  // namespace platform
}  // namespace nichandover
