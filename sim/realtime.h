// Opt-in SCHED_FIFO for the simulated machine's data-path threads
// (--realtime-priority N on nh-sim-machine run, nh-sim-kernel and
// nh-sim-traffic).
//
// Why: in the machines this product targets each OS node's kernel runs on
// CPUs it owns, so its CPU and the doorbell's commit never wait behind
// another node's daemon. On a shared host the simulated kernels' threads
// compete with the daemons for the same CPUs, and the daemons are busiest
// exactly around a handover's blackout. Giving the data-path threads a
// real-time priority models the owned CPUs: they run as soon as they are
// woken. Only threads that block on a futex when idle may get it (a
// SCHED_FIFO thread that spins starves everything of lower priority on its
// CPU); control (gRPC) threads and the daemons stay under the normal
// scheduler. docs/simulator.md, "Real-time data path".
#ifndef NICHANDOVER_SIM_REALTIME_H_
#define NICHANDOVER_SIM_REALTIME_H_

#include <pthread.h>
#include <sched.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nichandover {
namespace sim {

// The value of --realtime-priority: 0 (off, the default) or a SCHED_FIFO
// priority 1..99. INVALID_ARGUMENT otherwise; FAILED_PRECONDITION when the
// kernel's RT throttling is off (sched_rt_runtime_us = -1): it is the last
// guard should a real-time thread ever spin.
absl::StatusOr<int> ParseRealtimePriority(const std::string& value);

// Puts `thread` under SCHED_FIFO at `priority` (no-op for 0).
// PERMISSION_DENIED without root (CAP_SYS_NICE), naming `what`.
absl::Status SetRealtimePriority(pthread_t thread, int priority, const std::string& what);

// Runs the calling thread under SCHED_FIFO at `priority` until destroyed,
// then puts back the policy it had (no-op for 0). For work that a real
// kernel does in a system call on the node's own CPU but that the simulated
// kernel receives on a control (gRPC) thread: the source's HandOff, whose
// drain and MSI-X rewrite are inside the blackout. `status()` says whether
// the boost took (PERMISSION_DENIED without CAP_SYS_NICE); the work runs
// either way.
class ScopedRealtimePriority {
 public:
  ScopedRealtimePriority(int priority, const std::string& what);
  ~ScopedRealtimePriority();
  ScopedRealtimePriority(const ScopedRealtimePriority&) = delete;
  ScopedRealtimePriority& operator=(const ScopedRealtimePriority&) = delete;
  const absl::Status& status() const { return status_; }

 private:
  bool boosted_ = false;
  int old_policy_ = SCHED_OTHER;
  sched_param old_param_{};
  absl::Status status_;
};

}  // namespace sim
}  // namespace nichandover

#endif  // NICHANDOVER_SIM_REALTIME_H_
