#include "common/fence.h"

#include "absl/strings/str_cat.h"

namespace nichandover {

std::string FenceText(const Fence& fence) {
  return absl::StrCat("epoch ", fence.epoch, " op ", fence.op_id >> 32, ".",
                      fence.op_id & 0xffffffffu);
}

absl::Status CheckFence(const Fence& highest, const Fence& call, absl::string_view what) {
  if (!(call < highest)) return absl::OkStatus();
  const char* why = call.epoch < highest.epoch
                        ? "a stale epoch"
                        : "a late call of the current epoch, overtaken by a newer operation";
  return absl::FailedPreconditionError(absl::StrCat(
      what, " refused: its fence (", FenceText(call),
      ") is below the highest accepted for the device (", FenceText(highest), "): ", why));
}

}  // namespace nichandover
