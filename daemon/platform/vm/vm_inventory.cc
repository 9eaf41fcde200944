#include "daemon/platform/vm/vm_inventory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "daemon/platform/linux/module_connection.h"
#include "daemon/platform/linux/sysfs_view.h"

namespace nichandover {
namespace platform {
namespace vm {

absl::StatusOr<NicInfo> VmInventory::DescribePlugged(const std::string& bdf,
                                                     const std::vector<std::string>& all) {
  if (scan_ == nullptr || !scanned_present_.count(bdf)) {
    auto pci = pci::LibpciAccess::Open(access_.pci);
    if (!pci.ok()) return pci.status();
    std::set<std::string> present;
    for (const std::string& b : all) {
      if (guest_.Present(b)) present.insert(b);
    }
    auto scan = linux_backend::LinuxInventory::Create(
        *std::move(pci), linux_backend::SysfsView(access_.sysfs_root),
        linux_backend::ModuleConnection(access_.open_module), all);
    if (!scan.ok()) return scan.status();
    scan_ = *std::move(scan);
    scanned_present_ = std::move(present);
  }
  return scan_->GetNic(bdf);
}

absl::StatusOr<NicInfo> VmInventory::Describe(const vmhost::AgentNic& nic) {
  if (guest_.Present(nic.bdf())) {
    std::vector<std::string> all;
    auto listed = agent_->ListNics();
    if (listed.ok()) {
      for (const auto& n : *listed) all.push_back(n.bdf());
    } else {
      all.push_back(nic.bdf());
    }
    absl::StatusOr<NicInfo> info;
    {
      absl::MutexLock lock(&mu_);
      info = DescribePlugged(nic.bdf(), all);
    }
    if (info.ok()) {
      const auto mode = info->interrupts.mode();
      if (mode == v1::INTERRUPT_MODE_MSI || mode == v1::INTERRUPT_MODE_MSIX) {
        // So that the VMs that do not hold it can describe it (and offer it
        // on) while it is here.
        absl::Status reported = agent_->ReportNic(nic.bdf(), info->interrupts);
        if (!reported.ok()) NH_LOG(WARNING) << "reporting " << nic.bdf() << ": " << reported;
      }
      return info;
    }
    NH_LOG(WARNING) << nic.bdf() << " is plugged in but not described yet: " << info.status();
  }
  if (!nic.interrupts_known()) {
    // The handover engine keeps the inventory it starts with (see
    // docs/vm-deployment.md): a description without the interrupt layout
    // would leave this node unable to hand the NIC on later.
    return absl::UnavailableError(absl::StrCat(
        nic.bdf(), " is plugged into ", nic.vm().empty() ? std::string("no VM") : nic.vm(),
        " whose daemon has not described it to the host agent yet; retry once it has"));
  }
  NicInfo info;
  info.bdf = nic.bdf();
  info.vendor_id = static_cast<uint16_t>(nic.vendor_id());
  info.device_id = static_cast<uint16_t>(nic.device_id());
  info.class_code = nic.class_code();
  // The driver this VM would bind it with, if that driver is loaded here.
  if (guest_.DriverLoaded(nic.driver())) info.driver = nic.driver();
  info.interrupts = nic.interrupts();
  return info;
}

absl::StatusOr<std::vector<NicInfo>> VmInventory::ListNics() {
  auto nics = agent_->ListNics();
  if (!nics.ok()) return nics.status();
  std::sort(nics->begin(), nics->end(),
            [](const vmhost::AgentNic& a, const vmhost::AgentNic& b) { return a.bdf() < b.bdf(); });
  std::vector<NicInfo> out;
  for (const auto& nic : *nics) {
    auto info = Describe(nic);
    if (!info.ok()) return info.status();
    out.push_back(*std::move(info));
  }
  return out;
}

absl::StatusOr<NicInfo> VmInventory::GetNic(const std::string& bdf) {
  auto canonical = linux_backend::CanonicalBdf(bdf);
  if (!canonical.ok()) return canonical.status();
  auto nics = agent_->ListNics();
  if (!nics.ok()) return nics.status();
  for (const auto& nic : *nics) {
    if (nic.bdf() == *canonical) return Describe(nic);
  }
  return absl::NotFoundError(
      absl::StrCat("the host agent has no NIC ", *canonical, " for VM ", agent_->vm_name()));
}

}  // namespace vm
}  // namespace platform
}  // namespace nichandover
