#include "pci/config_space.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace nichandover {
namespace pci {

absl::Status ConfigSpace::CheckAccess(uint32_t offset, int width) const {
  if (offset % width != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "misaligned %d-bit config access at 0x%03x", width * 8, offset));
  }
  if (static_cast<uint64_t>(offset) + width > size()) {
    return absl::OutOfRangeError(absl::StrFormat(
        "config access at 0x%03x (%d bytes) is past the end of the %u-byte config space", offset,
        width, size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> ConfigSpace::Read8(uint32_t offset) {
  if (absl::Status s = CheckAccess(offset, 1); !s.ok()) return s;
  absl::StatusOr<uint32_t> v = ReadAligned(offset, 1);
  if (!v.ok()) return v.status();
  return static_cast<uint8_t>(*v);
}

absl::StatusOr<uint16_t> ConfigSpace::Read16(uint32_t offset) {
  if (absl::Status s = CheckAccess(offset, 2); !s.ok()) return s;
  absl::StatusOr<uint32_t> v = ReadAligned(offset, 2);
  if (!v.ok()) return v.status();
  return static_cast<uint16_t>(*v);
}

absl::StatusOr<uint32_t> ConfigSpace::Read32(uint32_t offset) {
  if (absl::Status s = CheckAccess(offset, 4); !s.ok()) return s;
  return ReadAligned(offset, 4);
}

absl::Status ConfigSpace::Write8(uint32_t offset, uint8_t value) {
  if (absl::Status s = CheckAccess(offset, 1); !s.ok()) return s;
  return WriteAligned(offset, 1, value);
}

absl::Status ConfigSpace::Write16(uint32_t offset, uint16_t value) {
  if (absl::Status s = CheckAccess(offset, 2); !s.ok()) return s;
  return WriteAligned(offset, 2, value);
}

absl::Status ConfigSpace::Write32(uint32_t offset, uint32_t value) {
  if (absl::Status s = CheckAccess(offset, 4); !s.ok()) return s;
  return WriteAligned(offset, 4, value);
}

MemoryConfigSpace::MemoryConfigSpace(std::vector<uint8_t> bytes)
    : owned_(std::move(bytes)), data_(nullptr), size_(0), readable_size_(0) {
  readable_size_ = static_cast<uint32_t>(std::min<size_t>(owned_.size(), kExtendedConfigSize));
  size_ = readable_size_ <= kConventionalConfigSize ? kConventionalConfigSize : kExtendedConfigSize;
  owned_.resize(size_, 0xff);
  data_ = owned_.data();
}

MemoryConfigSpace::MemoryConfigSpace(uint8_t* data, uint32_t size, uint32_t readable_size)
    : data_(data), size_(size), readable_size_(readable_size) {}

MemoryConfigSpace MemoryConfigSpace::OverBuffer(uint8_t* data, uint32_t size) {
  const uint32_t checked =
      size >= kExtendedConfigSize ? kExtendedConfigSize : kConventionalConfigSize;
  return MemoryConfigSpace(data, checked, checked);
}

MemoryConfigSpace::MemoryConfigSpace(const MemoryConfigSpace& other)
    : owned_(other.owned_),
      data_(other.owned_.empty() ? other.data_ : owned_.data()),
      size_(other.size_),
      readable_size_(other.readable_size_) {}

absl::StatusOr<uint32_t> MemoryConfigSpace::ReadAligned(uint32_t offset, int width) {
  uint32_t value = 0;
  for (int i = width - 1; i >= 0; --i) {
    const uint32_t at = offset + i;
    const uint8_t byte = at < readable_size_ ? data_[at] : 0xff;
    value = (value << 8) | byte;
  }
  return value;
}

absl::Status MemoryConfigSpace::WriteAligned(uint32_t offset, int width, uint32_t value) {
  if (!IsReadable(offset, width)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "config bytes 0x%03x..0x%03x were not captured (only %u bytes are present)", offset,
        offset + width - 1, readable_size_));
  }
  for (int i = 0; i < width; ++i) {
    data_[offset + i] = static_cast<uint8_t>(value >> (8 * i));
  }
  return absl::OkStatus();
}

}  // namespace pci
}  // namespace nichandover
