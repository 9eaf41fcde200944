#include "pci/test_util.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace nichandover {
namespace pci {
namespace testing {

std::string DumpsDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string root = srcdir != nullptr ? std::string(srcdir) + "/nichandover" : ".";
  return root + "/pci/testdata/dumps";
}

std::vector<std::string> AllDumpPaths() {
  std::vector<std::string> paths;
  const std::string dir = DumpsDir();
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* entry = readdir(d)) {
      const std::string name = entry->d_name;
      if (absl::EndsWith(name, ".txt")) paths.push_back(dir + "/" + name);
    }
    closedir(d);
  }
  std::sort(paths.begin(), paths.end());
  EXPECT_FALSE(paths.empty()) << "no dumps in " << dir;
  return paths;
}

DumpFile LoadDump(const std::string& name) {
  absl::StatusOr<DumpFile> dump = DumpFile::Load(DumpsDir() + "/" + name);
  EXPECT_TRUE(dump.ok()) << dump.status();
  return dump.ok() ? *std::move(dump) : DumpFile();
}

std::unique_ptr<MemoryConfigSpace> OpenDevice(const std::string& dump_name,
                                              const std::string& bdf) {
  DumpFile dump = LoadDump(dump_name);
  absl::StatusOr<Bdf> parsed = ParseBdf(bdf);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  absl::StatusOr<std::unique_ptr<MemoryConfigSpace>> config = dump.OpenConfigSpace(*parsed);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *std::move(config) : nullptr;
}

std::vector<uint8_t> HeaderWithCapabilities(uint8_t first_capability, size_t size) {
  std::vector<uint8_t> bytes(size, 0);
  bytes[0x00] = 0x86;  // vendor 8086
  bytes[0x01] = 0x80;
  bytes[0x06] = 0x10;  // status: capability list
  bytes[0x34] = first_capability;
  return bytes;
}

}  // namespace testing
}  // namespace pci
}  // namespace nichandover
