#include "pci/config_space.h"

#include "gtest/gtest.h"

namespace nichandover {
namespace pci {
namespace {

TEST(MemoryConfigSpaceTest, ReadsLittleEndianAndPadsTo256) {
  MemoryConfigSpace config({0x86, 0x80, 0x33, 0x15});
  EXPECT_EQ(config.size(), 256u);
  EXPECT_EQ(config.readable_size(), 4u);
  EXPECT_EQ(*config.Read16(0), 0x8086);
  EXPECT_EQ(*config.Read16(2), 0x1533);
  EXPECT_EQ(*config.Read32(0), 0x15338086u);
  // Bytes that were never given read as all-ones, as through libpci.
  EXPECT_EQ(*config.Read32(4), 0xffffffffu);
  EXPECT_EQ(*config.Read8(0xff), 0xff);
}

TEST(MemoryConfigSpaceTest, GrowsToExtendedSizeWhenBytesPast256) {
  MemoryConfigSpace config(std::vector<uint8_t>(0x104, 0));
  EXPECT_EQ(config.size(), 4096u);
  EXPECT_EQ(*config.Read32(0x100), 0u);
  EXPECT_EQ(*config.Read32(0x104), 0xffffffffu);
}

TEST(MemoryConfigSpaceTest, RejectsMisalignedAndOutOfRange) {
  MemoryConfigSpace config(std::vector<uint8_t>(256, 0));
  EXPECT_EQ(config.Read16(1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.Read32(2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.Write32(6, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.Read32(256).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(config.Read8(256).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(MemoryConfigSpaceTest, WritesLandLittleEndianAndOnlyOnCapturedBytes) {
  MemoryConfigSpace config(std::vector<uint8_t>(64, 0));
  ASSERT_TRUE(config.Write32(0x10, 0xfee05000u).ok());
  EXPECT_EQ(config.bytes()[0x10], 0x00);
  EXPECT_EQ(config.bytes()[0x11], 0x50);
  EXPECT_EQ(config.bytes()[0x12], 0xe0);
  EXPECT_EQ(config.bytes()[0x13], 0xfe);
  ASSERT_TRUE(config.Write16(0x3e, 0x4021).ok());
  EXPECT_EQ(*config.Read16(0x3e), 0x4021);
  ASSERT_TRUE(config.Write8(0x3d, 0x7).ok());
  EXPECT_EQ(*config.Read8(0x3d), 0x7);
  EXPECT_EQ(config.Write32(0x40, 1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(MemoryConfigSpaceTest, OverBufferWritesThroughToTheCallersMemory) {
  std::vector<uint8_t> shared(4096, 0);
  MemoryConfigSpace window = MemoryConfigSpace::OverBuffer(shared.data(), 4096);
  EXPECT_EQ(window.size(), 4096u);
  ASSERT_TRUE(window.Write16(0x102, 0xbeef).ok());
  EXPECT_EQ(shared[0x102], 0xef);
  EXPECT_EQ(shared[0x103], 0xbe);
  shared[0x200] = 0x5a;
  EXPECT_EQ(*window.Read8(0x200), 0x5a);
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
