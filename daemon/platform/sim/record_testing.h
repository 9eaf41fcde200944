// Ownership records for the sim backend's tests.
#ifndef NICHANDOVER_DAEMON_PLATFORM_SIM_RECORD_TESTING_H_
#define NICHANDOVER_DAEMON_PLATFORM_SIM_RECORD_TESTING_H_

#include <string>

#include "daemon/platform/ownership_record.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace platform {
namespace sim {

inline v1::OwnershipRecord Record(v1::OwnershipState state, const std::string& owner,
                                  const std::string& target, uint64_t epoch) {
  v1::OwnershipRecord r;
  r.set_state(state);
  r.set_owner_node(owner);
  r.set_target_node(target);
  r.set_epoch(epoch);
  return r;
}

inline bool Same(const v1::OwnershipRecord& a, const v1::OwnershipRecord& b) {
  return SameRecord(a, b);
}

}  // namespace sim
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_SIM_RECORD_TESTING_H_
