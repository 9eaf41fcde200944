#include "sim/realtime.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace nichandover {
namespace sim {

absl::StatusOr<int> ParseRealtimePriority(const std::string& value) {
  int priority = 0;
  const int max = sched_get_priority_max(SCHED_FIFO);
  if (!absl::SimpleAtoi(value, &priority) || priority < 0 || priority > max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--realtime-priority wants 0 (off) or a SCHED_FIFO priority 1-%d, not \"%s\"", max,
        value));
  }
  if (priority == 0) return 0;
  std::ifstream runtime("/proc/sys/kernel/sched_rt_runtime_us");
  long long runtime_us = 0;
  if (runtime >> runtime_us && runtime_us < 0) {
    return absl::FailedPreconditionError(
        "--realtime-priority: RT throttling is off (/proc/sys/kernel/sched_rt_runtime_us = -1); "
        "it is the guard that keeps a runaway real-time thread from freezing the host");
  }
  return priority;
}

absl::Status SetRealtimePriority(pthread_t thread, int priority, const std::string& what) {
  if (priority == 0) return absl::OkStatus();
  sched_param param{};
  param.sched_priority = priority;
  const int error = pthread_setschedparam(thread, SCHED_FIFO, &param);
  if (error == EPERM) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "SCHED_FIFO priority %d for %s: not permitted (needs root or CAP_SYS_NICE)", priority,
        what));
  }
  if (error != 0) {
    return absl::InternalError(absl::StrFormat("SCHED_FIFO priority %d for %s: %s", priority,
                                               what, std::strerror(error)));
  }
  return absl::OkStatus();
}

ScopedRealtimePriority::ScopedRealtimePriority(int priority, const std::string& what) {
  if (priority == 0) return;
  const pthread_t self = pthread_self();
  if (const int error = pthread_getschedparam(self, &old_policy_, &old_param_); error != 0) {
    status_ = absl::InternalError(
        absl::StrFormat("the scheduling policy of %s: %s", what, std::strerror(error)));
    return;
  }
  if (old_policy_ == SCHED_FIFO && old_param_.sched_priority >= priority) return;
  status_ = SetRealtimePriority(self, priority, what);
  boosted_ = status_.ok();
}

ScopedRealtimePriority::~ScopedRealtimePriority() {
  if (boosted_) pthread_setschedparam(pthread_self(), old_policy_, &old_param_);
}

}  // namespace sim
}  // namespace nichandover
