// traffic_peer: the host-side traffic peer of a NIC that moves between VMs.
//
//   traffic_peer SOCKET_PATH LOG_PATH STATUS_PATH GUEST_MAC
//
// Listens on a unix socket for QEMU's `-netdev stream,server=off` (frames
// with a 4-byte big-endian length); whichever VM holds the NIC connects, and
// the newest connection is the NIC (the old one closes when the hypervisor
// removes the netdev). Every 20 ms it sends an ICMP echo request with a
// sequence number from 192.168.50.1 to the guest (192.168.50.15, GUEST_MAC)
// -- sent even while no VM holds the NIC, since that is traffic the move
// loses -- and answers the guest's ARP for 192.168.50.1. Echo replies are
// counted per sequence number.
//
// STATUS_PATH is rewritten every 100 ms: "sent=N answered=N
// last_reply_age_ms=N connections=N". On SIGUSR1 it appends a report of the
// window since the previous one to LOG_PATH:
//   window=K sent=N answered=N lost=N duplicates=N longest_gap_ms=N
// over the requests sent from the previous report until 1 s before this one
// (later ones may still be answered), and the longest time between two
// consecutive replies since the previous report: the blackout. It never
// opens any other socket. SIGTERM ends it.
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

constexpr uint8_t kPeerMac[6] = {0x52, 0x54, 0x00, 0x50, 0x00, 0x01};
constexpr uint8_t kPeerIp[4] = {192, 168, 50, 1};
constexpr uint8_t kGuestIp[4] = {192, 168, 50, 15};
constexpr uint16_t kEchoId = 0x4e48;  // "NH"
constexpr int64_t kIntervalMs = 20;
constexpr int64_t kSettleMs = 1000;

volatile sig_atomic_t report_requested = 0;
volatile sig_atomic_t stop_requested = 0;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void Put16(std::vector<uint8_t>& f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}
uint16_t Get16(const std::vector<uint8_t>& f, size_t at) {
  return static_cast<uint16_t>((f[at] << 8) | f[at + 1]);
}

// The Internet checksum of f[from, from+len).
uint16_t InetSum(const std::vector<uint8_t>& f, size_t from, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i < len; i += 2) {
    sum += static_cast<uint32_t>(f[from + i] << 8) | (i + 1 < len ? f[from + i + 1] : 0);
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

std::vector<uint8_t> EchoRequest(const uint8_t guest_mac[6], uint16_t seq) {
  std::vector<uint8_t> f(14 + 20 + 8 + 32, 0);
  std::memcpy(&f[0], guest_mac, 6);
  std::memcpy(&f[6], kPeerMac, 6);
  Put16(f, 12, 0x0800);
  f[14] = 0x45;
  Put16(f, 16, 20 + 8 + 32);
  f[22] = 64;  // TTL
  f[23] = 1;   // ICMP
  std::memcpy(&f[26], kPeerIp, 4);
  std::memcpy(&f[30], kGuestIp, 4);
  Put16(f, 24, InetSum(f, 14, 20));
  f[34] = 8;  // echo request
  Put16(f, 38, kEchoId);
  Put16(f, 40, seq);
  for (size_t i = 42; i < f.size(); ++i) f[i] = static_cast<uint8_t>(i);
  Put16(f, 36, InetSum(f, 34, f.size() - 34));
  return f;
}

// The ARP reply to a request for our address, or nothing.
std::vector<uint8_t> ArpReply(const std::vector<uint8_t>& req) {
  if (req.size() < 42 || Get16(req, 12) != 0x0806 || Get16(req, 20) != 1 ||
      std::memcmp(&req[38], kPeerIp, 4) != 0) {
    return {};
  }
  std::vector<uint8_t> f(req.begin(), req.begin() + 42);
  std::memcpy(&f[0], &req[6], 6);
  std::memcpy(&f[6], kPeerMac, 6);
  Put16(f, 20, 2);
  std::memcpy(&f[22], kPeerMac, 6);
  std::memcpy(&f[28], kPeerIp, 4);
  std::memcpy(&f[32], &req[22], 10);  // the asker's MAC and IP
  return f;
}

bool WriteFrame(int fd, const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> out(4 + frame.size());
  uint32_t len = htonl(static_cast<uint32_t>(frame.size()));
  std::memcpy(out.data(), &len, 4);
  std::memcpy(out.data() + 4, frame.data(), frame.size());
  return send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT) ==
         static_cast<ssize_t>(out.size());
}

struct Connection {
  int fd;
  std::vector<uint8_t> buffer;
};

struct Counters {
  std::map<uint32_t, int64_t> sent_at;  // sequence -> send time
  std::map<uint32_t, int> replies;      // sequence -> replies seen
  uint32_t next_seq = 0;
  uint64_t answered_total = 0;
  int64_t last_reply = -1;
  // The window since the last report.
  uint32_t window_first_seq = 0;
  int64_t window_start = 0;
  int64_t longest_gap = 0;
  int window = 0;
};

void OnReply(Counters& c, uint32_t seq, int64_t now) {
  if (!c.sent_at.count(seq)) return;
  if (c.replies[seq]++ == 0) ++c.answered_total;
  int64_t since = c.last_reply >= 0 ? now - c.last_reply : now - c.window_start;
  c.longest_gap = std::max(c.longest_gap, since);
  c.last_reply = now;
}

void Report(Counters& c, FILE* log, int64_t now) {
  uint32_t sent = 0, answered = 0, lost = 0, duplicates = 0, last = c.window_first_seq;
  for (auto it = c.sent_at.lower_bound(c.window_first_seq); it != c.sent_at.end(); ++it) {
    if (it->second > now - kSettleMs) break;
    ++sent;
    int n = c.replies.count(it->first) ? c.replies[it->first] : 0;
    if (n == 0) ++lost;
    if (n > 0) ++answered;
    if (n > 1) duplicates += static_cast<uint32_t>(n - 1);
    last = it->first + 1;
  }
  // Until this report, the current silence counts too.
  int64_t gap = std::max(c.longest_gap, now - (c.last_reply >= 0 ? c.last_reply : c.window_start));
  std::fprintf(log, "window=%d sent=%u answered=%u lost=%u duplicates=%u longest_gap_ms=%lld\n",
               ++c.window, sent, answered, lost, duplicates, static_cast<long long>(gap));
  c.window_first_seq = last;
  c.window_start = now;
  c.longest_gap = 0;
}

bool ParseMac(const char* text, uint8_t mac[6]) {
  unsigned v[6];
  if (std::sscanf(text, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    return false;
  }
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(v[i]);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint8_t guest_mac[6];
  if (argc != 5 || !ParseMac(argv[4], guest_mac)) {
    std::fprintf(stderr, "usage: traffic_peer SOCKET_PATH LOG_PATH STATUS_PATH GUEST_MAC\n");
    return 2;
  }
  FILE* log = std::fopen(argv[2], "w");
  if (log == nullptr) return 1;
  setvbuf(log, nullptr, _IOLBF, 0);
  const std::string status_path = argv[3];
  struct sigaction sa {};
  sa.sa_handler = [](int) { report_requested = 1; };
  sigaction(SIGUSR1, &sa, nullptr);
  sa.sa_handler = [](int) { stop_requested = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(argv[1]) >= sizeof(addr.sun_path)) return 1;
  std::strcpy(addr.sun_path, argv[1]);
  unlink(argv[1]);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
      listen(listener, 4) < 0) {
    std::perror("traffic_peer: listen");
    return 1;
  }
  std::fprintf(log, "listening\n");

  std::vector<Connection> conns;
  Counters c;
  int64_t next_send = NowMs(), next_status = NowMs();
  c.window_start = NowMs();
  int connections = 0;
  while (!stop_requested) {
    int64_t now = NowMs();
    if (report_requested) {
      report_requested = 0;
      Report(c, log, now);
    }
    if (now >= next_send) {
      uint32_t seq = c.next_seq++;
      c.sent_at[seq] = now;
      if (!conns.empty()) WriteFrame(conns.back().fd, EchoRequest(guest_mac, static_cast<uint16_t>(seq)));
      next_send += kIntervalMs;
    }
    if (now >= next_status) {
      std::string tmp = status_path + ".tmp";
      if (FILE* st = std::fopen(tmp.c_str(), "w")) {
        std::fprintf(st, "sent=%u answered=%llu last_reply_age_ms=%lld connections=%d\n",
                     c.next_seq, static_cast<unsigned long long>(c.answered_total),
                     static_cast<long long>(c.last_reply >= 0 ? now - c.last_reply : -1),
                     connections);
        std::fclose(st);
        rename(tmp.c_str(), status_path.c_str());
      }
      next_status = now + 100;
    }
    std::vector<pollfd> fds{{listener, POLLIN, 0}};
    for (const auto& conn : conns) fds.push_back({conn.fd, POLLIN, 0});
    int wait = static_cast<int>(std::max<int64_t>(0, std::min(next_send, next_status) - NowMs()));
    if (poll(fds.data(), fds.size(), wait) < 0 && errno != EINTR) return 1;
    if (fds[0].revents & POLLIN) {
      int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        conns.push_back({fd, {}});
        std::fprintf(log, "connect %d at seq %u\n", ++connections, c.next_seq);
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Connection& conn = conns[i - 1];
      uint8_t chunk[65536];
      ssize_t n = read(conn.fd, chunk, sizeof(chunk));
      if (n <= 0) {
        std::fprintf(log, "disconnect at seq %u\n", c.next_seq);
        close(conn.fd);
        conn.fd = -1;
        continue;
      }
      conn.buffer.insert(conn.buffer.end(), chunk, chunk + n);
      while (conn.buffer.size() >= 4) {
        uint32_t len = (conn.buffer[0] << 24) | (conn.buffer[1] << 16) | (conn.buffer[2] << 8) |
                       conn.buffer[3];
        if (conn.buffer.size() < 4 + len) break;
        std::vector<uint8_t> frame(conn.buffer.begin() + 4, conn.buffer.begin() + 4 + len);
        conn.buffer.erase(conn.buffer.begin(), conn.buffer.begin() + 4 + len);
        std::vector<uint8_t> arp = ArpReply(frame);
        if (!arp.empty()) {
          WriteFrame(conn.fd, arp);
        } else if (frame.size() >= 42 && Get16(frame, 12) == 0x0800 && frame[23] == 1 &&
                   frame[34] == 0 && Get16(frame, 38) == kEchoId) {
          // Sequence numbers wrap at 16 bits on the wire: the newest match.
          uint32_t wire = Get16(frame, 40);
          uint32_t seq = (c.next_seq & ~0xffffu) | wire;
          if (seq >= c.next_seq) seq -= 0x10000;
          OnReply(c, seq, NowMs());
        }
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [](const Connection& x) { return x.fd < 0; }),
                conns.end());
  }
  Report(c, log, NowMs());
  for (auto& conn : conns) close(conn.fd);
  close(listener);
  unlink(argv[1]);
  return 0;
}
