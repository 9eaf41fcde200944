// Memory-mapped registers inside a function's BARs, where MSI-X keeps its
// vector table and pending-bit array.
//
// Implementations here: MemoryBarMemory (bytes in memory: tests, the
// simulated machine's BAR window). On Linux the kernel module provides one:
// since Linux 5.12 a user-space mapping of a BAR that a driver owns may be
// revoked, so the daemon must not map it itself.
//
// Accesses are 32-bit and 4-byte aligned: the MSI-X table and PBA accept
// DWORD accesses (PCI 3.0, 6.8.2), and no other size is needed.
#ifndef NICHANDOVER_PCI_BAR_MEMORY_H_
#define NICHANDOVER_PCI_BAR_MEMORY_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nichandover {
namespace pci {

inline constexpr int kBarCount = 6;

class BarMemory {
 public:
  virtual ~BarMemory() = default;
  // NOT_FOUND for a BAR the device does not have (or that is not mapped),
  // OUT_OF_RANGE past its end, INVALID_ARGUMENT when misaligned.
  virtual absl::StatusOr<uint32_t> Read32(int bar, uint64_t offset) = 0;
  virtual absl::Status Write32(int bar, uint64_t offset, uint32_t value) = 0;
};

// BARs held as bytes in memory. Bytes start as `fill`.
class MemoryBarMemory : public BarMemory {
 public:
  // Adds (or replaces) BAR `bar` of `size` bytes.
  void AddBar(int bar, uint64_t size, uint8_t fill = 0);
  // The bytes of a BAR (empty when absent).
  std::vector<uint8_t> bytes(int bar) const;

  absl::StatusOr<uint32_t> Read32(int bar, uint64_t offset) override;
  absl::Status Write32(int bar, uint64_t offset, uint32_t value) override;

 private:
  absl::StatusOr<std::vector<uint8_t>*> Region(int bar, uint64_t offset);

  std::map<int, std::vector<uint8_t>> bars_;
};

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_BAR_MEMORY_H_
