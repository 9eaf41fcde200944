// platform::Router over the nichandover_hook kernel module. Since Linux 5.12
// user space may not map a BAR a driver owns, so the MSI-X table is read
// (READ_MSI) and written (REROUTE, raw mode: mask -> write -> read back ->
// compare) by the module, through the driver's own mapping.
//
// Messages are exchanged in vector order: the i-th message belongs to the
// i-th vector the module lists (ascending MSI-X entry index), which is the
// order ReadMessages returns and Reroute expects.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_ROUTER_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_ROUTER_H_

#include <string>
#include <vector>

#include "daemon/platform/linux/module_connection.h"
#include "daemon/platform/platform.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

class LinuxRouter : public Router {
 public:
  explicit LinuxRouter(ModuleConnection module) : module_(std::move(module)) {}

  absl::StatusOr<std::vector<v1::MsiMessage>> ReadMessages(const std::string& bdf) override;
  // Raw mode. INVALID_ARGUMENT unless there is exactly one message per
  // vector; FAILED_PRECONDITION (from the module) with interrupt remapping
  // on, or for plain MSI, whose messages live in config space and move with
  // the affinity mode only.
  absl::StatusOr<std::vector<v1::MsiMessage>> Reroute(
      const std::string& bdf, const Fence& fence,
      const std::vector<v1::MsiMessage>& target) override;
  absl::Status Restore(const std::string& bdf, const Fence& fence,
                       const std::vector<v1::MsiMessage>& previous) override;
  // RESERVE: the contract driver installs handlers for MSI-X entries
  // 0..count-1 on this node and returns the messages that reach them.
  // RESOURCE_EXHAUSTED when the node has too few free vectors,
  // FAILED_PRECONDITION for a device the module holds in cold mode (no driver
  // contract: its driver cannot take interrupts for a device another kernel
  // runs) or one this node runs.
  absl::StatusOr<std::vector<v1::MsiMessage>> ReserveTargetMessages(const std::string& bdf,
                                                                    const Fence& fence,
                                                                    uint32_t count) override;
  // UNRESERVE; OK when nothing is reserved.
  absl::Status ReleaseReservation(const std::string& bdf, const Fence& fence) override;

 private:
  // Writes `messages` raw and returns what they replaced, in vector order.
  // With `unchanged_is_done`, a table that holds `messages` already is left
  // alone (no request, so none the device's state could refuse).
  absl::StatusOr<std::vector<v1::MsiMessage>> WriteRaw(const std::string& bdf, const Fence& fence,
                                                       const std::vector<v1::MsiMessage>& messages,
                                                       absl::string_view op,
                                                       bool unchanged_is_done = false);

  ModuleConnection module_;
};

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_LINUX_ROUTER_H_
