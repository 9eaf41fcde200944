// A PCI function's address: domain, bus, device, function ("BDF").
#ifndef NICHANDOVER_PCI_BDF_H_
#define NICHANDOVER_PCI_BDF_H_

#include <cstdint>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nichandover {
namespace pci {

struct Bdf {
  uint32_t domain = 0;  // PCI segment; Linux VMD domains exceed 0xffff
  uint8_t bus = 0;
  uint8_t device = 0;    // 0..0x1f
  uint8_t function = 0;  // 0..7

  // Full form, "0000:03:00.0" (the domain widens past 4 digits if needed).
  std::string ToString() const;

  friend bool operator==(const Bdf& a, const Bdf& b) {
    return std::tie(a.domain, a.bus, a.device, a.function) ==
           std::tie(b.domain, b.bus, b.device, b.function);
  }
  friend bool operator!=(const Bdf& a, const Bdf& b) { return !(a == b); }
  friend bool operator<(const Bdf& a, const Bdf& b) {
    return std::tie(a.domain, a.bus, a.device, a.function) <
           std::tie(b.domain, b.bus, b.device, b.function);
  }
};

// Parses "0000:03:00.0" or the short "03:00.0" (domain 0). Hex digits in any
// case; the domain has 1..8 digits, bus and device exactly 2, the function 1.
// INVALID_ARGUMENT with the offending part named otherwise.
absl::StatusOr<Bdf> ParseBdf(absl::string_view text);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_BDF_H_
