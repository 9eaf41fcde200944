// nh-relay: joins its standard input/output to a local socket.
//
//   nh-relay unix:PATH | tcp:127.0.0.1:PORT
//
// For QEMU user networking's `guestfwd=tcp:IP:PORT-cmd:nh-relay unix:PATH`:
// QEMU runs the command for each connection the guest opens to IP:PORT,
// with the connection on stdin, stdout and stderr, so a guest reaches the
// host agent's unix socket (or another guest's hostfwd port) without any
// route out of QEMU (restrict=on). Only loopback TCP is accepted, so it can
// never carry a guest's traffic off the machine. It prints nothing: stderr
// is the guest's connection too.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int ConnectTo(const std::string& target) {
  if (target.rfind("unix:", 0) == 0) {
    std::string path = target.substr(5);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) return -1;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
  }
  const std::string prefix = "tcp:127.0.0.1:";
  if (target.rfind(prefix, 0) == 0) {
    char* end = nullptr;
    long port = std::strtol(target.c_str() + prefix.size(), &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
  }
  return -1;
}

// Copies what `from` has; false at its end or on an error.
bool Pump(int from, int to) {
  char buf[65536];
  ssize_t n = read(from, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  for (ssize_t off = 0; off < n;) {
    ssize_t w = write(to, buf + off, static_cast<size_t>(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  int sock = ConnectTo(argv[1]);
  if (sock < 0) return 1;
  pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {sock, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!Pump(STDIN_FILENO, sock)) break;
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!Pump(sock, STDOUT_FILENO)) break;
    }
  }
  close(sock);
  return 0;
}
