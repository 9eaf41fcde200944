#include "pci/libpci_access.h"

#include "gtest/gtest.h"
#include "pci/dump_file.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

LibpciOptions DumpOptions(const std::string& path) {
  LibpciOptions options;
  options.method = "dump";
  options.params["dump.name"] = path;
  return options;
}

TEST(LibpciAccessTest, ReadsEveryDumpExactlyAsTheDumpParserDoes) {
  for (const std::string& path : testing::AllDumpPaths()) {
    SCOPED_TRACE(path);
    absl::StatusOr<std::unique_ptr<LibpciAccess>> access = LibpciAccess::Open(DumpOptions(path));
    ASSERT_TRUE(access.ok()) << access.status();
    EXPECT_EQ((*access)->method_name(), "dump");
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok());
    ASSERT_EQ((*access)->devices().size(), dump->devices().size());
    for (const DumpDevice& device : dump->devices()) {
      const LibpciDevice* listed = nullptr;
      for (const LibpciDevice& d : (*access)->devices()) {
        if (d.bdf == device.bdf) listed = &d;
      }
      ASSERT_NE(listed, nullptr) << device.bdf.ToString();
      EXPECT_EQ(listed->vendor_id, device.bytes[0] | device.bytes[1] << 8);
      EXPECT_EQ(listed->device_id, device.bytes[2] | device.bytes[3] << 8);
      EXPECT_EQ(listed->class_code,
                static_cast<uint32_t>(device.bytes[0xb] << 16 | device.bytes[0xa] << 8 |
                                      device.bytes[0x9]));
      absl::StatusOr<std::unique_ptr<ConfigSpace>> config =
          (*access)->OpenConfigSpace(device.bdf);
      ASSERT_TRUE(config.ok()) << config.status();
      std::unique_ptr<MemoryConfigSpace> expected = ConfigSpaceOf(device);
      EXPECT_EQ((*config)->size(), expected->size());
      EXPECT_EQ((*config)->readable_size(), expected->readable_size());
      for (uint32_t offset = 0; offset < expected->size(); offset += 4) {
        ASSERT_EQ(*(*config)->Read32(offset), *expected->Read32(offset)) << offset;
      }
    }
  }
}

TEST(LibpciAccessTest, WritesThroughTheDumpMethodAreRefusedNotFatal) {
  const std::string path = testing::DumpsDir() + "/realtek-rtl8111-8168-r8169_07-00.0.txt";
  absl::StatusOr<std::unique_ptr<LibpciAccess>> access = LibpciAccess::Open(DumpOptions(path));
  ASSERT_TRUE(access.ok()) << access.status();
  absl::StatusOr<std::unique_ptr<ConfigSpace>> config =
      (*access)->OpenConfigSpace(Bdf{0, 7, 0, 0});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ((*config)->Write16(0x5c, 0x4041).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*(*config)->Read16(0x5c), 0x4021);
  EXPECT_EQ((*config)->Read16(0x5d).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LibpciAccessTest, LibpciFatalErrorsBecomeStatusesAndTheProcessLives) {
  absl::StatusOr<std::unique_ptr<LibpciAccess>> missing =
      LibpciAccess::Open(DumpOptions("no/such/dump.txt"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(missing.status().message().find("Cannot open"), absl::string_view::npos)
      << missing.status();

  const std::string malformed = ::testing::TempDir() + "/malformed-dump.txt";
  FILE* f = std::fopen(malformed.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("00:01.0 x\n00: 86 80 zz\n", f);
  std::fclose(f);
  absl::StatusOr<std::unique_ptr<LibpciAccess>> bad = LibpciAccess::Open(DumpOptions(malformed));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("Malformed"), absl::string_view::npos) << bad.status();
}

TEST(LibpciAccessTest, UnknownMethodOrParameterIsInvalidArgument) {
  LibpciOptions options;
  options.method = "no-such-method";
  EXPECT_EQ(LibpciAccess::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
  LibpciOptions params = DumpOptions("x");
  params.params["no.such.param"] = "1";
  EXPECT_EQ(LibpciAccess::Open(params).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LibpciAccessTest, AbsentDeviceIsNotFound) {
  const std::string path = testing::DumpsDir() + "/virtio-net-qemu.txt";
  absl::StatusOr<std::unique_ptr<LibpciAccess>> access = LibpciAccess::Open(DumpOptions(path));
  ASSERT_TRUE(access.ok());
  EXPECT_EQ((*access)->OpenConfigSpace(Bdf{0, 0x42, 0, 0}).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
