#include "qmp_connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace nichandover {
namespace vmhost {

using google::protobuf::Struct;
using google::protobuf::Value;

absl::StatusOr<std::unique_ptr<QmpConnection>> QmpConnection::Connect(
    const std::string& socket_path, absl::Duration timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("QMP socket path too long: ", socket_path));
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("QMP ", socket_path, ": connect: ", std::strerror(err)));
  }
  std::unique_ptr<QmpConnection> qmp(new QmpConnection(fd));
  absl::Time deadline = absl::Now() + timeout;
  auto greeting = qmp->ReadMessage(deadline);
  if (!greeting.ok()) return greeting.status();
  if (!greeting->fields().count("QMP")) {
    return absl::UnavailableError(absl::StrCat("QMP ", socket_path, ": no QMP greeting"));
  }
  auto caps = qmp->Execute("qmp_capabilities", Struct(), timeout);
  if (!caps.ok()) return caps.status();
  return qmp;
}

QmpConnection::~QmpConnection() { close(fd_); }

absl::Status QmpConnection::Send(const std::string& line) {
  std::string data = line + "\n";
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("QMP send: ", std::strerror(errno)));
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<Struct> QmpConnection::ReadMessage(absl::Time deadline) {
  for (;;) {
    size_t eol = buffer_.find('\n');
    if (eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      Struct message;
      auto parsed = google::protobuf::util::JsonStringToMessage(line, &message);
      if (!parsed.ok()) {
        return absl::InternalError(absl::StrCat("QMP sent something that is not JSON: ", line));
      }
      return message;
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("QMP: no answer in time");
    }
    pollfd p{fd_, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char chunk[4096];
    ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("QMP: QEMU closed the connection");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

absl::StatusOr<Value> QmpConnection::Execute(const std::string& command, const Struct& arguments,
                                             absl::Duration timeout) {
  Struct request;
  (*request.mutable_fields())["execute"].set_string_value(command);
  if (!arguments.fields().empty()) {
    *(*request.mutable_fields())["arguments"].mutable_struct_value() = arguments;
  }
  std::string line;
  auto printed = google::protobuf::util::MessageToJsonString(request, &line);
  if (!printed.ok()) return absl::InternalError("QMP: cannot print the command");
  if (absl::Status s = Send(line); !s.ok()) return s;
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    auto message = ReadMessage(deadline);
    if (!message.ok()) {
      return absl::Status(message.status().code(),
                          absl::StrCat(command, ": ", message.status().message()));
    }
    const auto& fields = message->fields();
    if (fields.count("event")) {
      events_.push_back(*std::move(message));
      continue;
    }
    if (auto it = fields.find("return"); it != fields.end()) return it->second;
    if (auto it = fields.find("error"); it != fields.end()) {
      const auto& error = it->second.struct_value().fields();
      std::string cls = error.count("class") ? error.at("class").string_value() : "";
      std::string desc = error.count("desc") ? error.at("desc").string_value() : "";
      std::string text = absl::StrCat(command, ": ", desc, " (", cls, ")");
      if (cls == "DeviceNotFound") return absl::NotFoundError(text);
      return absl::FailedPreconditionError(text);
    }
  }
}

absl::StatusOr<Struct> QmpConnection::WaitEvent(const std::string& name,
                                                const std::function<bool(const Struct&)>& match,
                                                absl::Duration timeout) {
  auto matches = [&](const Struct& message) {
    const auto& fields = message.fields();
    auto event = fields.find("event");
    if (event == fields.end() || event->second.string_value() != name) return false;
    auto data = fields.find("data");
    return match(data == fields.end() ? Struct() : data->second.struct_value());
  };
  for (auto it = events_.begin(); it != events_.end(); ++it) {
    if (matches(*it)) {
      Struct found = *it;
      events_.erase(it);
      return found;
    }
  }
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    auto message = ReadMessage(deadline);
    if (!message.ok()) {
      return absl::Status(message.status().code(),
                          absl::StrCat("waiting for ", name, ": ", message.status().message()));
    }
    if (matches(*message)) return *message;
    if (message->fields().count("event")) events_.push_back(*std::move(message));
  }
}

}  // namespace vmhost
}  // namespace nichandover
