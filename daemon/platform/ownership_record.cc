#include "daemon/platform/ownership_record.h"

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace platform {
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

absl::Status CheckCompareAndSwap(const std::string& bdf, const v1::OwnershipRecord& expected,
                                 const v1::OwnershipRecord& desired) {
  if (desired.epoch() < expected.epoch()) {
    return absl::InvalidArgumentError(absl::StrCat("CAS of ", bdf, ": ", RecordString(desired),
                                                   " would lower the epoch of ",
                                                   RecordString(expected)));
  }
  return absl::OkStatus();
}

v1::OwnershipRecord SwapIfSame(v1::OwnershipRecord* current, const v1::OwnershipRecord& expected,
                               const v1::OwnershipRecord& desired) {
  if (SameRecord(*current, expected)) *current = desired;
  return *current;
}

}  // namespace platform
}  // namespace nichandover
