#include "cli/follow.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/handover_text.h"
#include "cli/progress.h"
#include "cli/watch_stream.h"

namespace nichandover {
namespace cli {
namespace {

enum class Answer { kCancel, kContinue, kDetach };

// Asks on the controlling terminal whether to cancel. kDetach when there is
// no terminal, on end of input, or on another Ctrl-C.
Answer AskOnTerminal(const std::string& id) {
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty < 0) return Answer::kDetach;
  std::string prompt = absl::StrCat(
      "\nCancel handover ", id,
      "? It rolls back if it has not reached its commit point. [y/N] (Ctrl-C again: leave it "
      "running) ");
  (void)!write(tty, prompt.data(), prompt.size());
  std::string line;
  char c;
  Answer answer = Answer::kDetach;
  while (true) {
    ssize_t n = read(tty, &c, 1);
    if (n < 0 && errno == EINTR) break;  // Ctrl-C again
    if (n <= 0) break;                   // no more input
    if (c == '\n') {
      answer = (!line.empty() && (line[0] == 'y' || line[0] == 'Y')) ? Answer::kCancel
                                                                     : Answer::kContinue;
      break;
    }
    line.push_back(c);
  }
  close(tty);
  return answer;
}

}  // namespace

void PrintOutcomeError(Context& ctx, const v1::Handover& h) {
  if (h.phase() == v1::HANDOVER_PHASE_COMMITTED) return;
  const char* what = h.phase() == v1::HANDOVER_PHASE_FAILED ? "failed" : "rolled back";
  ctx.err() << "nicctl: handover " << h.handover_id() << " " << what << ": "
            << (h.error().message().empty() ? h.error().reason() : h.error().message()) << "\n";
  std::string advice = AdviceFor(h);
  if (!advice.empty()) ctx.err() << "  hint: " << advice << "\n";
}

int RequestCancel(Context& ctx, const std::string& id, const std::string& reason) {
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  v1::CancelHandoverRequest request;
  request.set_handover_id(id);
  request.set_reason(reason);
  v1::Handover after;
  auto call = ctx.NewCall();
  grpc::Status status = service->CancelHandover(call.get(), request, &after);
  if (!status.ok()) {
    std::string hint;
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      hint = "past the commit point only the target decides; the handover completes";
    } else if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      hint = "list this node's handovers with 'nicctl handover list'";
    }
    return ctx.Fail(status, absl::StrCat("cancelling handover ", id), hint);
  }
  ctx.err() << "nicctl: cancel requested for handover " << id << " (now "
            << PhaseText(after.phase()) << ")\n";
  return kExitOk;
}

int FollowHandover(Context& ctx, const std::string& id, const FollowOptions& options) {
  auto* service = ctx.NodeService();
  if (service == nullptr) return kExitUsage;
  InterruptScope interrupts;
  int interrupts_seen = InterruptCount();
  ProgressPrinter printer(ctx.out(), ctx.out_is_tty() && !ctx.json());
  v1::Handover last;
  bool header_printed = !options.print_header;
  grpc::Status status;
  {
    v1::WatchHandoverRequest request;
    request.set_handover_id(id);
    WatchStream<v1::HandoverEvent> stream(
        [service, request](grpc::ClientContext* call) {
          return service->WatchHandover(call, request);
        },
        options.wait_limit);
    bool finished = false;
    while (!finished) {
      std::deque<v1::HandoverEvent> events;
      finished = stream.Next(absl::Milliseconds(100), &events, &status);
      absl::Time now = absl::Now();
      for (const auto& event : events) {
        last = event.handover();
        if (ctx.json()) continue;
        if (!header_printed) {
          printer.PrintHeader(last);
          header_printed = true;
        }
        printer.Update(last, now);
      }
      if (!ctx.json()) printer.Tick(now);
      if (InterruptCount() == interrupts_seen || finished || last.done()) continue;
      interrupts_seen = InterruptCount();
      Answer answer = Answer::kCancel;
      if (!options.cancel_on_interrupt) {
        printer.ClearLiveLine();
        answer = AskOnTerminal(id);
        interrupts_seen = InterruptCount();
      }
      if (answer == Answer::kCancel) {
        printer.ClearLiveLine();
        RequestCancel(ctx, id, "interrupted by the operator (Ctrl-C in nicctl)");
      } else if (answer == Answer::kDetach) {
        printer.ClearLiveLine();
        ctx.err() << "\nnicctl: interrupted; handover " << id
                  << " goes on without nicctl\n  hint: follow it with 'nicctl handover watch "
                  << id << "', cancel it with 'nicctl handover cancel " << id << "'\n";
        return kExitInterrupted;
      } else {
        ctx.err() << "nicctl: continuing to follow handover " << id << "\n";
      }
    }
  }
  printer.ClearLiveLine();
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && !last.done()) {
    ctx.err() << "nicctl: gave up waiting for handover " << id << " (phase "
              << PhaseText(last.phase()) << "); it goes on in the daemon\n"
              << "  hint: follow it with 'nicctl handover watch " << id << "'\n";
    return kExitTimedOut;
  }
  if (!status.ok() && !last.done()) {
    std::string hint;
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !last.handover_id().empty()) {
      hint = absl::StrCat("the handover finishes or rolls back without the daemon's answer; "
                          "once it is back, check it with 'nicctl handover show ",
                          id, "'");
    } else if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      hint = "list this node's handovers with 'nicctl handover list'";
    }
    return ctx.Fail(status, absl::StrCat("following handover ", id), hint);
  }
  if (!last.done()) {
    ctx.err() << "nicctl: the daemon stopped streaming handover " << id
              << " before it ended (phase " << PhaseText(last.phase()) << ")\n"
              << "  hint: follow it again with 'nicctl handover watch " << id << "'\n";
    return kExitError;
  }
  if (ctx.json()) {
    ctx.PrintJson(last);
  } else {
    printer.PrintSummary(last);
  }
  PrintOutcomeError(ctx, last);
  return ExitCodeForHandover(last);
}

}  // namespace cli
}  // namespace nichandover
