#include "daemon/protocol/records.h"

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace protocol {
JournalRecord MakeJournalRecord(JournalRecord::Kind kind, const v1::Handover& handover,
                                const std::vector<v1::MsiMessage>& messages) {
  JournalRecord record;
  record.set_kind(kind);
  *record.mutable_handover() = handover;
  for (const v1::MsiMessage& message : messages) *record.add_messages() = message;
  return record;
}

absl::StatusOr<UnpackedRecord> UnpackJournalRecord(const JournalRecord& record) {
  UnpackedRecord out;
  out.kind = record.kind();
  if (out.kind == JournalRecord::KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("journal record: kind is unspecified");
  }
  if (record.handover().handover_id().empty()) {
    return absl::InvalidArgumentError("journal record: handover has no handover_id");
  }
  out.handover = record.handover();
  out.messages.assign(record.messages().begin(), record.messages().end());
  return out;
}

}  // namespace protocol
}  // namespace nichandover
