// The vm platform's connection to the host agent (vmhost/agent.proto): every
// call with its own deadline, gRPC statuses mapped to absl ones. Thread-safe
// (a gRPC stub is).
#ifndef NICHANDOVER_DAEMON_PLATFORM_VM_AGENT_CLIENT_H_
#define NICHANDOVER_DAEMON_PLATFORM_VM_AGENT_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent.grpc.pb.h"
#include "daemon/platform/platform.h"

namespace nichandover {
namespace platform {
namespace vm {

class AgentClient {
 public:
  AgentClient(std::shared_ptr<vmhost::VmAgent::StubInterface> stub, std::string vm_name)
      : stub_(std::move(stub)), vm_name_(std::move(vm_name)) {}

  const std::string& vm_name() const { return vm_name_; }

  absl::StatusOr<std::vector<vmhost::AgentNic>> ListNics();
  absl::Status ReportNic(const std::string& bdf, const v1::InterruptLayout& interrupts);
  absl::StatusOr<v1::OwnershipRecord> ReadRecord(const std::string& bdf);
  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired);
  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings);
  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch);
  // Moves the NIC where its record at `epoch` says (may take seconds: the
  // guest acknowledges the unplug).
  absl::StatusOr<vmhost::PlaceNicResponse> PlaceNic(const std::string& bdf, const Fence& fence);

 private:
  std::shared_ptr<vmhost::VmAgent::StubInterface> stub_;
  const std::string vm_name_;
};

// Why a NIC that is not plugged into this VM cannot be worked on here:
// NOT_FOUND when the agent has no such NIC (the machine does not have it),
// FAILED_PRECONDITION naming `what` when another VM holds it.
absl::Status NotPluggedHere(AgentClient& agent, const std::string& bdf, absl::string_view what);

// The ownership records kept by the host agent.
class AgentArbiter : public Arbiter {
 public:
  explicit AgentArbiter(std::shared_ptr<AgentClient> agent) : agent_(std::move(agent)) {}

  absl::StatusOr<v1::OwnershipRecord> Read(const std::string& bdf) override;
  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired) override;
  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings) override;
  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch) override;

 private:
  std::shared_ptr<AgentClient> agent_;
};

}  // namespace vm
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_VM_AGENT_CLIENT_H_
