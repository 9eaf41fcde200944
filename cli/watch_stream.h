// What nicctl's following commands (handover, handover watch, drain) share:
// a server stream read on its own thread, so the main thread can redraw the
// progress line and react to Ctrl-C while nothing arrives, and the SIGINT
// handler that counts Ctrl-C presses.
#ifndef NICHANDOVER_CLI_WATCH_STREAM_H_
#define NICHANDOVER_CLI_WATCH_STREAM_H_

#include <signal.h>

#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/sync_stream.h"

namespace nichandover {
namespace cli {

// Ctrl-C presses seen while an InterruptScope was installed.
int InterruptCount();

// Installs the counting SIGINT handler for the lifetime of the object. No
// SA_RESTART, so a Ctrl-C interrupts a blocked read of the terminal.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  struct sigaction previous_;
};

// Reads a server stream of `Message` on a thread. `open` starts the call on
// the given context (e.g. stub->WatchHandover(ctx, request)).
template <typename Message>
class WatchStream {
 public:
  using Open =
      std::function<std::unique_ptr<grpc::ClientReaderInterface<Message>>(grpc::ClientContext*)>;

  WatchStream(Open open, absl::Duration wait_limit) {
    if (wait_limit != absl::InfiniteDuration()) {
      call_.set_deadline(absl::ToChronoTime(absl::Now() + wait_limit));
    }
    thread_ = std::thread([this, open = std::move(open)] {
      auto reader = open(&call_);
      Message message;
      while (reader->Read(&message)) {
        absl::MutexLock lock(&mu_);
        messages_.push_back(message);
      }
      grpc::Status status = reader->Finish();
      absl::MutexLock lock(&mu_);
      status_ = status;
      finished_ = true;
    });
  }
  ~WatchStream() {
    call_.TryCancel();
    thread_.join();
  }
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // Waits up to `timeout` for messages; moves them into `out`. True once the
  // stream has ended and every message was handed out.
  bool Next(absl::Duration timeout, std::deque<Message>* out, grpc::Status* status) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(
        absl::Condition(
            +[](WatchStream* s) { return !s->messages_.empty() || s->finished_; }, this),
        timeout);
    out->swap(messages_);
    messages_.clear();
    *status = status_;
    return finished_;
  }

 private:
  grpc::ClientContext call_;
  absl::Mutex mu_;
  std::deque<Message> messages_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace cli
}  // namespace nichandover

#endif  // NICHANDOVER_CLI_WATCH_STREAM_H_
