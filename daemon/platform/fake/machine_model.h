// Lookups and small rules over FakeMachineState shared by the fake platform
// (what daemons call) and FakeMachine (what tests and the tool call).
#ifndef NICHANDOVER_DAEMON_PLATFORM_FAKE_MACHINE_MODEL_H_
#define NICHANDOVER_DAEMON_PLATFORM_FAKE_MACHINE_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "daemon/platform/fake/machine_state.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace platform {
namespace fake {

inline constexpr uint32_t kDefaultFirstVector = 0x40;
inline constexpr uint32_t kDefaultLastVector = 0xdf;
inline constexpr uint32_t kRingSize = 1024;
inline constexpr int kHistoryLimit = 200;

// x86 MSI compatibility format, physical destination, fixed delivery, edge:
// address 0xFEE00000 | apic << 12, data = vector. Enough for the fake; the
// full codec lives in the PCI layer.
v1::MsiMessage EncodeMsi(uint32_t apic_id, uint32_t vector);
uint32_t MsiDestinationApic(const v1::MsiMessage& message);
uint32_t MsiVector(const v1::MsiMessage& message);

// NOT_FOUND naming the BDF / node.
absl::StatusOr<FakeNic*> FindNic(FakeMachineState* state, const std::string& bdf);
absl::StatusOr<const FakeNic*> FindNic(const FakeMachineState& state, const std::string& bdf);
absl::StatusOr<const FakeNode*> FindNode(const FakeMachineState& state, const std::string& node_id);

// The node's hook entry for the NIC, created (detached, no driver) if absent.
FakeHook* HookFor(FakeNic* nic, const std::string& node_id);

// The node whose CPU has `apic_id`, "" if none.
std::string NodeOfApic(const FakeMachineState& state, uint32_t apic_id);

uint32_t FirstVector(const FakeNode& node);
uint32_t LastVector(const FakeNode& node);

void AppendHistory(FakeMachineState* state, const std::string& line);

// The node's kernel (kernel commit path), created empty if absent.
FakeKernel* KernelOf(FakeMachineState* state, const std::string& node_id);
// Rings `node_id`'s kernel doorbell for (bdf, epoch): the fabric's
// interrupt, kept until that node's kernel takes it.
void RingDoorbell(FakeMachineState* state, const std::string& node_id, const std::string& bdf,
                  uint64_t epoch);

const char* FakeOperationName(FakeOperation operation);  // "quiesce", "cas", ...
absl::StatusOr<FakeOperation> ParseFakeOperation(const std::string& name);

// The machine as the API shows it: interrupt layout with decoded routes.
v1::InterruptLayout InterruptLayoutOf(const FakeMachineState& state, const FakeNic& nic);

}  // namespace fake
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_FAKE_MACHINE_MODEL_H_
