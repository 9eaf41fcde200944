#include "daemon/platform/linux/module_connection.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "pci/bdf.h"

namespace nichandover {
namespace platform {
namespace linux_backend {

absl::StatusOr<hook::HookClient> ModuleConnection::Connect() const {
  auto transport = open_();
  if (!transport.ok()) return transport.status();
  return hook::HookClient(*std::move(transport));
}

absl::StatusOr<std::string> CanonicalBdf(const std::string& bdf) {
  auto parsed = pci::ParseBdf(bdf);
  if (!parsed.ok()) return parsed.status();
  return parsed->ToString();
}

absl::StatusOr<std::vector<hook::MsiVector>> ReadVectorsInOrder(hook::HookClient& client,
                                                                const std::string& bdf) {
  auto vectors = client.ReadMsi(bdf);
  if (!vectors.ok()) return vectors.status();
  std::sort(vectors->begin(), vectors->end(),
            [](const hook::MsiVector& a, const hook::MsiVector& b) { return a.index < b.index; });
  return vectors;
}

absl::Status ExplainRefusal(hook::HookClient& client, const std::string& dev, const Fence& fence,
                            absl::string_view op, const absl::Status& status) {
  if (status.code() != absl::StatusCode::kFailedPrecondition) return status;
  absl::StatusOr<hook::DeviceStatus> now = client.Status(dev);
  const std::string highest =
      now.ok() ? FenceText(Fence{now->epoch, now->op_id}) : "unknown: STATUS failed";
  return absl::FailedPreconditionError(
      absl::StrCat(op, " of ", dev, " with fence (", FenceText(fence),
                   ") refused; highest accepted (", highest, "): ", status.message()));
}

absl::Status CheckModuleFence(hook::HookClient& client, const std::string& dev, const Fence& fence,
                              absl::string_view op) {
  absl::StatusOr<hook::DeviceStatus> now = client.Status(dev);
  if (!now.ok()) return now.status();
  // The module's rule: the epoch alone for a call without an operation id.
  const Fence highest{now->epoch, fence.op_id == 0 ? 0 : now->op_id};
  return CheckFence(highest, fence, absl::StrCat(op, " of ", dev));
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
