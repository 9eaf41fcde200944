// Time for the engine: what it is now and callbacks at a later time. The
// engine never reads the system clock or sleeps on its own, so its tests run
// on a FakeClock (daemon/engine/fake_clock.h) and advance time themselves.
#ifndef NICHANDOVER_DAEMON_ENGINE_CLOCK_H_
#define NICHANDOVER_DAEMON_ENGINE_CLOCK_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/time/time.h"

namespace nichandover {
namespace engine {

class Clock {
 public:
  // Names one scheduled callback; 0 is never a handle.
  using TimerHandle = uint64_t;

  virtual ~Clock() = default;

  virtual absl::Time Now() = 0;

  // Calls `fire` once, at or after `deadline` (this clock's time), unless
  // Cancel comes first. `fire` runs on the clock's own thread (RealClock)
  // or the thread that advances time (FakeClock): it must be quick and must
  // not call Schedule or Cancel of this clock while holding locks `fire`
  // itself takes. A deadline at absl::InfiniteFuture() never fires.
  virtual TimerHandle Schedule(absl::Time deadline, std::function<void()> fire) = 0;

  // Drops a callback that has not fired; harmless for one that has. When it
  // returns, the callback is not running (unless Cancel is called from the
  // callback itself) and will not run: what it captured may go.
  virtual void Cancel(TimerHandle handle) = 0;
};

// The pending callbacks of a clock in deadline order, and the one firing now.
// Not locked itself: every call holds the owning clock's mutex, passed in
// where the call lets go of it (a callback runs without it).
class TimerTable {
 public:
  Clock::TimerHandle Add(absl::Time deadline, std::function<void()> fire);
  // Clock::Cancel's contract: when it returns, the callback neither runs nor
  // will (unless called from the callback itself).
  void Cancel(Clock::TimerHandle handle, std::unique_lock<std::mutex>& lock);
  bool empty() const { return deadlines_.empty(); }
  size_t size() const { return deadlines_.size(); }
  // The earliest deadline; InfiniteFuture when there is none.
  absl::Time next_deadline() const {
    return deadlines_.empty() ? absl::InfiniteFuture() : deadlines_.begin()->first;
  }
  // Runs the earliest callback with `lock` released, and forgets it.
  void FireFirst(std::unique_lock<std::mutex>& lock);

 private:
  std::multimap<absl::Time, std::pair<Clock::TimerHandle, std::function<void()>>> deadlines_;
  Clock::TimerHandle next_handle_ = 1;
  // The callback running now (0: none) and its thread; Cancel waits for it.
  Clock::TimerHandle firing_ = 0;
  std::thread::id firing_thread_;
  std::condition_variable fired_;
};

// The clock of a daemon: absl::Now() and one thread that fires callbacks.
class RealClock final : public Clock {
 public:
  RealClock();
  ~RealClock() override;  // drops callbacks that have not fired
  RealClock(const RealClock&) = delete;
  RealClock& operator=(const RealClock&) = delete;

  absl::Time Now() override;
  TimerHandle Schedule(absl::Time deadline, std::function<void()> fire) override;
  void Cancel(TimerHandle handle) override;

 private:
  // The timer thread sleeps at most this long at once: a deadline far in the
  // future would overflow the condition variable's clock arithmetic and turn
  // the wait into a busy loop.
  static constexpr absl::Duration kMaxSleep = absl::Minutes(1);

  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  TimerTable timers_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_CLOCK_H_
