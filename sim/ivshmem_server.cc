#include "sim/ivshmem_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "sim/doorbell.h"

namespace nichandover {
namespace sim {
namespace {

absl::Status ErrnoStatus(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, std::strerror(errno)));
}

// One protocol message: a little-endian int64, with `fd` attached when >= 0.
// Never blocks: a peer whose socket buffer is full is broken.
bool SendMessage(int socket, int64_t value, int fd) {
  struct iovec iov = {&value, sizeof(value)};  // x86: already little endian
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(socket, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof(value));
}

bool SendEventfds(int socket, int64_t id, const std::vector<int>& fds) {
  for (int fd : fds) {
    if (!SendMessage(socket, id, fd)) return false;
  }
  return true;
}

void DrainEventfd(int fd, uint64_t* count) {
  uint64_t value;
  if (read(fd, &value, sizeof(value)) == sizeof(value) && count != nullptr) *count = value;
}

}  // namespace

std::string IvshmemSocketPath(const std::string& dir, const std::string& node_id) {
  return dir + "/" + node_id + ".sock";
}

absl::StatusOr<std::unique_ptr<IvshmemServer>> IvshmemServer::Start(
    Machine& machine, const std::string& socket_dir, const std::vector<int>& guest_nodes) {
  if (guest_nodes.empty()) return absl::InvalidArgumentError("no guest nodes");
  auto server = std::unique_ptr<IvshmemServer>(new IvshmemServer(machine));
  server->shm_fd_ = open(machine.path().c_str(), O_RDWR | O_CLOEXEC);
  if (server->shm_fd_ < 0) return ErrnoStatus("open " + machine.path());
  struct stat st;
  if (fstat(server->shm_fd_, &st) != 0) return ErrnoStatus("fstat " + machine.path());
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < sizeof(MachineLayout) || (size & (size - 1)) != 0) {
    // QEMU asserts that a BAR's size is a power of two.
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: size %d is not a power of two; recreate the machine", machine.path(), size));
  }
  struct statfs fs;
  if (fstatfs(server->shm_fd_, &fs) == 0 && fs.f_type != TMPFS_MAGIC &&
      fs.f_type != HUGETLBFS_MAGIC) {
    // QEMU maps any file, but guest stores would then be written back to disk.
    NH_LOG(WARNING) << machine.path() << " is not on tmpfs: put the machine in /dev/shm";
  }
  server->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->stop_fd_ < 0) return ErrnoStatus("eventfd");
  for (int& fd : server->machine_eventfds_) {
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) return ErrnoStatus("eventfd");
  }
  for (int node : guest_nodes) {
    if (node < 0 || node >= machine.node_count()) {
      return absl::InvalidArgumentError(absl::StrFormat("no node index %d", node));
    }
    if (server->listeners_.count(node)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("node %s listed twice", machine.node_id(node)));
    }
    std::string path = IvshmemSocketPath(socket_dir, machine.node_id(node));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "socket path %s is longer than %d bytes", path, sizeof(addr.sun_path) - 1));
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return ErrnoStatus("socket");
    server->listeners_[node] = fd;
    struct stat existing;
    if (lstat(path.c_str(), &existing) == 0 && S_ISSOCK(existing.st_mode)) {
      unlink(path.c_str());  // a previous run's
    }
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
      return ErrnoStatus("bind " + path);
    }
    server->socket_paths_.push_back(path);
    if (listen(fd, 4) != 0) return ErrnoStatus("listen " + path);
  }
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

IvshmemServer::~IvshmemServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
    thread_.join();
  }
  {
    absl::MutexLock lock(&mu_);
    for (auto& [node, peer] : peers_) {
      machine_.node(node).kind.store(NodeKind::kNone);
      ClosePeer(peer);
    }
    peers_.clear();
  }
  for (auto& [node, fd] : listeners_) close(fd);
  for (const std::string& path : socket_paths_) unlink(path.c_str());
  for (int fd : machine_eventfds_) {
    if (fd >= 0) close(fd);
  }
  if (stop_fd_ >= 0) close(stop_fd_);
  if (shm_fd_ >= 0) close(shm_fd_);
}

void IvshmemServer::ClosePeer(Peer& peer) {
  for (int fd : peer.eventfds) close(fd);
  peer.eventfds.clear();
  if (peer.socket >= 0) close(peer.socket);
  peer.socket = -1;
}

bool IvshmemServer::Raise(int node_index, uint32_t ivshmem_vector) {
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(node_index);
  if (it == peers_.end() || ivshmem_vector >= it->second.eventfds.size()) return false;
  uint64_t one = 1;
  // A full counter (2^64 - 2 pending) cannot happen: QEMU reads it.
  return write(it->second.eventfds[ivshmem_vector], &one, sizeof(one)) == sizeof(one);
}

void IvshmemServer::Loop() {
  enum class Source { kStop, kMachineVector, kListener, kPeer };
  for (;;) {
    std::vector<struct pollfd> fds;
    std::vector<std::pair<Source, int>> what;  // (source, vector or node)
    fds.push_back({stop_fd_, POLLIN, 0});
    what.push_back({Source::kStop, 0});
    for (int v = 0; v < NH_SIM_MACHINE_VECTORS; ++v) {
      fds.push_back({machine_eventfds_[v], POLLIN, 0});
      what.push_back({Source::kMachineVector, v});
    }
    for (const auto& [node, fd] : listeners_) {
      fds.push_back({fd, POLLIN, 0});
      what.push_back({Source::kListener, node});
    }
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [node, peer] : peers_) {
        fds.push_back({peer.socket, POLLIN, 0});  // QEMU never writes: EOF or error
        what.push_back({Source::kPeer, node});
      }
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      NH_LOG(ERROR) << "ivshmem server: poll: " << std::strerror(errno);
      return;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto [source, arg] = what[i];
      switch (source) {
        case Source::kStop:
          return;
        case Source::kMachineVector: {
          uint64_t count = 0;
          DrainEventfd(fds[i].fd, &count);
          if (arg == NH_SIM_MACHINE_VEC_DEVICE) {
            DoorbellRing(machine_.layout().device_bell);  // an MMIO kick
          } else {
            machine_.layout().control_doorbells.fetch_add(count, std::memory_order_relaxed);
          }
          break;
        }
        case Source::kListener:
          Accept(arg, fds[i].fd);
          break;
        case Source::kPeer: {
          char buf[64];
          ssize_t n = recv(fds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
              (fds[i].revents & (POLLHUP | POLLERR))) {
            Disconnect(arg);
          }
          break;
        }
      }
    }
  }
}

void IvshmemServer::Accept(int node, int listener) {
  int socket = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (socket < 0) return;
  NodeSlot& slot = machine_.node(node);
  const std::string node_id = machine_.node_id(node);
  {
    absl::MutexLock lock(&mu_);
    if (peers_.count(node)) {
      NH_LOG(WARNING) << "ivshmem: refused a second guest for node " << node_id;
      close(socket);
      return;
    }
  }
  // A simulated kernel that died without clearing its pid no longer counts.
  int32_t kernel_pid = slot.kernel_pid.load();
  if (kernel_pid != 0 && kill(kernel_pid, 0) == 0) {
    NH_LOG(WARNING) << "ivshmem: refused a guest for node " << node_id
                    << ": a simulated kernel runs there (pid " << kernel_pid << ")";
    close(socket);
    return;
  }
  if (next_peer_id_ > 0xffff) {  // the Doorbell register has 16 bits of peer id
    NH_LOG(ERROR) << "ivshmem: peer ids exhausted; refused a guest for node " << node_id;
    close(socket);
    return;
  }
  Peer peer;
  peer.node = node;
  peer.id = next_peer_id_++;
  peer.socket = socket;
  for (uint32_t v = 0; v < kGuestIvshmemVectors; ++v) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) {
      NH_LOG(ERROR) << "ivshmem: eventfd: " << std::strerror(errno);
      ClosePeer(peer);
      return;
    }
    peer.eventfds.push_back(fd);
  }
  absl::MutexLock lock(&mu_);
  std::vector<int> machine_fds(machine_eventfds_, machine_eventfds_ + NH_SIM_MACHINE_VECTORS);
  bool ok = SendMessage(socket, kIvshmemProtocolVersion, -1) && SendMessage(socket, peer.id, -1) &&
            SendMessage(socket, -1, shm_fd_) && SendEventfds(socket, kMachinePeerId, machine_fds);
  for (const auto& [other_node, other] : peers_) {
    ok = ok && SendEventfds(socket, other.id, other.eventfds);
  }
  ok = ok && SendEventfds(socket, peer.id, peer.eventfds);
  if (!ok) {
    NH_LOG(WARNING) << "ivshmem: guest for node " << node_id << " left during setup";
    ClosePeer(peer);
    return;
  }
  for (auto& [other_node, other] : peers_) {
    if (!SendEventfds(other.socket, peer.id, peer.eventfds)) {
      NH_LOG(WARNING) << "ivshmem: cannot notify peer " << other.id << " of peer " << peer.id;
    }
  }
  slot.peer_id.store(static_cast<uint32_t>(peer.id));
  slot.kind.store(NodeKind::kGuest, std::memory_order_release);
  NH_LOG(INFO) << "ivshmem: guest peer " << peer.id << " attached to node " << node_id;
  peers_[node] = std::move(peer);
}

void IvshmemServer::Disconnect(int node) {
  NodeSlot& slot = machine_.node(node);
  // The fabric stops raising this guest's vectors first.
  slot.kind.store(NodeKind::kNone, std::memory_order_release);
  for (auto& line : slot.guest_vector) line.store(0, std::memory_order_relaxed);
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(node);
  if (it == peers_.end()) return;
  int64_t id = it->second.id;
  ClosePeer(it->second);
  peers_.erase(it);
  for (auto& [other_node, other] : peers_) SendMessage(other.socket, id, -1);
  NH_LOG(INFO) << "ivshmem: guest peer " << id << " left node " << machine_.node_id(node);
}

}  // namespace sim
}  // namespace nichandover
