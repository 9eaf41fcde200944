// A bounded pool of threads for calls that may block or hang: platform calls
// (a quiesce waits for the driver, a broken kernel never answers) and peer
// sends. At most `threads` calls run at once; more wait in a FIFO queue of at
// most `max_queued`, and beyond that Submit refuses with RESOURCE_EXHAUSTED.
// A hung call holds one thread until it returns; the engine answers the
// machine at the call's deadline without waiting for it (node_engine.cc).
#ifndef NICHANDOVER_DAEMON_ENGINE_EXECUTOR_H_
#define NICHANDOVER_DAEMON_ENGINE_EXECUTOR_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace nichandover {
namespace engine {

class BoundedExecutor {
 public:
  struct Options {
    std::string name;  // for errors and logs: "platform", "peer"
    size_t threads = 16;
    size_t max_queued = 1024;
  };
  struct Stats {
    size_t threads = 0;  // started so far (they start on demand, up to Options::threads)
    size_t running = 0;  // calls running now (a hung one counts until it returns)
    size_t queued = 0;   // calls waiting for a thread
  };

  explicit BoundedExecutor(Options options);
  // Drops queued calls and lets idle threads exit; a thread still inside a
  // call (a hung kernel) exits when the call returns, without being waited for.
  ~BoundedExecutor();
  BoundedExecutor(const BoundedExecutor&) = delete;
  BoundedExecutor& operator=(const BoundedExecutor&) = delete;

  // Runs `work` on a pool thread when one is free. RESOURCE_EXHAUSTED, and
  // `work` never runs, when the queue is full or the pool is shutting down.
  absl::Status Submit(std::function<void()> work);

  Stats GetStats();

 private:
  struct Shared;
  static void Work(std::shared_ptr<Shared> shared);

  Options options_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_EXECUTOR_H_
