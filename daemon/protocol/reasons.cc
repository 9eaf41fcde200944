// The wording of the reasons a handover gives (errors, refusals).
#include "daemon/protocol/handover_internal.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nichandover {
namespace protocol {

std::string PhaseName(v1::HandoverPhase phase) {
  std::string name = v1::HandoverPhase_Name(phase);
  return absl::StartsWith(name, "HANDOVER_PHASE_") ? name.substr(15) : name;
}

v1::Error MakeError(absl::StatusCode code, const std::string& reason,
                    const std::string& message) {
  v1::Error error;
  error.set_code(static_cast<int>(code));
  error.set_reason(reason);
  error.set_message(message);
  return error;
}

std::string StatusText(const absl::Status& status) {
  return std::string(absl::StatusCodeToString(status.code())) + ": " +
         std::string(status.message());
}

// Why a NIC with a FAILED handover takes no new one (rule R1).
std::string BlockedByFailedText(const HandoverMachine::Handover& h) {
  return absl::StrCat("nic: handover ", h.id(), " of ", h.bdf(), " ended FAILED (",
                      h.res.error().reason(), ") and waits for an operator: `nicctl recover ",
                      h.bdf(), " --decide abort|commit` first");
}

}  // namespace protocol
}  // namespace nichandover
