#include "common/address.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace nichandover {

std::string Address::GrpcUri() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

std::string Address::ToString() const { return GrpcUri(); }

absl::StatusOr<Address> ParseAddress(absl::string_view text) {
  Address addr;
  if (text.empty()) return absl::InvalidArgumentError("address is empty");
  if (absl::ConsumePrefix(&text, "unix:")) {
    // unix:///abs and unix:/abs both name /abs; unix:rel names a relative path.
    if (absl::StartsWith(text, "//")) text.remove_prefix(2);
    if (text.empty()) return absl::InvalidArgumentError("unix address has no path");
    addr.kind = Address::Kind::kUnix;
    addr.path = std::string(text);
    if (addr.path.size() > 107) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unix socket path is ", addr.path.size(), " bytes; the limit is 107 (sun_path)"));
    }
    return addr;
  }
  if (absl::StartsWith(text, "/")) {
    return ParseAddress(absl::StrCat("unix:", text));
  }
  addr.kind = Address::Kind::kTcp;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': expected [IPv6]:PORT"));
    }
    addr.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", text, "': expected unix:/PATH or HOST:PORT"));
    }
    addr.host = std::string(text.substr(0, colon));
    if (absl::StrContains(addr.host, ':')) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': write IPv6 addresses as [ADDR]:PORT"));
    }
    port_text = text.substr(colon + 1);
  }
  if (addr.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': host is empty"));
  }
  if (!absl::SimpleAtoi(port_text, &addr.port) || addr.port < 0 || addr.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "': port '", port_text, "' is not a number in 0..65535"));
  }
  return addr;
}

}  // namespace nichandover
