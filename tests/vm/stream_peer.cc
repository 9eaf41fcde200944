// stream_peer: the host-side traffic peer of a VM's NIC.
//
//   stream_peer SOCKET_PATH LOG_PATH
//
// Listens on a unix socket for QEMU's `-netdev stream,server=off` (frames
// framed by a 4-byte big-endian length), answers ARP requests and ICMP echo
// requests for 169.254.50.2 and 169.254.50.3, and logs one line per frame it
// receives, e.g.
//   rx arp-request target=169.254.50.2
//   rx icmp-echo dst=169.254.50.3 seq=4
// so a test can tell which traffic reached the wire, and when (the guest
// uses 169.254.50.3 only after its NIC resumed). Exits when QEMU disconnects.
// It never opens any other socket: all traffic stays between QEMU and it.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr uint8_t kPeerMac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr size_t kEtherHeader = 14;

bool IsPeerAddress(const uint8_t* ip) {
  return ip[0] == 169 && ip[1] == 254 && ip[2] == 50 && (ip[3] == 2 || ip[3] == 3);
}

std::string Ip(const uint8_t* ip) {
  char text[16];
  std::snprintf(text, sizeof(text), "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
  return text;
}

uint16_t Checksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (len & 1) sum += data[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

bool ReadAll(int fd, void* buf, size_t len) {
  auto* p = static_cast<uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool SendFrame(int fd, const std::vector<uint8_t>& frame) {
  uint32_t len = htonl(static_cast<uint32_t>(frame.size()));
  return write(fd, &len, sizeof(len)) == sizeof(len) &&
         write(fd, frame.data(), frame.size()) == static_cast<ssize_t>(frame.size());
}

// The answer to `frame`, or an empty vector. Logs what it saw.
std::vector<uint8_t> Answer(const std::vector<uint8_t>& frame, FILE* log) {
  if (frame.size() < kEtherHeader) return {};
  uint16_t type = Be16(&frame[12]);
  const uint8_t* l3 = frame.data() + kEtherHeader;
  size_t l3_len = frame.size() - kEtherHeader;
  std::vector<uint8_t> reply(frame);
  std::memcpy(&reply[0], &frame[6], 6);
  std::memcpy(&reply[6], kPeerMac, 6);
  uint8_t* r3 = reply.data() + kEtherHeader;

  if (type == kEtherArp && l3_len >= 28 && Be16(l3 + 6) == 1) {
    std::fprintf(log, "rx arp-request target=%s\n", Ip(l3 + 24).c_str());
    if (!IsPeerAddress(l3 + 24)) return {};
    PutBe16(r3 + 6, 2);                // reply
    std::memcpy(r3 + 8, kPeerMac, 6);  // sender: us
    std::memcpy(r3 + 14, l3 + 24, 4);
    std::memcpy(r3 + 18, l3 + 8, 10);  // target: the asker
    return reply;
  }
  if (type == kEtherIpv4 && l3_len >= 20) {
    size_t ihl = (l3[0] & 0x0f) * 4u;
    const uint8_t* dst = l3 + 16;
    if (l3[9] == 1 && l3_len >= ihl + 8 && l3[ihl] == 8) {
      std::fprintf(log, "rx icmp-echo dst=%s seq=%u\n", Ip(dst).c_str(), Be16(l3 + ihl + 6));
      if (!IsPeerAddress(dst)) return {};
      std::memcpy(r3 + 12, dst, 4);     // source: the address pinged
      std::memcpy(r3 + 16, l3 + 12, 4);  // destination: the guest
      r3[10] = r3[11] = 0;
      PutBe16(r3 + 10, Checksum(r3, ihl));
      uint8_t* icmp = r3 + ihl;
      icmp[0] = 0;  // echo reply
      icmp[2] = icmp[3] = 0;
      PutBe16(icmp + 2, Checksum(icmp, l3_len - ihl));
      return reply;
    }
    std::fprintf(log, "rx ipv4 proto=%u dst=%s\n", l3[9], Ip(dst).c_str());
    return {};
  }
  std::fprintf(log, "rx ethertype=0x%04x\n", type);
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: stream_peer SOCKET_PATH LOG_PATH\n");
    return 2;
  }
  FILE* log = std::fopen(argv[2], "w");
  if (log == nullptr) {
    std::perror("stream_peer: log");
    return 1;
  }
  setvbuf(log, nullptr, _IOLBF, 0);
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(argv[1]) >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "stream_peer: socket path too long\n");
    return 1;
  }
  std::strcpy(addr.sun_path, argv[1]);
  unlink(argv[1]);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
      listen(listener, 1) < 0) {
    std::perror("stream_peer: listen");
    return 1;
  }
  std::fprintf(log, "listening\n");
  int conn = accept(listener, nullptr, nullptr);
  if (conn < 0) {
    std::perror("stream_peer: accept");
    return 1;
  }
  std::fprintf(log, "connected\n");
  uint64_t frames = 0;
  for (;;) {
    uint32_t be_len;
    if (!ReadAll(conn, &be_len, sizeof(be_len))) break;
    uint32_t len = ntohl(be_len);
    if (len > 65536) break;
    std::vector<uint8_t> frame(len);
    if (!ReadAll(conn, frame.data(), len)) break;
    ++frames;
    std::vector<uint8_t> reply = Answer(frame, log);
    if (!reply.empty() && !SendFrame(conn, reply)) break;
  }
  std::fprintf(log, "disconnected after %llu frames\n", static_cast<unsigned long long>(frames));
  close(conn);
  close(listener);
  unlink(argv[1]);
  return 0;
}
