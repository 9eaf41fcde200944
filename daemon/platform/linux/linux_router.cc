#include "daemon/platform/linux/linux_router.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace {

v1::MsiMessage ToMessage(const hook::MsiVector& v) {
  v1::MsiMessage m;
  m.set_address(v.address);
  m.set_data(v.data);
  return m;
}

}  // namespace

absl::StatusOr<std::vector<v1::MsiMessage>> LinuxRouter::ReadMessages(const std::string& bdf) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  NH_ASSIGN_OR_RETURN(std::vector<hook::MsiVector> vectors, ReadVectorsInOrder(client, dev));
  std::vector<v1::MsiMessage> out;
  for (const hook::MsiVector& v : vectors) out.push_back(ToMessage(v));
  return out;
}

absl::StatusOr<std::vector<v1::MsiMessage>> LinuxRouter::WriteRaw(
    const std::string& bdf, const Fence& fence, const std::vector<v1::MsiMessage>& messages,
    absl::string_view op, bool unchanged_is_done) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  // Which entries the messages are for: the vectors the driver allocated,
  // as the module lists them now.
  NH_ASSIGN_OR_RETURN(std::vector<hook::MsiVector> vectors, ReadVectorsInOrder(client, dev));
  if (messages.size() != vectors.size()) {
    return absl::InvalidArgumentError(absl::StrCat(op, " ", dev, ": the device has ",
                                                   vectors.size(), " vectors but ", messages.size(),
                                                   " messages were given"));
  }
  std::vector<hook::MsiWrite> writes;
  bool unchanged = true;
  for (size_t i = 0; i < vectors.size(); ++i) {
    writes.push_back({vectors[i].index, messages[i].address(), messages[i].data()});
    unchanged = unchanged && vectors[i].address == messages[i].address() &&
                vectors[i].data == messages[i].data();
  }
  if (unchanged && unchanged_is_done) {
    // Nothing to write, but a late call is refused all the same.
    NH_RETURN_IF_ERROR(CheckModuleFence(client, dev, fence, op));
    return messages;
  }
  NH_ASSIGN_OR_RETURN(hook::RerouteResult result,
                      Explained(client, dev, fence, op, client.RerouteRaw(dev, fence, writes)));

  // The module compared what it read back already; check its answer too,
  // since the daemon journals these messages as the device's routing.
  std::map<uint32_t, const hook::MsiVector*> current, previous;
  for (const hook::MsiVector& v : result.current) current[v.index] = &v;
  for (const hook::MsiVector& v : result.previous) previous[v.index] = &v;
  std::vector<v1::MsiMessage> replaced;
  for (const hook::MsiWrite& w : writes) {
    auto now = current.find(w.index);
    if (now == current.end() || now->second->address != w.address || now->second->data != w.data) {
      return absl::DataLossError(absl::StrCat(
          op, " ", dev, ": the module acknowledged the write but vector ", w.index,
          now == current.end() ? " is missing from its read-back" : " reads back another message"));
    }
    auto before = previous.find(w.index);
    if (before == previous.end()) {
      return absl::InternalError(absl::StrCat(op, " ", dev, ": the module did not report vector ",
                                              w.index, "'s previous message"));
    }
    replaced.push_back(ToMessage(*before->second));
  }
  return replaced;
}

absl::StatusOr<std::vector<v1::MsiMessage>> LinuxRouter::Reroute(
    const std::string& bdf, const Fence& fence, const std::vector<v1::MsiMessage>& target) {
  return WriteRaw(bdf, fence, target, "reroute");
}

absl::Status LinuxRouter::Restore(const std::string& bdf, const Fence& fence,
                                  const std::vector<v1::MsiMessage>& previous) {
  // A source daemon that restarted before its reroute restores a table that
  // was never changed, maybe of a device that still runs here (never
  // quiesced), where the module refuses raw writes: nothing to do.
  return WriteRaw(bdf, fence, previous, "restore", /*unchanged_is_done=*/true).status();
}

absl::StatusOr<std::vector<v1::MsiMessage>> LinuxRouter::ReserveTargetMessages(
    const std::string& bdf, const Fence& fence, uint32_t count) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  absl::StatusOr<std::vector<hook::MsiVector>> reserved =
      Explained(client, dev, fence, "reserve", client.Reserve(dev, fence, count));
  if (absl::IsFailedPrecondition(reserved.status())) {
    // Say which kind of device this is: the usual reason is cold mode.
    absl::StatusOr<hook::DeviceStatus> status = client.Status(dev);
    std::string why =
        status.ok() && status->handover_mode == hook::HandoverMode::kCold
            ? "the module holds it in cold mode (its driver has no handover contract, so this "
              "node cannot take its interrupts while another kernel runs it; cold devices move "
              "by RELEASE on the source and ATTACH here)"
            : "the module refused";
    return absl::FailedPreconditionError(absl::StrCat("linux platform: cannot reserve ", count,
                                                      " vectors for ", dev, ": ", why, ": ",
                                                      reserved.status().message()));
  }
  if (!reserved.ok()) return reserved.status();
  std::vector<v1::MsiMessage> out;
  for (const hook::MsiVector& v : *reserved) out.push_back(ToMessage(v));
  return out;
}

absl::Status LinuxRouter::ReleaseReservation(const std::string& bdf, const Fence& fence) {
  NH_ASSIGN_OR_RETURN(std::string dev, CanonicalBdf(bdf));
  NH_ASSIGN_OR_RETURN(hook::HookClient client, module_.Connect());
  return Explained(client, dev, fence, "release reservation", client.Unreserve(dev, fence))
      .status();
}

}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover
