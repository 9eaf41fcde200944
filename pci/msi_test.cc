#include "pci/msi.h"

#include "gtest/gtest.h"
#include "pci/capabilities.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

TEST(MsiTest, DecodesTheRtl8111Msi) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("realtek-rtl8111-8168-r8169_07-00.0.txt", "07:00.0");
  absl::StatusOr<MsiCapability> msi = ReadMsiCapability(*config, 0x50);
  ASSERT_TRUE(msi.ok()) << msi.status();
  EXPECT_TRUE(msi->enabled());
  EXPECT_TRUE(msi->is_64bit());
  EXPECT_FALSE(msi->per_vector_masking());
  EXPECT_EQ(msi->vectors_capable(), 1u);
  EXPECT_EQ(msi->vectors_enabled(), 1u);
  EXPECT_EQ(msi->address(), 0xfee05000u);
  EXPECT_EQ(msi->data, 0x4021);
  EXPECT_EQ(msi->data_offset(), 0x5cu);
  EXPECT_EQ(msi->length(), 14u);
}

TEST(MsiTest, DecodesMaskAndPendingAndMultipleMessages) {
  std::vector<uint8_t> bytes = testing::HeaderWithCapabilities(0x40);
  // 32-bit, per-vector masking, capable of 8 (log2 3), 4 enabled (log2 2).
  const uint16_t control = kMsiControlEnable | 3 << 1 | 2 << 4 | kMsiControlPerVectorMask;
  bytes[0x40] = kCapIdMsi;
  bytes[0x42] = control & 0xff;
  bytes[0x43] = control >> 8;
  const uint8_t body[] = {0x0c, 0x30, 0xe0, 0xfe,  // address
                          0x48, 0x00, 0x00, 0x00,  // data 0x0048 + reserved
                          0x05, 0x00, 0x00, 0x00,  // mask: vectors 0 and 2
                          0x02, 0x00, 0x00, 0x00}; // pending: vector 1
  std::copy(std::begin(body), std::end(body), bytes.begin() + 0x44);
  MemoryConfigSpace config(bytes);
  absl::StatusOr<MsiCapability> msi = ReadMsiCapability(config, 0x40);
  ASSERT_TRUE(msi.ok()) << msi.status();
  EXPECT_FALSE(msi->is_64bit());
  EXPECT_EQ(msi->vectors_capable(), 8u);
  EXPECT_EQ(msi->vectors_enabled(), 4u);
  EXPECT_EQ(msi->address(), 0xfee0300cu);
  EXPECT_EQ(msi->data, 0x48);
  EXPECT_EQ(msi->mask_bits, 5u);
  EXPECT_EQ(msi->pending_bits, 2u);
  EXPECT_EQ(msi->mask_offset(), 0x4cu);
  EXPECT_EQ(msi->pending_offset(), 0x50u);
  EXPECT_EQ(msi->DataForVector(3), 0x4bu);
  EXPECT_EQ(msi->length(), 20u);
}

TEST(MsiTest, RejectsAStructurePastTheEndOrTheWrongId) {
  std::vector<uint8_t> bytes = testing::HeaderWithCapabilities(0xf0);
  bytes[0xf0] = kCapIdMsi;
  bytes[0xf2] = kMsiControl64Bit | 0x00;
  bytes[0xf3] = kMsiControlPerVectorMask >> 8;  // 64-bit + masking: 24 bytes
  MemoryConfigSpace config(bytes);
  EXPECT_EQ(ReadMsiCapability(config, 0xf0).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadMsiCapability(config, 0x34).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MsixTest, DecodesThe82576MsixCapability) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("intel-82576-igb_10c9.txt", "01:00.0");
  absl::StatusOr<MsixCapability> msix = ReadMsixCapability(*config, 0x70);
  ASSERT_TRUE(msix.ok()) << msix.status();
  // lspci: "MSI-X: Enable+ Count=10 Masked-", table BAR=3 offset=0, PBA BAR=3 offset=2000.
  EXPECT_TRUE(msix->enabled());
  EXPECT_FALSE(msix->function_masked());
  EXPECT_EQ(msix->table_size(), 10u);
  EXPECT_EQ(msix->table_bar(), 3u);
  EXPECT_EQ(msix->table_offset(), 0u);
  EXPECT_EQ(msix->pba_bar(), 3u);
  EXPECT_EQ(msix->pba_offset(), 0x2000u);
}

MsixCapability TestCapability() {
  MsixCapability cap;
  cap.offset = 0x70;
  cap.control = kMsixControlEnable | (40 - 1);
  cap.table_register = 0x1000 | 2;
  cap.pba_register = 0x3000 | 2;
  return cap;
}

TEST(MsixTest, TableEntriesAndPendingBitsLiveWhereTheSpecSays) {
  MemoryBarMemory bars;
  bars.AddBar(2, 0x4000);
  const MsixCapability cap = TestCapability();
  ASSERT_TRUE(WriteMsixMessage(bars, cap, 5, 0x00000001fee02000ull, 0x4041).ok());
  ASSERT_TRUE(WriteMsixVectorControl(bars, cap, 5, 1).ok());
  std::vector<uint8_t> bar = bars.bytes(2);
  EXPECT_EQ(bar[0x1000 + 5 * 16 + 0], 0x00);
  EXPECT_EQ(bar[0x1000 + 5 * 16 + 1], 0x20);
  EXPECT_EQ(bar[0x1000 + 5 * 16 + 4], 0x01);
  EXPECT_EQ(bar[0x1000 + 5 * 16 + 8], 0x41);
  EXPECT_EQ(bar[0x1000 + 5 * 16 + 12], 0x01);
  absl::StatusOr<MsixTableEntry> entry = ReadMsixEntry(bars, cap, 5);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->address(), 0x00000001fee02000ull);
  EXPECT_EQ(entry->data, 0x4041u);
  EXPECT_TRUE(entry->masked());

  // Pending bit of vector 37: QWORD 0, bit 37 -> DWORD 1, bit 5.
  ASSERT_TRUE(bars.Write32(2, 0x3004, 1u << 5).ok());
  EXPECT_TRUE(*ReadMsixPending(bars, cap, 37));
  EXPECT_FALSE(*ReadMsixPending(bars, cap, 5));
}

TEST(MsixTest, IndexPastTheTableAndReservedBirAreErrors) {
  MemoryBarMemory bars;
  bars.AddBar(2, 0x4000);
  MsixCapability cap = TestCapability();
  EXPECT_EQ(ReadMsixEntry(bars, cap, 40).status().code(), absl::StatusCode::kOutOfRange);
  cap.table_register = 0x1000 | 7;
  EXPECT_EQ(ReadMsixEntry(bars, cap, 0).status().code(), absl::StatusCode::kFailedPrecondition);
  cap.table_register = 0x1000 | 4;
  EXPECT_EQ(ReadMsixEntry(bars, cap, 0).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
