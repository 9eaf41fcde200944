#include "pci/bar_memory.h"

#include "absl/strings/str_format.h"

namespace nichandover {
namespace pci {

void MemoryBarMemory::AddBar(int bar, uint64_t size, uint8_t fill) {
  bars_[bar] = std::vector<uint8_t>(size, fill);
}

std::vector<uint8_t> MemoryBarMemory::bytes(int bar) const {
  auto it = bars_.find(bar);
  return it == bars_.end() ? std::vector<uint8_t>() : it->second;
}

absl::StatusOr<std::vector<uint8_t>*> MemoryBarMemory::Region(int bar, uint64_t offset) {
  auto it = bars_.find(bar);
  if (it == bars_.end()) {
    return absl::NotFoundError(absl::StrFormat("BAR %d is not mapped", bar));
  }
  if (offset % 4 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("misaligned 32-bit access at BAR %d offset 0x%x", bar, offset));
  }
  if (offset + 4 > it->second.size()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "BAR %d offset 0x%x is past its end (0x%x bytes)", bar, offset, it->second.size()));
  }
  return &it->second;
}

absl::StatusOr<uint32_t> MemoryBarMemory::Read32(int bar, uint64_t offset) {
  absl::StatusOr<std::vector<uint8_t>*> region = Region(bar, offset);
  if (!region.ok()) return region.status();
  const std::vector<uint8_t>& b = **region;
  return static_cast<uint32_t>(b[offset]) | static_cast<uint32_t>(b[offset + 1]) << 8 |
         static_cast<uint32_t>(b[offset + 2]) << 16 | static_cast<uint32_t>(b[offset + 3]) << 24;
}

absl::Status MemoryBarMemory::Write32(int bar, uint64_t offset, uint32_t value) {
  absl::StatusOr<std::vector<uint8_t>*> region = Region(bar, offset);
  if (!region.ok()) return region.status();
  for (int i = 0; i < 4; ++i) (**region)[offset + i] = static_cast<uint8_t>(value >> (8 * i));
  return absl::OkStatus();
}

}  // namespace pci
}  // namespace nichandover
