#include "daemon/platform/linux/linux_inventory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "pci/config_space.h"
#include "pci/interrupt_layout.h"
#include "pci/x86_msi.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

constexpr uint32_t kNetworkBaseClass = 0x02;

std::vector<std::string> BdfsOf(const std::vector<pci::LibpciDevice>& devices) {
  std::vector<std::string> out;
  for (const pci::LibpciDevice& d : devices) out.push_back(d.bdf.ToString());
  return out;
}

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

bool LinuxInventory::Selected(const std::string& bdf, uint32_t class_code) const {
  if (allow_list_.empty()) return class_code >> 16 == kNetworkBaseClass;
  return std::find(allow_list_.begin(), allow_list_.end(), bdf) != allow_list_.end();
}

absl::Status LinuxInventory::NotSelected(const std::string& bdf) const {
  return absl::NotFoundError(absl::StrCat(
      bdf, " is not a NIC of this node (",
      allow_list_.empty() ? "not a network-class function" : "not in the nics allow-list", ")"));
}

std::vector<hook::ListedDevice> LinuxInventory::WindowDevices(
    const std::vector<std::string>& known) const {
  auto client = module_.Connect();
  absl::StatusOr<std::vector<hook::ListedDevice>> listed =
      client.ok() ? client->List() : client.status();
  if (!listed.ok()) {
    // Without the module there are only libpci's functions.
    if (absl::IsUnavailable(listed.status())) {
      NH_LOG(DEBUG) << "no contract devices: " << listed.status();
    } else {
      NH_LOG(WARNING) << "the hook module's device list failed: " << listed.status();
    }
    return {};
  }
  std::vector<hook::ListedDevice> out;
  for (hook::ListedDevice& device : *listed) {
    auto bdf = CanonicalBdf(device.id);
    if (!bdf.ok()) {
      NH_LOG(WARNING) << "the hook module lists a device named \"" << device.id
                      << "\", which is not a PCI address: left out";
      continue;
    }
    device.id = *bdf;
    // A PCI function of this kernel is libpci's to describe (the module
    // holds e1000e's in cold mode); only a contract device has its config
    // space in the list.
    if (std::find(known.begin(), known.end(), device.id) != known.end()) continue;
    if (device.status.handover_mode != hook::HandoverMode::kContract) continue;
    if (device.config.empty()) {
      NH_LOG(WARNING) << "contract device " << device.id
                      << " is listed without its config space: left out";
      continue;
    }
    out.push_back(std::move(device));
  }
  return out;
}

absl::StatusOr<NicInfo> LinuxInventory::DescribeWindowDevice(
    const hook::ListedDevice& device) const {
  NicInfo nic;
  nic.bdf = device.id;
  pci::MemoryConfigSpace config(device.config);
  absl::StatusOr<uint32_t> class_rev = config.Read32(0x08);
  if (!class_rev.ok()) {
    return absl::DataLossError(absl::StrCat("contract device ", nic.bdf,
                                            ": the module's config space has no class code (",
                                            device.config.size(), " bytes)"));
  }
  nic.class_code = *class_rev >> 8;
  nic.vendor_id = device.vendor_id;
  nic.device_id = device.device_id;
  nic.driver = device.driver;
  nic.netdev = device.status.ifname;
  nic.queue_count = device.status.queue_count > 0 ? device.status.queue_count : 1;
  // The MSI-X table is behind the driver's window, not a BAR of ours.
  AddInterruptLayout(config, nic);
  return nic;
}

void LinuxInventory::AddInterruptLayout(pci::ConfigSpace& config, NicInfo& nic) const {
  // No BAR access: the MSI-X table entries come from the module (READ_MSI).
  auto layout = pci::DecodeInterruptLayout(config, /*bars=*/nullptr);
  if (!layout.ok()) {
    // A broken capability list is described as unknown, never guessed.
    NH_LOG(WARNING) << "interrupt capability of " << nic.bdf << " not decoded: " << layout.status();
    return;
  }
  nic.interrupts = *std::move(layout);
  if (nic.interrupts.mode() == v1::INTERRUPT_MODE_MSIX) AddMsixVectors(nic.bdf, nic.interrupts);
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
  AddInterruptLayout(*config, nic);
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
    if (!Selected(device.bdf.ToString(), device.class_code)) continue;
    NH_ASSIGN_OR_RETURN(NicInfo nic, Describe(device));
    nics.push_back(std::move(nic));
  }
  for (const hook::ListedDevice& device : WindowDevices(BdfsOf(devices))) {
    NH_ASSIGN_OR_RETURN(NicInfo nic, DescribeWindowDevice(device));
    if (Selected(nic.bdf, nic.class_code)) nics.push_back(std::move(nic));
  }
  // Canonical addresses are fixed-width hex, so text order is address order.
  std::sort(nics.begin(), nics.end(),
            [](const NicInfo& a, const NicInfo& b) { return a.bdf < b.bdf; });
  for (const std::string& wanted : allow_list_) {
    auto seen =
        std::find_if(nics.begin(), nics.end(), [&](const NicInfo& n) { return n.bdf == wanted; });
    if (seen == nics.end())
      NH_LOG(WARNING) << "nics lists " << wanted
                      << " but neither libpci nor the hook module sees it";
  }
  return nics;
}

absl::StatusOr<NicInfo> LinuxInventory::GetNic(const std::string& bdf) {
  NH_ASSIGN_OR_RETURN(std::string wanted, CanonicalBdf(bdf));
  absl::MutexLock lock(&mu_);
  for (const pci::LibpciDevice& device : pci_->devices()) {
    if (device.bdf.ToString() != wanted) continue;
    if (!Selected(wanted, device.class_code)) return NotSelected(wanted);
    return Describe(device);
  }
  for (const hook::ListedDevice& device : WindowDevices(BdfsOf(pci_->devices()))) {
    if (device.id != wanted) continue;
    NH_ASSIGN_OR_RETURN(NicInfo nic, DescribeWindowDevice(device));
    if (!Selected(wanted, nic.class_code)) return NotSelected(wanted);
    return nic;
  }
  return absl::NotFoundError(absl::StrCat(
      "this node does not see PCI function ", wanted,
      " (neither libpci nor the hook module's contract devices list it)"));
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
