// Checks of request fields shared by the machine and the gRPC services: PCI
// addresses, request ids, field lengths.
#include "daemon/protocol/handover_machine.h"

#include <cctype>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace nichandover {
namespace protocol {

namespace {

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

}  // namespace

absl::StatusOr<std::string> NormalizeBdf(const std::string& nic, const std::string& field) {
  std::string text = nic;
  if (absl::StartsWith(text, "nics/")) text = text.substr(5);
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() == 2) parts.insert(parts.begin(), "0000");
  auto malformed = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", nic, "\" is not a PCI address (want DDDD:BB:DD.F, e.g. 0000:03:00.0)"));
  };
  if (parts.size() != 3 || parts[0].size() != 4 || parts[1].size() != 2) return malformed();
  std::vector<std::string> dev_fn = absl::StrSplit(parts[2], '.');
  if (dev_fn.size() != 2 || dev_fn[0].size() != 2 || dev_fn[1].size() != 1) return malformed();
  for (const std::string& p : {parts[0], parts[1], dev_fn[0], dev_fn[1]}) {
    for (char c : p) {
      if (!IsHex(c)) return malformed();
    }
  }
  unsigned device = std::stoul(dev_fn[0], nullptr, 16);
  unsigned function = std::stoul(dev_fn[1], nullptr, 16);
  if (device > 0x1f || function > 7) return malformed();
  return absl::AsciiStrToLower(absl::StrCat(parts[0], ":", parts[1], ":", dev_fn[0], ".",
                                            dev_fn[1]));
}

absl::Status CheckRequestId(const std::string& id) {
  if (id.empty()) {
    return absl::InvalidArgumentError(
        "request_id: required (any unique string; a retry reuses it)");
  }
  bool valid = id.size() <= kMaxRequestIdBytes;
  for (char c : id) {
    valid = valid && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                      c == '_' || c == ':' || c == '-');
  }
  if (!valid) {
    return absl::InvalidArgumentError("request_id: want 1-128 characters of [A-Za-z0-9._:-]");
  }
  return absl::OkStatus();
}

absl::Status CheckFieldLengths(std::initializer_list<FieldLimit> fields) {
  for (const FieldLimit& f : fields) {
    if (f.value.size() > f.max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(f.field, ": ", f.value.size(),
                                                     " bytes long; at most ", f.max_bytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace protocol
}  // namespace nichandover
