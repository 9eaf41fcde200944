#include "daemon/engine/clock.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace nichandover {
namespace engine {

RealClock::RealClock() : thread_([this] { Run(); }) {}

RealClock::~RealClock() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  thread_.join();
}

absl::Time RealClock::Now() { return absl::Now(); }

Clock::TimerHandle TimerTable::Add(absl::Time deadline, std::function<void()> fire) {
  const Clock::TimerHandle handle = next_handle_++;
  if (deadline == absl::InfiniteFuture()) return handle;  // never fires
  deadlines_.emplace(deadline, std::make_pair(handle, std::move(fire)));
  return handle;
}

void TimerTable::Cancel(Clock::TimerHandle handle, std::unique_lock<std::mutex>& lock) {
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

void TimerTable::FireFirst(std::unique_lock<std::mutex>& lock) {
  auto first = deadlines_.begin();
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

Clock::TimerHandle RealClock::Schedule(absl::Time deadline, std::function<void()> fire) {
  std::lock_guard<std::mutex> lock(mu_);
  const TimerHandle handle = timers_.Add(deadline, std::move(fire));
  cv_.notify_all();
  return handle;
}

void RealClock::Cancel(TimerHandle handle) {
  std::unique_lock<std::mutex> lock(mu_);
  timers_.Cancel(handle, lock);
}

void RealClock::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (timers_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const absl::Time next = timers_.next_deadline();
    const absl::Time now = absl::Now();
    if (next <= now) {
      timers_.FireFirst(lock);
      continue;
    }
    cv_.wait_for(lock, absl::ToChronoNanoseconds(std::min(next - now, kMaxSleep)));
  }
}

}  // namespace engine
}  // namespace nichandover
