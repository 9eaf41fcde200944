#include "pci/msi.h"

#include "absl/strings/str_format.h"
#include "pci/capabilities.h"

namespace nichandover {
namespace pci {
namespace {

absl::Status CheckId(ConfigSpace& config, uint32_t offset, uint8_t expected, const char* what) {
  absl::StatusOr<uint8_t> id = config.Read8(offset);
  if (!id.ok()) return id.status();
  if (*id != expected) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "no %s capability at 0x%02x (ID 0x%02x, expected 0x%02x)", what, offset, *id, expected));
  }
  return absl::OkStatus();
}

absl::Status CheckEntry(const MsixCapability& cap, uint32_t index, uint32_t bir) {
  if (index >= cap.table_size()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "MSI-X vector %u is past the table (%u entries)", index, cap.table_size()));
  }
  if (bir >= kBarCount) {
    return absl::FailedPreconditionError(
        absl::StrFormat("MSI-X capability at 0x%02x names reserved BAR indicator %u", cap.offset,
                        bir));
  }
  return absl::OkStatus();
}

}  // namespace

uint32_t MsiCapability::length() const {
  uint32_t length = is_64bit() ? 0x0e : 0x0a;
  if (per_vector_masking()) length = is_64bit() ? 0x18 : 0x14;
  return length;
}

absl::StatusOr<MsiCapability> ReadMsiCapability(ConfigSpace& config, uint32_t offset) {
  if (absl::Status s = CheckStructure(config, offset, 4, "MSI capability"); !s.ok()) return s;
  if (absl::Status s = CheckId(config, offset, kCapIdMsi, "MSI"); !s.ok()) return s;
  MsiCapability cap;
  cap.offset = offset;
  absl::StatusOr<uint16_t> control = config.Read16(offset + 2);
  if (!control.ok()) return control.status();
  cap.control = *control;
  if (absl::Status s = CheckStructure(config, offset, cap.length(), "MSI capability"); !s.ok()) {
    return s;
  }
  absl::StatusOr<uint32_t> low = config.Read32(cap.address_low_offset());
  if (!low.ok()) return low.status();
  cap.address_low = *low;
  if (cap.is_64bit()) {
    absl::StatusOr<uint32_t> high = config.Read32(cap.address_high_offset());
    if (!high.ok()) return high.status();
    cap.address_high = *high;
  }
  absl::StatusOr<uint16_t> data = config.Read16(cap.data_offset());
  if (!data.ok()) return data.status();
  cap.data = *data;
  if (cap.per_vector_masking()) {
    absl::StatusOr<uint32_t> mask = config.Read32(cap.mask_offset());
    if (!mask.ok()) return mask.status();
    absl::StatusOr<uint32_t> pending = config.Read32(cap.pending_offset());
    if (!pending.ok()) return pending.status();
    cap.mask_bits = *mask;
    cap.pending_bits = *pending;
  }
  return cap;
}

absl::StatusOr<MsixCapability> ReadMsixCapability(ConfigSpace& config, uint32_t offset) {
  if (absl::Status s = CheckStructure(config, offset, 12, "MSI-X capability"); !s.ok()) return s;
  if (absl::Status s = CheckId(config, offset, kCapIdMsix, "MSI-X"); !s.ok()) return s;
  MsixCapability cap;
  cap.offset = offset;
  absl::StatusOr<uint16_t> control = config.Read16(offset + 2);
  if (!control.ok()) return control.status();
  absl::StatusOr<uint32_t> table = config.Read32(offset + 4);
  if (!table.ok()) return table.status();
  absl::StatusOr<uint32_t> pba = config.Read32(offset + 8);
  if (!pba.ok()) return pba.status();
  cap.control = *control;
  cap.table_register = *table;
  cap.pba_register = *pba;
  return cap;
}

absl::StatusOr<MsixTableEntry> ReadMsixEntry(BarMemory& bars, const MsixCapability& cap,
                                             uint32_t index) {
  if (absl::Status s = CheckEntry(cap, index, cap.table_bar()); !s.ok()) return s;
  const int bar = static_cast<int>(cap.table_bar());
  const uint64_t base = cap.EntryOffset(index);
  uint32_t words[4];
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<uint32_t> word = bars.Read32(bar, base + 4 * i);
    if (!word.ok()) return word.status();
    words[i] = *word;
  }
  return MsixTableEntry{words[0], words[1], words[2], words[3]};
}

absl::Status WriteMsixMessage(BarMemory& bars, const MsixCapability& cap, uint32_t index,
                              uint64_t address, uint32_t data) {
  if (absl::Status s = CheckEntry(cap, index, cap.table_bar()); !s.ok()) return s;
  const int bar = static_cast<int>(cap.table_bar());
  const uint64_t base = cap.EntryOffset(index);
  if (absl::Status s = bars.Write32(bar, base, static_cast<uint32_t>(address)); !s.ok()) return s;
  if (absl::Status s = bars.Write32(bar, base + 4, static_cast<uint32_t>(address >> 32)); !s.ok()) {
    return s;
  }
  return bars.Write32(bar, base + 8, data);
}

absl::Status WriteMsixVectorControl(BarMemory& bars, const MsixCapability& cap, uint32_t index,
                                    uint32_t vector_control) {
  if (absl::Status s = CheckEntry(cap, index, cap.table_bar()); !s.ok()) return s;
  return bars.Write32(static_cast<int>(cap.table_bar()), cap.EntryOffset(index) + 12,
                      vector_control);
}

absl::StatusOr<bool> ReadMsixPending(BarMemory& bars, const MsixCapability& cap, uint32_t index) {
  if (absl::Status s = CheckEntry(cap, index, cap.pba_bar()); !s.ok()) return s;
  absl::StatusOr<uint32_t> word =
      bars.Read32(static_cast<int>(cap.pba_bar()), cap.pba_offset() + 4ull * (index / 32));
  if (!word.ok()) return word.status();
  return ((*word >> (index % 32)) & 1u) != 0;
}

}  // namespace pci
}  // namespace nichandover
