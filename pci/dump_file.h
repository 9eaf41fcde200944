// Config-space dumps in the text format of `lspci -x`, `-xxx` and `-xxxx`
// (also interleaved with `-v`/`-vvv` decoding, as lspci prints it).
//
// The grammar follows libpci's own dump reader (lib/dump.c), so a file reads
// here exactly as `lspci -F FILE` reads it:
//   * a line that starts with "BB:DD.F " or "DDDD:BB:DD.F " (domain of 4 or 5
//     hex digits) followed by a space starts a device;
//   * inside a device, "OFF: xx xx ..." (2 to 8 hex digits of offset, then
//     two-digit hex bytes separated by single spaces) sets bytes; anything
//     else after the bytes makes the line malformed (an error, as in libpci);
//   * an empty line ends the device; all other lines (indented -vvv text,
//     "# " comments) are skipped.
// Bytes never given read as 0xff, and reads past the last byte given behave
// as libpci's do (all-ones): see ConfigSpace::readable_size().
//
// Unlike libpci's dump method, which refuses writes, the config spaces handed
// out here are writable copies, so tests can exercise a reroute on a real
// device's layout.
#ifndef NICHANDOVER_PCI_DUMP_FILE_H_
#define NICHANDOVER_PCI_DUMP_FILE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pci/bdf.h"
#include "pci/config_space.h"

namespace nichandover {
namespace pci {

struct DumpDevice {
  Bdf bdf;
  // The rest of the header line, e.g. "Ethernet controller: Intel ...".
  std::string description;
  // 256 or 4096 bytes; bytes the dump does not give are 0xff.
  std::vector<uint8_t> bytes;
  // One past the highest offset the dump gives (libpci's notion of length).
  uint32_t captured_length = 0;
  // 1-based line of the device's header line.
  int line = 0;
};

class DumpFile {
 public:
  // INVALID_ARGUMENT (with the line number) for a malformed hex line or an
  // offset past 4095.
  static absl::StatusOr<DumpFile> Parse(absl::string_view text);
  // As Parse, on a file's contents; NOT_FOUND/PERMISSION_DENIED when it
  // cannot be read.
  static absl::StatusOr<DumpFile> Load(const std::string& path);

  // In file order (duplicates kept, as libpci keeps them).
  const std::vector<DumpDevice>& devices() const { return devices_; }
  // The first device with that address, or nullptr.
  const DumpDevice* Find(const Bdf& bdf) const;
  // A writable copy of the device's config space; NOT_FOUND if absent.
  absl::StatusOr<std::unique_ptr<MemoryConfigSpace>> OpenConfigSpace(const Bdf& bdf) const;

 private:
  std::vector<DumpDevice> devices_;
};

// A device's config space as its own MemoryConfigSpace (readable_size() is
// the captured length).
std::unique_ptr<MemoryConfigSpace> ConfigSpaceOf(const DumpDevice& device);

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_DUMP_FILE_H_
