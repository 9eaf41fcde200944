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

const char* HandOffStageName(HandOffStage stage) {
  switch (stage) {
    case HandOffStage::kNothing:
      return "nothing";
    case HandOffStage::kQuiesced:
      return "quiesced";
    case HandOffStage::kRerouted:
      return "rerouted";
    case HandOffStage::kRingsWritten:
      return "rings-written";
    case HandOffStage::kHandedOff:
      return "handed-off";
    case HandOffStage::kDoorbellRung:
      return "doorbell-rung";
  }
  return "unknown";
}

}  // namespace platform
}  // namespace nichandover
