#include "pci/bdf.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace nichandover {
namespace pci {
namespace {

// Parses exactly `min_digits`..`max_digits` hex digits, nothing else.
bool ParseHexField(absl::string_view field, size_t min_digits, size_t max_digits,
                   uint32_t* value) {
  if (field.size() < min_digits || field.size() > max_digits) return false;
  uint32_t result = 0;
  for (char c : field) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
    const uint32_t digit =
        absl::ascii_isdigit(static_cast<unsigned char>(c))
            ? static_cast<uint32_t>(c - '0')
            : static_cast<uint32_t>(absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10);
    result = result * 16 + digit;
  }
  *value = result;
  return true;
}

absl::Status BadBdf(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid PCI address '", text, "': ", why,
      " (expected DDDD:BB:DD.F or BB:DD.F, hex, e.g. 0000:03:00.0)"));
}

}  // namespace

std::string Bdf::ToString() const {
  return absl::StrFormat("%04x:%02x:%02x.%x", domain, bus, device, function);
}

absl::StatusOr<Bdf> ParseBdf(absl::string_view text) {
  const absl::string_view original = text;
  std::vector<absl::string_view> colon_parts = absl::StrSplit(text, ':');
  if (colon_parts.size() < 2 || colon_parts.size() > 3) {
    return BadBdf(original, "wrong number of ':' separators");
  }
  Bdf bdf;
  uint32_t value = 0;
  if (colon_parts.size() == 3) {
    if (!ParseHexField(colon_parts[0], 1, 8, &value)) {
      return BadBdf(original, absl::StrCat("domain '", colon_parts[0], "' is not 1-8 hex digits"));
    }
    bdf.domain = value;
    colon_parts.erase(colon_parts.begin());
  }
  if (!ParseHexField(colon_parts[0], 2, 2, &value)) {
    return BadBdf(original, absl::StrCat("bus '", colon_parts[0], "' is not 2 hex digits"));
  }
  bdf.bus = static_cast<uint8_t>(value);
  std::vector<absl::string_view> dot_parts = absl::StrSplit(colon_parts[1], '.');
  if (dot_parts.size() != 2) {
    return BadBdf(original, "missing or repeated '.' before the function");
  }
  if (!ParseHexField(dot_parts[0], 2, 2, &value)) {
    return BadBdf(original, absl::StrCat("device '", dot_parts[0], "' is not 2 hex digits"));
  }
  if (value > 0x1f) {
    return BadBdf(original, absl::StrFormat("device 0x%02x is out of range 00..1f", value));
  }
  bdf.device = static_cast<uint8_t>(value);
  if (!ParseHexField(dot_parts[1], 1, 1, &value)) {
    return BadBdf(original, absl::StrCat("function '", dot_parts[1], "' is not one digit"));
  }
  if (value > 7) {
    return BadBdf(original, absl::StrFormat("function %x is out of range 0..7", value));
  }
  bdf.function = static_cast<uint8_t>(value);
  return bdf;
}

}  // namespace pci
}  // namespace nichandover
