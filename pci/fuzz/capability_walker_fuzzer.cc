// libFuzzer target: arbitrary bytes as a config space (256 or 4096 bytes, any
// captured length), walked and decoded as MSI/MSI-X. The walk must end with
// at most one capability per dword, whatever the bytes. Built by
// tools/fuzz-pci.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pci/capabilities.h"
#include "pci/config_space.h"
#include "pci/msi.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + (size > 4096 ? 4096 : size));
  nichandover::pci::MemoryConfigSpace config(bytes);
  nichandover::pci::CapabilityWalk walk = nichandover::pci::WalkCapabilities(config);
  if (walk.capabilities.size() > (4096 - 64) / 4) __builtin_trap();
  for (const nichandover::pci::Capability& cap : walk.capabilities) {
    if (cap.list != nichandover::pci::CapabilityList::kStandard) continue;
    if (cap.offset < 0x40 || cap.offset > 0xfc) __builtin_trap();
    if (cap.id == nichandover::pci::kCapIdMsi) {
      absl::StatusOr<nichandover::pci::MsiCapability> msi =
          nichandover::pci::ReadMsiCapability(config, cap.offset);
      if (msi.ok() && msi->offset + msi->length() > 256) __builtin_trap();
    } else if (cap.id == nichandover::pci::kCapIdMsix) {
      nichandover::pci::ReadMsixCapability(config, cap.offset).IgnoreError();
    }
  }
  return 0;
}
