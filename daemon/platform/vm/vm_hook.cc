#include "daemon/platform/vm/vm_hook.h"

#include "absl/strings/str_cat.h"
#include "daemon/platform/linux/module_connection.h"

namespace nichandover {
namespace platform {
namespace vm {

absl::StatusOr<QuiesceResult> VmHook::Quiesce(const std::string& bdf, const Fence& fence,
                                              absl::Duration timeout) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  if (!guest_.Present(*dev)) return NotPluggedHere(*agent_, *dev, "quiesce");
  return module_->Quiesce(*dev, fence, timeout);
}

absl::Status VmHook::Resume(const std::string& bdf, const Fence& fence) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  // After a rollback that had moved it, the NIC comes back as a new device.
  if (absl::Status s = guest_.WaitProbed(*dev, probe_wait_); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("resume: ", s.message()));
  }
  return module_->Resume(*dev, fence);
}

absl::Status VmHook::Attach(const std::string& bdf, const Fence& fence,
                            const std::vector<v1::QueueRingState>& rings) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  if (absl::Status s = guest_.WaitProbed(*dev, probe_wait_); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("attach: ", s.message()));
  }
  return module_->Attach(*dev, fence, rings);
}

absl::Status VmHook::Release(const std::string& bdf, const Fence& fence) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  if (!guest_.Present(*dev)) {
    absl::Status here = NotPluggedHere(*agent_, *dev, "release");
    return absl::IsNotFound(here) ? here : absl::OkStatus();
  }
  return module_->Release(*dev, fence);
}

absl::StatusOr<HookStatus> VmHook::Status(const std::string& bdf) {
  auto dev = linux_backend::CanonicalBdf(bdf);
  if (!dev.ok()) return dev.status();
  if (!guest_.Present(*dev)) {
    absl::Status here = NotPluggedHere(*agent_, *dev, "status");
    if (absl::IsNotFound(here)) return here;
    return HookStatus{};  // detached, epoch unknown here
  }
  return module_->Status(*dev);
}

}  // namespace vm
}  // namespace platform
}  // namespace nichandover
