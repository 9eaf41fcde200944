// Wake-ups between the machine's processes without busy-spinning: a futex
// on a shared counter. A waiter snapshots the counter, checks for work, and
// sleeps only if the counter has not moved since; a ringer bumps the counter
// and makes the wake system call only when someone sleeps.
#ifndef NICHANDOVER_SIM_DOORBELL_H_
#define NICHANDOVER_SIM_DOORBELL_H_

#include <cstdint>

#include "absl/time/clock.h"
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

// For a waiter on some progress another thread makes (a condition, not a
// count of rings): registers as a sleeper *before* it checks `done`, so a
// ringer that saw no sleeper made its progress visible before that check
// and DoorbellRingIfSleepers may skip the ring. True when `done` holds,
// false when `deadline` passed first. Never polls: it sleeps on the futex
// until rung (or the deadline).
template <typename Done>
bool DoorbellWaitUntil(Doorbell& bell, Done done, absl::Time deadline);

// The progress side: publish the progress (seq_cst) first, then call this.
// Costs one load when nobody waits: the data path's price.
inline void DoorbellRingIfSleepers(Doorbell& bell) {
  if (bell.sleepers.load(std::memory_order_seq_cst) != 0) DoorbellRing(bell);
}

namespace doorbell_internal {
// FUTEX_WAIT on bell.seq while it equals `snapshot`, at most `timeout`.
void FutexWait(Doorbell& bell, uint32_t snapshot, absl::Duration timeout);
}  // namespace doorbell_internal

template <typename Done>
bool DoorbellWaitUntil(Doorbell& bell, Done done, absl::Time deadline) {
  bell.sleepers.fetch_add(1, std::memory_order_seq_cst);
  bool reached = false;
  for (;;) {
    const uint32_t snapshot = bell.seq.load(std::memory_order_seq_cst);
    if (done()) {
      reached = true;
      break;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    doorbell_internal::FutexWait(bell, snapshot, left);
  }
  bell.sleepers.fetch_sub(1, std::memory_order_seq_cst);
  return reached;
}

// CLOCK_MONOTONIC in nanoseconds: the same clock in every process.
int64_t MonotonicNanos();

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_DOORBELL_H_
