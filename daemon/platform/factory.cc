#include "daemon/platform/factory.h"

#include "absl/strings/str_cat.h"
#include "daemon/platform/fake/fake_platform.h"

namespace nichandover {
namespace platform {

absl::StatusOr<Platform> MakePlatform(const v1::DaemonConfig& config) {
  const auto& p = config.platform();
  switch (p.backend_case()) {
    case v1::PlatformConfig::kFake:
      return fake::MakeFakePlatform(p.fake().state_path(), config.node_id());
    case v1::PlatformConfig::kSim:
    case v1::PlatformConfig::kLinux:
    case v1::PlatformConfig::kVm:
      return absl::FailedPreconditionError(absl::StrCat(
          "platform '", p.kSim == p.backend_case() ? "sim" : p.kLinux == p.backend_case() ? "linux" : "vm",
          "' is not available in this build of nichandoverd"));
    case v1::PlatformConfig::BACKEND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("platform: no backend selected");
}

}  // namespace platform
}  // namespace nichandover
