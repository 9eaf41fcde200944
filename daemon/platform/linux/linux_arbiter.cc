#include "daemon/platform/linux/linux_arbiter.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/platform/shared_file/shared_file_arbiter.h"
#include "daemon/platform/sim/machine_arbiter.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

absl::Status Named(const absl::Status& status, absl::string_view field) {
  return absl::Status(status.code(),
                      absl::StrCat("platform.linux.", field, ": ", status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Arbiter>> OpenLinuxArbiter(const v1::LinuxPlatformConfig& config,
                                                          const v1::DaemonConfig& daemon) {
  const bool file = !config.arbiter_file().empty();
  const bool machine = !config.machine_memory().empty();
  if (file == machine) {
    return absl::InvalidArgumentError(
        "linux platform: exactly one of platform.linux.arbiter_file and "
        "platform.linux.machine_memory names where the ownership records live");
  }
  if (file) {
    auto arbiter = SharedFileArbiter::Open(config.arbiter_file());
    if (!arbiter.ok()) return Named(arbiter.status(), "arbiter_file");
    return std::unique_ptr<Arbiter>(*std::move(arbiter));
  }
  auto memory = sim::AttachMachineMemory(config.machine_memory());
  if (!memory.ok()) return Named(memory.status(), "machine_memory");
  // A node the machine does not know could never win a CAS: say so now.
  if (auto index = (*memory)->NodeIndex(daemon.node_id()); !index.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("platform.linux.machine_memory: the machine at ", config.machine_memory(),
                     " has no node \"", daemon.node_id(), "\" (", index.status().message(), ")"));
  }
  NH_LOG(INFO) << "ownership records of " << (*memory)->bdf() << " in the simulated machine's memory at "
               << config.machine_memory();
  return sim::MakeMachineArbiter(std::shared_ptr<::nichandover::sim::Machine>(*std::move(memory)),
                                 daemon.node_id());
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
