// nicctl's exit codes: stable, documented in `nicctl --help` and docs/nicctl.md,
// for scripts to branch on.
#ifndef NICHANDOVER_CLI_EXIT_CODES_H_
#define NICHANDOVER_CLI_EXIT_CODES_H_

#include "grpcpp/support/status.h"

namespace nichandover {
namespace cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // anything not covered below
  kExitUsage = 2,        // bad command line or invalid argument
  kExitNotFound = 3,     // unknown NIC, node or handover
  kExitRefused = 4,      // the target refused, or the state forbids it now
  kExitRolledBack = 5,   // the handover was rolled back; the source still owns the NIC
  kExitTimedOut = 6,     // a deadline passed
  kExitUnreachable = 7,  // the daemon could not be reached
  kExitNeedsRecovery = 8,  // the handover failed and needs `nicctl recover`
  kExitInterrupted = 130,  // Ctrl-C while waiting; the handover goes on (128 + SIGINT)
};

// The exit code for a failed RPC.
ExitCode ExitCodeFor(const grpc::Status& status);

// One line per code, for --help and the generated docs.
const char* ExitCodeTable();

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_EXIT_CODES_H_
