// Following a handover to its end, as `nicctl handover` and `nicctl handover
// watch` do: streams WatchHandover, prints progress (or, with --json, the
// final Handover), handles Ctrl-C, and turns the outcome into an exit code.
#ifndef NICHANDOVER_CLI_FOLLOW_H_
#define NICHANDOVER_CLI_FOLLOW_H_

#include <string>

#include "absl/time/time.h"
#include "cli/context.h"

namespace nichandover {
namespace cli {

struct FollowOptions {
  // Ctrl-C cancels the handover without asking. Otherwise Ctrl-C asks on the
  // terminal (/dev/tty) whether to cancel; without a terminal nicctl stops
  // following and leaves the handover running (exit 130).
  bool cancel_on_interrupt = false;
  // How long nicctl waits for the end before it gives up (exit 6); the
  // handover itself goes on.
  absl::Duration wait_limit = absl::InfiniteDuration();
  // Print the header line first (nicctl handover prints it after creating).
  bool print_header = false;
};

int FollowHandover(Context& ctx, const std::string& handover_id, const FollowOptions& options);

// Asks the daemon to roll the handover back; prints what happened. Returns
// the exit code of the cancel call (kExitOk when it was accepted).
int RequestCancel(Context& ctx, const std::string& handover_id, const std::string& reason);

// Prints why a handover that did not commit ended as it did, and what to do
// ("nicctl: handover X rolled back: node1 refused (NO_DRIVER): ...",
// "  hint: load the NIC's driver on node1, or pick another node").
void PrintOutcomeError(Context& ctx, const v1::Handover& handover);

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_FOLLOW_H_
