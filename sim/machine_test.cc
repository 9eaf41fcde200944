#include "sim/machine.h"

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
  RingState rings{5, 4, 7, 9};
  (*machine)->WriteHandoff(2, rings);
  auto read = (*machine)->ReadHandoff(2);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, rings);
  EXPECT_EQ((*machine)->ReadHandoff(3).status().code(), absl::StatusCode::kNotFound);
}

TEST(MachineTest, OwnershipWordRoundTrips) {
  Ownership o{OwnershipState::kHandoff, 3, 5, kMaxEpoch};
  EXPECT_EQ(DecodeOwnership(EncodeOwnership(o)), o);
}

}  // namespace
}  // namespace sim
}  // namespace nichandover
