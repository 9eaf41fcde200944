#include "daemon/engine/executor.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"

namespace nichandover {
namespace engine {

// Owned jointly by the pool and its threads: a thread stuck in a call may
// outlive the pool.
struct BoundedExecutor::Shared {
  std::mutex mu;
  std::condition_variable wake;    // work queued, or stopping
  std::condition_variable exited;  // a thread left
  std::deque<std::function<void()>> queue;
  size_t threads = 0;  // alive
  size_t idle = 0;     // alive and waiting for work
  bool stopping = false;
};

BoundedExecutor::BoundedExecutor(Options options)
    : options_(std::move(options)), shared_(std::make_shared<Shared>()) {
  if (options_.threads == 0) options_ = Options{options_.name, 1, options_.max_queued};
}

BoundedExecutor::~BoundedExecutor() {
  std::unique_lock<std::mutex> lock(shared_->mu);
  shared_->stopping = true;
  shared_->queue.clear();
  shared_->wake.notify_all();
  // Idle threads leave at once; busy ones are not waited for.
  shared_->exited.wait(lock, [this] { return shared_->idle == 0; });
}

absl::Status BoundedExecutor::Submit(std::function<void()> work) {
  std::lock_guard<std::mutex> lock(shared_->mu);
  if (shared_->stopping) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the ", options_.name, " pool is shutting down"));
  }
  const size_t running = shared_->threads - shared_->idle;
  // Idle threads (and ones starting) take queued calls at once: only the
  // rest wait for a thread.
  const size_t threads_to_come = options_.threads - running;
  if (shared_->queue.size() >= threads_to_come + options_.max_queued) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the ", options_.name, " pool is full: ", running, " calls running (at most ",
        options_.threads, "; hung calls hold theirs) and ",
        shared_->queue.size() + running - options_.threads,
        " waiting (at most ", options_.max_queued, ")"));
  }
  shared_->queue.push_back(std::move(work));
  if (shared_->idle >= shared_->queue.size()) {
    shared_->wake.notify_one();
  } else if (shared_->threads < options_.threads) {
    ++shared_->threads;
    ++shared_->idle;  // counted idle until it takes the work
    std::thread(&BoundedExecutor::Work, shared_).detach();
  }
  return absl::OkStatus();
}

void BoundedExecutor::Work(std::shared_ptr<Shared> shared) {
  std::unique_lock<std::mutex> lock(shared->mu);
  while (true) {
    shared->wake.wait(lock, [&] { return shared->stopping || !shared->queue.empty(); });
    if (shared->stopping) break;
    std::function<void()> work = std::move(shared->queue.front());
    shared->queue.pop_front();
    --shared->idle;
    lock.unlock();
    work();
    work = nullptr;  // its captures go before the pool is told this thread is free
    lock.lock();
    ++shared->idle;
  }
  --shared->idle;
  --shared->threads;
  shared->exited.notify_all();
}

BoundedExecutor::Stats BoundedExecutor::GetStats() {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return Stats{shared_->threads, shared_->threads - shared_->idle, shared_->queue.size()};
}

}  // namespace engine
}  // namespace nichandover
