#include "daemon/engine/fake_clock.h"

namespace nichandover {
namespace engine {

absl::Time FakeClock::Now() {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

Clock::TimerHandle FakeClock::Schedule(absl::Time deadline, std::function<void()> fire) {
  std::lock_guard<std::mutex> lock(mu_);
  const TimerHandle handle = next_handle_++;
  if (deadline == absl::InfiniteFuture()) return handle;
  deadlines_.emplace(deadline, std::make_pair(handle, std::move(fire)));
  scheduled_.notify_all();
  return handle;
}

void FakeClock::Cancel(TimerHandle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  for (auto it = deadlines_.begin(); it != deadlines_.end(); ++it) {
    if (it->second.first == handle) {
      deadlines_.erase(it);
      return;
    }
  }
  // Firing now on another thread: wait, so that what `fire` uses may go
  // once Cancel returns.
  if (firing_thread_ != std::this_thread::get_id()) {
    fired_.wait(lock, [&] { return firing_ != handle; });
  }
}

void FakeClock::Advance(absl::Duration by) {
  std::unique_lock<std::mutex> lock(mu_);
  const absl::Time until = now_ + by;
  while (!deadlines_.empty() && deadlines_.begin()->first <= until) {
    auto first = deadlines_.begin();
    if (first->first > now_) now_ = first->first;
    std::function<void()> fire = std::move(first->second.second);
    firing_ = first->second.first;
    firing_thread_ = std::this_thread::get_id();
    deadlines_.erase(first);
    lock.unlock();
    fire();
    fire = nullptr;
    lock.lock();
    firing_ = 0;
    firing_thread_ = std::thread::id();
    fired_.notify_all();
  }
  now_ = until;
}

size_t FakeClock::PendingTimers() {
  std::lock_guard<std::mutex> lock(mu_);
  return deadlines_.size();
}

absl::Time FakeClock::NextDeadline() {
  std::lock_guard<std::mutex> lock(mu_);
  return deadlines_.empty() ? absl::InfiniteFuture() : deadlines_.begin()->first;
}

bool FakeClock::AwaitTimerDueBy(absl::Time by, absl::Duration real_timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return scheduled_.wait_for(lock, absl::ToChronoNanoseconds(real_timeout), [&] {
    return !deadlines_.empty() && deadlines_.begin()->first <= by;
  });
}

}  // namespace engine
}  // namespace nichandover
