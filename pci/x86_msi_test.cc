#include "pci/x86_msi.h"

#include <random>

#include "gtest/gtest.h"

namespace nichandover {
namespace pci {
namespace {

TEST(X86MsiTest, DecodesTheRtl8111MessageFromItsDump) {
  // lspci: "Address: 00000000fee05000  Data: 4021".
  X86MsiMessage m = DecodeX86Msi(0xfee05000, 0x4021);
  EXPECT_TRUE(m.IsInterruptAddress());
  EXPECT_FALSE(m.remappable);
  EXPECT_EQ(m.destination_apic_id, 5);
  EXPECT_EQ(m.vector, 0x21);
  EXPECT_EQ(m.delivery_mode, X86DeliveryMode::kFixed);
  EXPECT_TRUE(m.level_assert);
  EXPECT_FALSE(m.level_trigger);
  EXPECT_FALSE(m.logical_destination);
  EXPECT_FALSE(m.redirection_hint);
  EXPECT_EQ(DescribeX86Msi(m), "APIC 5 vector 0x21 fixed edge physical");
}

TEST(X86MsiTest, DecodesEveryCompatibilityField) {
  // dest 0xab, ext dest 0x15, RH, logical; vector 0xec, lowest priority,
  // level-triggered, asserted.
  const uint32_t address = 0xfee00000 | 0xab << 12 | 0x15 << 5 | 1 << 3 | 1 << 2;
  const uint32_t data = 0xec | 1 << 8 | 1 << 14 | 1 << 15;
  X86MsiMessage m = DecodeX86Msi(address, data);
  EXPECT_EQ(m.destination_apic_id, 0xab);
  EXPECT_EQ(m.extended_destination_id, 0x15);
  EXPECT_TRUE(m.redirection_hint);
  EXPECT_TRUE(m.logical_destination);
  EXPECT_EQ(m.vector, 0xec);
  EXPECT_EQ(m.delivery_mode, X86DeliveryMode::kLowestPriority);
  EXPECT_TRUE(m.level_trigger);
  EXPECT_TRUE(m.level_assert);
}

TEST(X86MsiTest, DecodesTheRemappableFormatAsAnIrteHandle) {
  // VT-d: handle[14:0] in bits 19:5, handle[15] in bit 2, format bit 4, SHV bit 3.
  const uint16_t handle = 0x8123;
  const uint32_t address = 0xfee00000 | (handle & 0x7fff) << 5 | 1 << 4 | 1 << 3 | (handle >> 15) << 2;
  X86MsiMessage m = DecodeX86Msi(address, 0);
  EXPECT_TRUE(m.remappable);
  EXPECT_EQ(m.irte_handle, handle);
  EXPECT_TRUE(m.subhandle_valid);
  EXPECT_EQ(m.destination_apic_id, 0);
  EXPECT_NE(DescribeX86Msi(m).find("IRTE handle 0x8123"), std::string::npos);
}

TEST(X86MsiTest, EveryMessageRoundTripsExactly) {
  std::mt19937_64 random(42);
  std::vector<std::pair<uint64_t, uint32_t>> cases = {
      {0, 0}, {~0ull, ~0u}, {0xfee05000, 0x4021}, {0xfee0001c, 0xffff}, {0x12345678abcdef01ull, 0x80000000}};
  for (int i = 0; i < 200000; ++i) cases.push_back({random(), static_cast<uint32_t>(random())});
  for (const auto& [address, data] : cases) {
    absl::StatusOr<RawMsiMessage> raw = EncodeX86Msi(DecodeX86Msi(address, data));
    ASSERT_TRUE(raw.ok()) << std::hex << address << " " << data << ": " << raw.status();
    ASSERT_EQ(raw->address, address) << std::hex << address;
    ASSERT_EQ(raw->data, data) << std::hex << data;
  }
}

TEST(X86MsiTest, ComposesWhatLinuxWritesAndRefusesWideApicIds) {
  absl::StatusOr<RawMsiMessage> raw = ComposeFixedX86Msi(2, 0x41);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->address, 0xfee02000u);
  EXPECT_EQ(raw->data, 0x41u);
  EXPECT_EQ(ComposeFixedX86Msi(0x100, 0x41).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(X86MsiTest, EncodeRejectsFieldsThatDoNotFit) {
  X86MsiMessage m;
  m.remappable = true;
  m.destination_apic_id = 3;
  EXPECT_FALSE(EncodeX86Msi(m).ok());
  X86MsiMessage c;
  c.irte_handle = 5;
  EXPECT_FALSE(EncodeX86Msi(c).ok());
  X86MsiMessage e;
  e.extended_destination_id = 0x80;
  EXPECT_FALSE(EncodeX86Msi(e).ok());
}

TEST(X86MsiTest, NonX86AddressesAreSaidToBeSo) {
  X86MsiMessage arm = DecodeX86Msi(0x2f020040, 0);  // a GIC ITS doorbell
  EXPECT_FALSE(arm.IsInterruptAddress());
  EXPECT_EQ(DescribeX86Msi(arm), "not an x86 interrupt address");
  EXPECT_FALSE(DecodeX86Msi(0, 0).IsInterruptAddress());
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
