// Builds the platform backend a daemon's config selects.
#ifndef NICHANDOVER_DAEMON_PLATFORM_FACTORY_H_
#define NICHANDOVER_DAEMON_PLATFORM_FACTORY_H_

#include "absl/status/statusor.h"
#include "daemon/platform/platform.h"
#include "nichandover/v1/config.pb.h"

namespace nichandover {
namespace platform {

// FAILED_PRECONDITION naming the backend when this build cannot run it.
absl::StatusOr<Platform> MakePlatform(const v1::DaemonConfig& config);

}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_FACTORY_H_
