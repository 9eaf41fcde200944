// The host agent's logic, without gRPC: the NICs' ownership records (the
// Arbiter of the VM deployment) and the placement of each NIC in the VM its
// record names. AgentService (agent_service.h) serves it over gRPC.
//
// Records change only by compare-and-swap under one lock and are written to
// the state file (temporary file, fsync, rename) before the call answers, so
// an agent restart never forgets a CAS it acknowledged. Placements of one NIC
// are serialised; a placement never holds the record lock, so CASes (the
// daemons' 1 s arbiter calls) never wait for QEMU.
#ifndef NICHANDOVER_VMHOST_AGENT_H_
#define NICHANDOVER_VMHOST_AGENT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent.pb.h"
#include "common/fence.h"
#include "hypervisor.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace vmhost {

class Agent {
 public:
  // INVALID_ARGUMENT for an inconsistent configuration; the state file's
  // records win over `initial_owner`. `hypervisor` outlives the agent.
  static absl::StatusOr<std::unique_ptr<Agent>> Create(AgentConfig config,
                                                       Hypervisor* hypervisor);

  // Asks the hypervisor where each NIC is now.
  absl::StatusOr<std::vector<AgentNic>> ListNics();
  absl::Status ReportNic(const std::string& bdf, const std::string& vm,
                         const v1::InterruptLayout& interrupts);

  // Arbiter semantics as platform::Arbiter (daemon/platform/platform.h).
  absl::StatusOr<v1::OwnershipRecord> Read(const std::string& bdf);
  // INVALID_ARGUMENT when `desired` names a node no VM runs, lacks the
  // owner/target its state needs, or lowers the epoch.
  absl::StatusOr<v1::OwnershipRecord> CompareAndSwap(const std::string& bdf,
                                                     const v1::OwnershipRecord& expected,
                                                     const v1::OwnershipRecord& desired);
  absl::Status WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                 const std::vector<v1::QueueRingState>& rings);
  absl::StatusOr<std::vector<v1::QueueRingState>> ReadHandoffRings(const std::string& bdf,
                                                                   uint64_t epoch);

  // See VmAgent.PlaceNic in agent.proto.
  absl::StatusOr<PlaceNicResponse> PlaceNic(const std::string& bdf, const Fence& fence,
                                            const std::string& caller);

 private:
  struct Nic {
    NicConfig config;
    AgentState::Entry state;  // guarded by records_mu_
    std::optional<PciIdentity> identity;  // guarded by records_mu_
    absl::Mutex place_mu;  // serialises placements of this NIC
  };

  Agent(AgentConfig config, Hypervisor* hypervisor);
  absl::StatusOr<Nic*> Find(const std::string& bdf);
  absl::Status CheckRecord(const v1::OwnershipRecord& record) const;
  // Writes every NIC's state; called with records_mu_ held.
  absl::Status Persist() ABSL_EXCLUSIVE_LOCKS_REQUIRED(records_mu_);
  // The VM holding the NIC now ("" if none); INTERNAL if several do.
  absl::StatusOr<std::string> Locate(Nic& nic);
  std::string VmOfNode(const std::string& node_id) const;
  std::string NodeOfVm(const std::string& vm) const;

  const AgentConfig config_;
  Hypervisor* const hypervisor_;
  std::map<std::string, std::unique_ptr<Nic>> nics_;  // by BDF; fixed after Create
  absl::Mutex records_mu_;
};

// "0000:01:00.0" from "0000:01:00.0" or "01:00.0" (pci::ParseBdf's rules);
// INVALID_ARGUMENT otherwise.
absl::StatusOr<std::string> CanonicalPciAddress(const std::string& bdf);

}  // namespace vmhost
}  // namespace nichandover

#endif  // NICHANDOVER_VMHOST_AGENT_H_
