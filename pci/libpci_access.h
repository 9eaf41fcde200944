// The real machine's config space through libpci (pciutils).
//
// libpci reports fatal problems through pci_access::error, which must not
// return (libpci's own code continues with invalid state if it does) and
// whose default calls exit(1). A daemon may neither exit nor longjmp out of
// C code that holds open files and half-built lists, so this wrapper keeps
// libpci away from its error paths instead (see docs/pci.md):
//   * Everything that can fail on the environment -- pci_init (no access
//     method, dump file missing or malformed) and bus scanning with
//     pci_fill_info -- is first rehearsed in a forked child whose error
//     handler writes the message to a pipe and _exit()s. A failed rehearsal
//     becomes an absl::Status; the parent never touches that path.
//   * The parent then calls pci_init itself (now known to work) and never
//     scans: it takes the device list from the rehearsal and reaches devices
//     with pci_get_dev, reading and writing with pci_read_block /
//     pci_write_block, which report failure by return value only. Alignment
//     and range are checked before each call (libpci's pci_read_word etc.
//     call error() on misalignment); writes through the dump method (whose
//     write calls error()) are refused up front.
//   * Should libpci still call error() in the parent (only a race, e.g. the
//     dump file replaced between rehearsal and init), the handler logs the
//     message and aborts: the process state is unknown by then, and the
//     journal makes a restart safe.
#ifndef NICHANDOVER_PCI_LIBPCI_ACCESS_H_
#define NICHANDOVER_PCI_LIBPCI_ACCESS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pci/bdf.h"
#include "pci/config_space.h"

struct pci_access;

namespace nichandover {
namespace pci {

struct LibpciOptions {
  // libpci access method name ("linux-sysfs", "linux-proc", "intel-conf1",
  // "dump", ...); empty for libpci's own probing order.
  std::string method;
  // libpci parameters, e.g. {"dump.name", "/path/to/dump.txt"}.
  std::map<std::string, std::string> params;
  // Open config space for writing (sysfs needs root).
  bool writable = false;
};

struct LibpciDevice {
  Bdf bdf;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;  // base class << 16 | subclass << 8 | prog-if
};

class LibpciAccess {
 public:
  // INVALID_ARGUMENT for an unknown method, UNAVAILABLE with libpci's message
  // when it cannot initialise or scan.
  static absl::StatusOr<std::unique_ptr<LibpciAccess>> Open(const LibpciOptions& options);
  ~LibpciAccess();
  LibpciAccess(const LibpciAccess&) = delete;
  LibpciAccess& operator=(const LibpciAccess&) = delete;

  // The functions the scan found, in libpci's order.
  const std::vector<LibpciDevice>& devices() const { return devices_; }
  const std::string& method_name() const { return method_name_; }

  // The function's config space. NOT_FOUND when even its header cannot be
  // read. The space stays valid while this LibpciAccess lives.
  absl::StatusOr<std::unique_ptr<ConfigSpace>> OpenConfigSpace(const Bdf& bdf);

 private:
  LibpciAccess() = default;

  struct ::pci_access* access_ = nullptr;
  std::string method_name_;
  bool writes_refused_ = false;
  std::vector<LibpciDevice> devices_;
};

}  // namespace pci
}  // namespace nichandover

#endif  // NICHANDOVER_PCI_LIBPCI_ACCESS_H_
