#include "fake_hypervisor.h"

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace vmhost {

FakeHypervisor::FakeHypervisor(std::vector<std::string> vms) {
  for (const auto& vm : vms) devices_[vm];
}

absl::StatusOr<std::optional<PciIdentity>> FakeHypervisor::FindNic(const std::string& vm,
                                                                   const NicConfig& nic) {
  absl::MutexLock lock(&mu_);
  if (down_.count(vm)) return absl::UnavailableError(absl::StrCat(vm, " is down"));
  if (!devices_.at(vm).count(nic.device_id())) return std::optional<PciIdentity>();
  return std::optional<PciIdentity>(PciIdentity{0x8086, 0x10d3, 0x020000});
}

absl::Status FakeHypervisor::Unplug(const std::string& vm, const NicConfig& nic,
                                    absl::Duration) {
  absl::MutexLock lock(&mu_);
  if (down_.count(vm)) return absl::UnavailableError(absl::StrCat(vm, " is down"));
  log_.push_back(absl::StrCat("unplug ", vm, " ", nic.device_id()));
  devices_.at(vm).erase(nic.device_id());
  return absl::OkStatus();
}

absl::Status FakeHypervisor::Plug(const std::string& vm, const NicConfig& nic) {
  absl::MutexLock lock(&mu_);
  if (down_.count(vm)) return absl::UnavailableError(absl::StrCat(vm, " is down"));
  log_.push_back(absl::StrCat("plug ", vm, " ", nic.device_id()));
  if (fail_plug_.erase(vm)) return absl::FailedPreconditionError("device_add: injected failure");
  devices_.at(vm).insert(nic.device_id());
  return absl::OkStatus();
}

void FakeHypervisor::PlugAtBoot(const std::string& vm, const std::string& device_id) {
  absl::MutexLock lock(&mu_);
  devices_.at(vm).insert(device_id);
}

std::vector<std::string> FakeHypervisor::Holders(const std::string& device_id) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [vm, devices] : devices_) {
    if (devices.count(device_id)) out.push_back(vm);
  }
  return out;
}

std::vector<std::string> FakeHypervisor::Log() {
  absl::MutexLock lock(&mu_);
  return log_;
}

void FakeHypervisor::FailNextPlug(const std::string& vm) {
  absl::MutexLock lock(&mu_);
  fail_plug_.insert(vm);
}

void FakeHypervisor::SetDown(const std::string& vm, bool down) {
  absl::MutexLock lock(&mu_);
  if (down) {
    down_.insert(vm);
  } else {
    down_.erase(vm);
  }
}

}  // namespace vmhost
}  // namespace nichandover
