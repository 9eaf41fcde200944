#include "daemon/protocol/records.h"

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace protocol {
namespace {

v1::OwnershipRecord MakeRecord(v1::OwnershipState state, const std::string& owner,
                               const std::string& target, uint64_t epoch) {
  v1::OwnershipRecord record;
  record.set_state(state);
  record.set_owner_node(owner);
  record.set_target_node(target);
  record.set_epoch(epoch);
  return record;
}

}  // namespace

v1::OwnershipRecord ActiveRecord(const std::string& owner, uint64_t epoch) {
  return MakeRecord(v1::OWNERSHIP_STATE_ACTIVE, owner, "", epoch);
}

v1::OwnershipRecord PreparingRecord(const std::string& source, const std::string& target,
                                    uint64_t epoch) {
  return MakeRecord(v1::OWNERSHIP_STATE_PREPARING, source, target, epoch);
}

v1::OwnershipRecord HandoffRecord(const std::string& source, const std::string& target,
                                  uint64_t epoch) {
  return MakeRecord(v1::OWNERSHIP_STATE_HANDOFF, source, target, epoch);
}

bool SameRecord(const v1::OwnershipRecord& a, const v1::OwnershipRecord& b) {
  return a.state() == b.state() && a.owner_node() == b.owner_node() &&
         a.target_node() == b.target_node() && a.epoch() == b.epoch();
}

std::string RecordString(const v1::OwnershipRecord& record) {
  switch (record.state()) {
    case v1::OWNERSHIP_STATE_ACTIVE:
      return absl::StrCat("ACTIVE(", record.owner_node(), ",", record.epoch(), ")");
    case v1::OWNERSHIP_STATE_PREPARING:
      return absl::StrCat("PREPARING(", record.owner_node(), "->", record.target_node(), ",",
                          record.epoch(), ")");
    case v1::OWNERSHIP_STATE_HANDOFF:
      return absl::StrCat("HANDOFF(", record.owner_node(), "->", record.target_node(), ",",
                          record.epoch(), ")");
    default:
      return absl::StrCat("NONE(", record.epoch(), ")");
  }
}

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
