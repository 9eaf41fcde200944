#include "pci/libpci_access.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/log.h"

extern "C" {
#include <pci/pci.h>
}

namespace nichandover {
namespace pci {
namespace {

// ---- libpci callbacks (C varargs; they must not throw) ----

// The rehearsal child's pipe: its error handler reports there and exits.
int g_rehearsal_fd = -1;

void WriteAll(int fd, const char* data, size_t length) {
  while (length > 0) {
    const ssize_t n = write(fd, data, length);
    if (n <= 0) return;
    data += n;
    length -= static_cast<size_t>(n);
  }
}

void FormatMessage(char* buffer, size_t size, const char* prefix, const char* format,
                   va_list args) {
  const int used = std::snprintf(buffer, size, "%s", prefix);
  std::vsnprintf(buffer + used, size - used, format, args);
  for (char* c = buffer; *c != '\0'; ++c) {
    if (*c == '\n') *c = ' ';
  }
}

void RehearsalError(char* format, ...) {
  char message[1024];
  va_list args;
  va_start(args, format);
  FormatMessage(message, sizeof(message) - 1, "E ", format, args);
  va_end(args);
  std::strcat(message, "\n");
  WriteAll(g_rehearsal_fd, message, std::strlen(message));
  _exit(3);
}

void IgnoreMessage(char*, ...) {}

void ParentError(char* format, ...) {
  char message[1024];
  va_list args;
  va_start(args, format);
  FormatMessage(message, sizeof(message), "", format, args);
  va_end(args);
  NH_LOG(ERROR) << "libpci failed after a successful rehearsal (a race with the environment): "
                << message << "; aborting, the state of libpci is unknown";
  std::abort();
}

void ParentWarning(char* format, ...) {
  char message[1024];
  va_list args;
  va_start(args, format);
  FormatMessage(message, sizeof(message), "", format, args);
  va_end(args);
  NH_LOG(WARNING) << "libpci: " << message;
}

// Configures a fresh pci_access from the options (no libpci error paths:
// pci_set_param only allocates).
absl::StatusOr<struct ::pci_access*> NewAccess(const LibpciOptions& options) {
  int method = PCI_ACCESS_AUTO;
  if (!options.method.empty()) {
    method = pci_lookup_method(const_cast<char*>(options.method.c_str()));
    if (method < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("libpci has no access method '", options.method, "'"));
    }
  }
  struct ::pci_access* access = pci_alloc();
  access->method = method;
  access->writeable = options.writable ? 1 : 0;
  for (const auto& [name, value] : options.params) {
    if (pci_set_param(access, const_cast<char*>(name.c_str()),
                      const_cast<char*>(value.c_str())) != 0) {
      pci_cleanup(access);
      return absl::InvalidArgumentError(absl::StrCat("libpci has no parameter '", name, "'"));
    }
  }
  return access;
}

// In the child: init, scan, report every device, exit. Never returns.
[[noreturn]] void RunRehearsal(const LibpciOptions& options, int fd) {
  g_rehearsal_fd = fd;
  absl::StatusOr<struct ::pci_access*> access = NewAccess(options);
  if (!access.ok()) _exit(4);
  (*access)->error = RehearsalError;
  (*access)->warning = IgnoreMessage;
  (*access)->debug = IgnoreMessage;
  pci_init(*access);
  pci_scan_bus(*access);
  std::string report = absl::StrCat("M ", pci_get_method_name((*access)->method), "\n");
  for (struct ::pci_dev* dev = (*access)->devices; dev != nullptr; dev = dev->next) {
    pci_fill_info(dev, PCI_FILL_IDENT | PCI_FILL_CLASS);
    uint8_t revision_and_class[4] = {0xff, 0xff, 0xff, 0xff};
    pci_read_block(dev, 0x08, revision_and_class, 4);
    const uint32_t class_code = static_cast<uint32_t>(revision_and_class[3]) << 16 |
                                static_cast<uint32_t>(revision_and_class[2]) << 8 |
                                revision_and_class[1];
    absl::StrAppendFormat(&report, "D %x %x %x %x %x %x %x\n", dev->domain, dev->bus, dev->dev,
                          dev->func, dev->vendor_id, dev->device_id, class_code);
  }
  WriteAll(fd, report.data(), report.size());
  _exit(0);
}

struct Rehearsal {
  std::string method_name;
  std::vector<LibpciDevice> devices;
};

absl::StatusOr<Rehearsal> Rehearse(const LibpciOptions& options) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const pid_t child = fork();
  if (child < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (child == 0) {
    close(fds[0]);
    RunRehearsal(options, fds[1]);
  }
  close(fds[1]);
  std::string output;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) output.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  Rehearsal result;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "E ")) {
      return absl::UnavailableError(absl::StrCat("libpci: ", line));
    }
    if (absl::ConsumePrefix(&line, "M ")) {
      result.method_name = std::string(line);
      continue;
    }
    unsigned domain, bus, dev, func, vendor, device, class_code;
    if (std::sscanf(std::string(line).c_str(), "D %x %x %x %x %x %x %x", &domain, &bus, &dev,
                    &func, &vendor, &device, &class_code) == 7) {
      LibpciDevice info;
      info.bdf = Bdf{domain, static_cast<uint8_t>(bus), static_cast<uint8_t>(dev),
                     static_cast<uint8_t>(func)};
      info.vendor_id = static_cast<uint16_t>(vendor);
      info.device_id = static_cast<uint16_t>(device);
      info.class_code = class_code;
      result.devices.push_back(info);
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::UnavailableError(absl::StrFormat(
        "libpci could not initialise (rehearsal exited with status 0x%x)", status));
  }
  return result;
}

bool CanRead(struct ::pci_dev* dev, uint32_t offset, uint32_t length) {
  std::vector<uint8_t> buffer(length);
  return pci_read_block(dev, static_cast<int>(offset), buffer.data(), static_cast<int>(length)) != 0;
}

// How many bytes from 0 the backend can read: 64, 256, or up to 4096 (found
// by bisection on 4-byte steps; libpci reads fail past a dump's last byte).
uint32_t ReadableSize(struct ::pci_dev* dev) {
  if (!CanRead(dev, 0, kHeaderSize)) return 0;
  if (!CanRead(dev, kHeaderSize, kConventionalConfigSize - kHeaderSize)) return kHeaderSize;
  if (!CanRead(dev, kConventionalConfigSize, 4)) return kConventionalConfigSize;
  uint32_t good = kConventionalConfigSize + 4, bad = kExtendedConfigSize + 4;
  while (bad - good > 4) {
    const uint32_t mid = good + ((bad - good) / 2 / 4) * 4;
    if (CanRead(dev, kConventionalConfigSize, mid - kConventionalConfigSize)) {
      good = mid;
    } else {
      bad = mid;
    }
  }
  return good;
}

class LibpciConfigSpace : public ConfigSpace {
 public:
  LibpciConfigSpace(struct ::pci_dev* dev, const Bdf& bdf, uint32_t readable, bool writes_refused)
      : dev_(dev), bdf_(bdf), readable_(readable), writes_refused_(writes_refused) {}

  uint32_t size() const override {
    return readable_ > kConventionalConfigSize ? kExtendedConfigSize : kConventionalConfigSize;
  }
  uint32_t readable_size() const override { return readable_; }

 protected:
  absl::StatusOr<uint32_t> ReadAligned(uint32_t offset, int width) override {
    if (!IsReadable(offset, width)) return width == 4 ? 0xffffffffu : (1u << (8 * width)) - 1;
    uint8_t bytes[4] = {0, 0, 0, 0};
    if (!pci_read_block(dev_, static_cast<int>(offset), bytes, width)) {
      return absl::UnavailableError(absl::StrFormat("libpci: reading %s config 0x%03x failed",
                                                    bdf_.ToString(), offset));
    }
    uint32_t value = 0;
    for (int i = width - 1; i >= 0; --i) value = value << 8 | bytes[i];
    return value;
  }

  absl::Status WriteAligned(uint32_t offset, int width, uint32_t value) override {
    if (writes_refused_) {
      return absl::FailedPreconditionError(
          "libpci's dump method refuses writes (use DumpFile for writable dump copies)");
    }
    uint8_t bytes[4];
    for (int i = 0; i < width; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
    if (!pci_write_block(dev_, static_cast<int>(offset), bytes, width)) {
      return absl::UnavailableError(absl::StrFormat(
          "libpci: writing %s config 0x%03x failed (root and LibpciOptions.writable needed)",
          bdf_.ToString(), offset));
    }
    return absl::OkStatus();
  }

 private:
  struct ::pci_dev* dev_;
  Bdf bdf_;
  uint32_t readable_;
  bool writes_refused_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LibpciAccess>> LibpciAccess::Open(const LibpciOptions& options) {
  // Validate the options here first, so that misuse is INVALID_ARGUMENT.
  absl::StatusOr<struct ::pci_access*> probe = NewAccess(options);
  if (!probe.ok()) return probe.status();
  pci_cleanup(*probe);

  absl::StatusOr<Rehearsal> rehearsal = Rehearse(options);
  if (!rehearsal.ok()) return rehearsal.status();

  absl::StatusOr<struct ::pci_access*> access = NewAccess(options);
  if (!access.ok()) return access.status();
  (*access)->error = ParentError;
  (*access)->warning = ParentWarning;
  (*access)->debug = IgnoreMessage;
  pci_init(*access);

  std::unique_ptr<LibpciAccess> result(new LibpciAccess());
  result->access_ = *access;
  result->method_name_ = rehearsal->method_name;
  result->writes_refused_ = rehearsal->method_name == "dump";
  result->devices_ = std::move(rehearsal->devices);
  return result;
}

LibpciAccess::~LibpciAccess() {
  if (access_ != nullptr) pci_cleanup(access_);
}

absl::StatusOr<std::unique_ptr<ConfigSpace>> LibpciAccess::OpenConfigSpace(const Bdf& bdf) {
  struct ::pci_dev* dev = pci_get_dev(access_, static_cast<int>(bdf.domain), bdf.bus, bdf.device,
                                      bdf.function);
  const uint32_t readable = ReadableSize(dev);
  if (readable == 0) {
    pci_free_dev(dev);
    return absl::NotFoundError(
        absl::StrCat("libpci cannot read the config header of ", bdf.ToString()));
  }
  // pci_get_dev's devices are not on the access's list; free them with it.
  dev->next = nullptr;
  struct Owned : LibpciConfigSpace {
    Owned(struct ::pci_dev* d, const Bdf& b, uint32_t r, bool w)
        : LibpciConfigSpace(d, b, r, w), dev(d) {}
    ~Owned() override { pci_free_dev(dev); }
    struct ::pci_dev* dev;
  };
  return std::unique_ptr<ConfigSpace>(new Owned(dev, bdf, readable, writes_refused_));
}

}  // namespace pci
}  // namespace nichandover
