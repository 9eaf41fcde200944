#include "pci/interrupt_layout.h"

#include "gtest/gtest.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

TEST(InterruptLayoutTest, Rtl8111UsesMsiToApic5Vector21) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("realtek-rtl8111-8168-r8169_07-00.0.txt", "07:00.0");
  absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->mode(), v1::INTERRUPT_MODE_MSI);
  EXPECT_EQ(layout->capability_offset(), 0x50u);
  EXPECT_TRUE(layout->enabled());
  EXPECT_TRUE(layout->address_64bit());
  EXPECT_FALSE(layout->per_vector_masking());
  EXPECT_EQ(layout->vectors_supported(), 1u);
  ASSERT_EQ(layout->vectors_size(), 1);
  const v1::InterruptVector& v = layout->vectors(0);
  EXPECT_EQ(v.message().address(), 0xfee05000u);
  EXPECT_EQ(v.message().data(), 0x4021u);
  EXPECT_EQ(v.route().destination_apic_id(), 5u);
  EXPECT_EQ(v.route().vector(), 0x21u);
  EXPECT_EQ(v.route().delivery_mode(), v1::DELIVERY_MODE_FIXED);
  EXPECT_TRUE(v.route().level_assert());
}

TEST(InterruptLayoutTest, VirtioNetUsesMsixAndReadsTheTableWhenBarsAreGiven) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("virtio-net-qemu.txt", "00:09.0");
  absl::StatusOr<v1::InterruptLayout> without_bars = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(without_bars.ok()) << without_bars.status();
  EXPECT_EQ(without_bars->mode(), v1::INTERRUPT_MODE_MSIX);
  EXPECT_EQ(without_bars->capability_offset(), 0x84u);
  EXPECT_EQ(without_bars->vectors_supported(), 3u);
  EXPECT_EQ(without_bars->table_bar(), 1u);
  EXPECT_EQ(without_bars->pba_offset(), 0x800u);
  EXPECT_EQ(without_bars->vectors_size(), 0);

  MemoryBarMemory bars;
  bars.AddBar(1, 0x1000);
  ASSERT_TRUE(bars.Write32(1, 16 + 0, 0xfee03000).ok());  // entry 1 -> APIC 3
  ASSERT_TRUE(bars.Write32(1, 16 + 8, 0x0000004a).ok());  // vector 0x4a
  ASSERT_TRUE(bars.Write32(1, 16 + 12, 1).ok());          // masked
  ASSERT_TRUE(bars.Write32(1, 0x800, 0x2).ok());          // entry 1 pending
  absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, &bars);
  ASSERT_TRUE(layout.ok());
  ASSERT_EQ(layout->vectors_size(), 3);
  EXPECT_EQ(layout->vectors(1).route().destination_apic_id(), 3u);
  EXPECT_EQ(layout->vectors(1).route().vector(), 0x4au);
  EXPECT_TRUE(layout->vectors(1).masked());
  EXPECT_TRUE(layout->vectors(1).pending());
  EXPECT_FALSE(layout->vectors(0).masked());

  MemoryBarMemory too_small;
  too_small.AddBar(1, 0x20);  // the table, but not the PBA
  absl::StatusOr<v1::InterruptLayout> partial = DecodeInterruptLayout(*config, &too_small);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->vectors_size(), 0);
}

TEST(InterruptLayoutTest, DisabledMsiDeviceIsIntxButShowsItsCapability) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("intel-82545em-e1000.txt", "0002:01:01.0");
  absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->mode(), v1::INTERRUPT_MODE_INTX);
  EXPECT_EQ(layout->capability_offset(), 0xf0u);
  EXPECT_FALSE(layout->enabled());
}

TEST(InterruptLayoutTest, RemappableMessageDecodesToItsHandle) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("realtek-rtl8111-8168-r8169_07-00.0.txt", "07:00.0");
  ASSERT_TRUE(config->Write32(0x54, 0xfee00000u | 0x1234u << 5 | 1u << 4).ok());
  absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(layout.ok());
  EXPECT_TRUE(layout->vectors(0).route().remappable());
  EXPECT_EQ(layout->vectors(0).route().irte_handle(), 0x1234u);
}

TEST(InterruptLayoutTest, BrokenCapabilityListIsAnErrorNotAGuess) {
  std::vector<uint8_t> bytes = testing::HeaderWithCapabilities(0x40);
  bytes[0x40] = 0x01;
  bytes[0x41] = 0x40;  // loops before any MSI capability
  MemoryConfigSpace config(bytes);
  EXPECT_EQ(DecodeInterruptLayout(config, nullptr).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
