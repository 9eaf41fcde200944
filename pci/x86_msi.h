// The x86 MSI message format: what the address and data a device writes mean
// to the local APICs (Intel SDM vol. 3A, 11.11 "Message Signalled
// Interrupts"), and the remappable format used when interrupt remapping is
// on (Intel VT-d spec 5.1.5.2; AMD-Vi uses the same bit to mean "remapped").
//
//   address 31:20  0xFEE
//           19:12  destination APIC ID (compatibility format)
//           11:5   extended destination ID (APIC ID bits 14:8, only where a
//                  hypervisor offers it; Linux: virt_destid_8_14)
//           4      0 = compatibility format, 1 = remappable format
//           3      redirection hint           (remappable: SHV)
//           2      destination mode, 1=logical (remappable: handle bit 15)
//           19:5   remappable: interrupt handle bits 14:0
//   data    7:0 vector, 10:8 delivery mode, 14 level, 15 trigger (1=level)
//
// Decode keeps every bit, so Encode(Decode(a, d)) == (a, d) for all inputs.
#ifndef NICHANDOVER_PCI_X86_MSI_H_
#define NICHANDOVER_PCI_X86_MSI_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace nichandover {
namespace pci {

inline constexpr uint32_t kX86MsiAddressBase = 0xfee;  // address bits 31:20
inline constexpr uint32_t kX86MsiRemappableBit = 0x10;  // address bit 4

// A message as the device holds it.
struct RawMsiMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  friend bool operator==(const RawMsiMessage& a, const RawMsiMessage& b) {
    return a.address == b.address && a.data == b.data;
  }
  friend bool operator!=(const RawMsiMessage& a, const RawMsiMessage& b) { return !(a == b); }
};

enum class X86DeliveryMode : uint8_t {
  kFixed = 0,
  kLowestPriority = 1,
  kSmi = 2,
  kReserved3 = 3,
  kNmi = 4,
  kInit = 5,
  kReserved6 = 6,
  kExtInt = 7,
};

struct X86MsiMessage {
  // Address.
  uint32_t address_base = kX86MsiAddressBase;  // bits 31:20
  uint32_t address_high = 0;                   // bits 63:32
  bool remappable = false;                     // bit 4
  uint8_t destination_apic_id = 0;      // compatibility: bits 19:12
  uint8_t extended_destination_id = 0;  // compatibility: bits 11:5
  bool redirection_hint = false;        // compatibility: bit 3
  bool logical_destination = false;     // compatibility: bit 2
  uint16_t irte_handle = 0;             // remappable: bits 19:5 and 2
  bool subhandle_valid = false;         // remappable: bit 3
  uint8_t address_low_bits = 0;         // bits 1:0 (ignored by the CPU)
  // Data.
  uint8_t vector = 0;                   // bits 7:0
  X86DeliveryMode delivery_mode = X86DeliveryMode::kFixed;  // bits 10:8
  uint8_t data_reserved = 0;            // bits 13:11
  bool level_assert = false;            // bit 14
  bool level_trigger = false;           // bit 15
  uint16_t data_high = 0;               // bits 31:16 (MSI-X data is 32 bits)

  // Whether the address is in the 0xFEExxxxx interrupt window (with a zero
  // high half): only then is this an interrupt to an x86 CPU at all. An
  // unprogrammed entry (address 0) or a non-x86 machine's doorbell is not.
  bool IsInterruptAddress() const {
    return address_base == kX86MsiAddressBase && address_high == 0;
  }
};

X86MsiMessage DecodeX86Msi(uint64_t address, uint32_t data);
inline X86MsiMessage DecodeX86Msi(const RawMsiMessage& raw) {
  return DecodeX86Msi(raw.address, raw.data);
}

// INVALID_ARGUMENT when a field does not fit its bits (e.g. irte_handle in
// compatibility format, extended_destination_id > 0x7f).
absl::StatusOr<RawMsiMessage> EncodeX86Msi(const X86MsiMessage& message);

// The plain message Linux composes for a device interrupt: compatibility
// format, physical destination, no redirection hint, fixed delivery, edge.
// APIC IDs above 0xff need x2APIC addressing (interrupt remapping or the
// extended destination ID): INVALID_ARGUMENT.
absl::StatusOr<RawMsiMessage> ComposeFixedX86Msi(uint32_t apic_id, uint8_t vector);

// "APIC 5 vector 0x21 fixed edge physical" or
// "remappable: IRTE handle 0x0012 (interrupt remapping)" or
// "not an x86 interrupt address".
std::string DescribeX86Msi(const X86MsiMessage& message);

const char* DeliveryModeName(X86DeliveryMode mode);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_X86_MSI_H_
