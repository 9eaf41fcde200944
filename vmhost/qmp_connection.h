// One QMP (QEMU Machine Protocol) session over a unix socket: JSON objects,
// one per line; the greeting, then qmp_capabilities, then commands answered
// by {"return": ...} or {"error": ...}, with asynchronous {"event": ...}
// messages in between. Not thread-safe: one caller at a time.
#ifndef NICHANDOVER_VMHOST_QMP_CONNECTION_H_
#define NICHANDOVER_VMHOST_QMP_CONNECTION_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"

namespace nichandover {
namespace vmhost {

class QmpConnection {
 public:
  // Connects, reads the greeting and leaves capabilities negotiation mode.
  // UNAVAILABLE when the socket does not answer within `timeout`.
  static absl::StatusOr<std::unique_ptr<QmpConnection>> Connect(const std::string& socket_path,
                                                                absl::Duration timeout);
  ~QmpConnection();
  QmpConnection(const QmpConnection&) = delete;
  QmpConnection& operator=(const QmpConnection&) = delete;

  // Runs `command` and returns its "return" value. A QMP error becomes
  // NOT_FOUND (class DeviceNotFound) or FAILED_PRECONDITION with QEMU's
  // description; a broken or silent connection UNAVAILABLE.
  absl::StatusOr<google::protobuf::Value> Execute(const std::string& command,
                                                  const google::protobuf::Struct& arguments,
                                                  absl::Duration timeout);

  // Waits for an event named `name` whose data satisfies `match`; events
  // that arrived during earlier commands count. DEADLINE_EXCEEDED after
  // `timeout`.
  absl::StatusOr<google::protobuf::Struct> WaitEvent(
      const std::string& name, const std::function<bool(const google::protobuf::Struct&)>& match,
      absl::Duration timeout);

  // Forgets the events received so far (before a command whose event is
  // then awaited).
  void DropEvents() { events_.clear(); }

 private:
  explicit QmpConnection(int fd) : fd_(fd) {}
  // The next JSON object from QEMU.
  absl::StatusOr<google::protobuf::Struct> ReadMessage(absl::Time deadline);
  absl::Status Send(const std::string& line);

  int fd_;
  std::string buffer_;
  std::deque<google::protobuf::Struct> events_;  // "event" messages, oldest first
};

}  // namespace vmhost
}  // namespace nichandover

#endif  // NICHANDOVER_VMHOST_QMP_CONNECTION_H_
