// platform::Hook over the nichandover_hook kernel module (hook/kmod): each
// call is one generic netlink request carrying the epoch; the module fences
// stale epochs (ESTALE -> FAILED_PRECONDITION) and answers with the
// function's state and counters, which are checked here against what the
// operation promises.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_HOOK_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_HOOK_H_

#include <string>
#include <vector>

#include "daemon/platform/linux/module_connection.h"
#include "daemon/platform/platform.h"
#include "hook/client/hook_client.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

// The platform's view of the module's state: GATED (the drain missed its
// deadline, gates still closed) counts as quiesced, since only Resume brings
// it back; RELEASED and STANDBY (a contract driver waiting while another
// node owns the device) are detached.
absl::StatusOr<HookState> ToHookState(hook::DeviceState state);

class LinuxHook : public Hook {
 public:
  explicit LinuxHook(ModuleConnection module) : module_(std::move(module)) {}

  // Fails with INTERNAL, leaving the device quiesced, if the module counted
  // an ndo_start_xmit or a NAPI poll after its gate closed: a leaking gate
  // must stop the handover. `rings` is the contract driver's ring state
  // (empty in cold mode: the target's driver sets its rings up anew).
  absl::StatusOr<QuiesceResult> Quiesce(const std::string& bdf, const Fence& fence,
                                        absl::Duration timeout) override;
  absl::Status Resume(const std::string& bdf, const Fence& fence) override;
  // `rings` is sent as the module's NH_ATTR_RINGS (when there are any): a
  // contract driver resumes where the source's stopped; the module refuses
  // rings for a cold-mode device (INVALID_ARGUMENT).
  absl::Status Attach(const std::string& bdf, const Fence& fence,
                      const std::vector<v1::QueueRingState>& rings) override;
  absl::Status Release(const std::string& bdf, const Fence& fence) override;
  absl::StatusOr<HookStatus> Status(const std::string& bdf) override;

 private:
  ModuleConnection module_;
};

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_HOOK_H_
