// The NICs' hardware model (the device "process" of the machine; in tests a
// thread). Each pass, for every NIC and every queue pair of it:
//  - RX: takes packets off the NIC's wire, picks the RX queue from the
//    packet's flow (flow % queues, as RSS hashes a flow to one queue) and
//    writes it into that queue's next free RX descriptor's buffer (the
//    hardware owns [RDH, RDT)), sets DD, advances RDH; with no free
//    descriptor the packet is dropped and counted in that queue's and the
//    NIC's rx_missed, as a real NIC's missed-packets counters do.
//  - TX: sends every descriptor in each queue's [TDH, TDT) to the wire,
//    writes the completion (DD), advances TDH. A full wire (sink not keeping
//    up) holds transmission, like link-level flow control.
//  - Interrupts: work sets the queue's cause (queue q: MSI-X entry 1 + q); a cause whose EIMS bit is set
//    fires the queue's MSI-X entry and clears that EIMS bit (auto-mask, the
//    driver re-arms it when NAPI completes). A message raised while MSI-X is
//    function-masked or the entry is masked sets the entry's PBA bit
//    instead; once unmasked, the pending message is sent and the bit
//    cleared. Unmasked messages go to the interrupt fabric.
// The device sleeps on its doorbell when idle; MMIO writes (tail registers,
// EIMS, MSI-X table and capability writes) and wire arrivals ring it.
#ifndef NICHANDOVER_SIM_DEVICE_H_
#define NICHANDOVER_SIM_DEVICE_H_

#include <atomic>

#include "absl/time/time.h"
#include "sim/interrupt_fabric.h"
#include "sim/machine.h"

namespace nichandover {
namespace sim {

class Device {
 public:
  // `guests` reaches QEMU guests attached to nodes (null: none).
  explicit Device(Machine& machine, GuestLinks* guests = nullptr)
      : machine_(machine), fabric_(machine, guests) {}

  // One pass over RX, TX and interrupts; true if anything happened.
  bool RunOnce();
  // Passes until `stop`, sleeping up to `idle_wait` when there is nothing to do.
  void Run(const std::atomic<bool>& stop, absl::Duration idle_wait = absl::Milliseconds(2));

 private:
  bool ReceiveFromWire(int nic);
  bool TransmitToWire(int nic);
  void RaiseCauses(NicState& nic);
  // Fires entry `entry` now, or pends it when masked.
  void Signal(NicState& nic, uint32_t entry);
  bool ReplayPending(NicState& nic);
  void Send(NicState& nic, uint32_t entry);

  Machine& machine_;
  InterruptFabric fabric_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_DEVICE_H_
