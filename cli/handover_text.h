// How nicctl words handovers and NICs for people: phase names, durations,
// ownership, the outcome's exit code, and advice for each failure reason.
#ifndef NICHANDOVER_CLI_HANDOVER_TEXT_H_
#define NICHANDOVER_CLI_HANDOVER_TEXT_H_

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/exit_codes.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace cli {

// "offering", "handing-off", "rolled-back" (the enum name without its
// prefix, lower case, dashes).
std::string PhaseText(v1::HandoverPhase phase);

// "auto", "daemon", "kernel" for a CommitPath (as --commit-path takes it).
std::string CommitPathName(v1::CommitPath path);
// The commit path a handover took and the one asked for: "kernel (asked:
// auto)"; "-" for the taken one until the target answered the Offer.
std::string CommitPathText(const v1::Handover& handover);

// True for COMMITTED, ROLLED_BACK and FAILED.
bool IsTerminalPhase(v1::HandoverPhase phase);

// "0.4ms", "48.2ms", "1.25s", "2m3s": short and with a unit, as ping prints.
std::string DurationText(absl::Duration d);
absl::Duration ToAbslDuration(const google::protobuf::Duration& d);
absl::Time ToAbslTime(const google::protobuf::Timestamp& t);

// "node0 (active)", "node0 -> node1 (preparing)", "-" when unknown.
std::string OwnershipText(const v1::OwnershipRecord& record);

// "MSI-X x3", "MSI x1", "INTx".
std::string InterruptModeText(const v1::InterruptLayout& layout);

// Where the vectors point: "node0 (APIC 0,1)", "APIC 7 (unknown node)",
// "remapped (IRTE)", "-" when no vector is known.
std::string DestinationText(const v1::InterruptLayout& layout);

// From creation to the end (or to `now` while it runs).
absl::Duration TotalTime(const v1::Handover& handover, absl::Time now = absl::Now());

// The exit code a finished handover stands for: COMMITTED 0, ROLLED_BACK 5
// (4 when the target refused, 6 when the handover's deadline passed), FAILED
// 8. kExitError for a handover that is not done.
ExitCode ExitCodeForHandover(const v1::Handover& handover);

// What the operator can do about a handover that did not commit, from its
// error.reason (and the refusal kind in the message): e.g. for a target
// without the driver, "load the NIC's driver on node1, or pick another node".
// Empty when there is nothing useful to add.
std::string AdviceFor(const v1::Handover& handover);

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_HANDOVER_TEXT_H_
