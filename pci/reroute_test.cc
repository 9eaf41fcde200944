#include "pci/reroute.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "pci/dump_file.h"
#include "pci/interrupt_layout.h"
#include "pci/msi.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

constexpr char kRtl8111[] = "realtek-rtl8111-8168-r8169_07-00.0.txt";

RawMsiMessage Fixed(uint32_t apic, uint8_t vector) { return *ComposeFixedX86Msi(apic, vector); }

TEST(RerouteTest, Rtl8111MsiFromApic5Vector21ToApic2Vector41ReadsBack) {
  std::unique_ptr<MemoryConfigSpace> config = testing::OpenDevice(kRtl8111, "07:00.0");
  const std::vector<uint8_t> original = config->bytes();

  absl::StatusOr<v1::InterruptLayout> before = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->mode(), v1::INTERRUPT_MODE_MSI);
  ASSERT_EQ(before->vectors_size(), 1);
  EXPECT_EQ(before->vectors(0).route().destination_apic_id(), 5u);
  EXPECT_EQ(before->vectors(0).route().vector(), 0x21u);

  // Keep every other bit of the current message (the level-assert bit Linux
  // of that era set), change destination and vector.
  X86MsiMessage wanted = DecodeX86Msi(before->vectors(0).message().address(),
                                      before->vectors(0).message().data());
  wanted.destination_apic_id = 2;
  wanted.vector = 0x41;
  absl::StatusOr<RawMsiMessage> target = EncodeX86Msi(wanted);
  ASSERT_TRUE(target.ok());

  ApplyOutcome outcome;
  absl::StatusOr<ReroutePlan> plan = Reroute(*config, nullptr, {*target}, &outcome);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // No per-vector masking: two steps, and the attach must replay.
  EXPECT_TRUE(outcome.replay_required);
  EXPECT_EQ(plan->previous, (std::vector<RawMsiMessage>{{0xfee05000, 0x4021}}));

  absl::StatusOr<v1::InterruptLayout> after = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->vectors(0).route().destination_apic_id(), 2u);
  EXPECT_EQ(after->vectors(0).route().vector(), 0x41u);
  EXPECT_EQ(after->vectors(0).message().address(), 0xfee02000u);
  EXPECT_EQ(after->vectors(0).message().data(), 0x4041u);

  absl::StatusOr<ApplyOutcome> restored = Restore(*config, nullptr, *plan);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(config->bytes(), original);
}

TEST(RerouteTest, UnmaskedMsiChangesTheVectorBeforeTheDestination) {
  std::unique_ptr<MemoryConfigSpace> config = testing::OpenDevice(kRtl8111, "07:00.0");
  absl::StatusOr<ReroutePlan> plan = PlanReroute(*config, nullptr, {Fixed(2, 0x41)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> writes;
  for (const RegisterOp& op : plan->forward) {
    if (op.kind == RegisterOp::Kind::kWrite) writes.push_back(op.what);
  }
  EXPECT_EQ(writes, (std::vector<std::string>{"MSI data", "MSI address low", "MSI address high"}));

  // Only the destination changes: one step, nothing to replay.
  absl::StatusOr<ReroutePlan> same_vector = PlanReroute(*config, nullptr, {{0xfee02000, 0x4021}});
  ASSERT_TRUE(same_vector.ok());
  EXPECT_FALSE(same_vector->replay_required);
}

TEST(RerouteTest, RemappableFormatIsRefusedWithTheIrteExplanation) {
  std::unique_ptr<MemoryConfigSpace> config = testing::OpenDevice(kRtl8111, "07:00.0");
  // Current message in the remappable format: handle 0x0007.
  ASSERT_TRUE(config->Write32(0x54, 0xfee00000u | 7u << 5 | 1u << 4).ok());
  absl::StatusOr<ReroutePlan> plan = PlanReroute(*config, nullptr, {Fixed(2, 0x41)});
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find("interrupt remapping is on"), absl::string_view::npos);
  EXPECT_NE(plan.status().message().find("IRTE must be edited"), absl::string_view::npos);
  EXPECT_NE(plan.status().message().find("0x0007"), absl::string_view::npos) << plan.status();

  std::unique_ptr<MemoryConfigSpace> clean = testing::OpenDevice(kRtl8111, "07:00.0");
  const std::vector<uint8_t> original = clean->bytes();
  absl::StatusOr<ReroutePlan> target_remapped =
      PlanReroute(*clean, nullptr, {{0xfee00000u | 1u << 4, 0}});
  EXPECT_EQ(target_remapped.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(clean->bytes(), original);  // nothing written
}

TEST(RerouteTest, IntxDeviceIsRefused) {
  std::unique_ptr<MemoryConfigSpace> config =
      testing::OpenDevice("intel-82545em-e1000.txt", "0002:01:01.0");
  EXPECT_EQ(PlanReroute(*config, nullptr, {Fixed(1, 0x30)}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RerouteTest, BadTargetListsAreInvalidArguments) {
  std::unique_ptr<MemoryConfigSpace> config = testing::OpenDevice(kRtl8111, "07:00.0");
  EXPECT_EQ(PlanReroute(*config, nullptr, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanReroute(*config, nullptr, {Fixed(1, 0x30), Fixed(1, 0x31)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanReroute(*config, nullptr, {{0x12340000, 0x30}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A device with a 64-bit, maskable, 4-of-8 multiple-message MSI.
std::unique_ptr<MemoryConfigSpace> MaskableMultiMsiDevice() {
  std::vector<uint8_t> bytes = testing::HeaderWithCapabilities(0x50);
  const uint16_t control = kMsiControlEnable | 3 << 1 | 2 << 4 | kMsiControl64Bit |
                           kMsiControlPerVectorMask;
  bytes[0x50] = 0x05;
  bytes[0x52] = control & 0xff;
  bytes[0x53] = control >> 8;
  const uint8_t body[] = {0x00, 0x30, 0xe0, 0xfe, 0, 0, 0, 0,  // APIC 3
                          0x60, 0x00, 0, 0,                    // data 0x60 (vectors 0x60..0x63)
                          0x00, 0x00, 0x00, 0x80,              // mask: bit 31 (unused) set
                          0x00, 0x00, 0x00, 0x00};
  std::copy(std::begin(body), std::end(body), bytes.begin() + 0x54);
  return std::make_unique<MemoryConfigSpace>(bytes);
}

TEST(RerouteTest, MaskableMsiIsMaskedWrittenAndLeftMaskedThenRestoredExactly) {
  std::unique_ptr<MemoryConfigSpace> config = MaskableMultiMsiDevice();
  const std::vector<uint8_t> original = config->bytes();
  std::vector<RawMsiMessage> target;
  for (uint32_t i = 0; i < 4; ++i) target.push_back(Fixed(7, static_cast<uint8_t>(0x84 + i)));

  absl::StatusOr<ReroutePlan> plan = PlanReroute(*config, nullptr, target);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->replay_required);
  // The very first write masks the vectors.
  ASSERT_FALSE(plan->forward.empty());
  EXPECT_EQ(plan->forward[0].what, "MSI mask bits (mask)");
  EXPECT_EQ(plan->forward[0].value, 0x8000000fu);

  // An interrupt arrives while masked: the device sets a pending bit.
  absl::StatusOr<ApplyOutcome> outcome = ApplyRegisterOps(plan->forward, *config, nullptr);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  absl::StatusOr<v1::InterruptLayout> after = DecodeInterruptLayout(*config, nullptr);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->vectors_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(after->vectors(i).masked()) << i;
    EXPECT_EQ(after->vectors(i).route().destination_apic_id(), 7u);
    EXPECT_EQ(after->vectors(i).route().vector(), 0x84u + i);
  }
  ASSERT_TRUE(config->Write32(0x64, 0x4).ok());  // pending register of a 64-bit MSI at 0x50
  absl::StatusOr<ApplyOutcome> again = ApplyRegisterOps(plan->forward, *config, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->pending_vectors, std::vector<uint32_t>{2});
  ASSERT_TRUE(config->Write32(0x64, 0).ok());

  ASSERT_TRUE(Restore(*config, nullptr, *plan).ok());
  EXPECT_EQ(config->bytes(), original);
}

TEST(RerouteTest, MultiMessageTargetsMustBeOneAlignedBlock) {
  std::unique_ptr<MemoryConfigSpace> config = MaskableMultiMsiDevice();
  std::vector<RawMsiMessage> misaligned;
  for (uint32_t i = 0; i < 4; ++i) misaligned.push_back(Fixed(7, static_cast<uint8_t>(0x82 + i)));
  EXPECT_EQ(PlanReroute(*config, nullptr, misaligned).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A ConfigSpace that drops writes to one offset, like a register that does
// not take the value.
class StuckRegister : public ConfigSpace {
 public:
  StuckRegister(std::unique_ptr<MemoryConfigSpace> inner, uint32_t stuck)
      : inner_(std::move(inner)), stuck_(stuck) {}
  uint32_t size() const override { return inner_->size(); }

 protected:
  absl::StatusOr<uint32_t> ReadAligned(uint32_t offset, int width) override {
    if (width == 1) return inner_->Read8(offset);
    if (width == 2) return inner_->Read16(offset);
    return inner_->Read32(offset);
  }
  absl::Status WriteAligned(uint32_t offset, int width, uint32_t value) override {
    if (offset == stuck_) return absl::OkStatus();
    if (width == 2) return inner_->Write16(offset, static_cast<uint16_t>(value));
    return inner_->Write32(offset, value);
  }

 private:
  std::unique_ptr<MemoryConfigSpace> inner_;
  uint32_t stuck_;
};

TEST(RerouteTest, ReadBackMismatchAbortsNamingTheRegister) {
  StuckRegister config(testing::OpenDevice(kRtl8111, "07:00.0"), 0x54);
  ApplyOutcome outcome;
  absl::StatusOr<ReroutePlan> plan = Reroute(config, nullptr, {Fixed(2, 0x41)}, &outcome);
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(plan.status().message().find("MSI address low"), absl::string_view::npos)
      << plan.status();
}

// ---- MSI-X over every real dump that has it ----

// BAR memory holding a table programmed with x86 messages (every third entry
// masked) and an empty PBA, for the device's own table/PBA layout.
MemoryBarMemory ProgrammedBars(const MsixCapability& cap) {
  MemoryBarMemory bars;
  const uint64_t table_end = cap.EntryOffset(cap.table_size());
  const uint64_t pba_end = cap.pba_offset() + 8ull * ((cap.table_size() + 63) / 64);
  if (cap.table_bar() == cap.pba_bar()) {
    bars.AddBar(static_cast<int>(cap.table_bar()), std::max(table_end, pba_end));
  } else {
    bars.AddBar(static_cast<int>(cap.table_bar()), table_end);
    bars.AddBar(static_cast<int>(cap.pba_bar()), pba_end);
  }
  for (uint32_t i = 0; i < cap.table_size(); ++i) {
    const RawMsiMessage m = Fixed(i % 8, static_cast<uint8_t>(0x30 + i % 0xc0));
    EXPECT_TRUE(WriteMsixMessage(bars, cap, i, m.address, m.data).ok());
    EXPECT_TRUE(WriteMsixVectorControl(bars, cap, i, i % 3 == 0 ? 1 : 0).ok());
  }
  return bars;
}

TEST(RerouteTest, EveryRealMsixDeviceReroutesEntryByEntryAndRestoresByteExactly) {
  int devices = 0;
  for (const std::string& path : testing::AllDumpPaths()) {
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok()) << dump.status();
    for (const DumpDevice& device : dump->devices()) {
      std::unique_ptr<MemoryConfigSpace> config = ConfigSpaceOf(device);
      absl::StatusOr<DeviceInterrupts> interrupts = ReadDeviceInterrupts(*config);
      if (!interrupts.ok() || interrupts->mode() != v1::INTERRUPT_MODE_MSIX) continue;
      ++devices;
      SCOPED_TRACE(path + " " + device.bdf.ToString());
      const MsixCapability& cap = *interrupts->msix;
      MemoryBarMemory bars = ProgrammedBars(cap);
      const std::vector<uint8_t> config_before = config->bytes();
      const std::vector<uint8_t> table_before = bars.bytes(static_cast<int>(cap.table_bar()));

      std::vector<RawMsiMessage> target;
      for (uint32_t i = 0; i < cap.table_size(); ++i) {
        target.push_back(Fixed(0x20 + i % 4, static_cast<uint8_t>(0xd0 - i % 0x90)));
      }
      ApplyOutcome outcome;
      absl::StatusOr<ReroutePlan> plan = Reroute(*config, &bars, target, &outcome);
      ASSERT_TRUE(plan.ok()) << plan.status();
      EXPECT_FALSE(outcome.replay_required);
      // Every entry is masked before its message is touched.
      std::vector<bool> masked(cap.table_size(), false);
      for (const RegisterOp& op : plan->forward) {
        if (op.kind != RegisterOp::Kind::kWrite) continue;
        if (op.what.find("vector control") != std::string::npos) masked[op.vector] = true;
        else EXPECT_TRUE(masked[op.vector]) << op.what;
      }
      absl::StatusOr<v1::InterruptLayout> after = DecodeInterruptLayout(*config, &bars);
      ASSERT_TRUE(after.ok()) << after.status();
      ASSERT_EQ(after->vectors_size(), static_cast<int>(cap.table_size()));
      for (uint32_t i = 0; i < cap.table_size(); ++i) {
        EXPECT_TRUE(after->vectors(i).masked()) << i;
        EXPECT_EQ(after->vectors(i).route().destination_apic_id(), 0x20 + i % 4);
        EXPECT_EQ(after->vectors(i).route().vector(), 0xd0 - i % 0x90);
      }
      ASSERT_TRUE(Restore(*config, &bars, *plan).ok());
      EXPECT_EQ(config->bytes(), config_before);
      EXPECT_EQ(bars.bytes(static_cast<int>(cap.table_bar())), table_before);
    }
  }
  EXPECT_GE(devices, 5);  // 82576, I210, X710 x2, RTL8168 (N1SDP), virtio-net
}

TEST(RerouteTest, EveryRealMsiDeviceReroutesAndRestoresByteExactly) {
  int devices = 0;
  for (const std::string& path : testing::AllDumpPaths()) {
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok());
    for (const DumpDevice& device : dump->devices()) {
      std::unique_ptr<MemoryConfigSpace> config = ConfigSpaceOf(device);
      absl::StatusOr<DeviceInterrupts> interrupts = ReadDeviceInterrupts(*config);
      if (!interrupts.ok() || !interrupts->msi.has_value()) continue;
      SCOPED_TRACE(path + " " + device.bdf.ToString());
      // Enable MSI on a copy where it is off, so every MSI layout is exercised.
      if (interrupts->mode() != v1::INTERRUPT_MODE_MSI) {
        if (interrupts->mode() == v1::INTERRUPT_MODE_MSIX) continue;
        const uint32_t control = interrupts->msi->offset + 2;
        ASSERT_TRUE(config->Write16(control, interrupts->msi->control | kMsiControlEnable).ok());
        ASSERT_TRUE(config->Write32(interrupts->msi->address_low_offset(), 0xfee01000).ok());
      }
      ++devices;
      const std::vector<uint8_t> before = config->bytes();
      absl::StatusOr<ReroutePlan> plan = Reroute(*config, nullptr, {Fixed(9, 0x59)}, nullptr);
      ASSERT_TRUE(plan.ok()) << plan.status();
      absl::StatusOr<v1::InterruptLayout> after = DecodeInterruptLayout(*config, nullptr);
      ASSERT_TRUE(after.ok());
      EXPECT_EQ(after->vectors(0).route().destination_apic_id(), 9u);
      EXPECT_EQ(after->vectors(0).route().vector(), 0x59u);
      ASSERT_TRUE(Restore(*config, nullptr, *plan).ok());
      EXPECT_EQ(config->bytes(), before);
    }
  }
  EXPECT_GE(devices, 2);  // RTL8111 (enabled), 82545EM (enabled on the copy)
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
