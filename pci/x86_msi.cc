#include "pci/x86_msi.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nichandover {
namespace pci {

X86MsiMessage DecodeX86Msi(uint64_t address, uint32_t data) {
  X86MsiMessage m;
  const uint32_t low = static_cast<uint32_t>(address);
  m.address_high = static_cast<uint32_t>(address >> 32);
  m.address_base = low >> 20;
  m.remappable = (low & kX86MsiRemappableBit) != 0;
  m.address_low_bits = low & 0x3;
  if (m.remappable) {
    m.irte_handle = static_cast<uint16_t>(((low >> 5) & 0x7fff) | ((low >> 2) & 1) << 15);
    m.subhandle_valid = (low >> 3) & 1;
  } else {
    m.destination_apic_id = static_cast<uint8_t>((low >> 12) & 0xff);
    m.extended_destination_id = static_cast<uint8_t>((low >> 5) & 0x7f);
    m.redirection_hint = (low >> 3) & 1;
    m.logical_destination = (low >> 2) & 1;
  }
  m.vector = static_cast<uint8_t>(data & 0xff);
  m.delivery_mode = static_cast<X86DeliveryMode>((data >> 8) & 0x7);
  m.data_reserved = static_cast<uint8_t>((data >> 11) & 0x7);
  m.level_assert = (data >> 14) & 1;
  m.level_trigger = (data >> 15) & 1;
  m.data_high = static_cast<uint16_t>(data >> 16);
  return m;
}

absl::StatusOr<RawMsiMessage> EncodeX86Msi(const X86MsiMessage& m) {
  if (m.address_base > 0xfff) {
    return absl::InvalidArgumentError(
        absl::StrFormat("address base 0x%x does not fit bits 31:20", m.address_base));
  }
  if (m.address_low_bits > 0x3 || m.data_reserved > 0x7 ||
      static_cast<uint8_t>(m.delivery_mode) > 0x7) {
    return absl::InvalidArgumentError("a field does not fit its bits");
  }
  uint32_t low = m.address_base << 20 | m.address_low_bits;
  if (m.remappable) {
    if (m.destination_apic_id != 0 || m.extended_destination_id != 0 || m.redirection_hint ||
        m.logical_destination) {
      return absl::InvalidArgumentError(
          "remappable format carries an IRTE handle, not a destination");
    }
    low |= kX86MsiRemappableBit | (m.irte_handle & 0x7fffu) << 5 |
           static_cast<uint32_t>(m.irte_handle >> 15) << 2 |
           static_cast<uint32_t>(m.subhandle_valid) << 3;
  } else {
    if (m.irte_handle != 0 || m.subhandle_valid) {
      return absl::InvalidArgumentError("an IRTE handle needs the remappable format");
    }
    if (m.extended_destination_id > 0x7f) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "extended destination ID 0x%x does not fit bits 11:5", m.extended_destination_id));
    }
    low |= static_cast<uint32_t>(m.destination_apic_id) << 12 |
           static_cast<uint32_t>(m.extended_destination_id) << 5 |
           static_cast<uint32_t>(m.redirection_hint) << 3 |
           static_cast<uint32_t>(m.logical_destination) << 2;
  }
  RawMsiMessage raw;
  raw.address = static_cast<uint64_t>(m.address_high) << 32 | low;
  raw.data = m.vector | static_cast<uint32_t>(m.delivery_mode) << 8 |
             static_cast<uint32_t>(m.data_reserved) << 11 |
             static_cast<uint32_t>(m.level_assert) << 14 |
             static_cast<uint32_t>(m.level_trigger) << 15 | static_cast<uint32_t>(m.data_high) << 16;
  return raw;
}

absl::StatusOr<RawMsiMessage> ComposeFixedX86Msi(uint32_t apic_id, uint8_t vector) {
  if (apic_id > 0xff) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "APIC ID %u does not fit the 8-bit destination of a compatibility-format MSI "
        "(needs interrupt remapping or the extended destination ID)",
        apic_id));
  }
  X86MsiMessage m;
  m.destination_apic_id = static_cast<uint8_t>(apic_id);
  m.vector = vector;
  return EncodeX86Msi(m);
}

const char* DeliveryModeName(X86DeliveryMode mode) {
  switch (mode) {
    case X86DeliveryMode::kFixed: return "fixed";
    case X86DeliveryMode::kLowestPriority: return "lowest-priority";
    case X86DeliveryMode::kSmi: return "SMI";
    case X86DeliveryMode::kReserved3: return "reserved(3)";
    case X86DeliveryMode::kNmi: return "NMI";
    case X86DeliveryMode::kInit: return "INIT";
    case X86DeliveryMode::kReserved6: return "reserved(6)";
    case X86DeliveryMode::kExtInt: return "ExtINT";
  }
  return "?";
}

std::string DescribeX86Msi(const X86MsiMessage& m) {
  if (m.address_base != kX86MsiAddressBase) return "not an x86 interrupt address";
  if (m.remappable) {
    return absl::StrFormat("remappable: IRTE handle 0x%04x%s (interrupt remapping is on)",
                           m.irte_handle, m.subhandle_valid ? " SHV" : "");
  }
  std::string text = absl::StrFormat("APIC %u", m.destination_apic_id);
  if (m.extended_destination_id != 0) {
    absl::StrAppendFormat(&text, " (extended destination bits 0x%02x: APIC ID 0x%x)",
                          m.extended_destination_id,
                          static_cast<uint32_t>(m.extended_destination_id) << 8 |
                              m.destination_apic_id);
  }
  absl::StrAppendFormat(&text, " vector 0x%02x %s %s %s", m.vector,
                        DeliveryModeName(m.delivery_mode), m.level_trigger ? "level" : "edge",
                        m.logical_destination ? "logical" : "physical");
  if (m.redirection_hint) absl::StrAppend(&text, " redirection-hint");
  if (m.address_high != 0) absl::StrAppendFormat(&text, " (address high 0x%08x)", m.address_high);
  return text;
}

}  // namespace pci
}  // namespace nichandover
