#include "pci/dump_file.h"

#include "gtest/gtest.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

TEST(DumpFileTest, ParsesSeveralDevicesCommentsAndDecodeLines) {
  absl::StatusOr<DumpFile> dump = DumpFile::Parse(
      "# a comment line\n"
      "0000:07:00.0 Ethernet controller: Realtek\n"
      "\tSubsystem: something decoded by -vvv\n"
      "00: ec 10 68 81 07 04 10 00\n"
      "# 10: 11 11 11 11 (a comment inside a device is skipped)\n"
      "\n"
      "01:00.1 Ethernet controller: Intel\r\n"
      "00: 86 80\r\n"
      "100: 01 00 01 14\n");
  ASSERT_TRUE(dump.ok()) << dump.status();
  ASSERT_EQ(dump->devices().size(), 2u);
  const DumpDevice& realtek = dump->devices()[0];
  EXPECT_EQ(realtek.bdf.ToString(), "0000:07:00.0");
  EXPECT_EQ(realtek.description, "Ethernet controller: Realtek");
  EXPECT_EQ(realtek.captured_length, 8u);
  EXPECT_EQ(realtek.bytes.size(), 256u);
  EXPECT_EQ(realtek.bytes[0x10], 0xff);
  const DumpDevice& intel = dump->devices()[1];
  EXPECT_EQ(intel.bdf.ToString(), "0000:01:00.1");
  EXPECT_EQ(intel.bytes.size(), 4096u);
  EXPECT_EQ(intel.captured_length, 0x104u);
  EXPECT_EQ(intel.bytes[0x100], 0x01);
  EXPECT_EQ(intel.bytes[0x03], 0xff);  // not given: all-ones

  std::unique_ptr<MemoryConfigSpace> config = ConfigSpaceOf(intel);
  EXPECT_EQ(config->size(), 4096u);
  EXPECT_EQ(*config->Read16(0), 0x8086);
  EXPECT_EQ(*config->Read32(0x200), 0xffffffffu);
}

TEST(DumpFileTest, HexLinesOutsideADeviceAreIgnored) {
  absl::StatusOr<DumpFile> dump = DumpFile::Parse("00: 86 80\n\n03:00.0 x\n\n00: 11 22\n");
  ASSERT_TRUE(dump.ok()) << dump.status();
  ASSERT_EQ(dump->devices().size(), 1u);
  EXPECT_EQ(dump->devices()[0].captured_length, 0u);
}

TEST(DumpFileTest, HeaderNeedsTheSpaceAfterTheAddressAsInLibpci) {
  absl::StatusOr<DumpFile> dump = DumpFile::Parse("03:00.0\n00: 11\n");
  ASSERT_TRUE(dump.ok());
  EXPECT_TRUE(dump->devices().empty());
}

TEST(DumpFileTest, MalformedHexAndOffsetsPastTheEndAreErrorsWithLineNumbers) {
  absl::StatusOr<DumpFile> bad = DumpFile::Parse("03:00.0 x\n00: 86 8\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("line 2"), absl::string_view::npos) << bad.status();

  absl::StatusOr<DumpFile> past = DumpFile::Parse("03:00.0 x\nff0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n");
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.status().message().find("4096"), absl::string_view::npos) << past.status();

  absl::StatusOr<DumpFile> trailing = DumpFile::Parse("03:00.0 x\n00: 86 80  \n");
  EXPECT_FALSE(trailing.ok());
}

TEST(DumpFileTest, ConfigSpacesAreIndependentWritableCopies) {
  DumpFile dump = testing::LoadDump("realtek-rtl8111-8168-r8169_07-00.0.txt");
  absl::StatusOr<Bdf> bdf = ParseBdf("07:00.0");
  ASSERT_TRUE(bdf.ok());
  absl::StatusOr<std::unique_ptr<MemoryConfigSpace>> first = dump.OpenConfigSpace(*bdf);
  absl::StatusOr<std::unique_ptr<MemoryConfigSpace>> second = dump.OpenConfigSpace(*bdf);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE((*first)->Write16(0x5c, 0x4041).ok());
  EXPECT_EQ(*(*first)->Read16(0x5c), 0x4041);
  EXPECT_EQ(*(*second)->Read16(0x5c), 0x4021);
  EXPECT_EQ(dump.OpenConfigSpace(Bdf{0, 9, 0, 0}).status().code(), absl::StatusCode::kNotFound);
}

TEST(DumpFileTest, EveryRealDumpParsesWithAtLeastOneFullHeader) {
  for (const std::string& path : testing::AllDumpPaths()) {
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok()) << path << ": " << dump.status();
    ASSERT_FALSE(dump->devices().empty()) << path;
    for (const DumpDevice& device : dump->devices()) {
      EXPECT_GE(device.captured_length, 64u) << path << " " << device.bdf.ToString();
    }
  }
}

TEST(DumpFileTest, MissingFileIsNotFound) {
  EXPECT_EQ(DumpFile::Load("no/such/dump.txt").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
