// Walks a function's capability lists: the standard list (config 0x40..0xff,
// PCI 3.0 section 6.7) and, where PCI Express is present, the extended list
// (0x100..0xfff, PCIe base spec 7.6).
//
// Config space comes from devices, firmware bugs and files: the walk trusts
// nothing. Every pointer is checked before it is followed; a loop, a pointer
// into the header, a pointer or structure past the end, or bytes that were
// never captured stop the walk with an error that names the offset. The walk
// visits each dword at most once, so it ends on any input.
#ifndef NICHANDOVER_PCI_CAPABILITIES_H_
#define NICHANDOVER_PCI_CAPABILITIES_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pci/config_space.h"

namespace nichandover {
namespace pci {

// Standard capability IDs used here.
inline constexpr uint16_t kCapIdPowerManagement = 0x01;
inline constexpr uint16_t kCapIdMsi = 0x05;
inline constexpr uint16_t kCapIdPciX = 0x07;
inline constexpr uint16_t kCapIdExpress = 0x10;
inline constexpr uint16_t kCapIdMsix = 0x11;

// Header registers the walk reads.
inline constexpr uint32_t kStatusRegister = 0x06;
inline constexpr uint16_t kStatusCapabilityList = 0x0010;
inline constexpr uint32_t kHeaderTypeRegister = 0x0e;
inline constexpr uint32_t kCapabilityPointer = 0x34;          // header types 0 and 1
inline constexpr uint32_t kCardbusCapabilityPointer = 0x14;   // header type 2

enum class CapabilityList { kStandard, kExtended };

struct Capability {
  CapabilityList list = CapabilityList::kStandard;
  uint16_t id = 0;      // 8-bit standard ID or 16-bit extended ID
  uint32_t offset = 0;  // config-space offset of the capability header
  uint8_t version = 0;  // extended capabilities only
};

struct CapabilityWalk {
  // Capabilities in list order (standard list first), each list up to its
  // first problem.
  std::vector<Capability> capabilities;
  // OK, or why the standard list's walk stopped early: DATA_LOSS for a
  // malformed list (loop, pointer into the header, ID 0xff "chain broken",
  // pointer past the end), FAILED_PRECONDITION when the list runs into bytes
  // that were not captured or cannot be read (lspci's "<access denied>").
  absl::Status status;
  // The same for the extended list (only walked when `express`).
  absl::Status extended_status;
  // Whether an Express capability was found (the extended list was walked).
  bool express = false;
};

CapabilityWalk WalkCapabilities(ConfigSpace& config);

// The first capability with that list and ID. NOT_FOUND when the (complete)
// list has none; the list's error when its walk stopped before finding one.
absl::StatusOr<Capability> FindCapability(const CapabilityWalk& walk, CapabilityList list,
                                          uint16_t id);

// Checks that a capability structure of `length` bytes at `offset` lies inside
// config space and was captured. DATA_LOSS / FAILED_PRECONDITION otherwise,
// naming `what`.
absl::Status CheckStructure(const ConfigSpace& config, uint32_t offset, uint32_t length,
                            const char* what);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_CAPABILITIES_H_
