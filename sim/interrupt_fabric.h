// The interrupt fabric: where an MSI goes. The device hands it the message it
// wrote (address, data); the fabric decodes it with the PCI layer's x86 codec
// and, like the system bus and the local APICs, delivers the vector to the
// node whose CPU has the destination APIC ID: the vector's bit is set in that
// node's interrupt request register and the node's CPU is woken.
//
// Faithful where it matters: a vector the node never installed a handler for
// is counted as spurious and dropped (Linux: "No irq handler for vector"); a
// message that names no CPU of the machine, or is not an x86 interrupt
// address, or is in the remappable format (no IOMMU here) is counted as
// unroutable.
#ifndef NICHANDOVER_SIM_INTERRUPT_FABRIC_H_
#define NICHANDOVER_SIM_INTERRUPT_FABRIC_H_

#include <cstdint>
#include <vector>

#include "sim/machine.h"

namespace nichandover {
namespace sim {

enum class MsiOutcome { kDelivered, kSpurious, kUnroutable };

class InterruptFabric {
 public:
  explicit InterruptFabric(Machine& machine) : machine_(machine) {}
  MsiOutcome Deliver(uint64_t address, uint32_t data);

 private:
  Machine& machine_;
};

// The local APIC side, used by a node's kernel.
void RegisterVector(NodeSlot& node, uint8_t vector);
void UnregisterVector(NodeSlot& node, uint8_t vector);
bool IsVectorRegistered(const NodeSlot& node, uint8_t vector);
// Takes (and clears) every requested vector, lowest first.
std::vector<uint8_t> TakePendingVectors(NodeSlot& node);

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_INTERRUPT_FABRIC_H_
