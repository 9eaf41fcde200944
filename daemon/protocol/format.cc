#include "daemon/protocol/format.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "daemon/protocol/records.h"

namespace nichandover {
namespace protocol {
namespace {

std::string StripPrefix(const std::string& name, const std::string& prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

std::string RingsString(const std::vector<v1::QueueRingState>& rings) {
  std::vector<std::string> parts;
  for (const v1::QueueRingState& r : rings) {
    parts.push_back(absl::StrFormat("q%d:rx%d/%d,tx%d/%d", r.queue(), r.rx_next_to_clean(),
                                    r.rx_next_to_use(), r.tx_next_to_clean(), r.tx_next_to_use()));
  }
  return "[" + absl::StrJoin(parts, " ") + "]";
}

std::string StatusString(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), " \"", status.message(), "\"");
}

}  // namespace

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kReadRecord:
      return "read-record";
    case OpKind::kCompareAndSwap:
      return "cas";
    case OpKind::kWriteHandoffRings:
      return "write-rings";
    case OpKind::kReadHandoffRings:
      return "read-rings";
    case OpKind::kQuiesce:
      return "quiesce";
    case OpKind::kResume:
      return "resume";
    case OpKind::kAttach:
      return "attach";
    case OpKind::kRelease:
      return "release";
    case OpKind::kReadMessages:
      return "read-messages";
    case OpKind::kReroute:
      return "reroute";
    case OpKind::kRestore:
      return "restore";
    case OpKind::kReserveMessages:
      return "reserve";
    case OpKind::kReleaseReservation:
      return "release-reservation";
    case OpKind::kArm:
      return "arm";
    case OpKind::kHandOff:
      return "hand-off";
  }
  return "unknown";
}

std::string MessagesString(const std::vector<v1::MsiMessage>& messages) {
  std::vector<std::string> parts;
  for (const v1::MsiMessage& m : messages) {
    parts.push_back(absl::StrFormat("apic%d/0x%02x", (m.address() >> 12) & 0xff, m.data() & 0xff));
  }
  return "[" + absl::StrJoin(parts, " ") + "]";
}

std::string PhaseString(v1::HandoverPhase phase) {
  return StripPrefix(v1::HandoverPhase_Name(phase), "HANDOVER_PHASE_");
}

std::string OpString(const PlatformOp& op) {
  std::string out = absl::StrCat("op ", op.op_id, " ", OpKindName(op.kind), " ", op.bdf);
  switch (op.kind) {
    case OpKind::kReadRecord:
    case OpKind::kReadMessages:
      break;
    case OpKind::kCompareAndSwap:
      absl::StrAppend(&out, " ", RecordString(op.expected), " -> ", RecordString(op.desired));
      break;
    case OpKind::kWriteHandoffRings:
    case OpKind::kAttach:
      absl::StrAppend(&out, " epoch=", op.epoch, " rings=", RingsString(op.rings));
      break;
    case OpKind::kReroute:
    case OpKind::kRestore:
      absl::StrAppend(&out, " epoch=", op.epoch, " to=", MessagesString(op.messages));
      break;
    case OpKind::kReserveMessages:
      absl::StrAppend(&out, " epoch=", op.epoch, " count=", op.count);
      break;
    case OpKind::kArm:
      absl::StrAppend(&out, " epoch=", op.epoch, " ", RecordString(op.desired));
      break;
    case OpKind::kHandOff:
      absl::StrAppend(&out, " epoch=", op.epoch, " ", RecordString(op.expected), " -> ",
                      RecordString(op.desired), " to=", MessagesString(op.messages));
      break;
    default:
      absl::StrAppend(&out, " epoch=", op.epoch);
  }
  return out;
}

std::string OpResultString(OpKind kind, const OpResult& result) {
  if (!result.status.ok()) return StatusString(result.status);
  switch (kind) {
    case OpKind::kReadRecord:
    case OpKind::kCompareAndSwap:
      return "ok " + RecordString(result.record);
    case OpKind::kReadMessages:
    case OpKind::kReroute:
    case OpKind::kReserveMessages:
      return "ok " + MessagesString(result.messages);
    case OpKind::kReadHandoffRings:
      return "ok " + RingsString(result.rings);
    case OpKind::kQuiesce:
      return absl::StrCat("ok drained_tx=", result.quiesce.drained_tx_packets,
                          " rings=", RingsString(result.quiesce.rings));
    case OpKind::kHandOff:
      // The record only once the call got that far (from kRingsWritten).
      return absl::StrCat("ok reached=", platform::HandOffStageName(result.handoff.reached),
                          " record=",
                          result.handoff.reached >= platform::HandOffStage::kRingsWritten
                              ? RecordString(result.handoff.record)
                              : "-");
    default:
      return "ok";
  }
}

std::string PeerRequestString(const PeerRequestBody& body) {
  if (const auto* offer = std::get_if<v1::OfferRequest>(&body)) {
    // The commit path only when one was asked for (older traces stay as they were).
    return absl::StrCat("Offer ", offer->handover_id(), " ", offer->bdf(), " ",
                        offer->source_node(), "->", offer->target_node(),
                        " epoch=", offer->new_epoch(), " vectors=", offer->vector_count(),
                        offer->commit_path() == v1::COMMIT_PATH_UNSPECIFIED
                            ? ""
                            : " commit_path=" + StripPrefix(v1::CommitPath_Name(
                                                                offer->commit_path()),
                                                            "COMMIT_PATH_"));
  }
  if (const auto* commit = std::get_if<v1::CommitRequest>(&body)) {
    std::vector<v1::QueueRingState> rings(commit->rings().begin(), commit->rings().end());
    return absl::StrCat("Commit ", commit->handover_id(), " epoch=", commit->epoch(),
                        " rings=", RingsString(rings));
  }
  if (const auto* abort = std::get_if<v1::AbortRequest>(&body)) {
    return absl::StrCat("Abort ", abort->handover_id(), " epoch=", abort->epoch(),
                        " reason=", abort->reason());
  }
  const auto& query = std::get<v1::QueryHandoverRequest>(body);
  return absl::StrCat("Query ", query.handover_id());
}

std::string PeerResponseString(const PeerResponseBody& body) {
  if (const auto* offer = std::get_if<v1::OfferResponse>(&body)) {
    if (offer->accepted()) {
      std::vector<v1::MsiMessage> messages(offer->target_messages().begin(),
                                           offer->target_messages().end());
      return (offer->armed() ? "Accept armed " : "Accept ") + MessagesString(messages);
    }
    return absl::StrCat("Refuse ",
                        StripPrefix(v1::RefusalReason_Name(offer->refusal_reason()),
                                    "REFUSAL_REASON_"),
                        " \"", offer->refusal_message(), "\"");
  }
  if (const auto* commit = std::get_if<v1::CommitResponse>(&body)) {
    return absl::StrCat(commit->committed() ? "Committed" : "NotCommitted", " ",
                        RecordString(commit->ownership()),
                        commit->message().empty() ? "" : " \"" + commit->message() + "\"");
  }
  if (std::holds_alternative<v1::AbortResponse>(body)) return "Aborted";
  const auto& query = std::get<v1::QueryHandoverResponse>(body);
  return absl::StrCat(StripPrefix(v1::PeerHandoverState_Name(query.state()),
                                  "PEER_HANDOVER_STATE_"),
                      " ", RecordString(query.ownership()));
}

std::string HandoverString(const v1::Handover& h) {
  std::string out = absl::StrCat(h.handover_id(), " ", h.source_node(), "->", h.target_node(),
                                 " ", PhaseString(h.phase()), " epoch ", h.from_epoch(), "->",
                                 h.to_epoch());
  // Only the kernel path is named: the daemon path is every older trace's.
  if (h.commit_path() == v1::COMMIT_PATH_KERNEL) absl::StrAppend(&out, " path=KERNEL");
  if (h.has_error()) {
    absl::StrAppend(&out, " error=", h.error().reason(), " \"", h.error().message(), "\"");
  }
  return out;
}

std::string JournalRecordString(const JournalRecord& record) {
  absl::StatusOr<UnpackedRecord> unpacked = UnpackJournalRecord(record);
  if (!unpacked.ok()) return "bad record: " + unpacked.status().ToString();
  std::string out = absl::StrCat(StripPrefix(JournalRecord::Kind_Name(record.kind()), ""), " ",
                                 HandoverString(unpacked->handover));
  if (!unpacked->messages.empty()) absl::StrAppend(&out, " msgs=", MessagesString(unpacked->messages));
  if (record.awaits_operator()) {
    absl::StrAppend(&out, " awaits-operator redo=", record.redo_step().empty() ? "none" : record.redo_step());
  }
  return out;
}

}  // namespace protocol
}  // namespace nichandover
