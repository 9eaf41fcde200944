#include "daemon/platform/platform.h"

namespace nichandover {
namespace platform {

const char* HookStateName(HookState state) {
  switch (state) {
    case HookState::kDetached:
      return "detached";
    case HookState::kRunning:
      return "running";
    case HookState::kQuiesced:
      return "quiesced";
  }
  return "unknown";
}

}  // namespace platform
}  // namespace nichandover
