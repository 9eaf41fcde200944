#include "daemon/platform/vm/vm_router.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/platform/linux/module_connection.h"

namespace nichandover {
namespace platform {
namespace vm {

bool IsHypervisorRouted(const v1::MsiMessage& message) {
  return message.address() == 0 && message.data() == 0;
}

absl::StatusOr<std::vector<v1::MsiMessage>> VmRouter::ReadMessages(const std::string& bdf) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  if (!guest_.Present(*dev)) return NotPluggedHere(*agent_, *dev, "read messages of");
  return module_->ReadMessages(*dev);
}

absl::StatusOr<std::vector<v1::MsiMessage>> VmRouter::Reroute(
    const std::string& bdf, const Fence& fence, const std::vector<v1::MsiMessage>& target) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  for (const auto& m : target) {
    if (!IsHypervisorRouted(m)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reroute ", *dev, ": a VM cannot write MSI messages for another node (got address 0x",
          absl::Hex(m.address()), "); the target must be a VM node, whose reservation is "
          "hypervisor-routed"));
    }
  }
  std::vector<v1::MsiMessage> previous;
  if (guest_.Present(*dev)) {
    auto read = module_->ReadMessages(*dev);
    if (read.ok()) previous = *std::move(read);
  }
  auto placed = agent_->PlaceNic(*dev, fence);
  if (!placed.ok()) return placed.status();
  NH_LOG(INFO) << *dev << " placed in " << placed->vm() << " at " << FenceText(fence) << " (unplug "
               << placed->unplug_micros() / 1000 << " ms, plug " << placed->plug_micros() / 1000
               << " ms)";
  return previous;
}

absl::Status VmRouter::Restore(const std::string& bdf, const Fence& fence,
                               const std::vector<v1::MsiMessage>& /*previous*/) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  auto placed = agent_->PlaceNic(*dev, fence);
  if (!placed.ok()) return placed.status();
  NH_LOG(INFO) << *dev << " restored to " << placed->vm() << " at " << FenceText(fence)
               << (placed->moved() ? "" : " (it had not moved)");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::MsiMessage>> VmRouter::ReserveTargetMessages(
    const std::string& /*bdf*/, const Fence& /*fence*/, uint32_t count) {
  return std::vector<v1::MsiMessage>(count);
}

absl::Status VmRouter::ReleaseReservation(const std::string& /*bdf*/, const Fence& /*fence*/) {
  return absl::OkStatus();
}

}  // namespace vm
}  // namespace platform
}  // namespace nichandover
