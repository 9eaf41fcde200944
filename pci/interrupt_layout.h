// A device's interrupt capability and current routing, decoded from config
// space (and BAR memory for the MSI-X table) into the API's InterruptLayout.
#ifndef NICHANDOVER_PCI_INTERRUPT_LAYOUT_H_
#define NICHANDOVER_PCI_INTERRUPT_LAYOUT_H_

#include <optional>

#include "absl/status/statusor.h"
#include "nichandover/v1/resources.pb.h"
#include "pci/bar_memory.h"
#include "pci/config_space.h"
#include "pci/msi.h"
#include "pci/x86_msi.h"

namespace nichandover {
namespace pci {

// The MSI and MSI-X capabilities a device has (either may be absent).
struct DeviceInterrupts {
  std::optional<MsiCapability> msi;
  std::optional<MsixCapability> msix;

  // The mode in use: an enabled MSI-X wins over MSI; neither enabled is INTx.
  v1::InterruptMode mode() const;
};

// Walks the standard capability list and decodes MSI and MSI-X. Fails with
// the walk's error if the list is malformed or not captured before both were
// seen (a route must never be guessed from a broken list).
absl::StatusOr<DeviceInterrupts> ReadDeviceInterrupts(ConfigSpace& config);

// Decodes into the API form. Mode INTX still describes the capability a
// driver would enable (MSI-X if present, else MSI) with enabled = false, so
// operators see what exists; capability_offset is 0 only when there is none.
// `bars` may be null: MSI-X vectors are then left empty (the table lives in
// BAR memory); so are they when reading the table fails.
absl::StatusOr<v1::InterruptLayout> DecodeInterruptLayout(ConfigSpace& config, BarMemory* bars);

v1::DecodedRoute ToDecodedRoute(const X86MsiMessage& message);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_INTERRUPT_LAYOUT_H_
