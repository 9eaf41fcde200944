#include "sim/doorbell.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace nichandover {
namespace sim {

namespace doorbell_internal {

void FutexWait(Doorbell& bell, uint32_t snapshot, absl::Duration timeout) {
  struct timespec ts = absl::ToTimespec(timeout);
  // Not FUTEX_PRIVATE: the word may live in memory shared between processes.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&bell.seq), FUTEX_WAIT, snapshot, &ts, nullptr,
          0);
}

}  // namespace doorbell_internal

void DoorbellWait(Doorbell& bell, uint32_t snapshot, absl::Duration timeout) {
  bell.sleepers.fetch_add(1, std::memory_order_seq_cst);
  if (bell.seq.load(std::memory_order_seq_cst) == snapshot) {
    doorbell_internal::FutexWait(bell, snapshot, timeout);
  }
  bell.sleepers.fetch_sub(1, std::memory_order_seq_cst);
}

void DoorbellRing(Doorbell& bell) {
  bell.seq.fetch_add(1, std::memory_order_seq_cst);
  if (bell.sleepers.load(std::memory_order_seq_cst) != 0) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&bell.seq), FUTEX_WAKE, INT32_MAX, nullptr,
            nullptr, 0);
  }
}

int64_t MonotonicNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace sim
}  // namespace nichandover
