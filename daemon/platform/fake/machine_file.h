// The fake machine's state file, shared by every process of a test.
//
// Each access locks "<path>.lock" with flock(2), reads and parses the state,
// and for an update writes the new state to a temporary file and renames it
// over the old one. So an update is atomic across processes (compare-and-swap
// really is), and a process killed in the middle of one (the crash tests send
// SIGKILL at any moment) leaves the previous state, as real hardware would
// hold its registers. The file is protobuf text format, readable with cat.
#ifndef NICHANDOVER_DAEMON_PLATFORM_FAKE_MACHINE_FILE_H_
#define NICHANDOVER_DAEMON_PLATFORM_FAKE_MACHINE_FILE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/platform/fake/machine_state.pb.h"

namespace nichandover {
namespace platform {
namespace fake {

class MachineFile {
 public:
  explicit MachineFile(std::string path) : path_(std::move(path)) {}

  // Writes `state` as the whole machine, replacing any previous one.
  absl::Status Write(const FakeMachineState& state);

  // A consistent copy of the state.
  absl::StatusOr<FakeMachineState> Read() const;

  // Runs `change` on the state under the exclusive lock and stores the state
  // if `change` modified it, whatever it returns: an operation that fails
  // may still have changed the machine (a fault knob counted down, a gate
  // closed before a drain timed out). Returns what `change` returned.
  absl::Status Update(const std::function<absl::Status(FakeMachineState*)>& change);

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Waits for the state file to change without polling: an inotify watch on
// its directory sees each update's rename. Open it before reading the state
// whose change it waits for, so a change in between is not missed.
class MachineFileWatch {
 public:
  explicit MachineFileWatch(const std::string& path);
  ~MachineFileWatch();
  MachineFileWatch(const MachineFileWatch&) = delete;
  MachineFileWatch& operator=(const MachineFileWatch&) = delete;

  // An error if the watch could not be set up.
  const absl::Status& status() const { return status_; }
  // True when the file was replaced since the watch opened (or the last
  // Wait that returned true); false when `deadline` came first.
  absl::StatusOr<bool> Wait(absl::Time deadline);

 private:
  int fd_ = -1;
  std::string name_;  // the file's name in its directory
  absl::Status status_;
};

}  // namespace fake
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_FAKE_MACHINE_FILE_H_
