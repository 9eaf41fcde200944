// Holds the decoder against the real `lspci -F FILE -vvv` (Debian package
// pciutils) for every dump in testdata/dumps, and against the -vvv text the
// dumps themselves carry (often an older lspci's wording). Every field lspci
// prints about MSI and MSI-X must agree. Nothing here knows the devices: drop
// more dumps into testdata/dumps and they are checked the same way.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "pci/capabilities.h"
#include "pci/dump_file.h"
#include "pci/interrupt_layout.h"
#include "pci/lspci_text.h"
#include "pci/msi.h"
#include "pci/render.h"
#include "pci/test_util.h"

namespace nichandover {
namespace pci {
namespace {

std::string FindLspci() {
  std::vector<std::string> dirs = absl::StrSplit(getenv("PATH") ? getenv("PATH") : "", ':');
  for (const char* extra : {"/usr/bin", "/usr/sbin", "/bin", "/sbin"}) dirs.push_back(extra);
  for (const std::string& dir : dirs) {
    const std::string candidate = dir + "/lspci";
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Runs lspci on a dump; fails the test if it cannot.
std::string RunLspci(const std::string& lspci, const std::string& dump) {
  const std::string command = "'" + lspci + "' -F '" + dump + "' -vvv 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (pipe == nullptr) return "";
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << command << " failed:\n" << output;
  return output;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void CompareMsi(const LspciMsi& lspci, const std::optional<MsiCapability>& ours) {
  ASSERT_TRUE(ours.has_value()) << "lspci shows MSI at " << std::hex << lspci.offset;
  EXPECT_EQ(ours->offset, lspci.offset);
  EXPECT_EQ(ours->enabled(), lspci.enabled);
  EXPECT_EQ(ours->vectors_enabled(), lspci.vectors_enabled);
  EXPECT_EQ(ours->vectors_capable(), lspci.vectors_capable);
  if (lspci.maskable.has_value()) {
    EXPECT_EQ(ours->per_vector_masking(), *lspci.maskable);
  }
  EXPECT_EQ(ours->is_64bit(), lspci.is_64bit);
  if (lspci.address.has_value()) {
    EXPECT_EQ(ours->address(), *lspci.address);
    EXPECT_EQ(ours->data, *lspci.data);
    // lspci prints the Masking line exactly for maskable capabilities.
    EXPECT_EQ(lspci.mask_bits.has_value(), ours->per_vector_masking());
  }
  if (lspci.mask_bits.has_value()) {
    EXPECT_EQ(ours->mask_bits, *lspci.mask_bits);
    EXPECT_EQ(ours->pending_bits, *lspci.pending_bits);
  }
}

void CompareMsix(const LspciMsix& lspci, const std::optional<MsixCapability>& ours) {
  ASSERT_TRUE(ours.has_value()) << "lspci shows MSI-X at " << std::hex << lspci.offset;
  EXPECT_EQ(ours->offset, lspci.offset);
  EXPECT_EQ(ours->enabled(), lspci.enabled);
  EXPECT_EQ(ours->function_masked(), lspci.function_masked);
  // lspci before 3.1 masked the size with 0x3ff; the spec's field is 11 bits.
  EXPECT_EQ(ours->table_size() & 0x3ff, lspci.table_size & 0x3ff);
  if (lspci.table_bar.has_value()) {
    EXPECT_EQ(ours->table_bar(), *lspci.table_bar);
    EXPECT_EQ(ours->table_offset(), *lspci.table_offset);
  }
  if (lspci.pba_bar.has_value()) {
    EXPECT_EQ(ours->pba_bar(), *lspci.pba_bar);
    EXPECT_EQ(ours->pba_offset(), *lspci.pba_offset);
  }
}

// Compares one lspci listing with our decoding of the same dump; returns how
// many MSI/MSI-X capabilities were compared.
int CompareListing(const std::string& where, const std::vector<LspciDevice>& listing,
                   const DumpFile& dump) {
  int compared = 0;
  for (const LspciDevice& shown : listing) {
    SCOPED_TRACE(where + " " + shown.bdf.ToString());
    if (!shown.has_capability_lines) continue;  // hex only, or -v without capabilities
    const DumpDevice* device = dump.Find(shown.bdf);
    if (device == nullptr) {
      ADD_FAILURE() << "lspci lists a device the dump parser did not find";
      continue;
    }
    std::unique_ptr<MemoryConfigSpace> config = ConfigSpaceOf(*device);
    absl::StatusOr<DeviceInterrupts> ours = ReadDeviceInterrupts(*config);
    if (shown.access_denied || shown.chain_looped || shown.chain_broken) {
      // lspci could not finish the list; we must not claim a clean decode
      // unless both capabilities were found before the problem.
      if (ours.ok()) {
        EXPECT_TRUE(ours->msi.has_value() && ours->msix.has_value());
      } else {
        EXPECT_EQ(ours.status().code(), shown.access_denied ? absl::StatusCode::kFailedPrecondition
                                                            : absl::StatusCode::kDataLoss)
            << ours.status();
      }
      continue;
    }
    if (!ours.ok()) {
      ADD_FAILURE() << ours.status();
      continue;
    }
    EXPECT_EQ(ours->msi.has_value(), shown.msi.has_value());
    EXPECT_EQ(ours->msix.has_value(), shown.msix.has_value());
    if (shown.msi.has_value()) {
      CompareMsi(*shown.msi, ours->msi);
      ++compared;
    }
    if (shown.msix.has_value()) {
      CompareMsix(*shown.msix, ours->msix);
      ++compared;
    }
  }
  return compared;
}

TEST(LspciComparisonTest, DecoderAgreesWithTheRealLspciOnEveryDump) {
  const std::string lspci = FindLspci();
  ASSERT_FALSE(lspci.empty())
      << "lspci not found on PATH: install the Debian package pciutils";
  int compared = 0;
  for (const std::string& path : testing::AllDumpPaths()) {
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok()) << dump.status();
    absl::StatusOr<std::vector<LspciDevice>> listing = ParseLspciVerbose(RunLspci(lspci, path));
    ASSERT_TRUE(listing.ok()) << path << ": " << listing.status();
    // lspci and the parser see the same devices.
    EXPECT_EQ(listing->size(), dump->devices().size()) << path;
    compared += CompareListing(path + " (lspci)", *listing, *dump);
  }
  EXPECT_GE(compared, 12);  // at least the capabilities of the dumps shipped here
}

TEST(LspciComparisonTest, DecoderAgreesWithTheDecodingStoredInTheDumps) {
  int compared = 0;
  for (const std::string& path : testing::AllDumpPaths()) {
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok());
    absl::StatusOr<std::vector<LspciDevice>> listing = ParseLspciVerbose(ReadFile(path));
    ASSERT_TRUE(listing.ok()) << path << ": " << listing.status();
    compared += CompareListing(path + " (stored)", *listing, *dump);
  }
  EXPECT_GE(compared, 3);  // 82576 (3.0 wording), N1SDP RTL8168, virtio-net
}

TEST(LspciComparisonTest, EveryDeviceOfEveryDumpDecodesIntoALayout) {
  for (const std::string& path : testing::AllDumpPaths()) {
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok());
    for (const DumpDevice& device : dump->devices()) {
      std::unique_ptr<MemoryConfigSpace> config = ConfigSpaceOf(device);
      absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, nullptr);
      EXPECT_TRUE(layout.ok()) << path << " " << device.bdf.ToString() << ": " << layout.status();
    }
  }
}

// Issue 16.11: what `nicctl msi show` prints (the decoded layout, rendered)
// names every MSI and MSI-X capability lspci shows, whichever is enabled:
// an RTL8111 with MSI on still has its MSI-X table and PBA.
TEST(LspciComparisonTest, RenderedLayoutShowsEveryCapabilityLspciShows) {
  const std::string lspci = FindLspci();
  ASSERT_FALSE(lspci.empty())
      << "lspci not found on PATH: install the Debian package pciutils";
  int both = 0;
  for (const std::string& path : testing::AllDumpPaths()) {
    absl::StatusOr<DumpFile> dump = DumpFile::Load(path);
    ASSERT_TRUE(dump.ok()) << dump.status();
    absl::StatusOr<std::vector<LspciDevice>> listing = ParseLspciVerbose(RunLspci(lspci, path));
    ASSERT_TRUE(listing.ok()) << path << ": " << listing.status();
    for (const LspciDevice& shown : *listing) {
      SCOPED_TRACE(path + " " + shown.bdf.ToString());
      if (!shown.has_capability_lines || shown.access_denied || shown.chain_looped ||
          shown.chain_broken) {
        continue;
      }
      const DumpDevice* device = dump->Find(shown.bdf);
      ASSERT_NE(device, nullptr);
      std::unique_ptr<MemoryConfigSpace> config = ConfigSpaceOf(*device);
      absl::StatusOr<v1::InterruptLayout> layout = DecodeInterruptLayout(*config, nullptr);
      ASSERT_TRUE(layout.ok()) << layout.status();
      std::string text;
      for (const std::string& line : RenderInterruptLayout(*layout)) text += line + "\n";
      auto has = [&](const std::string& needle) {
        return text.find(needle) != std::string::npos;
      };
      if (shown.msi.has_value()) {
        EXPECT_TRUE(has(absl::StrFormat("Capabilities: [%02x] MSI: Enable%c", shown.msi->offset,
                                        shown.msi->enabled ? '+' : '-')))
            << text;
      } else {
        EXPECT_FALSE(has("] MSI:")) << text;
      }
      if (shown.msix.has_value()) {
        EXPECT_TRUE(has(absl::StrFormat("Capabilities: [%02x] MSI-X: Enable%c",
                                        shown.msix->offset, shown.msix->enabled ? '+' : '-')))
            << text;
        if (shown.msix->table_bar.has_value()) {
          EXPECT_TRUE(has(absl::StrFormat("Vector table: BAR=%u offset=%08x",
                                          *shown.msix->table_bar, *shown.msix->table_offset)))
              << text;
        }
        if (shown.msix->pba_bar.has_value()) {
          EXPECT_TRUE(has(absl::StrFormat("PBA: BAR=%u offset=%08x", *shown.msix->pba_bar,
                                          *shown.msix->pba_offset)))
              << text;
        }
      } else {
        EXPECT_FALSE(has("] MSI-X:")) << text;
      }
      if (shown.msi.has_value() && shown.msix.has_value()) ++both;
    }
  }
  EXPECT_GE(both, 1);  // the RTL8111 of the shared dumps has both
}

}  // namespace
}  // namespace pci
}  // namespace nichandover
