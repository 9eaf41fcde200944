// nh-sim-traffic's echo mode against a node that echoes, as a QEMU guest
// running tests/vm/frame_echo does: the test plays that guest's driver on the
// NIC's rings (frames in, the payload back out as OUTBOUND with its node
// index), moves the echo to the other node once with a pause, and checks
// the round-trip report: nothing lost or duplicated, one node change whose
// blackout covers the pause. And the sink's counting of duplicates and
// reordering, fed by hand.
#include <atomic>
#include <cstring>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "sim/doorbell.h"
#include "sim/ethernet.h"
#include "sim/packet_queue.h"
#include "sim/testing.h"
#include "sim/traffic.h"

namespace nichandover {
namespace sim {
namespace {

class EchoingDriver {
 public:
  explicit EchoingDriver(Machine& machine) : machine_(machine), nic_(machine.nic()), rings_(machine.rings(0, 0)) {
    const uint32_t mask = nic_.ring_size - 1;
    nic_.regs.ring0.rdt.store(mask);
    nic_.regs.ctrl.store(kCtrlRxEnable | kCtrlTxEnable);
    thread_ = std::thread([this] { Loop(); });
  }
  ~EchoingDriver() {
    stop_ = true;
    thread_.join();
  }
  void set_node(uint32_t node) { node_ = node; }
  void set_paused(bool paused) { paused_ = paused; }
  uint64_t foreign() const { return foreign_; }

 private:
  void Loop() {
    const uint32_t mask = nic_.ring_size - 1;
    const MacAddress mac = machine_.nic_mac();
    uint32_t rx_clean = 0, tx_use = 0;
    while (!stop_) {
      bool work = false;
      while (!paused_ && (rings_.rx_ring[rx_clean].status.load(std::memory_order_acquire) &
                          kDescriptorDone)) {
        // TX ring full: wait for the device.
        if (((tx_use + 1) & mask) == nic_.regs.ring0.tdh.load(std::memory_order_acquire)) break;
        const uint8_t* frame = rings_.rx_buffers[rx_clean];
        std::optional<WirePacket> p = ReadWireFrame(frame, rings_.rx_ring[rx_clean].length);
        if (!p.has_value() || std::memcmp(frame, mac.data(), 6) != 0) {
          ++foreign_;
        } else {
          p->direction = Direction::kOutbound;
          p->node = node_;
          rings_.tx_ring[tx_use].length = WriteWireFrame(kWirePeerMac, mac, *p, rings_.tx_buffers[tx_use]);
          tx_use = (tx_use + 1) & mask;
        }
        rings_.rx_ring[rx_clean].status.store(0, std::memory_order_relaxed);
        nic_.regs.ring0.rdt.store(rx_clean, std::memory_order_release);
        rx_clean = (rx_clean + 1) & mask;
        work = true;
      }
      if (work) {
        nic_.regs.ring0.tdt.store(tx_use, std::memory_order_release);
        DoorbellRing(machine_.layout().device_bell);
      } else {
        absl::SleepFor(absl::Microseconds(200));
      }
    }
  }

  Machine& machine_;
  NicState& nic_;
  QueueRings rings_;  // a guest drives queue 0
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::atomic<uint32_t> node_{0};
  std::atomic<uint64_t> foreign_{0};
  std::thread thread_;
};

TEST(TrafficEchoTest, RoundTripIsCountedPerNodeWithTheBlackout) {
  auto machine = Machine::Create(TestPath("traffic_echo"), TwoNodeSpec(/*ring_size=*/1024));
  ASSERT_TRUE(machine.ok()) << machine.status();
  // An echo an earlier run left on the wire (before this run's device and
  // sink use it), with a sequence number this run reaches only later:
  // neither received nor reordering this run's.
  WirePacket stale;
  stale.seq = 1000000;
  stale.sent_ns = MonotonicNanos();
  stale.direction = Direction::kOutbound;
  stale.node = 0;
  ASSERT_TRUE(PacketQueue((*machine)->wire_out(0)).TryPush(stale));
  DeviceThread device(**machine);
  EchoingDriver guest(**machine);
  TrafficOptions options;
  options.inbound_pps = 2000;
  options.outbound_pps = 5000;  // ignored in echo mode
  options.echo = true;
  Traffic traffic(**machine, options);
  traffic.Start();
  absl::SleepFor(absl::Milliseconds(300));
  // The "handover": the echo stops for a while, then node1 answers.
  guest.set_paused(true);
  const absl::Duration pause = absl::Milliseconds(100);
  absl::SleepFor(pause);
  guest.set_node(1);
  guest.set_paused(false);
  absl::SleepFor(absl::Milliseconds(300));
  traffic.StopSending();
  ASSERT_TRUE(traffic.WaitDelivered(absl::Seconds(30)));
  traffic.Stop();
  TrafficReport report = traffic.Report();
  EXPECT_TRUE(report.echo);
  EXPECT_GT(report.inbound.sent, 0u);
  EXPECT_EQ(report.outbound.sent, report.inbound.sent);
  EXPECT_EQ(report.outbound.unique, report.inbound.sent);
  EXPECT_EQ(report.outbound.lost, 0u);
  EXPECT_EQ(report.outbound.duplicated, 0u);
  EXPECT_EQ(report.outbound.out_of_order, 0u);
  EXPECT_EQ(report.outbound.stale, 1u);
  ASSERT_EQ(report.outbound.node_changes.size(), 1u);
  const NodeChange& change = report.outbound.node_changes[0];
  EXPECT_EQ(change.from_node, 0u);
  EXPECT_EQ(change.to_node, 1u);
  EXPECT_EQ(change.first_seq_after, change.last_seq_before + 1);
  EXPECT_GE(change.blackout_ns(), absl::ToInt64Nanoseconds(pause));
  EXPECT_EQ(guest.foreign(), 0u);
  std::string json = TrafficReportJson(report, **machine);
  EXPECT_NE(json.find("\"mode\":\"echo\""), std::string::npos) << json;
}

TEST(TrafficEchoTest, AnEarlierRunsDropsDoNotCountAsThisRunsEchoes) {
  auto machine = Machine::Create(TestPath("traffic_echo_drops"), TwoNodeSpec(/*ring_size=*/1024));
  ASSERT_TRUE(machine.ok()) << machine.status();
  // What earlier runs on this machine left in its counters.
  (*machine)->nic().regs.rx_missed.store(1000000);
  DeviceThread device(**machine);
  EchoingDriver guest(**machine);
  guest.set_paused(true);
  TrafficOptions options;
  options.inbound_pps = 2000;
  options.echo = true;
  Traffic traffic(**machine, options);
  traffic.Start();
  const absl::Time until = absl::Now() + absl::Milliseconds(100);
  while (absl::Now() < until || traffic.Report().inbound.sent == 0) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  traffic.StopSending();
  // No echo came, and the frames wait in the ring: not delivered.
  EXPECT_FALSE(traffic.WaitDelivered(absl::Milliseconds(200)));
  guest.set_paused(false);
  EXPECT_TRUE(traffic.WaitDelivered(absl::Seconds(30)));
  traffic.Stop();
  TrafficReport report = traffic.Report();
  EXPECT_EQ(report.outbound.lost, 0u);
}

// The sink's own bookkeeping, fed by hand on the wire: a duplicate is
// counted as one (also of a number far past the others, in a later chunk
// of its record), a number that arrives after a higher one as reordered.
TEST(TrafficSinkTest, CountsDuplicatesAndReorderingOverSparseSequenceNumbers) {
  auto machine = Machine::Create(TestPath("traffic_sink"), TwoNodeSpec(/*ring_size=*/1024));
  ASSERT_TRUE(machine.ok()) << machine.status();
  TrafficOptions options;
  options.inbound_pps = 0;
  options.outbound_pps = 0;
  Traffic traffic(**machine, options);
  traffic.Start();
  PacketQueue wire((*machine)->wire_out(0));
  const uint64_t sequence[] = {0, 1, 1, 5000000, 5, 5000000, 2};
  for (uint64_t seq : sequence) {
    WirePacket p;
    p.seq = seq;
    p.sent_ns = MonotonicNanos();
    p.direction = Direction::kOutbound;
    p.node = 0;
    ASSERT_TRUE(wire.TryPush(p));
  }
  DoorbellRing((*machine)->layout().sink_bell);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (traffic.Report().outbound.received < std::size(sequence) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  traffic.Stop();
  TrafficReport report = traffic.Report();
  EXPECT_EQ(report.outbound.received, std::size(sequence));
  EXPECT_EQ(report.outbound.unique, 5u);      // 0, 1, 5000000, 5, 2
  EXPECT_EQ(report.outbound.duplicated, 2u);  // 1 and 5000000 again
  EXPECT_EQ(report.outbound.out_of_order, 2u);  // 5 and 2 after 5000000
}

}  // namespace
}  // namespace sim
}  // namespace nichandover
