// nicctl handover NIC --to NODE | handover list | show | watch | cancel; recover
#include <ostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/context.h"
#include "cli/follow.h"
#include "cli/handover_text.h"
#include "common/proto_time.h"

namespace nichandover {
namespace cli {
namespace {

constexpr char kHandoverNotFoundHint[] =
    "handovers are known to their source and target nodes; 'nicctl handover list' lists this "
    "node's";

// Time a client waits beyond the handover's own deadline before giving up:
// the daemon needs a moment to roll back after that deadline.
constexpr absl::Duration kWaitGrace = absl::Seconds(15);

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

bool ParseTimeoutFlag(Context& ctx, absl::Duration* timeout, int* rc) {
  if (!ctx.HasFlag("timeout")) return true;
  auto d = ParseUserDuration(ctx.Flag("timeout"));
  if (!d.ok()) {
    *rc = ctx.UsageError(absl::StrCat("--timeout: ", d.status().message()));
    return false;
  }
  *timeout = *d;
  return true;
}

// --commit-path auto|kernel|daemon; false (and *rc set) for another value.
bool ParseCommitPathFlag(Context& ctx, v1::CommitPath* path, int* rc) {
  if (!ctx.HasFlag("commit-path")) return true;
  const std::string value = ctx.Flag("commit-path");
  for (v1::CommitPath candidate :
       {v1::COMMIT_PATH_UNSPECIFIED, v1::COMMIT_PATH_KERNEL, v1::COMMIT_PATH_DAEMON}) {
    if (value == CommitPathName(candidate)) {
      *path = candidate;
      return true;
    }
  }
  *rc = ctx.UsageError(
      absl::StrCat("--commit-path: '", value, "' is not one of auto, kernel, daemon"));
  return false;
}

int RunHandover(Context& ctx) {
  if (!ctx.HasFlag("to")) {
    return ctx.UsageError("say where the NIC goes: nicctl handover NIC --to NODE");
  }
  v1::CommitPath commit_path = v1::COMMIT_PATH_UNSPECIFIED;
  absl::Duration timeout = absl::InfiniteDuration();
  int rc = kExitOk;
  if (!ParseTimeoutFlag(ctx, &timeout, &rc)) return rc;
  if (!ParseCommitPathFlag(ctx, &commit_path, &rc)) return rc;
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  v1::CreateHandoverRequest request;
  request.set_commit_path(commit_path);
  request.set_nic(ctx.args()[0]);
  request.set_target_node(ctx.Flag("to"));
  request.set_request_id(ctx.HasFlag("request-id") ? ctx.Flag("request-id")
                                                   : NewRequestId("nicctl-"));
  if (timeout != absl::InfiniteDuration()) {
    *request.mutable_timeout() = ToProto(timeout);
  }
  v1::Handover created;
  auto call = ctx.NewCall();
  grpc::Status status = service->CreateHandover(call.get(), request, &created);
  if (!status.ok()) {
    std::string hint;
    switch (status.error_code()) {
      case grpc::StatusCode::NOT_FOUND:
        hint = "'nicctl nics' lists the NICs, 'nicctl nodes' the nodes";
        break;
      case grpc::StatusCode::FAILED_PRECONDITION:
        if (absl::StartsWith(status.error_message(), "commit_path:")) {
          hint = "this node cannot hand off in its kernel (its backend has no kernel commit "
                 "path, or its config says kernel_commit: false); use --commit-path auto or "
                 "daemon";
          break;
        }
        hint = "run it on the node that owns the NIC ('nicctl nics' shows the owner), after "
               "any running handover of it ends ('nicctl handover list'); a FAILED handover of "
               "it waits for 'nicctl recover NIC --decide abort|commit'";
        break;
      case grpc::StatusCode::ALREADY_EXISTS:
        hint = "that --request-id was used for another handover; pick a new one or drop it";
        break;
      case grpc::StatusCode::ABORTED:
        hint = "a concurrent change won; check 'nicctl nics' and retry";
        break;
      default:
        break;
    }
    return ctx.Fail(status,
                    absl::StrCat("handing ", request.nic(), " over to ", request.target_node()),
                    hint);
  }
  if (ctx.HasFlag("no-wait")) {
    if (ctx.json()) {
      ctx.PrintJson(created);
    } else {
      ctx.out() << "handover " << created.handover_id() << " started: " << created.bdf() << " "
                << created.source_node() << " -> " << created.target_node() << ", epoch "
                << created.from_epoch() << " -> " << created.to_epoch() << ", commit path "
                << CommitPathName(created.requested_commit_path()) << "\n"
                << "follow it with: nicctl handover watch " << created.handover_id() << "\n";
    }
    return kExitOk;
  }
  FollowOptions options;
  options.cancel_on_interrupt = ctx.HasFlag("cancel-on-interrupt");
  options.print_header = true;
  if (timeout != absl::InfiniteDuration()) options.wait_limit = timeout + kWaitGrace;
  return FollowHandover(ctx, created.handover_id(), options);
}

int RunHandoverList(Context& ctx) {
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  int limit = 50;
  if (ctx.HasFlag("limit") && (!absl::SimpleAtoi(ctx.Flag("limit"), &limit) || limit <= 0)) {
    return ctx.UsageError(absl::StrCat("--limit: '", ctx.Flag("limit"),
                                       "' is not a positive number"));
  }
  v1::ListHandoversResponse all;
  v1::ListHandoversRequest request;
  request.set_nic(ctx.Flag("nic"));
  do {
    request.set_page_size(std::min(limit - all.handovers_size(), 1000));
    v1::ListHandoversResponse page;
    auto call = ctx.NewCall();
    grpc::Status status = service->ListHandovers(call.get(), request, &page);
    if (!status.ok()) {
      return ctx.Fail(status, "listing handovers",
                      status.error_code() == grpc::StatusCode::NOT_FOUND ||
                              status.error_code() == grpc::StatusCode::INVALID_ARGUMENT
                          ? "name the NIC by BDF or network interface; 'nicctl nics' lists them"
                          : "");
    }
    for (auto& h : *page.mutable_handovers()) *all.add_handovers() = std::move(h);
    request.set_page_token(page.next_page_token());
    all.set_next_page_token(page.next_page_token());
  } while (!request.page_token().empty() && all.handovers_size() < limit);
  if (ctx.json()) {
    ctx.PrintJson(all);
    return kExitOk;
  }
  if (all.handovers_size() == 0) {
    ctx.out() << "no handovers\n";
    return kExitOk;
  }
  Table table({"ID", "NIC", "SOURCE", "TARGET", "EPOCH", "PHASE", "STARTED", "TOTAL", "REASON"});
  for (const auto& h : all.handovers()) {
    table.AddRow({h.handover_id(), h.bdf(), h.source_node(), h.target_node(),
                  absl::StrCat(h.from_epoch(), " -> ", h.to_epoch()), PhaseText(h.phase()),
                  h.has_create_time()
                      ? absl::FormatTime("%Y-%m-%d %H:%M:%S", ToAbslTime(h.create_time()),
                                         absl::LocalTimeZone())
                      : "-",
                  DurationText(TotalTime(h)), OrDash(h.error().reason())});
  }
  table.Print(ctx.out());
  return kExitOk;
}

bool GetHandover(Context& ctx, const std::string& id, v1::Handover* h, int* rc) {
  auto* service = ctx.NodeService();
  if (service == nullptr) {
    *rc = kExitUsage;
    return false;
  }
  v1::GetHandoverRequest request;
  request.set_handover_id(id);
  auto call = ctx.NewCall();
  grpc::Status status = service->GetHandover(call.get(), request, h);
  if (!status.ok()) {
    *rc = ctx.Fail(status, absl::StrCat("handover ", id),
                   status.error_code() == grpc::StatusCode::NOT_FOUND ? kHandoverNotFoundHint
                                                                      : "");
    return false;
  }
  return true;
}

int RunHandoverShow(Context& ctx) {
  v1::Handover h;
  int rc = kExitOk;
  if (!GetHandover(ctx, ctx.args()[0], &h, &rc)) return rc;
  if (ctx.json()) {
    ctx.PrintJson(h);
    return kExitOk;
  }
  auto row = [&](const char* key, const std::string& value) {
    ctx.out() << absl::StrFormat("%-10s %s\n", key, value);
  };
  row("handover", h.handover_id());
  row("request", OrDash(h.request_id()));
  row("nic", h.bdf());
  row("source", h.source_node());
  row("target", h.target_node());
  row("epoch", absl::StrCat(h.from_epoch(), " -> ", h.to_epoch()));
  row("commit path", CommitPathText(h));
  row("phase", absl::StrCat(PhaseText(h.phase()), h.done() ? " (done)" : " (running)",
                            h.cancel_requested() ? ", cancel requested" : ""));
  if (h.has_create_time()) {
    row("created", absl::FormatTime("%Y-%m-%d %H:%M:%E3S %Z", ToAbslTime(h.create_time()),
                                    absl::LocalTimeZone()));
  }
  row("total", DurationText(TotalTime(h)));
  if (h.stats().has_blackout()) row("blackout", DurationText(ToAbslDuration(h.stats().blackout())));
  row("drained", absl::StrCat(h.stats().drained_tx_packets(), " TX + ",
                              h.stats().drained_rx_packets(), " RX packets"));
  if (h.has_error()) row("error", absl::StrCat(h.error().reason(), ": ", h.error().message()));
  ctx.out() << "phases:\n";
  Table table({"  PHASE", "DURATION", "DETAIL"});
  for (const auto& p : h.phases()) {
    table.AddRow({"  " + PhaseText(p.phase()),
                  p.has_duration() ? DurationText(ToAbslDuration(p.duration())) : "-",
                  OrDash(p.detail())});
  }
  table.Print(ctx.out());
  if (h.done() && h.phase() != v1::HANDOVER_PHASE_COMMITTED) {
    std::string advice = AdviceFor(h);
    if (!advice.empty()) ctx.out() << "hint: " << advice << "\n";
  }
  return kExitOk;
}

int RunHandoverWatch(Context& ctx) {
  FollowOptions options;
  options.cancel_on_interrupt = ctx.HasFlag("cancel-on-interrupt");
  options.print_header = true;
  if (ctx.HasFlag("timeout")) {
    int rc = kExitOk;
    if (!ParseTimeoutFlag(ctx, &options.wait_limit, &rc)) return rc;
  }
  return FollowHandover(ctx, ctx.args()[0], options);
}

int RunHandoverCancel(Context& ctx) {
  const std::string& id = ctx.args()[0];
  int rc = RequestCancel(ctx, id, ctx.Flag("reason"));
  if (rc != kExitOk) return rc;
  if (ctx.HasFlag("wait")) {
    FollowOptions options;
    options.print_header = true;
    return FollowHandover(ctx, id, options);
  }
  if (ctx.json()) {
    v1::Handover h;
    if (!GetHandover(ctx, id, &h, &rc)) return rc;
    ctx.PrintJson(h);
  }
  return kExitOk;
}

int RunRecover(Context& ctx) {
  std::string decision = absl::AsciiStrToLower(ctx.Flag("decide"));
  v1::RecoverNicRequest request;
  if (decision == "commit") {
    request.set_decision(v1::RECOVERY_DECISION_COMMIT);
  } else if (decision == "abort") {
    request.set_decision(v1::RECOVERY_DECISION_ABORT);
  } else {
    return ctx.UsageError(
        "recover needs --decide commit (the target becomes the owner) or --decide abort (the "
        "source stays the owner)");
  }
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  request.set_nic(ctx.args()[0]);
  request.set_request_id(ctx.HasFlag("request-id") ? ctx.Flag("request-id")
                                                   : NewRequestId("nicctl-"));
  v1::RecoverNicResponse response;
  auto call = ctx.NewCall();
  grpc::Status status = service->RecoverNic(call.get(), request, &response);
  if (!status.ok()) {
    std::string hint;
    switch (status.error_code()) {
      case grpc::StatusCode::NOT_FOUND:
        hint = "'nicctl nics' lists the NICs";
        break;
      case grpc::StatusCode::FAILED_PRECONDITION:
        hint = "only a NIC whose handover lost its peer, or ended FAILED on this node, needs a "
               "decision; 'nicctl nic show NIC' shows its ownership record, 'nicctl handover "
               "list' the handovers";
        break;
      default:
        break;
    }
    return ctx.Fail(status, absl::StrCat("recovering ", request.nic()), hint);
  }
  if (ctx.json()) {
    ctx.PrintJson(response);
    return kExitOk;
  }
  ctx.out() << request.nic() << ": " << OwnershipText(response.ownership()) << ", epoch "
            << response.ownership().epoch() << "\n";
  if (response.has_handover()) {
    ctx.out() << "handover " << response.handover().handover_id() << ": "
              << PhaseText(response.handover().phase()) << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<CommandSpec> HandoverCommands() {
  const FlagSpec cancel_on_interrupt = {
      "cancel-on-interrupt", "", "Ctrl-C cancels the handover without asking"};
  return {
      {{"handover"},
       "NIC --to NODE",
       "Hand a NIC over to another node and show the phases live until it ends",
       "Run it on the node that owns the NIC. NIC is a BDF (0000:03:00.0 or\n"
       "03:00.0) or its network interface name. nicctl prints one line per phase\n"
       "with its duration as the phase completes (on a terminal the running phase\n"
       "redraws in place), then a summary: old and new owner, epochs, total time,\n"
       "blackout and drained packets. The exit status tells the outcome: 0\n"
       "committed, 4 refused by the target, 5 rolled back, 6 timed out, 8 failed.\n"
       "\n"
       "Ctrl-C asks on the terminal whether to cancel (a cancel rolls the handover\n"
       "back unless it passed its commit point); with --cancel-on-interrupt it\n"
       "cancels at once; without a terminal nicctl leaves the handover running and\n"
       "exits 130. A retry with the same --request-id returns the same handover.\n"
       "\n"
       "--commit-path picks who commits on the target: kernel (its kernel, armed\n"
       "before the blackout, commits alone on the source kernel's doorbell; refused,\n"
       "exit 4, when the target cannot arm it), daemon (the target daemon, on the\n"
       "source's Commit call), auto (the default: kernel when both nodes can).\n"
       "The summary and 'nicctl handover show' print the path taken.",
       {{"to", "NODE", "the node to hand the NIC to (required)"},
        {"commit-path", "auto|kernel|daemon", "who commits on the target (default auto)"},
        {"timeout", "DURATION", "overall deadline of the handover (default: the daemon's)"},
        {"request-id", "ID", "idempotency key (default: a random one)"},
        {"no-wait", "", "print the started handover and return at once"},
        cancel_on_interrupt},
       1,
       1,
       RunHandover},
      {{"handover", "list"},
       "",
       "List this node's handovers, newest first",
       "",
       {{"nic", "NIC", "only handovers of this NIC"},
        {"limit", "N", "at most N handovers (default 50)"}},
       0,
       0,
       RunHandoverList},
      {{"handover", "show"},
       "ID",
       "Show one handover: nodes, epochs, phases with durations, stats, error",
       "",
       {},
       1,
       1,
       RunHandoverShow},
      {{"handover", "watch"},
       "ID",
       "Follow a running handover to its end, as 'nicctl handover' does",
       "Exits with the handover's outcome, like 'nicctl handover'.",
       {{"timeout", "DURATION", "stop waiting after DURATION (exit 6; the handover goes on)"},
        cancel_on_interrupt},
       1,
       1,
       RunHandoverWatch},
      {{"handover", "cancel"},
       "ID",
       "Ask a running handover to roll back",
       "Honoured until the handover's commit point (its ownership record reaches\n"
       "HANDOFF); refused after it (exit 4), when only the target decides.",
       {{"reason", "TEXT", "recorded in the handover's error message"},
        {"wait", "", "follow the handover until it has rolled back"}},
       1,
       1,
       RunHandoverCancel},
      {{"recover"},
       "NIC --decide commit|abort",
       "Decide a handover whose coordinator is gone",
       "For a NIC whose handover the daemons could not finish alone (phase\n"
       "failed, exit 8). commit: the target becomes the owner; abort: the source\n"
       "stays the owner. Check 'nicctl nic show NIC' on both nodes first.",
       {{"decide", "commit|abort", "the decision (required)"},
        {"request-id", "ID", "idempotency key (default: a random one)"}},
       1,
       1,
       RunRecover},
  };
}

}  // namespace cli
}  // namespace nichandover
