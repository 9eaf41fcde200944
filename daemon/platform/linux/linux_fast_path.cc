#include "daemon/platform/linux/linux_fast_path.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "sim/machine.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

using ::nichandover::sim::Ownership;
using ::nichandover::sim::OwnershipState;

HandOffStage ToStage(hook::HandoffStage stage) {
  switch (stage) {
    case hook::HandoffStage::kNothing:
      return HandOffStage::kNothing;
    case hook::HandoffStage::kQuiesced:
      return HandOffStage::kQuiesced;
    case hook::HandoffStage::kRerouted:
      return HandOffStage::kRerouted;
    case hook::HandoffStage::kRingsWritten:
      return HandOffStage::kRingsWritten;
    case hook::HandoffStage::kHandedOff:
      return HandOffStage::kHandedOff;
    case hook::HandoffStage::kDoorbellRung:
      return HandOffStage::kDoorbellRung;
  }
  return HandOffStage::kNothing;
}

v1::QueueRingState ToProto(const hook::RingState& r) {
  v1::QueueRingState out;
  out.set_queue(r.queue);
  out.set_rx_next_to_clean(r.rx_next_to_clean);
  out.set_rx_next_to_use(r.rx_next_to_use);
  out.set_tx_next_to_clean(r.tx_next_to_clean);
  out.set_tx_next_to_use(r.tx_next_to_use);
  return out;
}

// UNIMPLEMENTED for a device whose driver has no kernel commit path: the
// protocol then hands it over through the daemons.
absl::Status RequireKernelCommit(hook::HookClient& client, const std::string& dev,
                                 absl::string_view op) {
  NH_ASSIGN_OR_RETURN(hook::DeviceStatus status, client.Status(dev));
  if (status.kernel_commit) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      op, " ", dev, ": its driver has no kernel commit path (",
      hook::HandoverModeName(status.handover_mode),
      " mode; only contract drivers with struct nh_commit_ops, such as nh_simnic, have one)"));
}

}  // namespace

absl::StatusOr<int> RecordWords::Index(const std::string& node_id) const {
  if (node_id.empty()) return ::nichandover::sim::kNoNode;
  for (size_t i = 0; i < node_ids_.size(); ++i) {
    if (node_ids_[i] == node_id) return static_cast<int>(i);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the record names node \"", node_id, "\", which the machine does not have"));
}

absl::StatusOr<uint64_t> RecordWords::Encode(const v1::OwnershipRecord& record) const {
  if (record.state() < v1::OWNERSHIP_STATE_UNSPECIFIED ||
      record.state() > v1::OWNERSHIP_STATE_HANDOFF) {
    return absl::InvalidArgumentError("unknown ownership state");
  }
  if (record.epoch() > ::nichandover::sim::kMaxEpoch) {
    return absl::OutOfRangeError("epoch does not fit the record's 40 bits");
  }
  Ownership o;
  o.state = static_cast<OwnershipState>(record.state());
  NH_ASSIGN_OR_RETURN(o.owner, Index(record.owner_node()));
  NH_ASSIGN_OR_RETURN(o.target, Index(record.target_node()));
  o.epoch = record.epoch();
  return ::nichandover::sim::EncodeOwnership(o);
}

absl::StatusOr<v1::OwnershipRecord> RecordWords::Decode(uint64_t word) const {
  const Ownership o = ::nichandover::sim::DecodeOwnership(word);
  auto name = [&](int index) -> absl::StatusOr<std::string> {
    if (index == ::nichandover::sim::kNoNode) return std::string();
    if (index < 0 || static_cast<size_t>(index) >= node_ids_.size()) {
      return absl::DataLossError(
          absl::StrCat("record word 0x", absl::Hex(word), " names node index ", index,
                       ", which the machine does not have"));
    }
    return node_ids_[index];
  };
  v1::OwnershipRecord record;
  record.set_state(static_cast<v1::OwnershipState>(o.state));
  NH_ASSIGN_OR_RETURN(std::string owner, name(o.owner));
  NH_ASSIGN_OR_RETURN(std::string target, name(o.target));
  record.set_owner_node(owner);
  record.set_target_node(target);
  record.set_epoch(o.epoch);
  return record;
}

absl::Status LinuxFastPath::Arm(const std::string& bdf, const Fence& fence,
                                const v1::OwnershipRecord& handoff) {
  if (handoff.state() != v1::OWNERSHIP_STATE_HANDOFF || handoff.target_node() != node_id_ ||
      handoff.epoch() != fence.epoch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "arm ", bdf, ": needs HANDOFF(source, ", node_id_, ", ", fence.epoch, "), got ",
        handoff.ShortDebugString()));
  }
  v1::OwnershipRecord active;
  active.set_state(v1::OWNERSHIP_STATE_ACTIVE);
  active.set_owner_node(node_id_);
  active.set_epoch(handoff.epoch());
  NH_ASSIGN_OR_RETURN(uint64_t handoff_word, words_.Encode(handoff));
  NH_ASSIGN_OR_RETURN(uint64_t active_word, words_.Encode(active));
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_RETURN_IF_ERROR(RequireKernelCommit(client, dev, "arm"));
  NH_ASSIGN_OR_RETURN(hook::DeviceStatus status,
                      Explained(client, dev, fence, "arm",
                                client.Arm(dev, fence, handoff_word, active_word)));
  if (status.armed_epoch != fence.epoch) {
    return absl::InternalError(absl::StrCat("arm ", dev, ": the module acknowledged it but reports ",
                                            status.armed_epoch, " as the armed epoch"));
  }
  NH_LOG(INFO) << "armed " << dev << " at " << FenceText(fence) << " for "
               << handoff.ShortDebugString();
  return absl::OkStatus();
}

absl::StatusOr<HandOffResult> LinuxFastPath::HandOff(const HandOffRequest& request) {
  NH_ASSIGN_OR_RETURN(uint64_t expected, words_.Encode(request.expected));
  NH_ASSIGN_OR_RETURN(uint64_t desired, words_.Encode(request.desired));
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(request.bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_RETURN_IF_ERROR(RequireKernelCommit(client, dev, "hand-off"));
  // Which entries the target's messages are for: the device's vectors as
  // the module lists them, in entry order (as LinuxRouter::Reroute).
  NH_ASSIGN_OR_RETURN(std::vector<hook::MsiVector> vectors, ReadVectorsInOrder(client, dev));
  if (request.target_messages.size() != vectors.size()) {
    return absl::InvalidArgumentError(absl::StrCat("hand-off ", dev, ": the device has ",
                                                   vectors.size(), " vectors but ",
                                                   request.target_messages.size(),
                                                   " target messages were given"));
  }
  std::vector<hook::MsiWrite> writes;
  for (size_t i = 0; i < vectors.size(); ++i) {
    writes.push_back({vectors[i].index, request.target_messages[i].address(),
                      request.target_messages[i].data()});
  }
  NH_ASSIGN_OR_RETURN(hook::HandoffReply reply,
                      Explained(client, dev, request.fence, "hand-off",
                                client.Handoff(dev, request.fence, expected, desired, writes,
                                               request.drain_timeout)));
  HandOffResult result;
  result.reached = ToStage(reply.stage);
  result.quiesce.drained_tx_packets = reply.status.drained_tx_packets;
  result.quiesce.drained_rx_packets = reply.status.drained_rx_packets;
  result.quiesce.held_xmits = reply.status.held_xmits;
  result.quiesce.polls_while_quiesced = reply.status.polls_while_quiesced;
  for (const hook::RingState& ring : reply.status.rings) {
    result.quiesce.rings.push_back(ToProto(ring));
  }
  std::map<uint32_t, const hook::MsiVector*> previous;
  for (const hook::MsiVector& v : reply.previous) previous[v.index] = &v;
  for (const hook::MsiWrite& w : writes) {
    auto before = previous.find(w.index);
    if (before == previous.end()) {
      return absl::InternalError(absl::StrCat("hand-off ", dev,
                                              ": the module did not report vector ", w.index,
                                              "'s previous message"));
    }
    v1::MsiMessage m;
    m.set_address(before->second->address);
    m.set_data(before->second->data);
    result.previous.push_back(m);
  }
  // The module reports what its CAS found; the contract is the record after it.
  if (result.reached >= HandOffStage::kHandedOff) {
    result.record = request.desired;
  } else {
    NH_ASSIGN_OR_RETURN(result.record, words_.Decode(reply.record));
  }
  NH_LOG(INFO) << "hand-off " << dev << " at " << FenceText(request.fence) << ": reached "
               << HandOffStageName(result.reached) << ", record "
               << result.record.ShortDebugString();
  return result;
}

absl::StatusOr<KernelEvents> LinuxFastPath::WaitEvents(uint64_t after_seq,
                                                       absl::Duration timeout) {
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_ASSIGN_OR_RETURN(hook::EventLog log, client.Events(after_seq, timeout));
  KernelEvents out;
  out.last_seq = log.newest_seq;
  for (const hook::KernelEvent& e : log.events) {
    KernelEvent event;
    event.seq = e.seq;
    event.kind = e.kind == hook::KernelEvent::Kind::kCommitted ? KernelEvent::Kind::kCommitted
                                                               : KernelEvent::Kind::kNotCommitted;
    event.bdf = e.dev;
    event.epoch = e.epoch;
    event.message = e.reason;
    if (e.record != 0) {
      absl::StatusOr<v1::OwnershipRecord> record = words_.Decode(e.record);
      if (record.ok()) {
        event.record = *std::move(record);
      } else {
        event.message = absl::StrCat(event.message, event.message.empty() ? "" : "; ",
                                     record.status().message());
      }
    }
    out.events.push_back(std::move(event));
  }
  return out;
}

absl::StatusOr<bool> ModuleHasKernelCommit(const ModuleConnection& module) {
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module.Connect());
  NH_ASSIGN_OR_RETURN(std::vector<hook::ListedDevice> devices, client.List());
  for (const hook::ListedDevice& d : devices) {
    if (d.status.kernel_commit) return true;
  }
  return false;
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
