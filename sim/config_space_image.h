// The simulated NIC's PCI face: a config space copied from a real Intel I210
// (8086:1533; the public dump in sim/testdata/), so the PCI layer's walker
// and codecs read it exactly as they read the real device:
//   0x00 type 0 header, BAR0 registers, BAR3 MSI-X (table at 0, PBA at 0x2000)
//   0x40 Power Management, 0x50 MSI (64-bit, per-vector masking),
//   0x70 MSI-X (5 entries), 0xa0 PCI Express (v2) endpoint.
// At power-on MSI-X is disabled and every table entry is masked (the reset
// values the PCI spec gives), as the device comes out of reset before a
// driver probes it.
//
// SimConfigSpace and SimBarMemory are the pci layer's ConfigSpace and
// BarMemory over the shared memory: 32-bit accesses are atomic. A write
// rings the device's doorbell when it can make the device act: every config
// write (MSI-X enable and function mask), and in the MSI-X table only a
// Vector Control write that leaves the entry unmasked (the device delivers
// what is pending there). The device reads an entry's message and mask when
// it raises that entry, so a write to a masked entry's address or data, or
// a mask, needs no wake-up: waking the device thread for each of the
// table's words cost a handover's Reroute a futex wake and a context switch
// per word (docs/performance.md).
#ifndef NICHANDOVER_SIM_CONFIG_SPACE_IMAGE_H_
#define NICHANDOVER_SIM_CONFIG_SPACE_IMAGE_H_

#include <cstdint>

#include "pci/bar_memory.h"
#include "pci/config_space.h"
#include "sim/machine_layout.h"

namespace nichandover {
namespace sim {

inline constexpr uint32_t kMsixCapabilityOffset = 0x70;
inline constexpr uint32_t kMsiCapabilityOffset = 0x50;
inline constexpr uint32_t kExpressCapabilityOffset = 0xa0;
inline constexpr uint16_t kSimVendorId = 0x8086;
inline constexpr uint16_t kSimDeviceId = 0x1533;

// Writes the power-on config space and MSI-X BAR of the NIC.
void PowerOnNic(NicState& nic);

// MSI-X Message Control as the device sees it now.
uint16_t ReadMsixControl(const NicState& nic);

class SimConfigSpace : public pci::ConfigSpace {
 public:
  SimConfigSpace(NicState& nic, Doorbell& device_bell) : nic_(nic), bell_(device_bell) {}
  uint32_t size() const override { return kConfigSpaceSize; }

 protected:
  absl::StatusOr<uint32_t> ReadAligned(uint32_t offset, int width) override;
  absl::Status WriteAligned(uint32_t offset, int width, uint32_t value) override;

 private:
  NicState& nic_;
  Doorbell& bell_;
};

class SimBarMemory : public pci::BarMemory {
 public:
  SimBarMemory(NicState& nic, Doorbell& device_bell) : nic_(nic), bell_(device_bell) {}
  // Only the MSI-X BAR is mapped here: the register file (BAR0) belongs to
  // the driver in the node's kernel.
  absl::StatusOr<uint32_t> Read32(int bar, uint64_t offset) override;
  absl::Status Write32(int bar, uint64_t offset, uint32_t value) override;

 private:
  absl::StatusOr<std::atomic<uint32_t>*> Word(int bar, uint64_t offset);

  NicState& nic_;
  Doorbell& bell_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_CONFIG_SPACE_IMAGE_H_
