#include "pci/capabilities.h"

#include "gtest/gtest.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

using testing::HeaderWithCapabilities;

std::vector<uint16_t> StandardIds(const CapabilityWalk& walk) {
  std::vector<uint16_t> ids;
  for (const Capability& cap : walk.capabilities) {
    if (cap.list == CapabilityList::kStandard) ids.push_back(cap.id);
  }
  return ids;
}

TEST(CapabilitiesTest, WalksTheRealRtl8111Lists) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("realtek-rtl8111-8168-r8169_07-00.0.txt", "07:00.0");
  CapabilityWalk walk = WalkCapabilities(*config);
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  ASSERT_TRUE(walk.extended_status.ok()) << walk.extended_status;
  // lspci -vvv: PM [40], MSI [50], Express [70], MSI-X [b0], VPD [d0];
  // extended: AER [100], VC [140], DSN [160].
  EXPECT_EQ(StandardIds(walk), (std::vector<uint16_t>{0x01, 0x05, 0x10, 0x11, 0x03}));
  EXPECT_TRUE(walk.express);
  std::vector<std::pair<uint16_t, uint32_t>> extended;
  for (const Capability& cap : walk.capabilities) {
    if (cap.list == CapabilityList::kExtended) extended.push_back({cap.id, cap.offset});
  }
  EXPECT_EQ(extended, (std::vector<std::pair<uint16_t, uint32_t>>{
                          {0x0001, 0x100}, {0x0002, 0x140}, {0x0003, 0x160}}));
  absl::StatusOr<Capability> msix = FindCapability(walk, CapabilityList::kStandard, kCapIdMsix);
  ASSERT_TRUE(msix.ok());
  EXPECT_EQ(msix->offset, 0xb0u);
}

TEST(CapabilitiesTest, NoCapabilityListBitMeansNoCapabilities) {
  std::vector<uint8_t> bytes = HeaderWithCapabilities(0x40);
  bytes[0x06] = 0;
  MemoryConfigSpace config(bytes);
  CapabilityWalk walk = WalkCapabilities(config);
  EXPECT_TRUE(walk.status.ok());
  EXPECT_TRUE(walk.capabilities.empty());
  EXPECT_EQ(FindCapability(walk, CapabilityList::kStandard, kCapIdMsi).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CapabilitiesTest, LoopIsAnErrorNotAHang) {
  std::vector<uint8_t> bytes = HeaderWithCapabilities(0x40);
  bytes[0x40] = kCapIdPowerManagement;
  bytes[0x41] = 0x50;
  bytes[0x50] = kCapIdMsi;
  bytes[0x51] = 0x40;  // back to the first
  MemoryConfigSpace config(bytes);
  CapabilityWalk walk = WalkCapabilities(config);
  EXPECT_EQ(walk.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(walk.status.message().find("loops"), absl::string_view::npos) << walk.status;
  EXPECT_EQ(StandardIds(walk), (std::vector<uint16_t>{0x01, 0x05}));
  // The capability found before the loop is still found.
  EXPECT_TRUE(FindCapability(walk, CapabilityList::kStandard, kCapIdMsi).ok());
  EXPECT_EQ(FindCapability(walk, CapabilityList::kStandard, kCapIdMsix).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(CapabilitiesTest, SelfLoopIsAnError) {
  std::vector<uint8_t> bytes = HeaderWithCapabilities(0x40);
  bytes[0x40] = kCapIdMsi;
  bytes[0x41] = 0x43;  // low bits ignored: 0x40 again
  MemoryConfigSpace config(bytes);
  EXPECT_EQ(WalkCapabilities(config).status.code(), absl::StatusCode::kDataLoss);
}

TEST(CapabilitiesTest, PointerIntoTheHeaderIsAnError) {
  std::vector<uint8_t> first_bad = HeaderWithCapabilities(0x10);
  MemoryConfigSpace config(first_bad);
  CapabilityWalk walk = WalkCapabilities(config);
  EXPECT_EQ(walk.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(walk.status.message().find("into the header"), absl::string_view::npos);

  std::vector<uint8_t> later_bad = HeaderWithCapabilities(0x40);
  later_bad[0x40] = kCapIdMsi;
  later_bad[0x41] = 0x3c;
  MemoryConfigSpace config2(later_bad);
  CapabilityWalk walk2 = WalkCapabilities(config2);
  EXPECT_EQ(walk2.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(walk2.capabilities.size(), 1u);
}

TEST(CapabilitiesTest, AllOnesIdIsABrokenChain) {
  std::vector<uint8_t> bytes = HeaderWithCapabilities(0x40);
  bytes[0x40] = 0xff;
  bytes[0x41] = 0xff;
  MemoryConfigSpace config(bytes);
  CapabilityWalk walk = WalkCapabilities(config);
  EXPECT_EQ(walk.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(walk.status.message().find("broken"), absl::string_view::npos);
}

TEST(CapabilitiesTest, ShortDumpSaysNotCapturedInsteadOfDecodingOnes) {
  std::vector<uint8_t> bytes = HeaderWithCapabilities(0x40, 64);  // lspci -x
  MemoryConfigSpace config(bytes);
  CapabilityWalk walk = WalkCapabilities(config);
  EXPECT_EQ(walk.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(walk.status.message().find("64 bytes"), absl::string_view::npos) << walk.status;
}

TEST(CapabilitiesTest, StructurePastTheEndIsAnError) {
  std::vector<uint8_t> bytes = HeaderWithCapabilities(0xf8);
  bytes[0xf8] = kCapIdMsi;
  MemoryConfigSpace config(bytes);
  EXPECT_TRUE(WalkCapabilities(config).status.ok());
  EXPECT_EQ(CheckStructure(config, 0xf8, 24, "MSI capability").code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(CheckStructure(config, 0xf4, 12, "MSI-X capability").ok());
}

std::vector<uint8_t> ExpressDeviceWithExtended() {
  std::vector<uint8_t> bytes = HeaderWithCapabilities(0x40, 4096);
  bytes[0x40] = kCapIdExpress;
  return bytes;
}

void SetExtendedHeader(std::vector<uint8_t>& bytes, uint32_t at, uint16_t id, uint32_t next) {
  const uint32_t header = id | 1u << 16 | next << 20;
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(header >> (8 * i));
}

TEST(CapabilitiesTest, ExtendedLoopAndPointerIntoStandardSpaceAreErrors) {
  std::vector<uint8_t> looped = ExpressDeviceWithExtended();
  SetExtendedHeader(looped, 0x100, 0x0001, 0x140);
  SetExtendedHeader(looped, 0x140, 0x0003, 0x100);
  MemoryConfigSpace config(looped);
  CapabilityWalk walk = WalkCapabilities(config);
  EXPECT_TRUE(walk.status.ok());
  EXPECT_EQ(walk.extended_status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(walk.capabilities.size(), 3u);

  std::vector<uint8_t> into_standard = ExpressDeviceWithExtended();
  SetExtendedHeader(into_standard, 0x100, 0x0001, 0x0fc);
  MemoryConfigSpace config2(into_standard);
  CapabilityWalk walk2 = WalkCapabilities(config2);
  EXPECT_EQ(walk2.extended_status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(walk2.extended_status.message().find("standard space"), absl::string_view::npos);
}

TEST(CapabilitiesTest, ExtendedSpaceOfAllOnesMeansNone) {
  std::vector<uint8_t> bytes = ExpressDeviceWithExtended();
  for (size_t i = 0x100; i < bytes.size(); ++i) bytes[i] = 0xff;
  MemoryConfigSpace config(bytes);
  CapabilityWalk walk = WalkCapabilities(config);
  EXPECT_TRUE(walk.extended_status.ok());
  EXPECT_EQ(walk.capabilities.size(), 1u);
}

TEST(CapabilitiesTest, EveryByteValueAsTheOnlyPointerTerminates) {
  // Every possible first pointer and a self-referencing fill: the walk must
  // end with a result for each (no hang, no crash).
  for (int pointer = 0; pointer < 256; ++pointer) {
    for (int fill : {0x00, 0x40, 0xfc, 0xff}) {
      std::vector<uint8_t> bytes(256, static_cast<uint8_t>(fill));
      bytes[0x06] = 0x10;
      bytes[0x0e] = 0;
      bytes[0x34] = static_cast<uint8_t>(pointer);
      MemoryConfigSpace config(bytes);
      CapabilityWalk walk = WalkCapabilities(config);
      EXPECT_LE(walk.capabilities.size(), 48u);
    }
  }
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
