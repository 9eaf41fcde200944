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
//
// A node may be a QEMU guest attached through ivshmem (guest_abi.h): then the
// guest's own table slot.guest_vector[vector] names the ivshmem vector (+1)
// to raise, through GuestLinks (the ivshmem front end); 0 is spurious.
#ifndef NICHANDOVER_SIM_INTERRUPT_FABRIC_H_
#define NICHANDOVER_SIM_INTERRUPT_FABRIC_H_

#include <cstdint>
#include <vector>

#include "sim/machine.h"

namespace nichandover {
namespace sim {

enum class MsiOutcome { kDelivered, kSpurious, kUnroutable };

// The machine's side of the guests' interrupt lines (IvshmemServer).
class GuestLinks {
 public:
  virtual ~GuestLinks() = default;
  // Raises ivshmem vector `ivshmem_vector` of the guest attached to node
  // `node_index`; false when no guest is attached or it has no such vector.
  virtual bool Raise(int node_index, uint32_t ivshmem_vector) = 0;
};

class InterruptFabric {
 public:
  // `guests` may be null: then no guest can be reached.
  explicit InterruptFabric(Machine& machine, GuestLinks* guests = nullptr)
      : machine_(machine), guests_(guests) {}
  MsiOutcome Deliver(uint64_t address, uint32_t data);
  // The kernel commit path's doorbell: puts `epoch` in node `node_index`'s
  // mailbox slot of NIC `nic`, then sends kHandoffDoorbellVector to the
  // node's first CPU (an IPI: it wakes that CPU, whose kernel handles it on
  // its interrupt path). kSpurious when no simulated kernel took the vector
  // there (none runs, or a guest: the mailbox still holds the epoch);
  // kUnroutable for a node the machine lacks.
  MsiOutcome RingHandoffDoorbell(int node_index, int nic, uint64_t epoch);

 private:
  Machine& machine_;
  GuestLinks* guests_;
};

// The local APIC side, used by a node's kernel. `cpu` indexes the node's
// apic_ids: each CPU has its own vectors, as on x86.
void RegisterVector(NodeSlot& node, int cpu, uint8_t vector);
void UnregisterVector(NodeSlot& node, int cpu, uint8_t vector);
bool IsVectorRegistered(const NodeSlot& node, int cpu, uint8_t vector);
struct CpuVector {
  int cpu = 0;
  uint8_t vector = 0;
  friend bool operator==(const CpuVector& a, const CpuVector& b) {
    return a.cpu == b.cpu && a.vector == b.vector;
  }
};
// Takes (and clears) every requested vector of every CPU, CPU by CPU, lowest
// vector first.
std::vector<CpuVector> TakePendingVectors(NodeSlot& node);
// The index of `apic_id` in the node's apic_ids, or -1.
int CpuOfApicId(const NodeSlot& node, uint32_t apic_id);

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_INTERRUPT_FABRIC_H_
