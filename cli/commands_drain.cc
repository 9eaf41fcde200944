// nicctl drain NODE [--to NODE]: hand every NIC off a node, with progress
// per NIC and a summary.
#include <map>
#include <ostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "cli/handover_text.h"
#include "cli/watch_stream.h"
#include "common/proto_time.h"

namespace nichandover {
namespace cli {
namespace {

constexpr char kEraseLine[] = "\r\033[K";

std::string NicStateText(v1::DrainNicState state) {
  switch (state) {
    case v1::DRAIN_NIC_STATE_WAITING:
      return "waiting";
    case v1::DRAIN_NIC_STATE_RUNNING:
      return "running";
    case v1::DRAIN_NIC_STATE_MOVED:
      return "moved";
    case v1::DRAIN_NIC_STATE_STAYED:
      return "stayed";
    case v1::DRAIN_NIC_STATE_NEEDS_RECOVERY:
      return "needs-recovery";
    case v1::DRAIN_NIC_STATE_NOT_STARTED:
      return "not-started";
    default:
      return "-";
  }
}

bool IsTerminal(v1::DrainNicState state) {
  return state == v1::DRAIN_NIC_STATE_MOVED || state == v1::DRAIN_NIC_STATE_STAYED ||
         state == v1::DRAIN_NIC_STATE_NEEDS_RECOVERY || state == v1::DRAIN_NIC_STATE_NOT_STARTED;
}

std::string ErrorText(const v1::Error& error) {
  if (error.reason().empty()) return error.message();
  return error.message().empty() ? error.reason()
                                 : absl::StrCat(error.reason(), ": ", error.message());
}

// The exit code a finished drain stands for. All moved: 0. Otherwise the
// most serious NIC decides: one needing recovery 8, then a deadline 6, a
// rollback 5, a refusal or a NIC with no node to go to 4, a handover that
// could not be created by its status. A cancelled drain: 130 (8 when a NIC
// needs recovery).
int ExitCodeForDrain(const v1::Drain& drain, bool interrupted) {
  if (interrupted || drain.cancel_requested()) {
    return drain.needs_recovery() > 0 ? kExitNeedsRecovery : kExitInterrupted;
  }
  int worst = kExitOk;
  auto rank = [](int code) {
    switch (code) {
      case kExitNeedsRecovery:
        return 5;
      case kExitTimedOut:
        return 4;
      case kExitRolledBack:
        return 3;
      case kExitRefused:
        return 2;
      case kExitOk:
        return 0;
      default:
        return 1;
    }
  };
  for (const auto& nic : drain.nics()) {
    int code = kExitOk;
    if (nic.state() == v1::DRAIN_NIC_STATE_NEEDS_RECOVERY) {
      code = kExitNeedsRecovery;
    } else if (nic.state() == v1::DRAIN_NIC_STATE_STAYED) {
      const std::string& reason = nic.error().reason();
      if (reason == "HANDOVER_TIMEOUT") {
        code = kExitTimedOut;
      } else if (reason == "TARGET_REFUSED" || reason == "NO_TARGET") {
        code = kExitRefused;
      } else if (reason == "CREATE_FAILED") {
        code = ExitCodeFor(grpc::Status(static_cast<grpc::StatusCode>(nic.error().code()), ""));
      } else {
        code = kExitRolledBack;
      }
    }
    if (rank(code) > rank(worst)) worst = code;
  }
  return worst;
}

// Prints the drain as it goes: a line when a NIC's handover starts, when a
// NIC is placed again, and when it ends; on a terminal also a status line
// redrawn in place with the running NICs' phases.
class DrainProgress {
 public:
  DrainProgress(std::ostream& out, bool live) : out_(out), live_(live) {}

  void Update(const v1::Drain& drain) {
    if (!header_printed_) {
      std::string where = drain.to_node().empty() ? "spread over the other nodes"
                                                  : absl::StrCat("to ", drain.to_node());
      ClearLiveLine();
      out_ << "drain " << drain.drain_id() << ": " << drain.nics_size() << " NICs off "
           << drain.node() << ", " << where << ", " << drain.max_concurrent() << " at a time\n";
      header_printed_ = true;
    }
    for (const auto& nic : drain.nics()) {
      const v1::DrainNic& before = last_[nic.bdf()];
      if (!IsTerminal(nic.state()) && !before.bdf().empty() &&
          nic.target_node() != before.target_node()) {
        Line(absl::StrFormat("  %-12s %s did not take it (%s); next: %s", nic.bdf(),
                             before.target_node(), ErrorOrPending(nic),
                             nic.target_node().empty() ? "none" : nic.target_node()));
      }
      if (nic.handover_id() != before.handover_id() && !nic.handover_id().empty()) {
        Line(absl::StrFormat("  %-12s -> %-8s started   handover %s", nic.bdf(), nic.target_node(),
                             nic.handover_id()));
      }
      if (IsTerminal(nic.state()) && !IsTerminal(before.state())) Line(EndLine(nic));
      last_[nic.bdf()] = nic;
    }
    drain_ = drain;
    Tick();
  }

  void Tick() {
    if (!live_ || drain_.done() || drain_.drain_id().empty()) return;
    std::vector<std::string> running;
    int done = 0;
    for (const auto& nic : drain_.nics()) {
      if (IsTerminal(nic.state())) ++done;
      if (nic.state() == v1::DRAIN_NIC_STATE_RUNNING && running.size() < 4) {
        running.push_back(absl::StrCat(nic.bdf(), " ", PhaseText(nic.phase())));
      }
    }
    static constexpr char kSpinner[] = "|/-\\";
    out_ << kEraseLine
         << absl::StrFormat("  %d/%d done; %s  %c", done, drain_.nics_size(),
                            running.empty() ? "waiting" : absl::StrJoin(running, ", "),
                            kSpinner[ticks_++ % 4]);
    out_.flush();
    live_line_shown_ = true;
  }

  void ClearLiveLine() {
    if (!live_line_shown_) return;
    out_ << kEraseLine;
    out_.flush();
    live_line_shown_ = false;
  }

 private:
  static std::string ErrorOrPending(const v1::DrainNic& nic) {
    return nic.error().reason().empty() ? "refused" : nic.error().reason();
  }

  static std::string EndLine(const v1::DrainNic& nic) {
    std::string time = nic.has_duration() ? DurationText(ToAbslDuration(nic.duration())) : "-";
    switch (nic.state()) {
      case v1::DRAIN_NIC_STATE_MOVED:
        return absl::StrFormat(
            "  %-12s -> %-8s moved     %s%s", nic.bdf(), nic.owner_node(), time,
            nic.has_blackout()
                ? absl::StrCat(", blackout ", DurationText(ToAbslDuration(nic.blackout())))
                : "");
      case v1::DRAIN_NIC_STATE_NEEDS_RECOVERY:
        return absl::StrFormat("  %-12s -> %-8s FAILED    needs 'nicctl recover': %s", nic.bdf(),
                               nic.target_node(), ErrorText(nic.error()));
      case v1::DRAIN_NIC_STATE_NOT_STARTED:
        return absl::StrFormat("  %-12s    %-8s not started (drain cancelled)", nic.bdf(), "");
      default:
        return absl::StrFormat("  %-12s    %-8s stayed on %s: %s", nic.bdf(), "", nic.owner_node(),
                               ErrorText(nic.error()));
    }
  }

  void Line(const std::string& line) {
    ClearLiveLine();
    out_ << line << "\n";
    out_.flush();
  }

  std::ostream& out_;
  const bool live_;
  bool header_printed_ = false;
  bool live_line_shown_ = false;
  int ticks_ = 0;
  std::map<std::string, v1::DrainNic> last_;
  v1::Drain drain_;
};

void PrintDrainSummary(std::ostream& out, const v1::Drain& drain) {
  absl::Duration total = absl::ZeroDuration();
  if (drain.has_end_time() && drain.has_create_time()) {
    total = ToAbslTime(drain.end_time()) - ToAbslTime(drain.create_time());
  }
  out << "drain " << drain.drain_id() << " of " << drain.node() << ": " << drain.moved() << " of "
      << drain.nics_size() << " NICs moved in " << DurationText(total);
  if (drain.stayed() > 0) out << ", " << drain.stayed() << " stayed";
  if (drain.needs_recovery() > 0) out << ", " << drain.needs_recovery() << " need recovery";
  if (drain.not_started() > 0) out << ", " << drain.not_started() << " not started";
  if (drain.cancel_requested()) out << " (cancelled)";
  out << "\n";
  if (drain.nics_size() == 0) return;
  Table table({"  NIC", "OUTCOME", "OWNER", "HANDOVER", "TIME", "REASON"});
  std::map<std::string, int> moved_to;
  for (const auto& nic : drain.nics()) {
    if (nic.state() == v1::DRAIN_NIC_STATE_MOVED) ++moved_to[nic.owner_node()];
    table.AddRow({"  " + nic.bdf(), NicStateText(nic.state()),
                  nic.owner_node().empty() ? "undecided" : nic.owner_node(),
                  nic.handover_id().empty() ? "-" : nic.handover_id(),
                  nic.has_duration() ? DurationText(ToAbslDuration(nic.duration())) : "-",
                  nic.state() == v1::DRAIN_NIC_STATE_MOVED || !nic.has_error()
                      ? "-"
                      : ErrorText(nic.error())});
  }
  table.Print(out);
  std::vector<std::string> parts;
  for (const auto& [node, count] : moved_to) parts.push_back(absl::StrCat(node, " ", count));
  if (!parts.empty()) out << "moved to: " << absl::StrJoin(parts, ", ") << "\n";
  out.flush();
}

int RunDrain(Context& ctx) {
  v1::DrainNodeRequest request;
  request.set_node(ctx.args()[0]);
  request.set_to_node(ctx.Flag("to"));
  request.set_request_id(ctx.HasFlag("request-id") ? ctx.Flag("request-id")
                                                   : NewRequestId("nicctl-drain-"));
  if (ctx.HasFlag("timeout")) {
    auto d = ParseUserDuration(ctx.Flag("timeout"));
    if (!d.ok()) return ctx.UsageError(absl::StrCat("--timeout: ", d.status().message()));
    *request.mutable_timeout() = ToProto(*d);
  }
  if (ctx.HasFlag("max-concurrent")) {
    int n = 0;
    if (!absl::SimpleAtoi(ctx.Flag("max-concurrent"), &n) || n <= 0) {
      return ctx.UsageError(absl::StrCat("--max-concurrent: '", ctx.Flag("max-concurrent"),
                                         "' is not a positive number"));
    }
    request.set_max_concurrent(n);
  }
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  v1::Drain drain;
  {
    // Reachability probes of the peers come first.
    auto call = ctx.NewCall();
    grpc::Status status = service->DrainNode(call.get(), request, &drain);
    if (!status.ok()) {
      std::string hint;
      switch (status.error_code()) {
        case grpc::StatusCode::NOT_FOUND:
          hint = "'nicctl nodes' lists the nodes";
          break;
        case grpc::StatusCode::FAILED_PRECONDITION:
          hint =
              "a node is drained through its own daemon (--server); 'nicctl nodes' shows "
              "which node answers, 'nicctl nics' and 'nicctl handover list' what runs";
          break;
        case grpc::StatusCode::ALREADY_EXISTS:
          hint = "that --request-id started a drain with other options; pick a new one";
          break;
        case grpc::StatusCode::UNAVAILABLE:
          hint = "the daemon or the --to node does not answer; 'nicctl nodes' shows which";
          break;
        default:
          break;
      }
      return ctx.Fail(status, absl::StrCat("draining ", request.node()), hint);
    }
  }
  if (ctx.HasFlag("no-wait")) {
    if (ctx.json()) {
      ctx.PrintJson(drain);
    } else {
      ctx.out() << "drain " << drain.drain_id() << " started: " << drain.nics_size() << " NICs off "
                << drain.node() << "\n";
      for (const auto& nic : drain.nics()) {
        ctx.out() << "  " << nic.bdf() << " -> " << nic.target_node() << "\n";
      }
      ctx.out() << "follow it with: nicctl drain " << drain.node()
                << (drain.to_node().empty() ? "" : absl::StrCat(" --to ", drain.to_node()))
                << (ctx.HasFlag("timeout") ? absl::StrCat(" --timeout ", ctx.Flag("timeout")) : "")
                << (ctx.HasFlag("max-concurrent")
                        ? absl::StrCat(" --max-concurrent ", ctx.Flag("max-concurrent"))
                        : "")
                << " --request-id " << drain.request_id() << "\n";
    }
    return kExitOk;
  }

  InterruptScope interrupts;
  int interrupts_seen = InterruptCount();
  bool cancelled = false;
  DrainProgress progress(ctx.out(), ctx.out_is_tty() && !ctx.json());
  v1::Drain last = drain;
  if (!ctx.json()) progress.Update(last);
  grpc::Status status;
  {
    v1::WatchDrainRequest watch;
    watch.set_drain_id(drain.drain_id());
    WatchStream<v1::Drain> stream(
        [service, watch](grpc::ClientContext* call) { return service->WatchDrain(call, watch); },
        absl::InfiniteDuration());
    bool finished = false;
    while (!finished) {
      std::deque<v1::Drain> snapshots;
      finished = stream.Next(absl::Milliseconds(100), &snapshots, &status);
      for (auto& snapshot : snapshots) {
        last = std::move(snapshot);
        if (!ctx.json()) progress.Update(last);
      }
      if (!ctx.json()) progress.Tick();
      if (InterruptCount() == interrupts_seen || finished || last.done()) continue;
      interrupts_seen = InterruptCount();
      progress.ClearLiveLine();
      if (cancelled) {
        ctx.err() << "\nnicctl: stopped following; drain " << last.drain_id()
                  << " ends in the daemon (its running handovers finish or roll back)\n"
                  << "  hint: see it with 'nicctl drain " << last.node() << " --request-id "
                  << last.request_id() << "' (same options)\n";
        return kExitInterrupted;
      }
      cancelled = true;
      int running = 0;
      for (const auto& nic : last.nics()) {
        if (nic.state() == v1::DRAIN_NIC_STATE_RUNNING) ++running;
      }
      ctx.err() << "\nnicctl: interrupted: stopping drain " << last.drain_id()
                << "; no more handovers start, the " << running
                << " running finish or roll back (a handover past its commit point "
                   "finishes). Ctrl-C again to stop following.\n";
      v1::CancelDrainRequest cancel;
      cancel.set_drain_id(last.drain_id());
      cancel.set_reason("interrupted by the operator (Ctrl-C in nicctl drain)");
      v1::Drain after;
      auto call = ctx.NewCall();
      grpc::Status cancel_status = service->CancelDrain(call.get(), cancel, &after);
      if (!cancel_status.ok()) ctx.Fail(cancel_status, "cancelling the drain");
    }
  }
  progress.ClearLiveLine();
  if (!last.done()) {
    std::string hint = absl::StrCat(
        "the drain's handovers finish or roll back without nicctl; once the daemon answers, "
        "'nicctl handover list' and 'nicctl nics' show where each NIC is");
    if (!status.ok())
      return ctx.Fail(status, absl::StrCat("following drain ", last.drain_id()), hint);
    ctx.err() << "nicctl: the daemon stopped streaming drain " << last.drain_id()
              << " before it ended\n  hint: " << hint << "\n";
    return kExitError;
  }
  if (ctx.json()) {
    ctx.PrintJson(last);
  } else {
    PrintDrainSummary(ctx.out(), last);
  }
  if (cancelled) {
    ctx.err() << "nicctl: drain " << last.drain_id() << " stopped: " << last.moved()
              << " NICs moved, the others stay on " << last.node() << "\n";
  }
  for (const auto& nic : last.nics()) {
    if (nic.state() == v1::DRAIN_NIC_STATE_NEEDS_RECOVERY) {
      ctx.err() << "nicctl: " << nic.bdf() << ": handover " << nic.handover_id()
                << " failed; decide it with 'nicctl recover " << nic.bdf()
                << " --decide commit|abort'\n";
    }
  }
  return ExitCodeForDrain(last, cancelled);
}

}  // namespace

std::vector<CommandSpec> DrainCommands() {
  return {
      {{"drain"},
       "NODE [--to NODE]",
       "Hand every NIC off a node to the other nodes, several at once",
       "Run it against the daemon of NODE (the node being emptied). Each NIC the\n"
       "node owns gets its own handover, up to --max-concurrent at once; the same\n"
       "NIC is never in two. With --to every NIC goes to that node; without it\n"
       "the NICs are spread: each NIC, in BDF order, goes to the reachable node\n"
       "that owns the fewest NICs (counting those this drain placed), ties to the\n"
       "smaller node id; a node that refuses a NIC, or stops answering, is left\n"
       "out for it and the NIC is placed again by the same rule.\n"
       "\n"
       "nicctl prints a line as each NIC's handover starts and ends (on a\n"
       "terminal a status line with the running NICs' phases redraws in place),\n"
       "then a summary: every NIC with its outcome and owner, and how many went\n"
       "where. Exit status: 0 when every NIC moved; otherwise the most serious\n"
       "outcome: 8 a handover needs 'nicctl recover', 6 a deadline passed, 5 a\n"
       "handover rolled back, 4 refused (or no node could take a NIC); 130 when\n"
       "Ctrl-C stopped the drain.\n"
       "\n"
       "Ctrl-C stops the drain: no more handovers start, the running ones roll\n"
       "back unless past their commit point (then they finish), and nicctl waits\n"
       "for them and prints the summary; Ctrl-C again stops following. A retry\n"
       "with the same --request-id and options follows the same drain.",
       {{"to", "NODE", "send every NIC to this node (default: spread)"},
        {"timeout", "DURATION", "deadline of each NIC's handover (default: the daemon's)"},
        {"max-concurrent", "N", "handovers running at once (default 8, at most 64)"},
        {"request-id", "ID", "idempotency key (default: a random one)"},
        {"no-wait", "", "print the drain's plan and return at once"}},
       1,
       1,
       RunDrain},
  };
}

}  // namespace cli
}  // namespace nichandover
