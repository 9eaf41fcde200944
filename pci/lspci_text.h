// Reads what `lspci -vvv` prints about MSI and MSI-X, in every wording lspci
// has used, so tests can hold the decoder against the real tool:
//   since 3.1 (2009): "MSI: Enable+ Count=1/1 Maskable- 64bit+",
//                     "MSI-X: Enable+ Count=10 Masked-"
//   3.0.x:            "MSI: Mask+ 64bit+ Count=1/1 Enable-",
//                     "MSI-X: Enable+ Mask- TabSize=10"
//   2.x:              "Message Signalled Interrupts: Mask- 64bit+ Queue=0/0 Enable-"
//                     (Queue= gives log2 of the counts)
// plus the lines under them: "Address: ...  Data: ...", "Masking: ...
// Pending: ...", "Vector table: BAR=n offset=...", "PBA: BAR=n offset=...".
#ifndef NICHANDOVER_PCI_LSPCI_TEXT_H_
#define NICHANDOVER_PCI_LSPCI_TEXT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pci/bdf.h"

namespace nichandover {
namespace pci {

struct LspciMsi {
  uint32_t offset = 0;
  bool enabled = false;
  std::optional<bool> maskable;  // absent in the oldest wording
  bool is_64bit = false;
  uint32_t vectors_enabled = 0;
  uint32_t vectors_capable = 0;
  std::optional<uint64_t> address;
  std::optional<uint32_t> data;
  std::optional<uint32_t> mask_bits;
  std::optional<uint32_t> pending_bits;
};

struct LspciMsix {
  uint32_t offset = 0;
  bool enabled = false;
  bool function_masked = false;
  uint32_t table_size = 0;
  std::optional<uint32_t> table_bar, table_offset, pba_bar, pba_offset;
};

struct LspciDevice {
  Bdf bdf;
  std::optional<LspciMsi> msi;
  std::optional<LspciMsix> msix;
  // Whether the text decodes capabilities at all (false for a hex-only dump).
  bool has_capability_lines = false;
  // lspci's own verdicts on the capability list.
  bool access_denied = false;  // "<access denied>"
  bool chain_looped = false;   // "<chain looped>"
  bool chain_broken = false;   // "<chain broken>"
};

// INVALID_ARGUMENT when an MSI/MSI-X line does not parse (a wording this
// parser does not know must fail loudly, not compare nothing).
absl::StatusOr<std::vector<LspciDevice>> ParseLspciVerbose(absl::string_view text);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_LSPCI_TEXT_H_
