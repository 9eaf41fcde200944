// Live progress of a handover as nicctl follows it: one line per phase with
// its duration as the phase completes, then a summary. On a terminal the
// running phase is shown on a line that redraws with its elapsed time; when
// stdout is a file or pipe only complete lines are written.
#ifndef NICHANDOVER_CLI_PROGRESS_H_
#define NICHANDOVER_CLI_PROGRESS_H_

#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace cli {

class ProgressPrinter {
 public:
  // `live`: stdout is a terminal, so a status line may be redrawn in place.
  ProgressPrinter(std::ostream& out, bool live) : out_(out), live_(live) {}

  // Prints "handover ID: NIC node0 -> node1, epoch 1 -> 2".
  void PrintHeader(const v1::Handover& handover);
  // Prints the phases that completed since the last call, then (live) the
  // running phase's status line.
  void Update(const v1::Handover& handover, absl::Time now);
  // Live: redraws the running phase's status line. No-op otherwise.
  void Tick(absl::Time now);
  // Live: erases the status line (before a prompt or other output).
  void ClearLiveLine();
  // The outcome: old and new owner, epochs, total time, blackout, drained
  // packets (and the error for a handover that did not commit).
  void PrintSummary(const v1::Handover& handover);

 private:
  void DrawLiveLine(absl::Time now);

  std::ostream& out_;
  const bool live_;
  int phases_printed_ = 0;
  bool live_line_shown_ = false;
  int ticks_ = 0;
  v1::Handover last_;
};

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_PROGRESS_H_
