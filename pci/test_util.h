// Helpers for the PCI layer's tests: where the real dumps are, and loading
// one device of a dump.
#ifndef NICHANDOVER_PCI_TEST_UTIL_H_
#define NICHANDOVER_PCI_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "pci/dump_file.h"

namespace nichandover {
namespace pci {
namespace testing {

// The directory of real config-space dumps in the runfiles tree.
std::string DumpsDir();
// Every *.txt file in DumpsDir(), sorted (fails the test if there are none).
std::vector<std::string> AllDumpPaths();
// A dump by file name; fails the test if it does not parse.
DumpFile LoadDump(const std::string& name);
// A writable config space of one device of a dump.
std::unique_ptr<MemoryConfigSpace> OpenDevice(const std::string& dump_name,
                                              const std::string& bdf);
// A minimal type-0 header with the capability list bit set and the
// capability pointer at 0x34 = `first_capability`; the rest is zero.
std::vector<uint8_t> HeaderWithCapabilities(uint8_t first_capability, size_t size = 256);

}  // namespace testing
}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_TEST_UTIL_H_
