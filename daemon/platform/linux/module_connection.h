// How the Linux backend reaches the nichandover_hook kernel module: a fresh
// generic netlink socket (and HookClient) per operation. HookClient is not
// thread-safe and a QUIESCE blocks in the kernel for up to its timeout;
// separate sockets let the daemon ask for STATUS or READ_MSI meanwhile
// without a lock, and cost a socket and a family lookup per call, which is
// nothing next to a quiesce.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_MODULE_CONNECTION_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_MODULE_CONNECTION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/platform/platform.h"
#include "hook/client/hook_client.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

// Opens one connection to the module; hook::OpenGenericNetlink on a node,
// a fake module in tests.
using TransportFactory = std::function<absl::StatusOr<std::unique_ptr<hook::Transport>>()>;

class ModuleConnection {
 public:
  explicit ModuleConnection(TransportFactory open) : open_(std::move(open)) {}

  absl::StatusOr<hook::HookClient> Connect() const;

 private:
  TransportFactory open_;
};

// "0000:03:00.0" for "03:00.0" or "0000:03:00.0": the one form the module
// parses and sysfs names. INVALID_ARGUMENT for anything else.
absl::StatusOr<std::string> CanonicalBdf(const std::string& bdf);

// The function's MSI/MSI-X vectors as the module reads them from the device,
// in ascending entry index (the order of the platform's message lists).
absl::StatusOr<std::vector<hook::MsiVector>> ReadVectorsInOrder(hook::HookClient& client,
                                                                const std::string& bdf);

// A refusal of a fenced call, explained: FAILED_PRECONDITION naming the
// call's fence and the highest the module accepted for the device (read
// back with STATUS). Other statuses pass through unchanged.
absl::Status ExplainRefusal(hook::HookClient& client, const std::string& dev, const Fence& fence,
                            absl::string_view op, const absl::Status& status);

// `result`, with a refusal explained as above.
template <typename T>
absl::StatusOr<T> Explained(hook::HookClient& client, const std::string& dev, const Fence& fence,
                            absl::string_view op, absl::StatusOr<T> result) {
  if (result.ok()) return result;
  return ExplainRefusal(client, dev, fence, op, result.status());
}

// The module's rule, for a call the daemon answers without the module (a
// Restore of a table that already holds its messages): FAILED_PRECONDITION,
// as ExplainRefusal words it, when `fence` is below the module's highest.
absl::Status CheckModuleFence(hook::HookClient& client, const std::string& dev, const Fence& fence,
                              absl::string_view op);

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_MODULE_CONNECTION_H_
