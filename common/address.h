// Listen and dial addresses of nichandoverd, in the forms users write them:
//   unix:/run/nichandover/nichandoverd.sock   (also unix:///abs/path, or a bare
//                                              absolute path)
//   127.0.0.1:7401, localhost:7401, [::1]:7401
#ifndef NICHANDOVER_COMMON_ADDRESS_H_
#define NICHANDOVER_COMMON_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nichandover {

// The daemon's default socket, and so nicctl's default server.
inline constexpr char kDefaultSocketPath[] = "/run/nichandover/nichandoverd.sock";

struct Address {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix: absolute or relative file path
  std::string host;  // kTcp: name or IP literal, without brackets
  int port = 0;      // kTcp

  // The gRPC target/listen URI ("unix:/path" or "host:port" / "[v6]:port").
  std::string GrpcUri() const;
  // As users write it; parses back to the same Address.
  std::string ToString() const;
};

// INVALID_ARGUMENT with a message saying what is wrong with `text`.
absl::StatusOr<Address> ParseAddress(absl::string_view text);

}  // namespace nichandover

#endif  // NICHANDOVER_COMMON_ADDRESS_H_
