#include "pci/render.h"

#include "gtest/gtest.h"
#include "pci/interrupt_layout.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

TEST(RenderTest, Rtl8111ReadsLikeLspciPlusTheDecodedRoute) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("realtek-rtl8111-8168-r8169_07-00.0.txt", "07:00.0");
  absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(RenderInterruptLayout(*layout),
            (std::vector<std::string>{
                "Capabilities: [50] MSI: Enable+ Count=1/1 Maskable- 64bit+",
                "\tAddress: 00000000fee05000  Data: 4021",
                "\tVector 0: -> APIC 5 vector 0x21 fixed edge physical",
                // The MSI-X capability exists too, disabled (issue 16.11).
                "Capabilities: [b0] MSI-X: Enable- Count=2 Masked-",
                "\tVector table: BAR=4 offset=00000000",
                "\tPBA: BAR=4 offset=00000800",
            }));
}

TEST(RenderTest, MsixShowsTableAndEntries) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("virtio-net-qemu.txt", "00:09.0");
  MemoryBarMemory bars;
  bars.AddBar(1, 0x1000);
  ASSERT_TRUE(bars.Write32(1, 0, 0xfee01000).ok());
  ASSERT_TRUE(bars.Write32(1, 8, 0x41).ok());
  ASSERT_TRUE(bars.Write32(1, 16 + 12, 1).ok());
  absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, &bars);
  ASSERT_TRUE(layout.ok());
  std::vector<std::string> lines = RenderInterruptLayout(*layout);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "Capabilities: [84] MSI-X: Enable+ Count=3 Masked-");
  EXPECT_EQ(lines[1], "\tVector table: BAR=1 offset=00000000");
  EXPECT_EQ(lines[2], "\tPBA: BAR=1 offset=00000800");
  EXPECT_EQ(lines[3],
            "\tVector 0: Address: 00000000fee01000  Data: 00000041  Masked- Pending-  -> APIC 1 "
            "vector 0x41 fixed edge physical");
  EXPECT_NE(lines[4].find("Data: 00000000  Masked+ Pending-"), std::string::npos) << lines[4];
  EXPECT_NE(lines[4].find("not an x86 interrupt address"), std::string::npos);
}

TEST(RenderTest, IntxAndRemappableAreSaidPlainly) {
  v1::InterruptLayout none;
  none.set_mode(v1::INTERRUPT_MODE_INTX);
  EXPECT_EQ(RenderInterruptLayout(none)[0], "No MSI or MSI-X capability: legacy INTx only");
  v1::DecodedRoute route;
  route.set_remappable(true);
  route.set_irte_handle(0x12);
  EXPECT_EQ(DescribeRoute(route), "remappable: IRTE handle 0x0012 (interrupt remapping is on)");
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
