// frame_echo: the echo a QEMU guest runs on the simulated NIC's interface
// (sim/guest_abi.h, "The wire"; nh-sim-traffic --echo counts the round trip).
//
//   frame_echo --interface IF --node N [--realtime PRIORITY]
//
// Receives every frame of ethertype NH_SIM_ETHERTYPE on IF (AF_PACKET), and
// sends it back: MACs swapped (to the wire peer, from this NIC), the payload's
// direction set to NH_SIM_DIR_OUTBOUND and node to N, the sequence number and
// send time kept. Frames this host sends itself, and runts, are ignored.
// Runs until SIGINT/SIGTERM, then prints "frame_echo: echoed E ignored I".
// --realtime runs it SCHED_FIFO at PRIORITY, so that a frame NAPI delivered is
// answered before a driver's quiesce finds the stack quiet (docs/simnic.md).
// Static, so it runs in the test VMs' initramfs.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sim/guest_abi.h"

namespace {

constexpr size_t kHeader = 14;
volatile sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

int Usage() {
  std::fprintf(stderr, "usage: frame_echo --interface IF --node N [--realtime PRIORITY]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string interface;
  long node = -1;
  long realtime = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--interface") {
      interface = argv[i + 1];
    } else if (flag == "--node") {
      char* end = nullptr;
      node = std::strtol(argv[i + 1], &end, 10);
      if (*end != '\0') node = -1;
    } else if (flag == "--realtime") {
      char* end = nullptr;
      realtime = std::strtol(argv[i + 1], &end, 10);
      if (*end != '\0' || realtime < 1 || realtime > 99) return Usage();
    } else {
      return Usage();
    }
  }
  if (argc % 2 == 0 || interface.empty() || node < 0 || node > 0xff) return Usage();
  if (realtime > 0) {
    sched_param param{};
    param.sched_priority = static_cast<int>(realtime);
    if (sched_setscheduler(0, SCHED_FIFO, &param) != 0) {
      std::fprintf(stderr, "frame_echo: SCHED_FIFO %ld: %s\n", realtime, std::strerror(errno));
      return 1;
    }
  }
  unsigned index = if_nametoindex(interface.c_str());
  if (index == 0) {
    std::fprintf(stderr, "frame_echo: no interface %s\n", interface.c_str());
    return 1;
  }
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(NH_SIM_ETHERTYPE));
  if (fd < 0) {
    std::fprintf(stderr, "frame_echo: socket: %s\n", std::strerror(errno));
    return 1;
  }
  struct sockaddr_ll bound = {};
  bound.sll_family = AF_PACKET;
  bound.sll_protocol = htons(NH_SIM_ETHERTYPE);
  bound.sll_ifindex = static_cast<int>(index);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&bound), sizeof(bound)) != 0) {
    std::fprintf(stderr, "frame_echo: bind %s: %s\n", interface.c_str(), std::strerror(errno));
    return 1;
  }
  // Not our own transmissions (Linux 4.20+; the pkttype check below covers older ones).
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
  // After a handover the new owner delivers the whole blackout's backlog in
  // one burst: a default socket buffer would overflow and drop echoes that
  // the NIC delivered. 8 MiB holds seconds of the tests' rates.
  int rcvbuf = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;  // no SA_RESTART: recvfrom returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::printf("frame_echo: echoing ethertype 0x%04x on %s as node %ld\n", NH_SIM_ETHERTYPE,
              interface.c_str(), node);
  std::fflush(stdout);
  unsigned long long echoed = 0, ignored = 0;
  uint8_t frame[2048];
  while (!g_stop) {
    struct sockaddr_ll from = {};
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(fd, frame, sizeof(frame), 0, reinterpret_cast<struct sockaddr*>(&from),
                         &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "frame_echo: recvfrom: %s\n", std::strerror(errno));
      return 1;
    }
    // A packet socket also sees this host's own transmissions: never echo those.
    if (from.sll_pkttype == PACKET_OUTGOING ||
        static_cast<size_t>(n) < kHeader + sizeof(nh_sim_wire_packet)) {
      ++ignored;
      continue;
    }
    uint8_t mac[6];
    std::memcpy(mac, frame, 6);          // our MAC (the frame's destination)
    std::memcpy(frame, frame + 6, 6);    // back to the sender
    std::memcpy(frame + 6, mac, 6);
    nh_sim_wire_packet packet;
    std::memcpy(&packet, frame + kHeader, sizeof(packet));
    packet.direction = NH_SIM_DIR_OUTBOUND;
    packet.node = static_cast<nh_u32>(node);
    std::memcpy(frame + kHeader, &packet, sizeof(packet));
    if (send(fd, frame, static_cast<size_t>(n), 0) != n) {
      ++ignored;  // e.g. ENOBUFS while the NIC is handed over: the peer counts it lost
      continue;
    }
    ++echoed;
  }
  std::printf("frame_echo: echoed %llu ignored %llu\n", echoed, ignored);
  return 0;
}
