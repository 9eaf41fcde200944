// The client of the kernel hook module's "nichandover" generic netlink
// family. Its calls map one to one onto the daemon's platform Hook and Router
// (daemon/platform/platform.h): Quiesce/Resume/Attach/Release/Status, and
// ReadMessages/Reroute. It has no gRPC or protobuf dependency, so it also
// serves the small static nhhookctl tool that the VM test drives.
#ifndef NICHANDOVER_HOOK_CLIENT_HOOK_CLIENT_H_
#define NICHANDOVER_HOOK_CLIENT_HOOK_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hook/client/netlink_codec.h"

namespace nichandover {
namespace hook {

// Carries one request to the kernel and returns everything it answered up to
// and including the NLMSG_ERROR ack for that request.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual absl::StatusOr<Bytes> Exchange(const Bytes& request) = 0;
};

// A NETLINK_GENERIC socket with extended acks.
absl::StatusOr<std::unique_ptr<Transport>> OpenGenericNetlink();

// The module's view of one PCI function (enum nh_state).
enum class DeviceState {
  kUnknown,
  kRunning,   // gates open, NAPI enabled, vectors unmasked
  kGated,     // TX gated but the drain did not finish
  kQuiesced,  // gated, drained, NAPI disabled, vectors masked
  kReleased,  // quiesced and handed to another node
};

const char* DeviceStateName(DeviceState state);

enum class MsiMode { kNone, kMsi, kMsix };

// What every successful reply reports.
struct DeviceStatus {
  DeviceState state = DeviceState::kUnknown;
  uint64_t epoch = 0;  // highest epoch the module has seen for the function
  std::string ifname;  // "" when no interface exists
  uint32_t ifindex = 0;
  MsiMode msi_mode = MsiMode::kNone;
  uint64_t held_xmits = 0;            // skbs queued for the device while gated
  uint64_t xmits_while_quiesced = 0;  // ndo_start_xmit calls while gated: must be 0
  uint64_t polls_while_quiesced = 0;  // NAPI polls while disabled: must be 0
  uint64_t drained_tx_bytes = 0;      // BQL in-flight bytes when the gate closed
  uint64_t drained_tx_packets = 0;
  uint64_t drained_rx_packets = 0;
  uint64_t bql_inflight = 0;  // now
  uint32_t napi_count = 0;
  uint32_t vectors_masked = 0;
  uint64_t quiesce_ns = 0;
};

// One vector's message, as the device holds it.
struct MsiVector {
  uint32_t index = 0;
  uint64_t address = 0;
  uint32_t data = 0;
  bool masked = false;
  uint32_t irq = 0;
  uint32_t cpu = 0;  // the CPU the kernel delivers it to (effective affinity)
};

// A raw message for one vector, written by Reroute (raw mode).
struct MsiWrite {
  uint32_t index = 0;
  uint64_t address = 0;
  uint32_t data = 0;
};

struct RerouteResult {
  std::vector<MsiVector> previous;  // before the move, for a rollback
  std::vector<MsiVector> current;   // read back after it
  DeviceStatus status;
};

// Requests, one per generic netlink command. Errors carry the module's
// extack message; codes follow ErrnoToStatusCode (a stale epoch is
// FAILED_PRECONDITION, a drain past its deadline DEADLINE_EXCEEDED, the
// module not loaded UNAVAILABLE).
class HookClient {
 public:
  explicit HookClient(std::unique_ptr<Transport> transport);

  absl::StatusOr<DeviceStatus> Quiesce(const std::string& bdf, uint64_t epoch,
                                       absl::Duration timeout);
  absl::StatusOr<DeviceStatus> Resume(const std::string& bdf, uint64_t epoch);
  absl::StatusOr<DeviceStatus> Attach(const std::string& bdf, uint64_t epoch);
  absl::StatusOr<DeviceStatus> Release(const std::string& bdf, uint64_t epoch);
  absl::StatusOr<DeviceStatus> Status(const std::string& bdf);
  absl::StatusOr<std::vector<MsiVector>> ReadMsi(const std::string& bdf);
  // Within one kernel: every vector to `cpu` through the kernel's affinity
  // API; the module verifies the messages it programmed.
  absl::StatusOr<RerouteResult> RerouteToCpu(const std::string& bdf, uint64_t epoch,
                                             uint32_t cpu);
  // Across kernels: write `messages` raw (mask, write, read back, compare).
  absl::StatusOr<RerouteResult> RerouteRaw(const std::string& bdf, uint64_t epoch,
                                           const std::vector<MsiWrite>& messages);

 private:
  struct Reply {
    Bytes raw;  // what `genl`'s attribute spans point into
    GenlReply genl;
    DeviceStatus status;
  };
  absl::StatusOr<uint16_t> FamilyId();
  // Sends one request built by `fill` and returns the decoded answer.
  template <typename Fill>
  absl::StatusOr<Reply> Call(uint8_t cmd, const std::string& bdf, Fill fill);

  std::unique_ptr<Transport> transport_;
  uint16_t family_id_ = 0;
  uint32_t seq_ = 0;
};

// Decoding helpers, exposed for tests.
absl::StatusOr<DeviceStatus> DecodeStatus(const AttrSet& attrs);
absl::StatusOr<std::vector<MsiVector>> DecodeMsiList(const Attr& list);

}  // namespace hook
}  // namespace nichandover

#endif  // NICHANDOVER_HOOK_CLIENT_HOOK_CLIENT_H_
