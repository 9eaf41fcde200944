// The device and the interrupt fabric without any kernel: the test plays the
// driver by writing registers and the MSI-X table with the PCI layer's code.
#include "sim/device.h"

#include "gtest/gtest.h"
#include "pci/msi.h"
#include "pci/x86_msi.h"
#include <cstring>

#include "sim/config_space_image.h"
#include "sim/ethernet.h"
#include "sim/interrupt_fabric.h"
#include "sim/packet_queue.h"
#include "sim/testing.h"

namespace nichandover {
namespace sim {
namespace {

class DeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto machine = Machine::Create(TestPath("device_test"), TwoNodeSpec(/*ring_size=*/8));
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = std::move(*machine);
    config_ = std::make_unique<SimConfigSpace>(nic(), machine_->layout().device_bell);
    bars_ = std::make_unique<SimBarMemory>(nic(), machine_->layout().device_bell);
    device_ = std::make_unique<Device>(*machine_);
    auto cap = pci::ReadMsixCapability(*config_, kMsixCapabilityOffset);
    ASSERT_TRUE(cap.ok());
    cap_ = *cap;
    // The driver's part: enable MSI-X, RX with all descriptors but one.
    ASSERT_TRUE(config_->Write16(kMsixCapabilityOffset + 2,
                                 pci::kMsixControlEnable | (kMsixTableEntries - 1))
                    .ok());
    nic().regs.ring0.rdt.store(7);
    nic().regs.ctrl.store(kCtrlRxEnable | kCtrlTxEnable);
    nic().regs.eims.store(1u << kQueueVectorEntry);
  }

  NicState& nic() { return machine_->nic(); }
  QueueRings rings() { return machine_->rings(0, 0); }

  void Program(uint32_t entry, uint32_t apic, uint8_t vector, bool masked) {
    auto message = pci::ComposeFixedX86Msi(apic, vector);
    ASSERT_TRUE(message.ok());
    ASSERT_TRUE(pci::WriteMsixMessage(*bars_, cap_, entry, message->address, message->data).ok());
    ASSERT_TRUE(pci::WriteMsixVectorControl(*bars_, cap_, entry, masked ? 1 : 0).ok());
  }

  void Arrive(int packets) {
    PacketQueue wire(machine_->wire_in(0));
    for (int i = 0; i < packets; ++i) {
      WirePacket p;
      p.seq = next_seq_++;
      ASSERT_TRUE(wire.TryPush(p));
    }
  }

  std::unique_ptr<Machine> machine_;
  std::unique_ptr<SimConfigSpace> config_;
  std::unique_ptr<SimBarMemory> bars_;
  std::unique_ptr<Device> device_;
  pci::MsixCapability cap_;
  uint64_t next_seq_ = 0;
};

TEST_F(DeviceTest, InterruptReachesTheNodeTheMessageNames) {
  NodeSlot& node1 = machine_->node(1);
  RegisterVector(node1, /*cpu=*/1, 0x51);  // APIC ID 3 is node1's second CPU
  Program(kQueueVectorEntry, /*apic=*/3, 0x51, /*masked=*/false);
  Arrive(1);
  device_->RunOnce();
  EXPECT_EQ(node1.delivered[0x51].load(), 1u);
  EXPECT_EQ(machine_->node(0).delivered[0x51].load(), 0u);
  EXPECT_EQ(TakePendingVectors(node1), (std::vector<CpuVector>{{1, 0x51}}));
  // EIAM: the cause is auto-masked until the driver re-arms it.
  EXPECT_EQ(nic().regs.eims.load() & (1u << kQueueVectorEntry), 0u);
  Arrive(1);
  device_->RunOnce();
  EXPECT_EQ(node1.delivered[0x51].load(), 1u);
  nic().regs.eims.fetch_or(1u << kQueueVectorEntry);
  device_->RunOnce();
  EXPECT_EQ(node1.delivered[0x51].load(), 2u);
}

TEST_F(DeviceTest, UnregisteredVectorIsSpuriousAndUnknownApicUnroutable) {
  Program(kQueueVectorEntry, /*apic=*/2, 0x60, /*masked=*/false);
  Arrive(1);
  device_->RunOnce();
  EXPECT_EQ(machine_->node(1).spurious.load(), 1u);
  EXPECT_TRUE(TakePendingVectors(machine_->node(1)).empty());

  nic().regs.eims.fetch_or(1u << kQueueVectorEntry);
  Program(kQueueVectorEntry, /*apic=*/42, 0x60, /*masked=*/false);
  Arrive(1);
  device_->RunOnce();
  EXPECT_EQ(machine_->layout().unroutable_msi.load(), 1u);
}

TEST_F(DeviceTest, MaskedVectorSetsPendingAndDeliversOnUnmask) {
  NodeSlot& node0 = machine_->node(0);
  RegisterVector(node0, /*cpu=*/1, 0x44);
  Program(kQueueVectorEntry, /*apic=*/1, 0x44, /*masked=*/true);
  Arrive(2);
  device_->RunOnce();
  EXPECT_EQ(node0.delivered[0x44].load(), 0u);
  auto pending = pci::ReadMsixPending(*bars_, cap_, kQueueVectorEntry);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(*pending);
  EXPECT_EQ(nic().regs.msi_pended.load(), 1u);

  ASSERT_TRUE(pci::WriteMsixVectorControl(*bars_, cap_, kQueueVectorEntry, 0).ok());
  device_->RunOnce();
  EXPECT_EQ(node0.delivered[0x44].load(), 1u);
  EXPECT_FALSE(*pci::ReadMsixPending(*bars_, cap_, kQueueVectorEntry));
  EXPECT_EQ(nic().regs.msi_replayed.load(), 1u);
}

TEST_F(DeviceTest, FunctionMaskPendsToo) {
  RegisterVector(machine_->node(0), /*cpu=*/0, 0x45);
  Program(kQueueVectorEntry, 0, 0x45, /*masked=*/false);
  ASSERT_TRUE(config_->Write16(kMsixCapabilityOffset + 2, pci::kMsixControlEnable |
                                                              pci::kMsixControlFunctionMask |
                                                              (kMsixTableEntries - 1))
                  .ok());
  Arrive(1);
  device_->RunOnce();
  EXPECT_EQ(machine_->node(0).delivered[0x45].load(), 0u);
  ASSERT_TRUE(config_->Write16(kMsixCapabilityOffset + 2,
                               pci::kMsixControlEnable | (kMsixTableEntries - 1))
                  .ok());
  device_->RunOnce();
  EXPECT_EQ(machine_->node(0).delivered[0x45].load(), 1u);
}

TEST_F(DeviceTest, FullRxRingDropsAndCountsEveryPacket) {
  // 8 descriptors, RDT = 7: the hardware owns 7; the 8th is the gap.
  Arrive(20);
  device_->RunOnce();
  EXPECT_EQ(nic().regs.rx_packets.load(), 7u);
  EXPECT_EQ(nic().regs.rx_missed.load(), 13u);
  for (uint32_t i = 0; i < 7; ++i) {
    EXPECT_EQ(rings().rx_ring[i].status.load(), kDescriptorDone);
    auto p = ReadWireFrame(rings().rx_buffers[i], rings().rx_ring[i].length);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->seq, i);
  }
  EXPECT_EQ(rings().rx_ring[7].status.load(), 0u);
}

TEST_F(DeviceTest, ReceivedPacketsAreEthernetFramesToTheNicsMac) {
  Arrive(1);
  device_->RunOnce();
  ASSERT_EQ(rings().rx_ring[0].status.load(), kDescriptorDone);
  const uint8_t* frame = rings().rx_buffers[0];
  // The minimum frame: 14 header + 32 payload, padded to 60 bytes.
  EXPECT_EQ(rings().rx_ring[0].length, 60u);
  const uint8_t nic_mac[] = {0x02, 0x4e, 0x48, 0x00, 0x03, 0x00};  // BDF 0000:03:00.0
  EXPECT_EQ(std::memcmp(frame, nic_mac, 6), 0);
  EXPECT_EQ(std::memcmp(frame + 6, kWirePeerMac.data(), 6), 0);
  EXPECT_EQ(frame[12], 0x88);  // NH_SIM_ETHERTYPE, big endian
  EXPECT_EQ(frame[13], 0xb5);
  nh_sim_wire_packet payload;
  std::memcpy(&payload, frame + 14, sizeof(payload));
  EXPECT_EQ(payload.seq, 0u);
  EXPECT_EQ(payload.direction, static_cast<uint32_t>(NH_SIM_DIR_INBOUND));
  for (uint32_t i = 14 + sizeof(payload); i < 60; ++i) EXPECT_EQ(frame[i], 0) << i;
}

TEST_F(DeviceTest, TransmitsDescriptorsAndWritesCompletions) {
  for (uint32_t i = 0; i < 3; ++i) {
    WirePacket p;
    p.seq = 100 + i;
    p.direction = Direction::kOutbound;
    rings().tx_ring[i].length = WriteWireFrame(kWirePeerMac, machine_->nic_mac(), p,
                                             rings().tx_buffers[i]);
  }
  nic().regs.ring0.tdt.store(3);
  device_->RunOnce();
  EXPECT_EQ(nic().regs.ring0.tdh.load(), 3u);
  PacketQueue wire(machine_->wire_out(0));
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rings().tx_ring[i].status.load(), kDescriptorDone);
    auto p = wire.TryPop();
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->seq, 100 + i);
  }
  EXPECT_FALSE(wire.TryPop().has_value());
  EXPECT_EQ(nic().regs.tx_foreign_frames.load(), 0u);
}

TEST_F(DeviceTest, ForeignFramesAreCountedAndDropped) {
  // An IPv6 frame (ethertype 0x86dd), a runt of the wire's ethertype, a frame
  // longer than a buffer, then a wire frame: only the last reaches the wire.
  uint8_t* b0 = rings().tx_buffers[0];
  std::memset(b0, 0, 80);
  b0[12] = 0x86;
  b0[13] = 0xdd;
  rings().tx_ring[0].length = 80;
  WirePacket p;
  p.seq = 7;
  rings().tx_ring[1].length =
      WriteWireFrame(kWirePeerMac, machine_->nic_mac(), p, rings().tx_buffers[1]);
  rings().tx_ring[1].length = 20;
  rings().tx_ring[2].length =
      WriteWireFrame(kWirePeerMac, machine_->nic_mac(), p, rings().tx_buffers[2]);
  rings().tx_ring[2].length = kPacketBufferSize + 1;
  rings().tx_ring[3].length =
      WriteWireFrame(kWirePeerMac, machine_->nic_mac(), p, rings().tx_buffers[3]);
  nic().regs.ring0.tdt.store(4);
  device_->RunOnce();
  EXPECT_EQ(nic().regs.ring0.tdh.load(), 4u);
  EXPECT_EQ(nic().regs.tx_foreign_frames.load(), 3u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(rings().tx_ring[i].status.load(), kDescriptorDone);
  PacketQueue wire(machine_->wire_out(0));
  auto sent = wire.TryPop();
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(sent->seq, 7u);
  EXPECT_FALSE(wire.TryPop().has_value());
}

// Two NICs of three queue pairs: NIC 1 alone is set up, its misc entry and
// each queue's entry routed to a different CPU and vector. A packet goes to
// the RX queue its flow names (RSS), each queue's cause fires that queue's
// entry, the misc cause fires entry 0, and a full ring drops on its queue
// only; NIC 0 sees nothing of it.
class MultiQueueDeviceTest : public ::testing::Test {
 protected:
  static constexpr int kNic = 1;
  static constexpr uint32_t kQueues = 3;

  void SetUp() override {
    MachineSpec spec = TwoNodeSpec(/*ring_size=*/8);
    spec.nic_count = 2;
    spec.queue_count = kQueues;
    auto machine = Machine::Create(TestPath("device_multiqueue"), spec);
    ASSERT_TRUE(machine.ok()) << machine.status();
    machine_ = std::move(*machine);
    NicState& nic = machine_->nic(kNic);
    config_ = std::make_unique<SimConfigSpace>(nic, machine_->layout().device_bell);
    bars_ = std::make_unique<SimBarMemory>(nic, machine_->layout().device_bell);
    device_ = std::make_unique<Device>(*machine_);
    auto cap = pci::ReadMsixCapability(*config_, kMsixCapabilityOffset);
    ASSERT_TRUE(cap.ok());
    ASSERT_TRUE(config_->Write16(kMsixCapabilityOffset + 2,
                                 pci::kMsixControlEnable | (kMsixTableEntries - 1))
                    .ok());
    // Entry e on node (e % 2), CPU (e / 2) % 2: vector 0x50 + e.
    for (uint32_t entry = 0; entry <= kQueues; ++entry) {
      const int node = entry % 2;
      const int cpu = (entry / 2) % 2;
      const uint32_t apic = machine_->node(node).apic_ids[cpu];
      RegisterVector(machine_->node(node), cpu, Vector(entry));
      auto message = pci::ComposeFixedX86Msi(apic, Vector(entry));
      ASSERT_TRUE(message.ok());
      ASSERT_TRUE(
          pci::WriteMsixMessage(*bars_, *cap, entry, message->address, message->data).ok());
      ASSERT_TRUE(pci::WriteMsixVectorControl(*bars_, *cap, entry, 0).ok());
    }
    for (uint32_t q = 0; q < kQueues; ++q) nic.regs.ring(q).rdt.store(7);
    nic.regs.ctrl.store(kCtrlRxEnable | kCtrlTxEnable);
    nic.regs.eims.store(0x1f);
  }

  static uint8_t Vector(uint32_t entry) { return static_cast<uint8_t>(0x50 + entry); }
  NodeSlot& NodeOf(uint32_t entry) { return machine_->node(entry % 2); }

  void Arrive(uint32_t flow, int packets) {
    PacketQueue wire(machine_->wire_in(kNic));
    for (int i = 0; i < packets; ++i) {
      WirePacket p;
      p.seq = next_seq_[flow % 8]++;
      p.flow = flow;
      ASSERT_TRUE(wire.TryPush(p));
    }
  }

  std::unique_ptr<Machine> machine_;
  std::unique_ptr<SimConfigSpace> config_;
  std::unique_ptr<SimBarMemory> bars_;
  std::unique_ptr<Device> device_;
  uint64_t next_seq_[8] = {};  // per flow (flows past the queues too)
};

TEST_F(MultiQueueDeviceTest, EachFlowLandsOnItsQueueAndFiresThatQueuesVector) {
  Arrive(0, 1);
  Arrive(1, 2);
  Arrive(2, 3);
  Arrive(4, 1);  // flow 4 of 3 queues: RSS puts it on queue 1
  device_->RunOnce();
  NicState& nic = machine_->nic(kNic);
  const uint64_t expected[kQueues] = {1, 3, 3};
  for (uint32_t q = 0; q < kQueues; ++q) {
    EXPECT_EQ(nic.regs.ring(q).rdh.load(), expected[q]) << "queue " << q;
    EXPECT_EQ(nic.regs.queue_stats[q].rx_packets.load(), expected[q]) << "queue " << q;
    QueueRings rings = machine_->rings(kNic, q);
    auto first = ReadWireFrame(rings.rx_buffers[0], rings.rx_ring[0].length);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->flow % kQueues, q);
    // The queue's entry (1 + q) fired once, at its node's vector.
    const uint32_t entry = QueueVectorEntry(q);
    EXPECT_EQ(NodeOf(entry).delivered[Vector(entry)].load(), 1u) << "queue " << q;
  }
  EXPECT_EQ(nic.regs.rx_packets.load(), 7u);
  // Nothing for the misc entry yet; then a link-type cause fires it.
  EXPECT_EQ(NodeOf(kOtherVectorEntry).delivered[Vector(kOtherVectorEntry)].load(), 0u);
  nic.regs.eicr.fetch_or(1u << kOtherVectorEntry);
  device_->RunOnce();
  EXPECT_EQ(NodeOf(kOtherVectorEntry).delivered[Vector(kOtherVectorEntry)].load(), 1u);
  // Per CPU: node1's second CPU got entry 3's vector and nothing else.
  std::vector<CpuVector> node1 = TakePendingVectors(machine_->node(1));
  EXPECT_EQ(node1, (std::vector<CpuVector>{{0, Vector(1)}, {1, Vector(3)}}));
  // NIC 0 never saw a packet or sent a message.
  EXPECT_EQ(machine_->nic(0).regs.rx_packets.load(), 0u);
  EXPECT_EQ(machine_->nic(0).regs.msi_sent.load(), 0u);
  EXPECT_EQ(machine_->layout().unroutable_msi.load(), 0u);
  EXPECT_EQ(machine_->node(0).spurious.load() + machine_->node(1).spurious.load(), 0u);
}

TEST_F(MultiQueueDeviceTest, AFullRingDropsOnItsQueueOnly) {
  NicState& nic = machine_->nic(kNic);
  nic.regs.ring(1).rdt.store(0);  // queue 1: the driver gave it no descriptor
  Arrive(0, 5);
  Arrive(1, 5);
  device_->RunOnce();
  EXPECT_EQ(nic.regs.queue_stats[0].rx_packets.load(), 5u);
  EXPECT_EQ(nic.regs.queue_stats[0].rx_missed.load(), 0u);
  EXPECT_EQ(nic.regs.queue_stats[1].rx_packets.load(), 0u);
  EXPECT_EQ(nic.regs.queue_stats[1].rx_missed.load(), 5u);
  EXPECT_EQ(nic.regs.rx_missed.load(), 5u);
  // Queue 1 had no work: its entry stayed quiet.
  EXPECT_EQ(NodeOf(QueueVectorEntry(1)).delivered[Vector(QueueVectorEntry(1))].load(), 0u);
}

}  // namespace
}  // namespace sim
}  // namespace nichandover
