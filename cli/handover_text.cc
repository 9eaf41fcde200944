#include "cli/handover_text.h"

#include <map>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace nichandover {
namespace cli {

std::string PhaseText(v1::HandoverPhase phase) {
  std::string name = v1::HandoverPhase_Name(phase);
  constexpr absl::string_view kPrefix = "HANDOVER_PHASE_";
  if (absl::StartsWith(name, kPrefix)) name = name.substr(kPrefix.size());
  if (name.empty()) return absl::StrCat("phase-", static_cast<int>(phase));
  return absl::StrReplaceAll(absl::AsciiStrToLower(name), {{"_", "-"}});
}

std::string CommitPathName(v1::CommitPath path) {
  switch (path) {
    case v1::COMMIT_PATH_UNSPECIFIED:
      return "auto";
    case v1::COMMIT_PATH_DAEMON:
      return "daemon";
    case v1::COMMIT_PATH_KERNEL:
      return "kernel";
    default:
      return absl::StrCat("commit-path-", static_cast<int>(path));
  }
}

std::string CommitPathText(const v1::Handover& handover) {
  const std::string taken = handover.commit_path() == v1::COMMIT_PATH_UNSPECIFIED
                                ? "-"
                                : CommitPathName(handover.commit_path());
  return absl::StrCat(taken, " (asked: ", CommitPathName(handover.requested_commit_path()), ")");
}

bool IsTerminalPhase(v1::HandoverPhase phase) {
  return phase == v1::HANDOVER_PHASE_COMMITTED || phase == v1::HANDOVER_PHASE_ROLLED_BACK ||
         phase == v1::HANDOVER_PHASE_FAILED;
}

std::string DurationText(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  if (d < absl::Seconds(1)) return absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d));
  if (d < absl::Minutes(1)) return absl::StrFormat("%.2fs", absl::ToDoubleSeconds(d));
  int64_t seconds = absl::ToInt64Seconds(d);
  return absl::StrFormat("%dm%ds", seconds / 60, seconds % 60);
}

absl::Duration ToAbslDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Time ToAbslTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string OwnershipText(const v1::OwnershipRecord& record) {
  switch (record.state()) {
    case v1::OWNERSHIP_STATE_ACTIVE:
      return absl::StrCat(record.owner_node(), " (active)");
    case v1::OWNERSHIP_STATE_PREPARING:
      return absl::StrCat(record.owner_node(), " -> ", record.target_node(), " (preparing)");
    case v1::OWNERSHIP_STATE_HANDOFF:
      return absl::StrCat(record.owner_node(), " -> ", record.target_node(), " (handoff)");
    default:
      return "-";
  }
}

std::string InterruptModeText(const v1::InterruptLayout& layout) {
  switch (layout.mode()) {
    case v1::INTERRUPT_MODE_MSIX:
      return absl::StrCat("MSI-X x", layout.vectors_enabled());
    case v1::INTERRUPT_MODE_MSI:
      return absl::StrCat("MSI x", layout.vectors_enabled());
    case v1::INTERRUPT_MODE_INTX:
      return "INTx";
    default:
      return "-";
  }
}

std::string DestinationText(const v1::InterruptLayout& layout) {
  // Group the vectors' APIC IDs by the node that owns them, in first-seen order.
  std::vector<std::string> nodes;
  std::map<std::string, std::set<uint32_t>> apics;
  bool remapped = false;
  for (const auto& v : layout.vectors()) {
    if (v.route().remappable()) {
      remapped = true;
      continue;
    }
    const std::string& node = v.route().destination_node();
    if (apics.find(node) == apics.end()) nodes.push_back(node);
    apics[node].insert(v.route().destination_apic_id());
  }
  std::vector<std::string> parts;
  for (const auto& node : nodes) {
    std::string ids = absl::StrJoin(apics[node], ",");
    parts.push_back(node.empty() ? absl::StrCat("APIC ", ids, " (unknown node)")
                                 : absl::StrCat(node, " (APIC ", ids, ")"));
  }
  if (remapped) parts.push_back("remapped (IRTE)");
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

absl::Duration TotalTime(const v1::Handover& handover, absl::Time now) {
  if (!handover.has_create_time()) return absl::ZeroDuration();
  absl::Time end = handover.has_end_time() ? ToAbslTime(handover.end_time()) : now;
  return end - ToAbslTime(handover.create_time());
}

ExitCode ExitCodeForHandover(const v1::Handover& handover) {
  switch (handover.phase()) {
    case v1::HANDOVER_PHASE_COMMITTED:
      return kExitOk;
    case v1::HANDOVER_PHASE_FAILED:
      return kExitNeedsRecovery;
    case v1::HANDOVER_PHASE_ROLLED_BACK:
      if (handover.error().reason() == "TARGET_REFUSED") return kExitRefused;
      if (handover.error().reason() == "HANDOVER_TIMEOUT") return kExitTimedOut;
      return kExitRolledBack;
    default:
      return kExitError;
  }
}

namespace {

// Why the target refused: the structured field, or (from a daemon older than
// that field) the kind the source put in its message, "node1 refused (NO_DRIVER): ...".
std::string RefusalKind(const v1::Error& error) {
  if (error.refusal_reason() != v1::REFUSAL_REASON_UNSPECIFIED) {
    return v1::RefusalReason_Name(error.refusal_reason()).substr(std::string("REFUSAL_REASON_").size());
  }
  const std::string& message = error.message();
  size_t open = message.find(" refused (");
  if (open == std::string::npos) return "";
  open += std::string(" refused (").size();
  size_t close = message.find(')', open);
  return close == std::string::npos ? "" : message.substr(open, close - open);
}

}  // namespace

std::string AdviceFor(const v1::Handover& handover) {
  const std::string& reason = handover.error().reason();
  const std::string& target = handover.target_node();
  const std::string& source = handover.source_node();
  const std::string show = absl::StrCat("'nicctl handover show ", handover.handover_id(), "'");
  const std::string nic_show = absl::StrCat("'nicctl nic show ", handover.bdf(), "'");
  if (handover.phase() == v1::HANDOVER_PHASE_FAILED) {
    return absl::StrCat("the daemons could not finish it alone; check ", nic_show,
                        " on both nodes, then decide with 'nicctl recover ", handover.bdf(),
                        " --decide commit|abort'");
  }
  if (reason == "TARGET_REFUSED") {
    std::string kind = RefusalKind(handover.error());
    if (kind == "NO_DRIVER") {
      return absl::StrCat("load the NIC's driver on ", target, ", or pick another node");
    }
    if (kind == "NO_VECTORS") {
      return absl::StrCat("free interrupt vectors on ", target, "'s CPUs, or pick another node");
    }
    if (kind == "BUSY") {
      return absl::StrCat("another handover of ", handover.bdf(), " runs on ", target,
                          "; wait for it ('nicctl handover list') and retry");
    }
    if (kind == "STALE_EPOCH") {
      return absl::StrCat(target, " has seen a newer epoch of this NIC; compare ", nic_show,
                          " on both nodes before retrying");
    }
    if (kind == "UNSUPPORTED" && handover.requested_commit_path() == v1::COMMIT_PATH_KERNEL) {
      return absl::StrCat(target, " cannot commit in its kernel (its backend has no kernel ",
                          "commit path, or its config says kernel_commit: false); retry with ",
                          "--commit-path auto or daemon");
    }
    return absl::StrCat(target, " cannot take this NIC; pick another node");
  }
  if (reason == "PEER_UNAVAILABLE") {
    return absl::StrCat("is nichandoverd running on ", target,
                        "? Check 'nicctl nodes', then retry");
  }
  if (reason == "HANDOVER_TIMEOUT") {
    return absl::StrCat("see which phase took long with ", show,
                        "; retry with a longer --timeout");
  }
  if (reason == "QUIESCE_FAILED") {
    return absl::StrCat(source, " could not drain the NIC; check its kernel hook (dmesg on ",
                        source, ") and retry");
  }
  if (reason == "REROUTE_FAILED") {
    return absl::StrCat("the interrupt routing could not be rewritten; see 'nicctl msi show ",
                        handover.bdf(), "' (interrupt remapping on?)");
  }
  if (reason == "OWNERSHIP_CHANGED" || reason == "ARBITER_FAILED" ||
      reason == "SOURCE_ABORTED") {
    return absl::StrCat("the NIC's ownership record changed under the handover; check ", nic_show,
                        " and retry");
  }
  if (reason == "CANCELLED") return "";
  return absl::StrCat("see ", show);
}

}  // namespace cli
}  // namespace nichandover
