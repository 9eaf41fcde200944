#include "pci/dump_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace nichandover {
namespace pci {
namespace {

bool IsHex(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }

uint32_t HexValue(char c) {
  if (absl::ascii_isdigit(static_cast<unsigned char>(c))) return c - '0';
  return absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

// True when `line` starts with `pattern`, where '#' stands for one hex digit
// and any other character for itself (libpci's dump_validate).
bool MatchesPattern(absl::string_view line, absl::string_view pattern) {
  if (line.size() < pattern.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '#' ? !IsHex(line[i]) : pattern[i] != line[i]) return false;
  }
  return true;
}

uint32_t HexFieldValue(absl::string_view digits) {
  uint32_t value = 0;
  for (char c : digits) value = value * 16 + HexValue(c);
  return value;
}

// A device header line: "BB:DD.F ", "DDDD:BB:DD.F " or "DDDDD:BB:DD.F ".
bool ParseHeaderLine(absl::string_view line, Bdf* bdf, std::string* description) {
  size_t domain_digits = 0;
  if (MatchesPattern(line, "##:##.# ")) {
    domain_digits = 0;
  } else if (MatchesPattern(line, "####:##:##.# ")) {
    domain_digits = 4;
  } else if (MatchesPattern(line, "#####:##:##.# ")) {
    domain_digits = 5;
  } else {
    return false;
  }
  const size_t start = domain_digits == 0 ? 0 : domain_digits + 1;
  bdf->domain = domain_digits == 0 ? 0 : HexFieldValue(line.substr(0, domain_digits));
  bdf->bus = static_cast<uint8_t>(HexFieldValue(line.substr(start, 2)));
  // libpci reads the device with %x into an int: 2 hex digits, up to 0xff;
  // keep the low five bits a real device number can have.
  bdf->device = static_cast<uint8_t>(HexFieldValue(line.substr(start + 3, 2)) & 0x1f);
  bdf->function = static_cast<uint8_t>(HexValue(line[start + 6]) & 0x7);
  *description = std::string(absl::StripAsciiWhitespace(line.substr(start + 8)));
  return true;
}

// Length of the hex offset prefix "OFF: " (2..8 digits), or 0.
size_t HexOffsetDigits(absl::string_view line) {
  size_t digits = 0;
  while (digits < line.size() && IsHex(line[digits])) ++digits;
  if (digits < 2 || digits > 8) return 0;
  if (line.size() < digits + 2 || line[digits] != ':' || line[digits + 1] != ' ') return 0;
  return digits;
}

absl::Status Malformed(int line_number, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("dump line ", line_number, ": ", why));
}

}  // namespace

std::unique_ptr<MemoryConfigSpace> ConfigSpaceOf(const DumpDevice& device) {
  std::vector<uint8_t> bytes(device.bytes.begin(),
                             device.bytes.begin() + device.captured_length);
  return std::make_unique<MemoryConfigSpace>(std::move(bytes));
}

absl::StatusOr<DumpFile> DumpFile::Parse(absl::string_view text) {
  DumpFile file;
  DumpDevice* device = nullptr;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    Bdf bdf;
    std::string description;
    if (ParseHeaderLine(line, &bdf, &description)) {
      DumpDevice fresh;
      fresh.bdf = bdf;
      fresh.description = std::move(description);
      fresh.bytes.assign(kConventionalConfigSize, 0xff);
      fresh.line = line_number;
      file.devices_.push_back(std::move(fresh));
      device = &file.devices_.back();
      continue;
    }
    if (line.empty()) {
      device = nullptr;
      continue;
    }
    const size_t offset_digits = device == nullptr ? 0 : HexOffsetDigits(line);
    if (offset_digits == 0) continue;  // -vvv text, comments, stray lines
    uint32_t offset = HexFieldValue(line.substr(0, offset_digits));
    absl::string_view rest = line.substr(offset_digits + 2);
    while (rest.size() >= 2 && IsHex(rest[0]) && IsHex(rest[1]) &&
           (rest.size() == 2 || rest[2] == ' ')) {
      if (offset >= kExtendedConfigSize) {
        return Malformed(line_number, absl::StrFormat(
            "byte at offset 0x%x is past the 4096-byte config space", offset));
      }
      if (offset >= device->bytes.size()) device->bytes.resize(kExtendedConfigSize, 0xff);
      device->bytes[offset] = static_cast<uint8_t>(HexValue(rest[0]) * 16 + HexValue(rest[1]));
      ++offset;
      if (offset > device->captured_length) device->captured_length = offset;
      rest.remove_prefix(rest.size() == 2 ? 2 : 3);
    }
    if (!rest.empty()) {
      return Malformed(line_number, absl::StrCat("malformed hex bytes near '", rest, "'"));
    }
  }
  return file;
}

absl::StatusOr<DumpFile> DumpFile::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string message = absl::StrCat("cannot open dump ", path, ": ", std::strerror(error));
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  absl::StatusOr<DumpFile> file = Parse(contents.str());
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat(path, ": ", file.status().message()));
  }
  return file;
}

const DumpDevice* DumpFile::Find(const Bdf& bdf) const {
  for (const DumpDevice& device : devices_) {
    if (device.bdf == bdf) return &device;
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<MemoryConfigSpace>> DumpFile::OpenConfigSpace(
    const Bdf& bdf) const {
  const DumpDevice* device = Find(bdf);
  if (device == nullptr) {
    return absl::NotFoundError(absl::StrCat("no device ", bdf.ToString(), " in the dump"));
  }
  return ConfigSpaceOf(*device);
}

}  // namespace pci
}  // namespace nichandover
