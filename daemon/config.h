// nichandoverd's configuration file: protobuf text format of
// nichandover.v1.DaemonConfig (proto/nichandover/v1/config.proto).
#ifndef NICHANDOVER_DAEMON_CONFIG_H_
#define NICHANDOVER_DAEMON_CONFIG_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nichandover/v1/config.pb.h"

namespace nichandover {
namespace daemon {

// Reads, parses and validates `path`. Errors are INVALID_ARGUMENT (or
// NOT_FOUND for a missing file) and name the file, the field and the problem:
//   "node0.conf: peers[1].address: 'x' ...: expected unix:/PATH or HOST:PORT"
// Defaults (listen socket, state_dir, vectors, timeouts) are filled in.
absl::StatusOr<v1::DaemonConfig> LoadConfig(const std::string& path);

// The same for text already read; `source_name` is used in messages.
absl::StatusOr<v1::DaemonConfig> ParseConfig(absl::string_view text,
                                             absl::string_view source_name);

// The configured durations, defaults filled in.
struct Timeouts {
  absl::Duration peer_call;
  absl::Duration quiesce;
  absl::Duration reroute;
  absl::Duration attach;
  absl::Duration handover;
};
Timeouts EffectiveTimeouts(const v1::DaemonConfig& config);

// The group given the operator's unix sockets when operator_group is empty,
// if it exists (the packages create it).
inline constexpr char kDefaultOperatorGroup[] = "nichandover";

// The group `name` (getgrnam), NOT_FOUND when there is none.
absl::StatusOr<gid_t> LookUpGroup(const std::string& name);
// history_per_nic when the file leaves it unset, and its largest value.
inline constexpr uint32_t kDefaultHistoryPerNic = 100;
inline constexpr uint32_t kMaxHistoryPerNic = 100000;

// "fake", "sim", "linux", "vm".
std::string PlatformName(const v1::DaemonConfig& config);

// The cluster secret a peer_auth.secret_file holds: its content without
// surrounding whitespace. Shorter than kMinPeerSecretBytes is refused.
inline constexpr size_t kMinPeerSecretBytes = 16;
std::string PeerSecretFromFileContent(absl::string_view content);

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_CONFIG_H_
