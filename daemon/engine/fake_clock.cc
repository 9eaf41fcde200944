#include "daemon/engine/fake_clock.h"

namespace nichandover {
namespace engine {

absl::Time FakeClock::Now() {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

Clock::TimerHandle FakeClock::Schedule(absl::Time deadline, std::function<void()> fire) {
  std::lock_guard<std::mutex> lock(mu_);
  const TimerHandle handle = timers_.Add(deadline, std::move(fire));
  scheduled_.notify_all();
  return handle;
}

void FakeClock::Cancel(TimerHandle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  timers_.Cancel(handle, lock);
}

void FakeClock::Advance(absl::Duration by) {
  std::unique_lock<std::mutex> lock(mu_);
  const absl::Time until = now_ + by;
  while (!timers_.empty() && timers_.next_deadline() <= until) {
    if (timers_.next_deadline() > now_) now_ = timers_.next_deadline();
    timers_.FireFirst(lock);
  }
  now_ = until;
}

size_t FakeClock::PendingTimers() {
  std::lock_guard<std::mutex> lock(mu_);
  return timers_.size();
}

absl::Time FakeClock::NextDeadline() {
  std::lock_guard<std::mutex> lock(mu_);
  return timers_.next_deadline();
}

bool FakeClock::AwaitTimerDueBy(absl::Time by, absl::Duration real_timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return scheduled_.wait_for(lock, absl::ToChronoNanoseconds(real_timeout), [&] {
    return !timers_.empty() && timers_.next_deadline() <= by;
  });
}

}  // namespace engine
}  // namespace nichandover
