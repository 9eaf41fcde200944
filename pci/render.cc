#include "pci/render.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nichandover {
namespace pci {
namespace {

char Flag(bool value) { return value ? '+' : '-'; }

const char* DeliveryName(v1::DeliveryMode mode) {
  switch (mode) {
    case v1::DELIVERY_MODE_FIXED: return "fixed";
    case v1::DELIVERY_MODE_LOWEST_PRIORITY: return "lowest-priority";
    case v1::DELIVERY_MODE_SMI: return "SMI";
    case v1::DELIVERY_MODE_NMI: return "NMI";
    case v1::DELIVERY_MODE_INIT: return "INIT";
    case v1::DELIVERY_MODE_EXTINT: return "ExtINT";
    default: return "reserved";
  }
}

bool IsX86InterruptAddress(uint64_t address) { return (address >> 20) == 0xfee; }

std::string VectorLine(const v1::InterruptVector& v, bool msix) {
  std::string line = absl::StrFormat("\tVector %u: ", v.index());
  if (msix) {
    absl::StrAppendFormat(&line, "Address: %016x  Data: %08x  Masked%c Pending%c  ",
                          v.message().address(), v.message().data(), Flag(v.masked()),
                          Flag(v.pending()));
  }
  if (!IsX86InterruptAddress(v.message().address())) {
    absl::StrAppend(&line, "-> not an x86 interrupt address");
  } else {
    absl::StrAppend(&line, "-> ", DescribeRoute(v.route()));
  }
  if (!v.route().destination_node().empty()) {
    absl::StrAppend(&line, " (node ", v.route().destination_node(), ")");
  }
  return line;
}

}  // namespace

std::string DescribeRoute(const v1::DecodedRoute& route) {
  if (route.remappable()) {
    return absl::StrFormat("remappable: IRTE handle 0x%04x (interrupt remapping is on)",
                           route.irte_handle());
  }
  std::string text = absl::StrFormat(
      "APIC %u vector 0x%02x %s %s %s", route.destination_apic_id(), route.vector(),
      DeliveryName(route.delivery_mode()), route.level_trigger() ? "level" : "edge",
      route.logical_destination() ? "logical" : "physical");
  if (route.redirection_hint()) absl::StrAppend(&text, " redirection-hint");
  return text;
}

namespace {

// The capability's lines, then its vectors. `in_use`: the capability the
// device's interrupts go through (or would); the other one of a device with
// both is shown without vectors.
void AppendCapability(const v1::InterruptLayout& layout, bool in_use,
                      std::vector<std::string>& lines) {
  // An MSI-X layout always reports per-vector masking and a 64-bit address
  // with a PBA somewhere; an MSI layout never has a PBA or table fields.
  const bool msix = layout.mode() == v1::INTERRUPT_MODE_MSIX ||
                    (layout.mode() == v1::INTERRUPT_MODE_INTX &&
                     (layout.pba_offset() != 0 || layout.table_offset() != 0 ||
                      layout.pba_bar() != 0 || layout.table_bar() != 0));
  if (layout.mode() == v1::INTERRUPT_MODE_INTX) {
    lines.push_back("Interrupt mode: INTx (capability present but not enabled)");
  }
  if (msix) {
    lines.push_back(absl::StrFormat("Capabilities: [%02x] MSI-X: Enable%c Count=%u Masked%c",
                                    layout.capability_offset(), Flag(layout.enabled()),
                                    layout.vectors_supported(), Flag(layout.function_masked())));
    lines.push_back(absl::StrFormat("\tVector table: BAR=%u offset=%08x", layout.table_bar(),
                                    layout.table_offset()));
    lines.push_back(
        absl::StrFormat("\tPBA: BAR=%u offset=%08x", layout.pba_bar(), layout.pba_offset()));
    if (layout.vectors_size() == 0 && in_use) {
      lines.push_back("\tVectors: table not readable here (it lives in BAR memory)");
    }
  } else {
    lines.push_back(absl::StrFormat("Capabilities: [%02x] MSI: Enable%c Count=%u/%u Maskable%c 64bit%c",
                                    layout.capability_offset(), Flag(layout.enabled()),
                                    layout.vectors_enabled(), layout.vectors_supported(),
                                    Flag(layout.per_vector_masking()),
                                    Flag(layout.address_64bit())));
    if (layout.vectors_size() > 0) {
      const v1::InterruptVector& first = layout.vectors(0);
      lines.push_back(layout.address_64bit()
                          ? absl::StrFormat("\tAddress: %016x  Data: %04x",
                                            first.message().address(), first.message().data())
                          : absl::StrFormat("\tAddress: %08x  Data: %04x",
                                            first.message().address(), first.message().data()));
      if (layout.per_vector_masking()) {
        uint32_t mask = 0, pending = 0;
        for (const v1::InterruptVector& v : layout.vectors()) {
          if (v.index() < 32) {
            mask |= static_cast<uint32_t>(v.masked()) << v.index();
            pending |= static_cast<uint32_t>(v.pending()) << v.index();
          }
        }
        lines.push_back(absl::StrFormat("\tMasking: %08x  Pending: %08x", mask, pending));
      }
    }
  }
  for (const v1::InterruptVector& v : layout.vectors()) lines.push_back(VectorLine(v, msix));
}

}  // namespace

std::vector<std::string> RenderInterruptLayout(const v1::InterruptLayout& layout) {
  std::vector<std::string> lines;
  if (layout.capability_offset() == 0) {
    lines.push_back("No MSI or MSI-X capability: legacy INTx only");
    return lines;
  }
  AppendCapability(layout, /*in_use=*/true, lines);
  if (layout.has_other_capability() && layout.other_capability().capability_offset() != 0) {
    AppendCapability(layout.other_capability(), /*in_use=*/false, lines);
  }
  return lines;
}

}  // namespace pci
}  // namespace nichandover
