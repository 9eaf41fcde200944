// The real Transport: a NETLINK_GENERIC socket to the kernel.
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "hook/client/hook_client.h"

namespace nichandover {
namespace hook {
namespace {

absl::Status ErrnoStatus(const char* what) {
  int err = errno;
  return absl::Status(ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

class GenericNetlinkSocket : public Transport {
 public:
  explicit GenericNetlinkSocket(int fd) : fd_(fd) {}
  ~GenericNetlinkSocket() override { close(fd_); }

  absl::StatusOr<Bytes> Exchange(const Bytes& request) override {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd_, request.data(), request.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
      return ErrnoStatus("netlink send");
    }
    uint32_t seq;
    std::memcpy(&seq, request.data() + offsetof(nlmsghdr, nlmsg_seq), sizeof(seq));
    // No receive timeout: a quiesce waits up to its own timeout in the kernel,
    // and the kernel always answers. The request asked for an ack, so the
    // answer ends with the NLMSG_ERROR of our sequence number (after the
    // reply, if there is one); a dump ends with its NLMSG_DONE instead (the
    // kernel sends no ack after a dump that started), possibly after several
    // receives.
    Bytes all;
    for (;;) {
      Bytes buf(kReceiveBuffer);
      ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("netlink receive");
      }
      buf.resize(static_cast<size_t>(n));
      all.insert(all.end(), buf.begin(), buf.end());
      auto messages = SplitMessages(buf);
      if (!messages.ok()) return messages.status();
      for (const NetlinkMessage& msg : *messages) {
        if ((msg.type == NLMSG_ERROR || msg.type == NLMSG_DONE) && msg.seq == seq) return all;
      }
    }
  }

 private:
  // A reply, or one skb of a dump, is at most NLMSG_GOODSIZE.
  static constexpr size_t kReceiveBuffer = 32 * 1024;
  int fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> OpenGenericNetlink() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) return ErrnoStatus("netlink socket");
  int on = 1;
  // Extended acks carry the module's error text; capped acks do not echo
  // our request back.
  if (setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on)) < 0 ||
      setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on)) < 0) {
    absl::Status status = ErrnoStatus("netlink socket options");
    close(fd);
    return status;
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) < 0) {
    absl::Status status = ErrnoStatus("netlink bind");
    close(fd);
    return status;
  }
  return std::unique_ptr<Transport>(new GenericNetlinkSocket(fd));
}

}  // namespace hook
}  // namespace nichandover
