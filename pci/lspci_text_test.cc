#include "pci/lspci_text.h"

#include "gtest/gtest.h"

namespace nichandover {
namespace pci {
namespace {

TEST(LspciTextTest, ParsesTheCurrentWording) {
  absl::StatusOr<std::vector<LspciDevice>> devices = ParseLspciVerbose(
      "07:00.0 Ethernet controller: Realtek (rev 02)\n"
      "\tCapabilities: [50] MSI: Enable+ Count=1/1 Maskable- 64bit+\n"
      "\t\tAddress: 00000000fee05000  Data: 4021\n"
      "\tCapabilities: [b0] MSI-X: Enable- Count=2 Masked-\n"
      "\t\tVector table: BAR=4 offset=00000000\n"
      "\t\tPBA: BAR=4 offset=00000800\n");
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 1u);
  const LspciDevice& d = (*devices)[0];
  EXPECT_EQ(d.bdf.ToString(), "0000:07:00.0");
  ASSERT_TRUE(d.msi.has_value());
  EXPECT_EQ(d.msi->offset, 0x50u);
  EXPECT_TRUE(d.msi->enabled);
  EXPECT_EQ(d.msi->maskable, false);
  EXPECT_TRUE(d.msi->is_64bit);
  EXPECT_EQ(d.msi->address, 0xfee05000u);
  EXPECT_EQ(d.msi->data, 0x4021u);
  EXPECT_FALSE(d.msi->mask_bits.has_value());
  ASSERT_TRUE(d.msix.has_value());
  EXPECT_EQ(d.msix->offset, 0xb0u);
  EXPECT_EQ(d.msix->table_size, 2u);
  EXPECT_EQ(d.msix->table_bar, 4u);
  EXPECT_EQ(d.msix->pba_offset, 0x800u);
}

TEST(LspciTextTest, ParsesThe30Wording) {
  absl::StatusOr<std::vector<LspciDevice>> devices = ParseLspciVerbose(
      "01:00.0 Ethernet controller: Intel Corporation Device 10c9 (rev 01)\n"
      "\tCapabilities: [50] MSI: Mask+ 64bit+ Count=1/1 Enable-\n"
      "\t\tAddress: 0000000000000000  Data: 0000\n"
      "\t\tMasking: 00000000  Pending: 00000000\n"
      "\tCapabilities: [70] MSI-X: Enable+ Mask- TabSize=10\n");
  ASSERT_TRUE(devices.ok()) << devices.status();
  const LspciDevice& d = (*devices)[0];
  EXPECT_EQ(d.msi->maskable, true);
  EXPECT_FALSE(d.msi->enabled);
  EXPECT_EQ(d.msi->mask_bits, 0u);
  EXPECT_EQ(d.msix->table_size, 10u);
  EXPECT_TRUE(d.msix->enabled);
  EXPECT_FALSE(d.msix->function_masked);
}

TEST(LspciTextTest, ParsesThe2xWordingWithLog2Counts) {
  absl::StatusOr<std::vector<LspciDevice>> devices = ParseLspciVerbose(
      "0000:02:00.0 Ethernet controller: x\n"
      "\tCapabilities: [e0] Message Signalled Interrupts: 64bit+ Queue=2/3 Enable+\n"
      "\t\tAddress: 00000000fee0300c  Data: 4149\n");
  ASSERT_TRUE(devices.ok()) << devices.status();
  const LspciMsi& msi = *(*devices)[0].msi;
  EXPECT_FALSE(msi.maskable.has_value());
  EXPECT_EQ(msi.vectors_enabled, 4u);
  EXPECT_EQ(msi.vectors_capable, 8u);
  EXPECT_EQ(msi.address, 0xfee0300cu);
}

TEST(LspciTextTest, RecordsListVerdictsAndRejectsUnknownTokens) {
  absl::StatusOr<std::vector<LspciDevice>> devices = ParseLspciVerbose(
      "00:01.0 x\n\tCapabilities: <access denied>\n"
      "00:02.0 y\n\tCapabilities: [40] <chain looped>\n");
  ASSERT_TRUE(devices.ok());
  EXPECT_TRUE((*devices)[0].access_denied);
  EXPECT_TRUE((*devices)[1].chain_looped);
  EXPECT_FALSE(ParseLspciVerbose("00:01.0 x\n\tCapabilities: [50] MSI: Enable+ Frob=3\n").ok());
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
