// Helpers for the two kinds of records the protocol reasons about: the NIC's
// ownership record (the shared word) and the journal records.
#ifndef NICHANDOVER_DAEMON_PROTOCOL_RECORDS_H_
#define NICHANDOVER_DAEMON_PROTOCOL_RECORDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/platform/ownership_record.h"
#include "journal_record.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace protocol {

// The ownership record's helpers live with the platform's (one module for
// every arbiter and the protocol).
using platform::ActiveRecord;
using platform::HandoffRecord;
using platform::PreparingRecord;
using platform::RecordString;
using platform::SameRecord;

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
