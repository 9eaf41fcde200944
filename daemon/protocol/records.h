// Helpers for the two kinds of records the protocol reasons about: the NIC's
// ownership record (the shared word) and the journal records.
#ifndef NICHANDOVER_DAEMON_PROTOCOL_RECORDS_H_
#define NICHANDOVER_DAEMON_PROTOCOL_RECORDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "journal_record.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace protocol {

v1::OwnershipRecord ActiveRecord(const std::string& owner, uint64_t epoch);
v1::OwnershipRecord PreparingRecord(const std::string& source, const std::string& target,
                                    uint64_t epoch);
v1::OwnershipRecord HandoffRecord(const std::string& source, const std::string& target,
                                  uint64_t epoch);
// All fields equal (what Arbiter::CompareAndSwap compares).
bool SameRecord(const v1::OwnershipRecord& a, const v1::OwnershipRecord& b);
// "ACTIVE(n1,3)", "PREPARING(n1->n2,4)", "HANDOFF(n1->n2,4)".
std::string RecordString(const v1::OwnershipRecord& record);

JournalRecord MakeJournalRecord(JournalRecord::Kind kind, const v1::Handover& handover,
                                const std::vector<v1::MsiMessage>& messages);
// The handover and messages of a record; INVALID_ARGUMENT (naming the field)
// when the kind is unset or the handover has no id.
struct UnpackedRecord {
  JournalRecord::Kind kind = JournalRecord::KIND_UNSPECIFIED;
  v1::Handover handover;
  std::vector<v1::MsiMessage> messages;
};
absl::StatusOr<UnpackedRecord> UnpackJournalRecord(const JournalRecord& record);

}  // namespace protocol
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PROTOCOL_RECORDS_H_
