// One-line text forms of the protocol's events and actions, for logs and for
// the scenario traces in testdata/.
#ifndef NICHANDOVER_DAEMON_PROTOCOL_FORMAT_H_
#define NICHANDOVER_DAEMON_PROTOCOL_FORMAT_H_

#include <string>
#include <vector>

#include "daemon/protocol/events.h"

namespace nichandover {
namespace protocol {

// "apic1/0x41,apic1/0x42" (destination APIC ID and vector of each message).
std::string MessagesString(const std::vector<v1::MsiMessage>& messages);
std::string OpString(const PlatformOp& op);
std::string OpResultString(OpKind kind, const OpResult& result);
std::string PeerRequestString(const PeerRequestBody& body);
std::string PeerResponseString(const PeerResponseBody& body);
std::string JournalRecordString(const JournalRecord& record);
// "h1 n1->n2 0000:03:00.0 COMMITTED epoch 1->2" plus the error when set.
std::string HandoverString(const v1::Handover& handover);
std::string PhaseString(v1::HandoverPhase phase);

}  // namespace protocol
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PROTOCOL_FORMAT_H_
