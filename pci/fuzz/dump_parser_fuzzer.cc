// libFuzzer target: the lspci dump parser on arbitrary text, then the
// capability walk over every device it yields. Built by tools/fuzz-pci.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "pci/capabilities.h"
#include "pci/dump_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<nichandover::pci::DumpFile> dump = nichandover::pci::DumpFile::Parse(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!dump.ok()) return 0;
  for (const nichandover::pci::DumpDevice& device : dump->devices()) {
    if (device.bytes.size() != 256 && device.bytes.size() != 4096) __builtin_trap();
    if (device.captured_length > device.bytes.size()) __builtin_trap();
    std::unique_ptr<nichandover::pci::MemoryConfigSpace> config =
        nichandover::pci::ConfigSpaceOf(device);
    nichandover::pci::WalkCapabilities(*config);
  }
  return 0;
}
