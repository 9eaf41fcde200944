// Text for `nicctl msi show`: the MSI/MSI-X lines as `lspci -vvv` prints
// them, then one line per vector with its message and decoded route.
#ifndef NICHANDOVER_PCI_RENDER_H_
#define NICHANDOVER_PCI_RENDER_H_

#include <string>
#include <vector>

#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace pci {

// Lines without trailing newlines; continuation lines start with a tab, as
// lspci indents them. Example (RTL8111):
//   Capabilities: [50] MSI: Enable+ Count=1/1 Maskable- 64bit+
//   	Address: 00000000fee05000  Data: 4021
//   	Vector 0: APIC 5 vector 0x21 fixed edge physical
std::vector<std::string> RenderInterruptLayout(const v1::InterruptLayout& layout);

// One vector's decoded route, e.g. "APIC 5 vector 0x21 fixed edge physical",
// "remappable: IRTE handle 0x0012 (interrupt remapping is on)".
std::string DescribeRoute(const v1::DecodedRoute& route);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_RENDER_H_
