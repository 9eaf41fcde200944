#include "sim/machine.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "pci/capabilities.h"
#include "pci/dump_file.h"
#include "pci/interrupt_layout.h"
#include "pci/msi.h"
#include "sim/config_space_image.h"
#include "sim/testing.h"

namespace nichandover {
namespace sim {
namespace {

TEST(MachineTest, CreateThenOpenSeesTheSameNodesAndRecord) {
  std::string path = TestPath("machine_open");
  ASSERT_TRUE(Machine::Create(path, TwoNodeSpec()).ok());
  auto machine = Machine::Open(path);
  ASSERT_TRUE(machine.ok()) << machine.status();
  EXPECT_EQ((*machine)->node_count(), 2);
  EXPECT_EQ(*(*machine)->NodeIndex("node1"), 1);
  EXPECT_EQ((*machine)->NodeOfApicId(3), 1);
  EXPECT_EQ((*machine)->NodeOfApicId(9), kNoNode);
  EXPECT_EQ((*machine)->bdf(), "0000:03:00.0");
  Ownership record = (*machine)->ReadOwnership();
  EXPECT_EQ(record.state, OwnershipState::kActive);
  EXPECT_EQ(record.owner, 0);
  EXPECT_EQ(record.epoch, 1u);
}

TEST(MachineTest, RefusesBadSpecsAndForeignFiles) {
  MachineSpec spec = TwoNodeSpec();
  spec.ring_size = 1000;
  EXPECT_EQ(Machine::Create(TestPath("bad"), spec).status().code(),
            absl::StatusCode::kInvalidArgument);
  spec = TwoNodeSpec();
  spec.nodes[1].apic_ids = {1};
  EXPECT_EQ(Machine::Create(TestPath("bad"), spec).status().code(),
            absl::StatusCode::kInvalidArgument);
  spec = TwoNodeSpec();
  spec.initial_owner = "node7";
  EXPECT_EQ(Machine::Create(TestPath("bad"), spec).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Machine::Open(TestPath("absent")).status().code(), absl::StatusCode::kNotFound);
  FILE* f = std::fopen(TestPath("foreign").c_str(), "w");
  std::fputs("not a machine", f);
  std::fclose(f);
  EXPECT_EQ(Machine::Open(TestPath("foreign")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A guest sees the machine only through guest_abi.h: the directory and the
// fixed offsets must lead to the very fields the C++ side uses.
TEST(MachineTest, DirectoryLeadsAGuestToEveryField) {
  MachineSpec spec = TwoNodeSpec(/*ring_size=*/256);
  spec.bdf = "0000:1a:02.3";
  auto created = Machine::Create(TestPath("machine_directory"), spec);
  ASSERT_TRUE(created.ok()) << created.status();
  Machine& m = **created;
  char* base = reinterpret_cast<char*>(&m.layout());
  struct stat st;
  ASSERT_EQ(stat(m.path().c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), MachineMemorySize(1, 1, 256));
  EXPECT_EQ(st.st_size & (st.st_size - 1), 0) << "QEMU needs a power-of-two BAR";
  EXPECT_GE(static_cast<uint64_t>(st.st_size), sizeof(MachineLayout));
  EXPECT_EQ(m.layout().total_size, static_cast<uint64_t>(st.st_size));

  const auto* d = reinterpret_cast<const nh_sim_directory*>(base + NH_SIM_DIRECTORY_OFFSET);
  EXPECT_EQ(*reinterpret_cast<const uint64_t*>(base), NH_SIM_MAGIC);
  EXPECT_EQ(d->abi_version, static_cast<uint32_t>(NH_SIM_GUEST_ABI_VERSION));
  EXPECT_EQ(d->node_count, 2u);
  EXPECT_EQ(d->max_nodes, static_cast<uint32_t>(kMaxNodes));
  EXPECT_EQ(d->machine_peer_id, kMachinePeerId);
  EXPECT_EQ(d->nic_count, 1u);
  NicState& nic = m.nic();
  EXPECT_STREQ(base + d->nic_bdf_offset, "0000:1a:02.3");
  EXPECT_EQ(base + d->nic_config_offset, reinterpret_cast<char*>(nic.config));
  EXPECT_EQ(base + d->nic_msix_offset, reinterpret_cast<char*>(nic.msix_bar));
  EXPECT_EQ(d->nic_msix_pba_offset, kMsixPbaOffset);
  EXPECT_EQ(d->nic_msix_entries, kMsixTableEntries);
  EXPECT_EQ(base + d->nic_regs_offset, reinterpret_cast<char*>(&nic.regs));
  QueueRings rings = m.rings(0, 0);
  EXPECT_EQ(base + d->nic_rx_ring_offset, reinterpret_cast<char*>(rings.rx_ring));
  EXPECT_EQ(base + d->nic_tx_ring_offset, reinterpret_cast<char*>(rings.tx_ring));
  EXPECT_EQ(base + d->nic_rx_buf_offset, reinterpret_cast<char*>(rings.rx_buffers));
  EXPECT_EQ(base + d->nic_tx_buf_offset, reinterpret_cast<char*>(rings.tx_buffers));
  EXPECT_EQ(base + d->nic_rx_buf_offset + 5 * d->nic_buf_size,
            reinterpret_cast<char*>(rings.rx_buffers[5]));
  EXPECT_EQ(d->nic_ring_size, 256u);
  EXPECT_GE(d->nic_buf_size, 1514u);  // an MTU-1500 frame
  EXPECT_EQ(base + d->nic_ownership_offset, reinterpret_cast<char*>(&nic.ownership.word));
  EXPECT_EQ(base + d->nic_handoff_offset, reinterpret_cast<char*>(&nic.handoff));
  EXPECT_EQ(base + d->nic_initialized_offset, reinterpret_cast<char*>(&nic.initialized));
  EXPECT_EQ(base + d->nic_running_node_offset, reinterpret_cast<char*>(&nic.running_node));
  EXPECT_EQ(d->nic_other_entry, kOtherVectorEntry);
  EXPECT_EQ(d->nic_queue_entry, kQueueVectorEntry);
  EXPECT_EQ(base + d->cas_test_offset, reinterpret_cast<char*>(&m.layout().cas_test));
  const uint8_t mac[] = {0x02, 0x4e, 0x48, 0x00, 0x1a, 0x13};  // devfn = 2 << 3 | 3
  EXPECT_EQ(std::memcmp(d->nic_mac, mac, 6), 0);
  EXPECT_EQ(d->nic_mac[0] & 0x03, 0x02) << "locally administered unicast";

  // The ownership word through the directory, as a guest's daemon reads it.
  uint64_t word = *reinterpret_cast<const uint64_t*>(base + d->nic_ownership_offset);
  EXPECT_EQ(NH_SIM_OWN_STATE(word), static_cast<uint32_t>(NH_SIM_OWN_ACTIVE));
  EXPECT_EQ(NH_SIM_OWN_OWNER(word), 0u);
  EXPECT_EQ(NH_SIM_OWN_EPOCH(word), 1u);

  // Node slots through the stride and the fixed field offsets.
  char* slot1 = base + d->nodes_offset + 1 * d->node_stride;
  EXPECT_STREQ(slot1 + NH_SIM_NODE_ID_OFFSET, "node1");
  EXPECT_EQ(*reinterpret_cast<uint32_t*>(slot1 + NH_SIM_NODE_APIC_COUNT_OFFSET), 2u);
  EXPECT_EQ(reinterpret_cast<uint32_t*>(slot1 + NH_SIM_NODE_APIC_IDS_OFFSET)[1], 3u);
  m.node(1).kind.store(NodeKind::kGuest);
  m.node(1).peer_id.store(7);
  m.node(1).delivered[0x41].store(9);
  EXPECT_EQ(*reinterpret_cast<uint32_t*>(slot1 + NH_SIM_NODE_KIND_OFFSET),
            static_cast<uint32_t>(NH_SIM_NODE_GUEST));
  EXPECT_EQ(*reinterpret_cast<uint32_t*>(slot1 + NH_SIM_NODE_PEER_ID_OFFSET), 7u);
  EXPECT_EQ(reinterpret_cast<uint64_t*>(slot1 + NH_SIM_NODE_DELIVERED_OFFSET)[0x41], 9u);
  slot1[NH_SIM_NODE_GUEST_VECTOR_OFFSET + 0x41] = 3;  // the guest's driver writes
  EXPECT_EQ(m.node(1).guest_vector[0x41].load(), 3);
  auto* regs = reinterpret_cast<uint32_t*>(base + d->nic_regs_offset);
  regs[NH_SIM_REG_RDT / 4] = 17;
  EXPECT_EQ(nic.regs.ring0.rdt.load(), 17u);
}

TEST(MachineTest, AttachExistingMapsALargerMemoryAndRefusesOthers) {
  std::string path = TestPath("machine_bar2");
  ASSERT_TRUE(Machine::Create(path, TwoNodeSpec()).ok());
  // A BAR may be larger than the machine; attaching never resizes it.
  ASSERT_EQ(truncate(path.c_str(), 2 * MachineMemorySize()), 0);
  auto attached = Machine::AttachExisting(path);
  ASSERT_TRUE(attached.ok()) << attached.status();
  (*attached)->layout().cas_test.fetch_add(1);
  auto opened = Machine::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ((*opened)->layout().cas_test.load(), 1u);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 2 * MachineMemorySize());
  // Smaller than the layout, or zeroed: not a machine.
  ASSERT_EQ(truncate(path.c_str(), sizeof(MachineLayout) - 1), 0);
  EXPECT_EQ(Machine::AttachExisting(path).status().code(), absl::StatusCode::kFailedPrecondition);
  std::string zeros = TestPath("machine_zeros");
  FILE* f = std::fopen(zeros.c_str(), "w");
  std::fclose(f);
  ASSERT_EQ(truncate(zeros.c_str(), MachineMemorySize()), 0);
  EXPECT_EQ(Machine::AttachExisting(zeros).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(MachineTest, NicMacComesFromTheBdf) {
  auto mac = NicMacFromBdf("0001:ff:1f.7");
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(*mac, (std::array<uint8_t, 6>{0x02, 0x4e, 0x48, 0x01, 0xff, 0xff}));
  EXPECT_FALSE(NicMacFromBdf("03:00.0").ok());
  EXPECT_FALSE(NicMacFromBdf("0000:03:20.0").ok());
  EXPECT_FALSE(NicMacFromBdf("0000:03:00.0x").ok());
  EXPECT_FALSE(NicMacFromBdf("00ff:ff:1f.6").ok()) << "the wire peer's MAC";
  MachineSpec spec = TwoNodeSpec();
  spec.bdf = "garbage";
  EXPECT_EQ(Machine::Create(TestPath("bad_bdf"), spec).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MachineTest, ConfigSpaceIsTheRealI210LayoutAtPowerOn) {
  auto machine = Machine::Create(TestPath("machine_config"), TwoNodeSpec());
  ASSERT_TRUE(machine.ok());
  Machine& m = **machine;
  SimConfigSpace config(m.nic(), m.layout().device_bell);
  SimBarMemory bars(m.nic(), m.layout().device_bell);

  // Byte-identical to the real dump, except MSI-X disabled at power-on.
  const char* srcdir = std::getenv("TEST_SRCDIR");
  ASSERT_NE(srcdir, nullptr);
  auto dump = pci::DumpFile::Load(std::string(srcdir) +
                                  "/nichandover/sim/testdata/intel-i210-igb_8086-1533.txt");
  ASSERT_TRUE(dump.ok()) << dump.status();
  ASSERT_EQ(dump->devices().size(), 1u);
  for (uint32_t offset = 0; offset < 256; ++offset) {
    uint8_t expected = dump->devices()[0].bytes[offset];
    if (offset == kMsixCapabilityOffset + 3) expected &= 0x7f;  // enable bit
    EXPECT_EQ(*config.Read8(offset), expected) << "offset 0x" << std::hex << offset;
  }

  pci::CapabilityWalk walk = pci::WalkCapabilities(config);
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  EXPECT_TRUE(walk.express);
  std::vector<uint16_t> ids;
  for (const auto& cap : walk.capabilities) ids.push_back(cap.id);
  EXPECT_EQ(ids, (std::vector<uint16_t>{pci::kCapIdPowerManagement, pci::kCapIdMsi,
                                        pci::kCapIdMsix, pci::kCapIdExpress}));

  auto layout = pci::DecodeInterruptLayout(config, &bars);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->capability_offset(), kMsixCapabilityOffset);
  EXPECT_FALSE(layout->enabled());
  EXPECT_EQ(layout->vectors_supported(), kMsixTableEntries);
  EXPECT_EQ(layout->table_bar(), static_cast<uint32_t>(kMsixBar));
  EXPECT_EQ(layout->pba_offset(), kMsixPbaOffset);
  ASSERT_EQ(layout->vectors_size(), static_cast<int>(kMsixTableEntries));
  for (const auto& vector : layout->vectors()) EXPECT_TRUE(vector.masked());
}

TEST(MachineTest, OwnershipCompareAndSwapHasExactlyOneWinner) {
  auto machine = Machine::Create(TestPath("machine_cas"), TwoNodeSpec());
  ASSERT_TRUE(machine.ok());
  Machine& m = **machine;
  Ownership active = m.ReadOwnership();
  // Many threads race from the same expected record, each to its own record.
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  std::vector<Ownership> wanted;
  for (int i = 0; i < 8; ++i) {
    wanted.push_back(Ownership{OwnershipState::kPreparing, 0, 1, 2 + static_cast<uint64_t>(i)});
  }
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      if (m.CompareAndSwapOwnership(active, wanted[i]) == wanted[i]) ++winners;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  Ownership now = m.ReadOwnership();
  EXPECT_EQ(now.state, OwnershipState::kPreparing);
  Ownership other{OwnershipState::kActive, 1, kNoNode, 2};
  // A losing CAS reports the record that is there.
  EXPECT_EQ(m.CompareAndSwapOwnership(active, other), now);
}

TEST(MachineTest, HandoffRingsAreFoundOnlyForTheirEpoch) {
  auto machine = Machine::Create(TestPath("machine_handoff"), TwoNodeSpec());
  ASSERT_TRUE(machine.ok());
  EXPECT_EQ((*machine)->ReadHandoff(2).status().code(), absl::StatusCode::kNotFound);
  std::vector<RingState> rings = {{5, 4, 7, 9}};
  ASSERT_TRUE((*machine)->WriteHandoff(Fence{2, 0}, rings).ok());
  auto read = (*machine)->ReadHandoff(2);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, rings);
  EXPECT_EQ((*machine)->ReadHandoff(3).status().code(), absl::StatusCode::kNotFound);
  // One ring state per queue, no more, no fewer.
  EXPECT_EQ((*machine)->WriteHandoff(Fence{4, 0}, {{1, 2, 3, 4}, {1, 2, 3, 4}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MachineTest, OwnershipWordRoundTrips) {
  Ownership o{OwnershipState::kHandoff, 3, 5, kMaxEpoch};
  EXPECT_EQ(DecodeOwnership(EncodeOwnership(o)), o);
}

}  // namespace
}  // namespace sim
}  // namespace nichandover
