// MSI (capability 0x05) and MSI-X (capability 0x11) codecs: the capability
// registers in config space and the MSI-X table entries and pending bits in
// BAR memory. Layouts: PCI Local Bus 3.0, sections 6.8.1 (MSI) and 6.8.2
// (MSI-X); Linux include/uapi/linux/pci_regs.h.
#ifndef NICHANDOVER_PCI_MSI_H_
#define NICHANDOVER_PCI_MSI_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "pci/bar_memory.h"
#include "pci/config_space.h"

namespace nichandover {
namespace pci {

// MSI Message Control (capability offset 2).
inline constexpr uint16_t kMsiControlEnable = 0x0001;
inline constexpr uint16_t kMsiControlMultipleCapable = 0x000e;  // log2, bits 3:1
inline constexpr uint16_t kMsiControlMultipleEnable = 0x0070;   // log2, bits 6:4
inline constexpr uint16_t kMsiControl64Bit = 0x0080;
inline constexpr uint16_t kMsiControlPerVectorMask = 0x0100;

struct MsiCapability {
  uint32_t offset = 0;  // of the capability header in config space
  uint16_t control = 0;
  uint32_t address_low = 0;
  uint32_t address_high = 0;  // 0 unless is_64bit()
  uint16_t data = 0;
  uint32_t mask_bits = 0;     // 0 unless per_vector_masking()
  uint32_t pending_bits = 0;  // 0 unless per_vector_masking()

  bool enabled() const { return control & kMsiControlEnable; }
  bool is_64bit() const { return control & kMsiControl64Bit; }
  bool per_vector_masking() const { return control & kMsiControlPerVectorMask; }
  // Raw log2 fields; encodings 6 and 7 are reserved but reported as read.
  uint32_t multiple_message_capable_log2() const { return (control & kMsiControlMultipleCapable) >> 1; }
  uint32_t multiple_message_enable_log2() const { return (control & kMsiControlMultipleEnable) >> 4; }
  uint32_t vectors_capable() const { return 1u << multiple_message_capable_log2(); }
  uint32_t vectors_enabled() const { return 1u << multiple_message_enable_log2(); }
  uint64_t address() const { return static_cast<uint64_t>(address_high) << 32 | address_low; }

  // Absolute config-space offsets of the registers.
  uint32_t address_low_offset() const { return offset + 0x04; }
  uint32_t address_high_offset() const { return offset + 0x08; }  // 64-bit only
  uint32_t data_offset() const { return offset + (is_64bit() ? 0x0c : 0x08); }
  uint32_t mask_offset() const { return offset + (is_64bit() ? 0x10 : 0x0c); }
  uint32_t pending_offset() const { return offset + (is_64bit() ? 0x14 : 0x10); }
  // Bytes the structure occupies: 10/14 without masking, 20/24 with.
  uint32_t length() const;

  // With multiple messages enabled the device puts the vector number into
  // the low log2(n) bits of the data it sends.
  uint32_t DataForVector(uint32_t index) const {
    return (data & ~(vectors_enabled() - 1)) | index;
  }
};

// Reads the capability at `offset` (which must hold ID 0x05). DATA_LOSS if
// the structure runs past the end of config space, FAILED_PRECONDITION if it
// was not captured.
absl::StatusOr<MsiCapability> ReadMsiCapability(ConfigSpace& config, uint32_t offset);

// MSI-X Message Control.
inline constexpr uint16_t kMsixControlTableSize = 0x07ff;  // N-1, bits 10:0
inline constexpr uint16_t kMsixControlFunctionMask = 0x4000;
inline constexpr uint16_t kMsixControlEnable = 0x8000;
inline constexpr uint32_t kMsixBirMask = 0x7;
inline constexpr uint32_t kMsixEntrySize = 16;
inline constexpr uint32_t kMsixVectorControlMask = 0x1;

struct MsixCapability {
  uint32_t offset = 0;
  uint16_t control = 0;
  uint32_t table_register = 0;  // offset | BIR
  uint32_t pba_register = 0;    // offset | BIR

  bool enabled() const { return control & kMsixControlEnable; }
  bool function_masked() const { return control & kMsixControlFunctionMask; }
  uint32_t table_size() const { return (control & kMsixControlTableSize) + 1u; }
  uint32_t table_bar() const { return table_register & kMsixBirMask; }
  uint32_t table_offset() const { return table_register & ~kMsixBirMask; }
  uint32_t pba_bar() const { return pba_register & kMsixBirMask; }
  uint32_t pba_offset() const { return pba_register & ~kMsixBirMask; }
  // BAR offset of table entry `index`.
  uint64_t EntryOffset(uint32_t index) const {
    return table_offset() + static_cast<uint64_t>(kMsixEntrySize) * index;
  }
};

absl::StatusOr<MsixCapability> ReadMsixCapability(ConfigSpace& config, uint32_t offset);

// One 16-byte MSI-X table entry.
struct MsixTableEntry {
  uint32_t address_low = 0;
  uint32_t address_high = 0;
  uint32_t data = 0;
  uint32_t vector_control = 0;  // bit 0: masked; other bits reserved

  bool masked() const { return vector_control & kMsixVectorControlMask; }
  uint64_t address() const { return static_cast<uint64_t>(address_high) << 32 | address_low; }
  friend bool operator==(const MsixTableEntry& a, const MsixTableEntry& b) {
    return a.address_low == b.address_low && a.address_high == b.address_high &&
           a.data == b.data && a.vector_control == b.vector_control;
  }
};

// OUT_OF_RANGE for an index past the table, FAILED_PRECONDITION for a
// reserved BIR (6 or 7), or the BAR access's error.
absl::StatusOr<MsixTableEntry> ReadMsixEntry(BarMemory& bars, const MsixCapability& cap,
                                             uint32_t index);
// Writes the message: address low, address high, data, in that order. The
// vector control word is left alone (see WriteMsixVectorControl).
absl::Status WriteMsixMessage(BarMemory& bars, const MsixCapability& cap, uint32_t index,
                              uint64_t address, uint32_t data);
absl::Status WriteMsixVectorControl(BarMemory& bars, const MsixCapability& cap, uint32_t index,
                                    uint32_t vector_control);
// The entry's pending bit from the PBA (bit index % 64 of QWORD index / 64).
absl::StatusOr<bool> ReadMsixPending(BarMemory& bars, const MsixCapability& cap, uint32_t index);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_MSI_H_
