// Rewrites a device's MSI or MSI-X messages to new destinations, as an
// explicit sequence of register operations planned before anything is
// written, together with its exact inverse for rollback.
//
// Sequences (docs/pci.md explains why each is safe):
//   MSI-X, per entry: set the mask bit in vector control; write address low,
//     address high, data; read all back and compare; leave masked (the target
//     node's attach unmasks); after all entries, read the PBA bits.
//   MSI with per-vector masking: set the mask bits of the enabled vectors;
//     write address low/high and data; read back and compare; leave masked;
//     read the pending bits.
//   MSI without masking: no write is atomic, so move in two single-register
//     steps that each leave a valid (destination, vector) pair, as Linux's
//     msi_set_affinity does: first the data (new vector, old destination),
//     then the address. An interrupt raised between the steps reaches the old
//     CPU on the new vector, so the outcome carries a replay flag: the attach
//     step must replay one interrupt (a spurious one is harmless).
// The inverse writes the previous messages back the same way and returns
// every mask bit to its state before the reroute, so reroute + restore leaves
// config space and the table byte-for-byte as they were.
//
// Messages in the remappable format (interrupt remapping on) are refused with
// FAILED_PRECONDITION: their route lives in the IOMMU's IRTE, not the device.
#ifndef NICHANDOVER_PCI_REROUTE_H_
#define NICHANDOVER_PCI_REROUTE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nichandover/v1/resources.pb.h"
#include "pci/bar_memory.h"
#include "pci/config_space.h"
#include "pci/x86_msi.h"

namespace nichandover {
namespace pci {

struct RegisterOp {
  enum class Kind {
    kWrite,         // write `value`
    kVerify,        // read back; must equal `value`
    kReadPending,   // read a pending bit of `vector` (bit `bit` of the register)
  };
  enum class Space { kConfig, kBar };

  Kind kind = Kind::kWrite;
  Space space = Space::kConfig;
  int bar = 0;          // kBar only
  uint64_t offset = 0;  // config offset or BAR offset
  int width = 4;        // bytes: 2 or 4
  uint32_t value = 0;
  uint32_t vector = 0;  // the vector this op belongs to
  uint32_t bit = 0;     // kReadPending: bit within the register
  std::string what;     // "MSI-X entry 3 address low", for logs and errors
};

struct ReroutePlan {
  v1::InterruptMode mode = v1::INTERRUPT_MODE_UNSPECIFIED;
  // The messages in the device before, and after, one per rerouted vector.
  std::vector<RawMsiMessage> previous;
  std::vector<RawMsiMessage> target;
  std::vector<RegisterOp> forward;
  std::vector<RegisterOp> inverse;
  // MSI without masking changed both destination and vector in two steps.
  bool replay_required = false;
};

struct ApplyOutcome {
  // Vectors whose pending bit was set after the writes (their interrupt
  // arrived while masked: the attach step's unmask delivers it).
  std::vector<uint32_t> pending_vectors;
  bool replay_required = false;
};

// Plans moving the vectors in use to `target` (one message per vector: for
// MSI exactly vectors-enabled messages forming one aligned block, as the
// device derives vector i's data from the base; for MSI-X 1..table-size
// messages for entries 0..n-1). `bars` is needed for MSI-X only.
// FAILED_PRECONDITION: no MSI/MSI-X enabled, remappable format, no BAR
// access for MSI-X. INVALID_ARGUMENT: bad target list.
absl::StatusOr<ReroutePlan> PlanReroute(ConfigSpace& config, BarMemory* bars,
                                        const std::vector<RawMsiMessage>& target);

// Runs `ops` in order and stops at the first failure: a failed write, or a
// read-back that differs (ABORTED, naming the register). After a failure the
// plan's inverse is still safe to apply: it writes absolute values.
absl::StatusOr<ApplyOutcome> ApplyRegisterOps(const std::vector<RegisterOp>& ops,
                                              ConfigSpace& config, BarMemory* bars);

// PlanReroute + apply forward. The plan is returned for a later Restore.
absl::StatusOr<ReroutePlan> Reroute(ConfigSpace& config, BarMemory* bars,
                                    const std::vector<RawMsiMessage>& target,
                                    ApplyOutcome* outcome);
// Applies plan.inverse.
absl::StatusOr<ApplyOutcome> Restore(ConfigSpace& config, BarMemory* bars,
                                     const ReroutePlan& plan);

// The FAILED_PRECONDITION error for a message in the remappable format.
absl::Status RemappableRefusal(uint32_t vector, const RawMsiMessage& message, const char* whose);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_REROUTE_H_
