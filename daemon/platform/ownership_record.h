// The NIC's ownership record, once for every place that holds or reasons
// about it: the backends' arbiters (fake machine file, shared file, sim
// machine memory, host agent), the protocol and its tests. Building,
// comparing, printing, and the rules of Arbiter::CompareAndSwap.
#ifndef NICHANDOVER_DAEMON_PLATFORM_OWNERSHIP_RECORD_H_
#define NICHANDOVER_DAEMON_PLATFORM_OWNERSHIP_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace platform {

v1::OwnershipRecord ActiveRecord(const std::string& owner, uint64_t epoch);
v1::OwnershipRecord PreparingRecord(const std::string& source, const std::string& target,
                                    uint64_t epoch);
v1::OwnershipRecord HandoffRecord(const std::string& source, const std::string& target,
                                  uint64_t epoch);

// All fields equal: what Arbiter::CompareAndSwap compares.
bool SameRecord(const v1::OwnershipRecord& a, const v1::OwnershipRecord& b);

// "ACTIVE(n1,3)", "PREPARING(n1->n2,4)", "HANDOFF(n1->n2,4)".
std::string RecordString(const v1::OwnershipRecord& record);

// What every arbiter refuses before comparing: INVALID_ARGUMENT when
// `desired` lowers the epoch of `expected` (epochs in the record only grow).
absl::Status CheckCompareAndSwap(const std::string& bdf, const v1::OwnershipRecord& expected,
                                 const v1::OwnershipRecord& desired);

// Compare-and-swap on a record held in memory (under the caller's lock):
// `*current` becomes `desired` iff it is the same record as `expected`.
// Returns the record after the call, equal to `desired` iff the swap was
// made (or had been made by an earlier try of the same call).
v1::OwnershipRecord SwapIfSame(v1::OwnershipRecord* current, const v1::OwnershipRecord& expected,
                               const v1::OwnershipRecord& desired);

}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_OWNERSHIP_RECORD_H_
