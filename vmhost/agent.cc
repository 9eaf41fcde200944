#include "agent.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "daemon/platform/ownership_record.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "pci/bdf.h"

namespace nichandover {
namespace vmhost {
namespace {

absl::Status WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat(tmp, ": ", std::strerror(errno)));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::InternalError(absl::StrCat(tmp, ": write: ", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    return absl::InternalError(absl::StrCat(tmp, ": fsync: ", std::strerror(errno)));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(path, ": rename: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CanonicalPciAddress(const std::string& bdf) {
  absl::StatusOr<pci::Bdf> parsed = pci::ParseBdf(bdf);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", bdf, "' is not a PCI address (want 0000:01:00.0): ", parsed.status().message()));
  }
  return parsed->ToString();
}

Agent::Agent(AgentConfig config, Hypervisor* hypervisor)
    : config_(std::move(config)), hypervisor_(hypervisor) {}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentConfig config, Hypervisor* hypervisor) {
  std::set<std::string> vms, nodes;
  for (auto& vm : *config.mutable_vms()) {
    if (vm.name().empty()) return absl::InvalidArgumentError("vms: a VM without a name");
    if (vm.node_id().empty()) vm.set_node_id(vm.name());
    if (!vms.insert(vm.name()).second || !nodes.insert(vm.node_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("vms: '", vm.name(), "' twice"));
    }
  }
  for (auto& nic : *config.mutable_nics()) {
    auto bdf = CanonicalPciAddress(nic.bdf());
    if (!bdf.ok()) return absl::InvalidArgumentError(absl::StrCat("nics: ", bdf.status().message()));
    nic.set_bdf(*bdf);
    for (const std::string* field : {&nic.device_id(), &nic.netdev_id(), &nic.model(),
                                     &nic.driver(), &nic.mac(), &nic.bus(), &nic.stream_socket()}) {
      if (field->empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "nics: ", *bdf,
            " needs device_id, netdev_id, model, driver, mac, bus and stream_socket"));
      }
    }
    if (!nodes.count(nic.initial_owner())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nics: ", *bdf, ": initial_owner '", nic.initial_owner(), "' is no VM's node_id"));
    }
  }
  std::unique_ptr<Agent> agent(new Agent(config, hypervisor));
  for (const auto& nic : agent->config_.nics()) {
    auto entry = std::make_unique<Nic>();
    entry->config = nic;
    entry->state.set_bdf(nic.bdf());
    entry->state.mutable_record()->set_state(v1::OWNERSHIP_STATE_ACTIVE);
    entry->state.mutable_record()->set_owner_node(nic.initial_owner());
    entry->state.mutable_record()->set_epoch(1);
    if (!agent->nics_.emplace(nic.bdf(), std::move(entry)).second) {
      return absl::InvalidArgumentError(absl::StrCat("nics: ", nic.bdf(), " twice"));
    }
  }
  const std::string& path = agent->config_.state_file();
  if (!path.empty()) {
    std::ifstream in(path);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      AgentState state;
      if (!google::protobuf::TextFormat::ParseFromString(text.str(), &state)) {
        return absl::DataLossError(absl::StrCat(path, ": not an agent state file"));
      }
      for (const auto& entry : state.nics()) {
        auto it = agent->nics_.find(entry.bdf());
        if (it != agent->nics_.end()) it->second->state = entry;
      }
    }
    absl::MutexLock lock(&agent->records_mu_);
    if (absl::Status s = agent->Persist(); !s.ok()) return s;
  }
  return agent;
}

absl::Status Agent::Persist() {
  if (config_.state_file().empty()) return absl::OkStatus();
  AgentState state;
  for (const auto& [bdf, nic] : nics_) *state.add_nics() = nic->state;
  std::string text;
  google::protobuf::TextFormat::PrintToString(state, &text);
  return WriteFileAtomically(config_.state_file(), text);
}

absl::StatusOr<Agent::Nic*> Agent::Find(const std::string& bdf) {
  auto canonical = CanonicalPciAddress(bdf);
  if (!canonical.ok()) return canonical.status();
  auto it = nics_.find(*canonical);
  if (it == nics_.end()) {
    return absl::NotFoundError(absl::StrCat("the agent has no NIC ", *canonical));
  }
  return it->second.get();
}

std::string Agent::VmOfNode(const std::string& node_id) const {
  for (const auto& vm : config_.vms()) {
    if (vm.node_id() == node_id) return vm.name();
  }
  return "";
}

std::string Agent::NodeOfVm(const std::string& name) const {
  for (const auto& vm : config_.vms()) {
    if (vm.name() == name) return vm.node_id();
  }
  return "";
}

absl::StatusOr<std::string> Agent::Locate(Nic& nic) {
  std::string where;
  for (const auto& vm : config_.vms()) {
    auto found = hypervisor_->FindNic(vm.name(), nic.config);
    if (!found.ok()) return found.status();
    if (!found->has_value()) continue;
    if (!where.empty()) {
      return absl::InternalError(absl::StrCat(nic.config.bdf(), " is plugged into both ", where,
                                              " and ", vm.name()));
    }
    where = vm.name();
    absl::MutexLock lock(&records_mu_);
    nic.identity = **found;
  }
  return where;
}

absl::StatusOr<std::vector<AgentNic>> Agent::ListNics() {
  std::vector<AgentNic> out;
  for (const auto& [bdf, nic] : nics_) {
    AgentNic a;
    a.set_bdf(bdf);
    a.set_driver(nic->config.driver());
    a.set_mac(nic->config.mac());
    // A VM that does not answer cannot be holding a NIC that works; list
    // what the others say.
    for (const auto& vm : config_.vms()) {
      auto found = hypervisor_->FindNic(vm.name(), nic->config);
      if (found.ok() && found->has_value()) {
        a.set_vm(vm.name());
        a.set_node_id(vm.node_id());
        absl::MutexLock lock(&records_mu_);
        nic->identity = **found;
      }
    }
    absl::MutexLock lock(&records_mu_);
    if (nic->identity) {
      a.set_vendor_id(nic->identity->vendor_id);
      a.set_device_id(nic->identity->device_id);
      a.set_class_code(nic->identity->class_code);
    }
    a.set_interrupts_known(nic->state.interrupts_known());
    *a.mutable_interrupts() = nic->state.interrupts();
    out.push_back(std::move(a));
  }
  return out;
}

absl::Status Agent::ReportNic(const std::string& bdf, const std::string& vm,
                              const v1::InterruptLayout& interrupts) {
  auto nic = Find(bdf);
  if (!nic.ok()) return nic.status();
  if (NodeOfVm(vm).empty()) return absl::InvalidArgumentError(absl::StrCat("unknown VM '", vm, "'"));
  v1::InterruptLayout layout = interrupts;
  layout.clear_vectors();
  absl::MutexLock lock(&records_mu_);
  if ((*nic)->state.interrupts_known() &&
      google::protobuf::util::MessageDifferencer::Equals((*nic)->state.interrupts(), layout)) {
    return absl::OkStatus();
  }
  (*nic)->state.set_interrupts_known(true);
  *(*nic)->state.mutable_interrupts() = layout;
  return Persist();
}

absl::StatusOr<v1::OwnershipRecord> Agent::Read(const std::string& bdf) {
  auto nic = Find(bdf);
  if (!nic.ok()) return nic.status();
  absl::MutexLock lock(&records_mu_);
  return (*nic)->state.record();
}

absl::Status Agent::CheckRecord(const v1::OwnershipRecord& r) const {
  auto known = [&](const std::string& node) { return !VmOfNode(node).empty(); };
  switch (r.state()) {
    case v1::OWNERSHIP_STATE_ACTIVE:
      if (!known(r.owner_node()) || !r.target_node().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "desired ", platform::RecordString(r), ": ACTIVE needs a known owner and no target"));
      }
      return absl::OkStatus();
    case v1::OWNERSHIP_STATE_PREPARING:
    case v1::OWNERSHIP_STATE_HANDOFF:
      if (!known(r.owner_node()) || !known(r.target_node()) ||
          r.owner_node() == r.target_node()) {
        return absl::InvalidArgumentError(
            absl::StrCat("desired ", platform::RecordString(r),
                         ": needs two different known nodes (source, target)"));
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("desired ", platform::RecordString(r), ": no state"));
  }
}

absl::StatusOr<v1::OwnershipRecord> Agent::CompareAndSwap(const std::string& bdf,
                                                          const v1::OwnershipRecord& expected,
                                                          const v1::OwnershipRecord& desired) {
  auto nic = Find(bdf);
  if (!nic.ok()) return nic.status();
  if (absl::Status s = CheckRecord(desired); !s.ok()) return s;
  if (absl::Status s = platform::CheckCompareAndSwap(bdf, expected, desired); !s.ok()) return s;
  absl::MutexLock lock(&records_mu_);
  v1::OwnershipRecord& current = *(*nic)->state.mutable_record();
  if (!platform::SameRecord(current, expected)) return current;
  v1::OwnershipRecord before = current;
  current = desired;
  if (absl::Status s = Persist(); !s.ok()) {
    current = before;  // not durable: not done
    return s;
  }
  NH_LOG(INFO) << (*nic)->config.bdf() << " " << platform::RecordString(before) << " -> "
               << platform::RecordString(desired);
  return current;
}

absl::Status Agent::WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                      const std::vector<v1::QueueRingState>& rings) {
  auto nic = Find(bdf);
  if (!nic.ok()) return nic.status();
  absl::MutexLock lock(&records_mu_);
  AgentState::Entry& state = (*nic)->state;
  if (state.rings_written()) {
    absl::Status admitted = CheckFence(Fence{state.rings_epoch(), state.rings_op_id()}, fence,
                                       absl::StrCat("handoff rings write of ", state.bdf()));
    if (!admitted.ok()) return admitted;
  }
  state.set_rings_written(true);
  state.set_rings_epoch(fence.epoch);
  state.set_rings_op_id(fence.op_id);
  state.clear_rings();
  for (const auto& ring : rings) *state.add_rings() = ring;
  return Persist();
}

absl::StatusOr<std::vector<v1::QueueRingState>> Agent::ReadHandoffRings(const std::string& bdf,
                                                                        uint64_t epoch) {
  auto nic = Find(bdf);
  if (!nic.ok()) return nic.status();
  absl::MutexLock lock(&records_mu_);
  const AgentState::Entry& state = (*nic)->state;
  if (!state.rings_written() || state.rings_epoch() != epoch) {
    return absl::NotFoundError(
        absl::StrCat("no handoff rings of ", state.bdf(), " for epoch ", epoch));
  }
  return std::vector<v1::QueueRingState>(state.rings().begin(), state.rings().end());
}

absl::StatusOr<PlaceNicResponse> Agent::PlaceNic(const std::string& bdf, const Fence& fence,
                                                 const std::string& caller) {
  const uint64_t epoch = fence.epoch;
  auto found = Find(bdf);
  if (!found.ok()) return found.status();
  Nic& nic = **found;
  absl::MutexLock place(&nic.place_mu);
  v1::OwnershipRecord record;
  {
    absl::MutexLock lock(&records_mu_);
    record = nic.state.record();
  }
  // The record decides where the NIC goes: a caller with an old epoch (a
  // stale daemon instance) cannot move it.
  if (record.epoch() != epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("placement of ", nic.config.bdf(), " at epoch ", epoch,
                     " refused: the record is ", platform::RecordString(record)));
  }
  // A late call of the record's epoch (a crashed or retried daemon's)
  // must not move the NIC back after a newer placement.
  {
    absl::MutexLock lock(&records_mu_);
    AgentState::Entry& state = nic.state;
    absl::Status admitted =
        CheckFence(Fence{state.placed_epoch(), state.placed_op_id()}, fence,
                   absl::StrCat("placement of ", nic.config.bdf(), " for ", caller));
    if (!admitted.ok()) return admitted;
    state.set_placed_epoch(fence.epoch);
    state.set_placed_op_id(fence.op_id);
    if (absl::Status s = Persist(); !s.ok()) return s;
  }
  const std::string& node =
      record.state() == v1::OWNERSHIP_STATE_ACTIVE ? record.owner_node() : record.target_node();
  std::string destination = VmOfNode(node);
  if (destination.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("record ", platform::RecordString(record), " names no VM's node"));
  }
  auto where = Locate(nic);
  if (!where.ok()) return where.status();
  PlaceNicResponse response;
  response.set_vm(destination);
  if (*where == destination) return response;
  absl::Duration unplug_timeout = config_.unplug_timeout_ms() > 0
                                      ? absl::Milliseconds(config_.unplug_timeout_ms())
                                      : absl::Seconds(10);
  absl::Time start = absl::Now();
  if (!where->empty()) {
    if (absl::Status s = hypervisor_->Unplug(*where, nic.config, unplug_timeout); !s.ok()) return s;
  }
  absl::Time unplugged = absl::Now();
  if (absl::Status s = hypervisor_->Plug(destination, nic.config); !s.ok()) return s;
  absl::Time plugged = absl::Now();
  response.set_moved(true);
  response.set_unplug_micros(absl::ToInt64Microseconds(unplugged - start));
  response.set_plug_micros(absl::ToInt64Microseconds(plugged - unplugged));
  NH_LOG(INFO) << nic.config.bdf() << " placed in " << destination << " for " << caller
               << " at epoch " << epoch << " (from '" << *where << "': unplug "
               << response.unplug_micros() / 1000 << " ms, plug " << response.plug_micros() / 1000
               << " ms)";
  return response;
}

}  // namespace vmhost
}  // namespace nichandover
