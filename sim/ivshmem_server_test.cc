// The ivshmem front end against fake QEMU clients over real unix sockets:
// the protocol (version, id, shm fd, eventfds, connect/disconnect
// notifications), the fabric raising a guest's eventfd, and a guest's
// doorbell eventfds reaching the device.
#include "sim/ivshmem_server.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "pci/x86_msi.h"
#include "pci/msi.h"
#include "sim/config_space_image.h"
#include "sim/doorbell.h"
#include "sim/interrupt_fabric.h"
#include "sim/kernel.h"
#include "sim/packet_queue.h"
#include "sim/testing.h"

namespace nichandover {
namespace sim {
namespace {

// Generous: the machine running the tests is loaded.
constexpr absl::Duration kTimeout = absl::Seconds(30);

struct Message {
  int64_t value = 0;
  int fd = -1;  // owned by the test (closed by FakeGuest)
};

// What QEMU's ivshmem-doorbell does with the server's socket: reads
// messages. Owns every fd it received.
class FakeGuest {
 public:
  explicit FakeGuest(const std::string& path) {
    sock_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    connected_ = connect(sock_, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~FakeGuest() {
    Close();
    for (int fd : fds_) close(fd);
  }
  bool connected() const { return connected_; }
  void Close() {
    if (sock_ >= 0) close(sock_);
    sock_ = -1;
  }

  // The next message; nullopt on EOF or after kTimeout.
  std::optional<Message> Read() {
    struct pollfd pfd = {sock_, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(kTimeout))) != 1) {
      return std::nullopt;
    }
    Message m;
    struct iovec iov = {&m.value, sizeof(m.value)};
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(sock_, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    if (n != sizeof(m.value)) return std::nullopt;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        std::memcpy(&m.fd, CMSG_DATA(c), sizeof(int));
        fds_.push_back(m.fd);
      }
    }
    return m;
  }

  // Reads `count` messages that must all be `id` with an fd; returns the fds.
  std::vector<int> ReadEventfds(int64_t id, int count) {
    std::vector<int> fds;
    for (int i = 0; i < count; ++i) {
      std::optional<Message> m = Read();
      EXPECT_TRUE(m.has_value()) << "eventfd " << i << " of peer " << id;
      if (!m.has_value()) break;
      EXPECT_EQ(m->value, id);
      EXPECT_GE(m->fd, 0);
      fds.push_back(m->fd);
    }
    return fds;
  }

  // The setup the spec prescribes; returns the guest's id.
  int64_t ReadSetup(const std::vector<int64_t>& other_guests) {
    std::optional<Message> version = Read();
    EXPECT_TRUE(version.has_value());
    if (!version.has_value()) return -1;
    EXPECT_EQ(version->value, kIvshmemProtocolVersion);
    EXPECT_EQ(version->fd, -1);
    std::optional<Message> id = Read();
    EXPECT_TRUE(id.has_value());
    if (!id.has_value()) return -1;
    EXPECT_EQ(id->fd, -1);
    EXPECT_NE(id->value, kMachinePeerId);
    std::optional<Message> shm = Read();
    EXPECT_TRUE(shm.has_value());
    if (!shm.has_value()) return -1;
    EXPECT_EQ(shm->value, -1);
    shm_fd = shm->fd;
    machine_fds = ReadEventfds(kMachinePeerId, NH_SIM_MACHINE_VECTORS);
    for (int64_t other : other_guests) ReadEventfds(other, kGuestIvshmemVectors);
    own_fds = ReadEventfds(id->value, kGuestIvshmemVectors);
    return id->value;
  }

  int shm_fd = -1;
  std::vector<int> machine_fds;
  std::vector<int> own_fds;

 private:
  int sock_ = -1;
  bool connected_ = false;
  std::vector<int> fds_;
};

bool Readable(int fd, absl::Duration wait) {
  struct pollfd pfd = {fd, POLLIN, 0};
  return poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) == 1;
}

uint64_t ReadCounter(int fd) {
  uint64_t value = 0;
  EXPECT_EQ(read(fd, &value, sizeof(value)), static_cast<ssize_t>(sizeof(value)));
  return value;
}

template <typename Predicate>
bool WaitFor(Predicate done) {
  absl::Time deadline = absl::Now() + kTimeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

class IvshmemServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto machine = Machine::Create(TestPath("ivshmem.machine"), TwoNodeSpec());
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = std::move(*machine);
    dir_ = SocketPath("ivshmem");
    mkdir(dir_.c_str(), 0700);
    auto server = IvshmemServer::Start(*machine_, dir_, {0, 1});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  std::string Socket(const std::string& node) { return IvshmemSocketPath(dir_, node); }

  std::unique_ptr<Machine> machine_;
  std::string dir_;
  std::unique_ptr<IvshmemServer> server_;
};

TEST_F(IvshmemServerTest, GuestReceivesVersionIdMemoryAndEventfds) {
  FakeGuest guest(Socket("node0"));
  ASSERT_TRUE(guest.connected());
  int64_t id = guest.ReadSetup({});
  ASSERT_GT(id, 0);
  // The shared memory is the machine: power-of-two size, magic, directory.
  struct stat st;
  ASSERT_EQ(fstat(guest.shm_fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), MachineMemorySize());
  EXPECT_EQ(st.st_size & (st.st_size - 1), 0);
  void* p = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, guest.shm_fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  uint64_t magic;
  std::memcpy(&magic, p, sizeof(magic));
  EXPECT_EQ(magic, NH_SIM_MAGIC);
  auto* directory =
      reinterpret_cast<const nh_sim_directory*>(static_cast<char*>(p) + NH_SIM_DIRECTORY_OFFSET);
  EXPECT_EQ(directory->machine_peer_id, kMachinePeerId);
  munmap(p, st.st_size);
  // The node's slot says a guest is attached, with its peer id.
  NodeSlot& slot = machine_->node(0);
  EXPECT_TRUE(WaitFor([&] { return slot.kind.load() == NodeKind::kGuest; }));
  EXPECT_EQ(slot.peer_id.load(), static_cast<uint32_t>(id));
  EXPECT_EQ(machine_->node(1).kind.load(), NodeKind::kNone);
}

TEST_F(IvshmemServerTest, PeersLearnOfEachOtherAndOfDisconnects) {
  FakeGuest a(Socket("node0"));
  int64_t id_a = a.ReadSetup({});
  ASSERT_GT(id_a, 0);
  auto b = std::make_unique<FakeGuest>(Socket("node1"));
  int64_t id_b = b->ReadSetup({id_a});  // B receives A's eventfds
  ASSERT_GT(id_b, 0);
  EXPECT_NE(id_a, id_b);
  // A is told of B: B's id with one eventfd per vector.
  std::vector<int> b_seen_by_a = a.ReadEventfds(id_b, kGuestIvshmemVectors);
  ASSERT_EQ(b_seen_by_a.size(), kGuestIvshmemVectors);
  // A rings B's vector 3: B's own eventfd 3 (the same eventfd) fires.
  uint64_t one = 1;
  ASSERT_EQ(write(b_seen_by_a[3], &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  ASSERT_TRUE(Readable(b->own_fds[3], kTimeout));
  EXPECT_EQ(ReadCounter(b->own_fds[3]), 1u);
  ASSERT_TRUE(WaitFor([&] { return machine_->node(1).kind.load() == NodeKind::kGuest; }));

  machine_->node(1).guest_vector[0x41].store(2);
  b.reset();  // QEMU B exits
  std::optional<Message> gone = a.Read();
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->value, id_b);
  EXPECT_EQ(gone->fd, -1);  // no fd: a disconnect notification
  EXPECT_TRUE(WaitFor([&] { return machine_->node(1).kind.load() == NodeKind::kNone; }));
  EXPECT_EQ(machine_->node(1).guest_vector[0x41].load(), 0);  // its "APIC" is gone too

  // The node can be attached again, under a new id.
  FakeGuest c(Socket("node1"));
  int64_t id_c = c.ReadSetup({id_a});
  EXPECT_GT(id_c, id_b);
}

TEST_F(IvshmemServerTest, RefusesASecondGuestForAnAttachedNode) {
  FakeGuest first(Socket("node0"));
  ASSERT_GT(first.ReadSetup({}), 0);
  FakeGuest second(Socket("node0"));
  ASSERT_TRUE(second.connected());
  EXPECT_FALSE(second.Read().has_value());  // closed without a word
  EXPECT_EQ(machine_->node(0).peer_id.load(), 1u);
}

TEST_F(IvshmemServerTest, RefusesAGuestForANodeASimulatedKernelRuns) {
  machine_->node(1).kernel_pid.store(getpid());
  machine_->node(1).kind.store(NodeKind::kSimKernel);
  FakeGuest guest(Socket("node1"));
  ASSERT_TRUE(guest.connected());
  EXPECT_FALSE(guest.Read().has_value());
  EXPECT_EQ(machine_->node(1).kind.load(), NodeKind::kSimKernel);
  // A kernel that died without cleaning up does not hold the node.
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  machine_->node(1).kernel_pid.store(child);
  FakeGuest later(Socket("node1"));
  EXPECT_GT(later.ReadSetup({}), 0);
  EXPECT_TRUE(WaitFor([&] { return machine_->node(1).kind.load() == NodeKind::kGuest; }));
}

TEST_F(IvshmemServerTest, FabricRaisesTheGuestsEventfdOfTheInstalledVector) {
  FakeGuest guest(Socket("node1"));  // node1: APIC IDs 2 and 3
  ASSERT_GT(guest.ReadSetup({}), 0);
  NodeSlot& slot = machine_->node(1);
  ASSERT_TRUE(WaitFor([&] { return slot.kind.load() == NodeKind::kGuest; }));
  // The guest driver installed x86 vector 0x41 on ivshmem vector 2 (NIC entry 1).
  slot.guest_vector[0x41].store(NH_SIM_IVSHMEM_VEC_NIC0 + kQueueVectorEntry + 1);
  InterruptFabric fabric(*machine_, server_.get());
  auto message = pci::ComposeFixedX86Msi(3, 0x41);
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(fabric.Deliver(message->address, message->data), MsiOutcome::kDelivered);
  int line = NH_SIM_IVSHMEM_VEC_NIC0 + kQueueVectorEntry;
  ASSERT_TRUE(Readable(guest.own_fds[line], kTimeout));
  EXPECT_EQ(ReadCounter(guest.own_fds[line]), 1u);
  for (int v = 0; v < static_cast<int>(guest.own_fds.size()); ++v) {
    if (v != line) {
      EXPECT_FALSE(Readable(guest.own_fds[v], absl::ZeroDuration())) << v;
    }
  }
  EXPECT_EQ(slot.delivered[0x41].load(), 1u);
  // A vector the guest has no handler for: spurious, nothing raised.
  auto other = pci::ComposeFixedX86Msi(2, 0x42);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(fabric.Deliver(other->address, other->data), MsiOutcome::kSpurious);
  EXPECT_EQ(slot.spurious.load(), 1u);
  EXPECT_EQ(slot.delivered[0x42].load(), 1u);
  for (int fd : guest.own_fds) EXPECT_FALSE(Readable(fd, absl::ZeroDuration()));
  // The other node has no guest: its slot is untouched by the guest path.
  EXPECT_EQ(machine_->node(0).delivered[0x41].load(), 0u);
}

TEST_F(IvshmemServerTest, GuestDoorbellsWakeTheDeviceAndCountControl) {
  FakeGuest guest(Socket("node0"));
  ASSERT_GT(guest.ReadSetup({}), 0);
  ASSERT_EQ(guest.machine_fds.size(), static_cast<size_t>(NH_SIM_MACHINE_VECTORS));
  Doorbell& bell = machine_->layout().device_bell;
  uint32_t before = DoorbellSnapshot(bell);
  uint64_t one = 1;
  ASSERT_EQ(write(guest.machine_fds[NH_SIM_MACHINE_VEC_DEVICE], &one, sizeof(one)), 8);
  EXPECT_TRUE(WaitFor([&] { return DoorbellSnapshot(bell) != before; }));
  ASSERT_EQ(write(guest.machine_fds[NH_SIM_MACHINE_VEC_CONTROL], &one, sizeof(one)), 8);
  EXPECT_TRUE(WaitFor([&] { return machine_->layout().control_doorbells.load() == 1; }));
}

// One machine, two kinds of node: a simulated kernel runs the NIC on node0
// while a guest is attached to node1. Rewriting the NIC's MSI-X entry (what
// the source's hook does) moves the queue interrupt from the kernel to the
// guest's eventfd.
TEST_F(IvshmemServerTest, SimulatedKernelAndGuestShareTheMachine) {
  server_.reset();  // node1 only: node0 runs a simulated kernel
  auto server = IvshmemServer::Start(*machine_, dir_, {1});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  DeviceThread device(*machine_, server_.get());
  FakeGuest guest(Socket("node1"));
  ASSERT_GT(guest.ReadSetup({}), 0);
  NodeSlot& guest_slot = machine_->node(1);
  ASSERT_TRUE(WaitFor([&] { return guest_slot.kind.load() == NodeKind::kGuest; }));
  KernelOptions options;
  options.node_id = "node1";
  EXPECT_EQ(Kernel::Boot(machine_.get(), options).status().code(),
            absl::StatusCode::kFailedPrecondition);  // a guest's node
  options.node_id = "node0";
  auto kernel = Kernel::Boot(machine_.get(), options);  // owns the NIC: probes it
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_EQ(machine_->node(0).kind.load(), NodeKind::kSimKernel);

  PacketQueue wire(machine_->wire_in(0));
  uint64_t seq = 0;
  auto arrive = [&] {
    WirePacket p;
    p.seq = seq++;
    ASSERT_TRUE(wire.TryPush(p));
    DoorbellRing(machine_->layout().device_bell);
  };
  NodeCounters& counters = machine_->node(0).counters;
  arrive();
  ASSERT_TRUE(WaitFor([&] { return counters.rx_delivered.load() == 1; }))
      << "rx_packets " << machine_->nic().regs.rx_packets.load() << " missed "
      << machine_->nic().regs.rx_missed.load() << " msi " << machine_->nic().regs.msi_sent.load()
      << " irqs " << counters.irqs_handled.load() << " polls " << counters.napi_polls.load()
      << " drops " << counters.rx_socket_drops.load() << " delivered "
      << counters.rx_delivered.load();
  // Re-armed when NAPI completed: the next cause fires again.
  ASSERT_TRUE(WaitFor([&] {
    return (machine_->nic().regs.eims.load() & (1u << kQueueVectorEntry)) != 0;
  }));

  const int line = NH_SIM_IVSHMEM_VEC_NIC0 + kQueueVectorEntry;
  guest_slot.guest_vector[0x41].store(line + 1);
  SimConfigSpace config(machine_->nic(), machine_->layout().device_bell);
  SimBarMemory bars(machine_->nic(), machine_->layout().device_bell);
  auto cap = pci::ReadMsixCapability(config, kMsixCapabilityOffset);
  ASSERT_TRUE(cap.ok());
  auto to_guest = pci::ComposeFixedX86Msi(/*apic_id=*/3, 0x41);
  ASSERT_TRUE(to_guest.ok());
  ASSERT_TRUE(pci::WriteMsixMessage(bars, *cap, kQueueVectorEntry, to_guest->address,
                                    to_guest->data)
                  .ok());
  const uint64_t irqs_before = counters.irqs_handled.load();
  arrive();
  ASSERT_TRUE(Readable(guest.own_fds[line], kTimeout));
  EXPECT_EQ(ReadCounter(guest.own_fds[line]), 1u);
  EXPECT_EQ(guest_slot.delivered[0x41].load(), 1u);
  EXPECT_EQ(counters.irqs_handled.load(), irqs_before);  // not the kernel's any more
}

TEST(IvshmemServerStartTest, RejectsBadNodesAndLongPaths) {
  auto machine = Machine::Create(TestPath("ivshmem-bad.machine"), TwoNodeSpec());
  ASSERT_TRUE(machine.ok());
  EXPECT_EQ(IvshmemServer::Start(**machine, SocketPath(""), {2}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IvshmemServer::Start(**machine, SocketPath(""), {0, 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IvshmemServer::Start(**machine, "/tmp/" + std::string(120, 'x'), {0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sim
}  // namespace nichandover
