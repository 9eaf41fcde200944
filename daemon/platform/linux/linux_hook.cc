#include "daemon/platform/linux/linux_hook.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

// The module acknowledged `op`; make sure it also left the function where
// the operation promises.
absl::Status ExpectState(const hook::DeviceStatus& status, hook::DeviceState want,
                         absl::string_view op, const std::string& bdf) {
  if (status.state == want) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("hook module: ", op, " ", bdf, " succeeded but left it ",
                                          hook::DeviceStateName(status.state), ", not ",
                                          hook::DeviceStateName(want)));
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

hook::RingState FromProto(const v1::QueueRingState& r) {
  return {r.queue(), r.rx_next_to_clean(), r.rx_next_to_use(), r.tx_next_to_clean(),
          r.tx_next_to_use()};
}

}  // namespace

absl::StatusOr<HookState> ToHookState(hook::DeviceState state) {
  switch (state) {
    case hook::DeviceState::kRunning:
      return HookState::kRunning;
    case hook::DeviceState::kGated:
    case hook::DeviceState::kQuiesced:
      return HookState::kQuiesced;
    case hook::DeviceState::kReleased:
    case hook::DeviceState::kStandby:
      return HookState::kDetached;
    case hook::DeviceState::kUnknown:
      break;
  }
  return absl::InternalError("hook module reported a state this daemon does not know");
}

absl::StatusOr<QuiesceResult> LinuxHook::Quiesce(const std::string& bdf, const Fence& fence,
                                                 absl::Duration timeout) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_ASSIGN_OR_RETURN(hook::DeviceStatus status, Explained(client, dev, fence, "quiesce",
                                                           client.Quiesce(dev, fence, timeout)));
  NH_RETURN_IF_ERROR(ExpectState(status, hook::DeviceState::kQuiesced, "quiesce", dev));
  if (status.xmits_while_quiesced != 0 || status.polls_while_quiesced != 0) {
    return absl::InternalError(absl::StrCat(
        "hook module: the gate of ", dev, " leaked during the quiesce at ", FenceText(fence), ": ",
        status.xmits_while_quiesced, " ndo_start_xmit calls and ", status.polls_while_quiesced,
        " NAPI polls after it closed (the device stays quiesced)"));
  }
  QuiesceResult result;
  result.drained_tx_packets = status.drained_tx_packets;
  result.drained_rx_packets = status.drained_rx_packets;
  result.held_xmits = status.held_xmits;
  result.polls_while_quiesced = status.polls_while_quiesced;
  for (const hook::RingState& ring : status.rings) result.rings.push_back(ToProto(ring));
  NH_LOG(INFO) << "quiesced " << dev << " (" << status.ifname << ") at " << FenceText(fence) << ": "
               << status.drained_tx_bytes << " in-flight bytes drained, " << status.held_xmits
               << " xmits held, " << status.napi_count << " NAPI instances and "
               << status.vectors_masked << " vectors off, in " << status.quiesce_ns / 1000
               << " us; " << hook::HandoverModeName(status.handover_mode) << " mode, "
               << result.rings.size() << " ring states";
  return result;
}

absl::Status LinuxHook::Resume(const std::string& bdf, const Fence& fence) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_ASSIGN_OR_RETURN(hook::DeviceStatus status,
                      Explained(client, dev, fence, "resume", client.Resume(dev, fence)));
  return ExpectState(status, hook::DeviceState::kRunning, "resume", dev);
}

absl::Status LinuxHook::Attach(const std::string& bdf, const Fence& fence,
                               const std::vector<v1::QueueRingState>& rings) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  std::vector<hook::RingState> wire;
  for (const v1::QueueRingState& ring : rings) wire.push_back(FromProto(ring));
  NH_ASSIGN_OR_RETURN(hook::DeviceStatus status,
                      Explained(client, dev, fence, "attach", client.Attach(dev, fence, wire)));
  return ExpectState(status, hook::DeviceState::kRunning, "attach", dev);
}

absl::Status LinuxHook::Release(const std::string& bdf, const Fence& fence) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_ASSIGN_OR_RETURN(hook::DeviceStatus status,
                      Explained(client, dev, fence, "release", client.Release(dev, fence)));
  // A contract driver may report its standby right away.
  if (status.state == hook::DeviceState::kStandby) return absl::OkStatus();
  return ExpectState(status, hook::DeviceState::kReleased, "release", dev);
}

absl::StatusOr<HookStatus> LinuxHook::Status(const std::string& bdf) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_ASSIGN_OR_RETURN(hook::DeviceStatus status, client.Status(dev));
  HookStatus out;
  NH_ASSIGN_OR_RETURN(out.state, ToHookState(status.state));
  out.epoch = status.epoch;
  out.held_xmits = status.held_xmits;
  out.polls_while_quiesced = status.polls_while_quiesced;
  out.drained_tx_packets = status.drained_tx_packets;
  return out;
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
