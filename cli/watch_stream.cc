#include "cli/watch_stream.h"

#include <atomic>

namespace nichandover {
namespace cli {
namespace {

// A lock-free atomic is safe to touch from a signal handler.
std::atomic<int> g_interrupts{0};

void OnInterrupt(int) { g_interrupts.fetch_add(1); }

}  // namespace

int InterruptCount() { return g_interrupts.load(); }

InterruptScope::InterruptScope() {
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &previous_);
}

InterruptScope::~InterruptScope() { sigaction(SIGINT, &previous_, nullptr); }

}  // namespace cli
}  // namespace nichandover
