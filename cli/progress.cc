#include "cli/progress.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/handover_text.h"

namespace nichandover {
namespace cli {
namespace {

constexpr int kPhaseWidth = 12;  // "handing-off" and "rolling-back" fit
constexpr char kEraseLine[] = "\r\033[K";

absl::Duration PhaseDuration(const v1::PhaseRecord& p) {
  if (p.has_duration()) return ToAbslDuration(p.duration());
  if (p.has_end_time() && p.has_start_time()) {
    return ToAbslTime(p.end_time()) - ToAbslTime(p.start_time());
  }
  return absl::ZeroDuration();
}

}  // namespace

void ProgressPrinter::PrintHeader(const v1::Handover& h) {
  out_ << "handover " << h.handover_id() << ": " << h.bdf() << " " << h.source_node() << " -> "
       << h.target_node() << ", epoch " << h.from_epoch() << " -> " << h.to_epoch() << "\n";
  out_.flush();
}

void ProgressPrinter::Update(const v1::Handover& h, absl::Time now) {
  last_ = h;
  const int n = h.phases_size();
  bool cleared = false;
  // A phase is complete once it has an end or a later phase began. Terminal
  // phases are left to the summary.
  while (phases_printed_ < n) {
    const v1::PhaseRecord& p = h.phases(phases_printed_);
    if (IsTerminalPhase(p.phase())) break;
    if (!p.has_end_time() && phases_printed_ + 1 >= n) break;
    if (!cleared) {
      ClearLiveLine();
      cleared = true;
    }
    std::string line = absl::StrFormat("  %-*s %9s", kPhaseWidth, PhaseText(p.phase()),
                                       DurationText(PhaseDuration(p)));
    // A phase record's detail says why it was entered ("accepted by node1"
    // starts quiescing): that is how the phase before it ended.
    if (phases_printed_ + 1 < n && !h.phases(phases_printed_ + 1).detail().empty()) {
      absl::StrAppend(&line, "  ", h.phases(phases_printed_ + 1).detail());
    }
    out_ << line << "\n";
    ++phases_printed_;
  }
  if (live_ && !h.done()) DrawLiveLine(now);
  out_.flush();
}

void ProgressPrinter::Tick(absl::Time now) {
  if (!live_ || last_.done() || last_.phases_size() == 0) return;
  DrawLiveLine(now);
  out_.flush();
}

void ProgressPrinter::DrawLiveLine(absl::Time now) {
  if (phases_printed_ >= last_.phases_size()) return;
  const v1::PhaseRecord& p = last_.phases(phases_printed_);
  if (IsTerminalPhase(p.phase())) return;
  static constexpr char kSpinner[] = "|/-\\";
  absl::Duration elapsed =
      p.has_start_time() ? now - ToAbslTime(p.start_time()) : absl::ZeroDuration();
  out_ << kEraseLine
       << absl::StrFormat("  %-*s %9s  %c", kPhaseWidth, PhaseText(p.phase()),
                          DurationText(elapsed), kSpinner[ticks_++ % 4]);
  live_line_shown_ = true;
}

void ProgressPrinter::ClearLiveLine() {
  if (!live_line_shown_) return;
  out_ << kEraseLine;
  out_.flush();
  live_line_shown_ = false;
}

void ProgressPrinter::PrintSummary(const v1::Handover& h) {
  ClearLiveLine();
  const bool committed = h.phase() == v1::HANDOVER_PHASE_COMMITTED;
  switch (h.phase()) {
    case v1::HANDOVER_PHASE_COMMITTED:
      out_ << "committed: " << h.bdf() << " is now owned by " << h.target_node() << "\n";
      break;
    case v1::HANDOVER_PHASE_ROLLED_BACK:
      out_ << "rolled back: " << h.bdf() << " stays with " << h.source_node() << "\n";
      break;
    case v1::HANDOVER_PHASE_FAILED:
      out_ << "FAILED: " << h.bdf() << " needs an operator's decision (nicctl recover)\n";
      break;
    default:
      out_ << "not finished: phase " << PhaseText(h.phase()) << "\n";
      break;
  }
  auto row = [&](const char* key, const std::string& value) {
    out_ << absl::StrFormat("  %-9s %s\n", key, value);
  };
  if (committed) {
    row("owner", absl::StrCat(h.source_node(), " -> ", h.target_node()));
  } else if (h.phase() == v1::HANDOVER_PHASE_ROLLED_BACK) {
    row("owner", absl::StrCat(h.source_node(), " (unchanged)"));
  } else {
    row("owner", absl::StrCat("undecided: ", h.source_node(), " or ", h.target_node()));
  }
  row("epoch", absl::StrCat(h.from_epoch(), " -> ", h.to_epoch()));
  row("commit", CommitPathText(h));
  row("total", DurationText(TotalTime(h)));
  if (h.stats().has_blackout()) row("blackout", DurationText(ToAbslDuration(h.stats().blackout())));
  row("drained", absl::StrCat(h.stats().drained_tx_packets(), " TX + ",
                              h.stats().drained_rx_packets(), " RX packets"));
  if (h.has_error() && !committed) {
    row("reason", absl::StrCat(h.error().reason(), ": ", h.error().message()));
  }
  out_.flush();
}

}  // namespace cli
}  // namespace nichandover
