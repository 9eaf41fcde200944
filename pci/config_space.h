// Access to one PCI function's configuration space, behind one interface.
//
// Implementations: MemoryConfigSpace (bytes in memory: dump files, tests, and
// the seam for the simulated machine's shared memory) and the libpci-backed
// space of the real machine (libpci_access.h).
//
// Every access is naturally aligned (a 16-bit access at an even offset, a
// 32-bit one at a multiple of 4), as the hardware requires and libpci
// enforces (it calls its fatal error handler otherwise): misaligned accesses
// are INVALID_ARGUMENT, accesses past size() OUT_OF_RANGE. Values are
// little-endian, as on the bus.
#ifndef NICHANDOVER_PCI_CONFIG_SPACE_H_
#define NICHANDOVER_PCI_CONFIG_SPACE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nichandover {
namespace pci {

// Conventional PCI: 256 bytes. PCI Express (and PCI-X 2.0): 4096 bytes.
inline constexpr uint32_t kConventionalConfigSize = 256;
inline constexpr uint32_t kExtendedConfigSize = 4096;
// The type 0/1 header; capabilities live above it.
inline constexpr uint32_t kHeaderSize = 0x40;

class ConfigSpace {
 public:
  virtual ~ConfigSpace() = default;

  // 256 or 4096.
  virtual uint32_t size() const = 0;
  // How many bytes from offset 0 the backend can actually read: a dump made
  // with `lspci -x` holds 64, an unprivileged sysfs read gets 64. Reads at or
  // past this point return all-ones (as libpci's pci_read_* do); decoders use
  // it to say "not captured" instead of decoding 0xff as data.
  virtual uint32_t readable_size() const { return size(); }

  absl::StatusOr<uint8_t> Read8(uint32_t offset);
  absl::StatusOr<uint16_t> Read16(uint32_t offset);
  absl::StatusOr<uint32_t> Read32(uint32_t offset);
  absl::Status Write8(uint32_t offset, uint8_t value);
  absl::Status Write16(uint32_t offset, uint16_t value);
  absl::Status Write32(uint32_t offset, uint32_t value);

  // True when [offset, offset + length) lies inside readable_size().
  bool IsReadable(uint32_t offset, uint32_t length) const {
    return static_cast<uint64_t>(offset) + length <= readable_size();
  }

 protected:
  // `width` is 1, 2 or 4 and the access is aligned and inside size().
  virtual absl::StatusOr<uint32_t> ReadAligned(uint32_t offset, int width) = 0;
  virtual absl::Status WriteAligned(uint32_t offset, int width, uint32_t value) = 0;

 private:
  absl::Status CheckAccess(uint32_t offset, int width) const;
};

// Config space held in bytes: either owned, or a window onto memory that
// someone else owns (the simulated machine's shared config space). Writes to
// bytes at or past readable_size() fail with FAILED_PRECONDITION: those bytes
// were never captured, so there is nothing real to change.
class MemoryConfigSpace : public ConfigSpace {
 public:
  // Owns a copy of `bytes`, padded with 0xff to 256 or 4096 bytes (whichever
  // holds them); readable_size() is bytes.size().
  explicit MemoryConfigSpace(std::vector<uint8_t> bytes);
  // A window onto `size` bytes (256 or 4096) at `data`, not owned; the memory
  // must outlive this object. Accesses are plain byte copies: a backend that
  // needs atomic 32-bit accesses wraps its own ConfigSpace instead.
  static MemoryConfigSpace OverBuffer(uint8_t* data, uint32_t size);

  uint32_t size() const override { return size_; }
  uint32_t readable_size() const override { return readable_size_; }
  // The current contents (size() bytes).
  std::vector<uint8_t> bytes() const { return std::vector<uint8_t>(data_, data_ + size_); }

  MemoryConfigSpace(const MemoryConfigSpace& other);
  MemoryConfigSpace& operator=(const MemoryConfigSpace&) = delete;

 protected:
  absl::StatusOr<uint32_t> ReadAligned(uint32_t offset, int width) override;
  absl::Status WriteAligned(uint32_t offset, int width, uint32_t value) override;

 private:
  MemoryConfigSpace(uint8_t* data, uint32_t size, uint32_t readable_size);

  std::vector<uint8_t> owned_;
  uint8_t* data_;
  uint32_t size_;
  uint32_t readable_size_;
};

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_CONFIG_SPACE_H_
