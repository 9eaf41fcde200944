#include "daemon/platform/linux/linux_inventory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "pci/interrupt_layout.h"
#include "pci/x86_msi.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

constexpr uint32_t kNetworkBaseClass = 0x02;

}  // namespace

absl::StatusOr<std::unique_ptr<LinuxInventory>> LinuxInventory::Create(
    std::unique_ptr<pci::LibpciAccess> pci, SysfsView sysfs, ModuleConnection module,
    const std::vector<std::string>& allow_list) {
  std::vector<std::string> canonical;
  for (const std::string& entry : allow_list) {
    auto bdf = CanonicalBdf(entry);
    if (!bdf.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("linux platform: nics entry \"", entry, "\": ", bdf.status().message()));
    }
    canonical.push_back(*bdf);
  }
  return std::unique_ptr<LinuxInventory>(new LinuxInventory(
      std::move(pci), std::move(sysfs), std::move(module), std::move(canonical)));
}

bool LinuxInventory::Selected(const pci::LibpciDevice& device) const {
  if (allow_list_.empty()) return device.class_code >> 16 == kNetworkBaseClass;
  return std::find(allow_list_.begin(), allow_list_.end(), device.bdf.ToString()) !=
         allow_list_.end();
}

void LinuxInventory::AddMsixVectors(const std::string& bdf, v1::InterruptLayout& layout) const {
  auto client = module_.Connect();
  absl::StatusOr<std::vector<hook::MsiVector>> vectors =
      client.ok() ? ReadVectorsInOrder(*client, bdf) : client.status();
  if (!vectors.ok()) {
    // Without the module the capability is still described; the vectors
    // stay empty, which the API defines as "table not read".
    if (absl::IsUnavailable(vectors.status())) {
      NH_LOG(DEBUG) << "MSI-X vectors of " << bdf << " unknown: " << vectors.status();
    } else {
      NH_LOG(WARNING) << "MSI-X vectors of " << bdf << " unknown: " << vectors.status();
    }
    return;
  }
  for (const hook::MsiVector& v : *vectors) {
    v1::InterruptVector* out = layout.add_vectors();
    out->set_index(v.index);
    out->mutable_message()->set_address(v.address);
    out->mutable_message()->set_data(v.data);
    *out->mutable_route() = pci::ToDecodedRoute(pci::DecodeX86Msi(v.address, v.data));
    out->set_masked(v.masked);
  }
}

absl::StatusOr<NicInfo> LinuxInventory::Describe(const pci::LibpciDevice& device) {
  NicInfo nic;
  nic.bdf = device.bdf.ToString();
  nic.vendor_id = device.vendor_id;
  nic.device_id = device.device_id;
  nic.class_code = device.class_code;
  NH_ASSIGN_OR_RETURN(nic.driver, sysfs_.DriverName(nic.bdf));
  NH_ASSIGN_OR_RETURN(nic.netdev, sysfs_.NetdevName(nic.bdf));
  if (!nic.netdev.empty()) {
    NH_ASSIGN_OR_RETURN(nic.queue_count, sysfs_.TxQueueCount(nic.netdev));
  }
  NH_ASSIGN_OR_RETURN(std::unique_ptr<pci::ConfigSpace> config, pci_->OpenConfigSpace(device.bdf));
  // No BAR access: the MSI-X table comes from the module below.
  auto layout = pci::DecodeInterruptLayout(*config, /*bars=*/nullptr);
  if (!layout.ok()) {
    // A broken capability list is described as unknown, never guessed.
    NH_LOG(WARNING) << "interrupt capability of " << nic.bdf << " not decoded: " << layout.status();
    return nic;
  }
  nic.interrupts = *std::move(layout);
  if (nic.interrupts.mode() == v1::INTERRUPT_MODE_MSIX) AddMsixVectors(nic.bdf, nic.interrupts);
  return nic;
}

absl::StatusOr<std::vector<NicInfo>> LinuxInventory::ListNics() {
  absl::MutexLock lock(&mu_);
  // libpci lists what it scanned last first; operators read addresses in order.
  std::vector<pci::LibpciDevice> devices = pci_->devices();
  std::sort(devices.begin(), devices.end(),
            [](const pci::LibpciDevice& a, const pci::LibpciDevice& b) { return a.bdf < b.bdf; });
  std::vector<NicInfo> nics;
  for (const pci::LibpciDevice& device : devices) {
    if (!Selected(device)) continue;
    NH_ASSIGN_OR_RETURN(NicInfo nic, Describe(device));
    nics.push_back(std::move(nic));
  }
  for (const std::string& wanted : allow_list_) {
    auto seen =
        std::find_if(nics.begin(), nics.end(), [&](const NicInfo& n) { return n.bdf == wanted; });
    if (seen == nics.end())
      NH_LOG(WARNING) << "nics lists " << wanted << " but libpci does not see it";
  }
  return nics;
}

absl::StatusOr<NicInfo> LinuxInventory::GetNic(const std::string& bdf) {
  NH_ASSIGN_OR_RETURN(std::string wanted, CanonicalBdf(bdf));
  absl::MutexLock lock(&mu_);
  for (const pci::LibpciDevice& device : pci_->devices()) {
    if (device.bdf.ToString() != wanted) continue;
    if (!Selected(device)) {
      return absl::NotFoundError(absl::StrCat(
          wanted, " is not a NIC of this node (",
          allow_list_.empty() ? "not a network-class function" : "not in the nics allow-list",
          ")"));
    }
    return Describe(device);
  }
  return absl::NotFoundError(absl::StrCat("this node does not see PCI function ", wanted));
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
