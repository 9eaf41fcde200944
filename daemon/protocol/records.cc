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
  record.set_handover(handover.SerializeAsString());
  for (const v1::MsiMessage& message : messages) {
    record.add_messages(message.SerializeAsString());
  }
  return record;
}

absl::StatusOr<UnpackedRecord> UnpackJournalRecord(const JournalRecord& record) {
  UnpackedRecord out;
  out.kind = record.kind();
  if (out.kind == JournalRecord::KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("journal record: kind is unspecified");
  }
  if (!out.handover.ParseFromString(record.handover()) || out.handover.handover_id().empty()) {
    return absl::InvalidArgumentError("journal record: handover does not parse");
  }
  for (int i = 0; i < record.messages_size(); ++i) {
    v1::MsiMessage message;
    if (!message.ParseFromString(record.messages(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("journal record of ", out.handover.handover_id(), ": messages[", i,
                       "] does not parse"));
    }
    out.messages.push_back(message);
  }
  return out;
}

}  // namespace protocol
}  // namespace nichandover
