// A clock for tests: time stands still until the test advances it, and the
// callbacks that come due fire on the advancing thread, in deadline order.
#ifndef NICHANDOVER_DAEMON_ENGINE_FAKE_CLOCK_H_
#define NICHANDOVER_DAEMON_ENGINE_FAKE_CLOCK_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "daemon/engine/clock.h"

namespace nichandover {
namespace engine {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}

  absl::Time Now() override;
  TimerHandle Schedule(absl::Time deadline, std::function<void()> fire) override;
  void Cancel(TimerHandle handle) override;

  // Moves time forward by `by`, firing every callback due on the way, each
  // with Now() at its deadline.
  void Advance(absl::Duration by);

  // Callbacks scheduled and not yet fired or cancelled.
  size_t PendingTimers();
  // The earliest pending deadline (InfiniteFuture when none).
  absl::Time NextDeadline();
  // Blocks, in real time, until some callback is pending with a deadline at
  // or before `by` (another thread arms it); false after `real_timeout`.
  bool AwaitTimerDueBy(absl::Time by, absl::Duration real_timeout);

 private:
  std::mutex mu_;
  std::condition_variable scheduled_;
  absl::Time now_;
  TimerTable timers_;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_FAKE_CLOCK_H_
