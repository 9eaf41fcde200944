#include "pci/lspci_text.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace nichandover {
namespace pci {
namespace {

bool ParseHex(absl::string_view text, uint64_t* value) {
  if (text.empty() || text.size() > 16) return false;
  return absl::SimpleHexAtoi(text, value);
}

bool ParseDecimal(absl::string_view text, uint32_t* value) { return absl::SimpleAtoi(text, value); }

// "Enable+" -> true; false when the token is not `name` followed by +/-.
bool Flag(absl::string_view token, absl::string_view name, bool* value) {
  if (token.size() != name.size() + 1 || !absl::StartsWith(token, name)) return false;
  if (token.back() != '+' && token.back() != '-') return false;
  *value = token.back() == '+';
  return true;
}

// "a/b" into two numbers.
bool Pair(absl::string_view text, uint32_t* first, uint32_t* second) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  return parts.size() == 2 && ParseDecimal(parts[0], first) && ParseDecimal(parts[1], second);
}

absl::Status Unknown(absl::string_view line) {
  return absl::InvalidArgumentError(absl::StrCat("unrecognised lspci line: '", line, "'"));
}

absl::Status ParseMsiHeader(absl::string_view flags, LspciMsi& msi) {
  for (absl::string_view token : absl::StrSplit(flags, ' ', absl::SkipEmpty())) {
    bool flag = false;
    uint32_t a = 0, b = 0;
    if (Flag(token, "Enable", &flag)) {
      msi.enabled = flag;
    } else if (Flag(token, "Maskable", &flag) || Flag(token, "Mask", &flag)) {
      msi.maskable = flag;
    } else if (Flag(token, "64bit", &flag)) {
      msi.is_64bit = flag;
    } else if (absl::ConsumePrefix(&token, "Count=") && Pair(token, &a, &b)) {
      msi.vectors_enabled = a;
      msi.vectors_capable = b;
    } else if (absl::ConsumePrefix(&token, "Queue=") && Pair(token, &a, &b) && a < 32 && b < 32) {
      msi.vectors_enabled = 1u << a;
      msi.vectors_capable = 1u << b;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown MSI token '", token, "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseMsixHeader(absl::string_view flags, LspciMsix& msix) {
  for (absl::string_view token : absl::StrSplit(flags, ' ', absl::SkipEmpty())) {
    bool flag = false;
    uint32_t n = 0;
    if (Flag(token, "Enable", &flag)) {
      msix.enabled = flag;
    } else if (Flag(token, "Masked", &flag) || Flag(token, "Mask", &flag)) {
      msix.function_masked = flag;
    } else if ((absl::ConsumePrefix(&token, "Count=") || absl::ConsumePrefix(&token, "TabSize=")) &&
               ParseDecimal(token, &n)) {
      msix.table_size = n;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown MSI-X token '", token, "'"));
    }
  }
  return absl::OkStatus();
}

// "BAR=3 offset=00002000".
bool ParseBarOffset(absl::string_view text, std::optional<uint32_t>* bar,
                    std::optional<uint32_t>* offset) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ' ', absl::SkipEmpty());
  uint32_t b = 0;
  uint64_t o = 0;
  if (parts.size() != 2 || !absl::ConsumePrefix(&parts[0], "BAR=") ||
      !absl::ConsumePrefix(&parts[1], "offset=") || !ParseDecimal(parts[0], &b) ||
      !ParseHex(parts[1], &o)) {
    return false;
  }
  *bar = b;
  *offset = static_cast<uint32_t>(o);
  return true;
}

// "KEY: hex  KEY2: hex" (two spaces between).
bool ParseTwoHex(absl::string_view text, absl::string_view key1, absl::string_view key2,
                 uint64_t* first, uint64_t* second) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ' ', absl::SkipEmpty());
  return parts.size() == 4 && parts[0] == key1 && parts[2] == key2 && ParseHex(parts[1], first) &&
         ParseHex(parts[3], second);
}

}  // namespace

absl::StatusOr<std::vector<LspciDevice>> ParseLspciVerbose(absl::string_view text) {
  std::vector<LspciDevice> devices;
  enum class Current { kNone, kMsi, kMsix } current = Current::kNone;
  for (absl::string_view raw_line : absl::StrSplit(text, '\n')) {
    absl::string_view line = absl::StripTrailingAsciiWhitespace(raw_line);
    if (line.empty()) continue;
    if (!absl::ascii_isspace(static_cast<unsigned char>(line[0]))) {
      current = Current::kNone;
      const size_t space = line.find(' ');
      absl::StatusOr<Bdf> bdf = ParseBdf(line.substr(0, space));
      if (bdf.ok() && space != absl::string_view::npos) {
        devices.push_back(LspciDevice{*bdf});
      }
      continue;  // hex dump lines and other text
    }
    if (devices.empty()) continue;
    LspciDevice& device = devices.back();
    absl::string_view body = absl::StripLeadingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&body, "Capabilities: ")) {
      current = Current::kNone;
      if (absl::StartsWith(body, "<access denied>")) {
        device.has_capability_lines = true;
        device.access_denied = true;
        continue;
      }
      device.has_capability_lines = true;
      // "[50] ..." or, for extended capabilities, "[100 v1] ...".
      uint64_t offset = 0;
      const size_t close = body.find("] ");
      if (!absl::StartsWith(body, "[") || close == absl::string_view::npos) return Unknown(line);
      absl::string_view where = body.substr(1, close - 1);
      where = where.substr(0, where.find(' '));
      if (!ParseHex(where, &offset)) return Unknown(line);
      body.remove_prefix(close + 2);
      if (absl::StartsWith(body, "<chain looped>")) {
        device.chain_looped = true;
      } else if (absl::StartsWith(body, "<chain broken>")) {
        device.chain_broken = true;
      } else if (absl::ConsumePrefix(&body, "MSI: ") ||
                 absl::ConsumePrefix(&body, "Message Signalled Interrupts: ")) {
        LspciMsi msi;
        msi.offset = static_cast<uint32_t>(offset);
        if (absl::Status s = ParseMsiHeader(body, msi); !s.ok()) return s;
        if (!device.msi.has_value()) device.msi = msi;
        current = Current::kMsi;
      } else if (absl::ConsumePrefix(&body, "MSI-X: ")) {
        LspciMsix msix;
        msix.offset = static_cast<uint32_t>(offset);
        if (absl::Status s = ParseMsixHeader(body, msix); !s.ok()) return s;
        if (!device.msix.has_value()) device.msix = msix;
        current = Current::kMsix;
      }
      continue;
    }
    uint64_t a = 0, b = 0;
    if (current == Current::kMsi && absl::StartsWith(body, "Address: ")) {
      if (!ParseTwoHex(body, "Address:", "Data:", &a, &b)) return Unknown(line);
      device.msi->address = a;
      device.msi->data = static_cast<uint32_t>(b);
    } else if (current == Current::kMsi && absl::StartsWith(body, "Masking: ")) {
      if (!ParseTwoHex(body, "Masking:", "Pending:", &a, &b)) return Unknown(line);
      device.msi->mask_bits = static_cast<uint32_t>(a);
      device.msi->pending_bits = static_cast<uint32_t>(b);
    } else if (current == Current::kMsix && absl::ConsumePrefix(&body, "Vector table: ")) {
      if (!ParseBarOffset(body, &device.msix->table_bar, &device.msix->table_offset)) {
        return Unknown(line);
      }
    } else if (current == Current::kMsix && absl::ConsumePrefix(&body, "PBA: ")) {
      if (!ParseBarOffset(body, &device.msix->pba_bar, &device.msix->pba_offset)) {
        return Unknown(line);
      }
    }
  }
  return devices;
}

}  // namespace pci
}  // namespace nichandover
