// The fence every call that changes a device carries: the handover's epoch
// and the calling daemon's operation id. The kernel side of a backend (hook,
// simulated kernel, host agent, shared record) keeps the highest fence it
// has accepted per device and refuses a lower one, compared as the pair
// (epoch, op_id). The epoch alone fences a daemon that lost the ownership
// record; the operation id fences a *late* call of the current epoch: a
// Restore of a crashed instance, or of a call the daemon timed out and
// retried, that lands after the newer calls of the same epoch.
//
// op_id is incarnation << 32 | counter (daemon/engine/operation_sequencer.h):
// it grows within a daemon and across its restarts. 0 means "no operation
// id": only tools and tests that speak for no daemon send it.
#ifndef NICHANDOVER_COMMON_FENCE_H_
#define NICHANDOVER_COMMON_FENCE_H_

#include <cstdint>
#include <string>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nichandover {

struct Fence {
  uint64_t epoch = 0;
  uint64_t op_id = 0;

  friend bool operator<(const Fence& a, const Fence& b) {
    return std::tie(a.epoch, a.op_id) < std::tie(b.epoch, b.op_id);
  }
  friend bool operator==(const Fence& a, const Fence& b) {
    return a.epoch == b.epoch && a.op_id == b.op_id;
  }
  friend bool operator!=(const Fence& a, const Fence& b) { return !(a == b); }
};

// "epoch 5 op 3.17" (incarnation.counter), for messages and logs.
std::string FenceText(const Fence& fence);

// OK when `call` is not lower than `highest` (equal is a retry of the very
// same call and is admitted again); FAILED_PRECONDITION naming both fences
// otherwise. `what` names the call ("restore of 0000:03:00.0 on node-a").
absl::Status CheckFence(const Fence& highest, const Fence& call, absl::string_view what);

}  // namespace nichandover

#endif  // NICHANDOVER_COMMON_FENCE_H_
