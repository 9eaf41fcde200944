// Wake-ups between the machine's processes without busy-spinning: a futex
// on a shared counter. A waiter snapshots the counter, checks for work, and
// sleeps only if the counter has not moved since; a ringer bumps the counter
// and makes the wake system call only when someone sleeps.
#ifndef NICHANDOVER_SIM_DOORBELL_H_
#define NICHANDOVER_SIM_DOORBELL_H_

#include <cstdint>

#include "absl/time/time.h"
#include "sim/machine_layout.h"

namespace nichandover {
namespace sim {

inline uint32_t DoorbellSnapshot(const Doorbell& bell) {
  return bell.seq.load(std::memory_order_acquire);
}

// Sleeps until the bell rings after `snapshot` was taken, or `timeout`.
void DoorbellWait(Doorbell& bell, uint32_t snapshot, absl::Duration timeout);

void DoorbellRing(Doorbell& bell);

// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
int64_t MonotonicNanos();

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_DOORBELL_H_
