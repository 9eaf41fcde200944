// The client of the kernel hook module's "nichandover" generic netlink
// family. Its calls map one to one onto the daemon's platform Hook and Router
// (daemon/platform/platform.h): Quiesce/Resume/Attach/Release/Status, and
// ReadMessages/Reroute/ReserveTargetMessages/ReleaseReservation; List feeds
// the Inventory and Reclaim is the operator's way back. It has no gRPC or protobuf dependency, so it also
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
#include "common/fence.h"
#include "hook/client/netlink_codec.h"

namespace nichandover {
namespace hook {

// Carries one request to the kernel and returns everything it answered up to
// and including the NLMSG_ERROR ack for that request (for a dump, its
// NLMSG_DONE).
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
  kStandby,   // contract driver bound, another node owns the device
};

const char* DeviceStateName(DeviceState state);

enum class MsiMode { kNone, kMsi, kMsix };

// How the module hands the device over (enum nh_handover_mode).
enum class HandoverMode {
  kUnknown,   // not reported (an older module)
  kContract,  // the driver implements nh_handover_ops: live, ring state kept
  kCold,      // any other driver: gate and drain, then the driver's own close/bind
};

const char* HandoverModeName(HandoverMode mode);

// Where one queue pair's rings stopped (NH_ATTR_RINGS items).
struct RingState {
  uint32_t queue = 0;
  uint32_t rx_next_to_clean = 0;
  uint32_t rx_next_to_use = 0;
  uint32_t tx_next_to_clean = 0;
  uint32_t tx_next_to_use = 0;
  friend bool operator==(const RingState& a, const RingState& b) {
    return a.queue == b.queue && a.rx_next_to_clean == b.rx_next_to_clean &&
           a.rx_next_to_use == b.rx_next_to_use && a.tx_next_to_clean == b.tx_next_to_clean &&
           a.tx_next_to_use == b.tx_next_to_use;
  }
};

// What every successful reply reports.
struct DeviceStatus {
  DeviceState state = DeviceState::kUnknown;
  uint64_t epoch = 0;  // highest epoch the module has seen for the function
  uint64_t op_id = 0;  // highest operation id it accepted at that epoch
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
  HandoverMode handover_mode = HandoverMode::kUnknown;
  uint32_t queue_count = 0;  // 0 when not reported
  // NH_ATTR_RINGS: a contract driver's ring state in a QUIESCE reply.
  std::vector<RingState> rings;
  // Contract devices: the driver has the kernel commit path (nh_commit_ops),
  // the epoch of the ARM in force (0: none) and doorbells that did not commit.
  bool kernel_commit = false;
  uint64_t armed_epoch = 0;
  uint64_t doorbells_ignored = 0;
};


// One device of a LIST dump: its status plus what identifies it.
struct ListedDevice {
  std::string id;  // the machine-wide PCI name, "0000:03:00.0"
  DeviceStatus status;
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  std::string driver;           // "" when none is bound
  std::vector<uint8_t> config;  // PCI config space (contract devices only)
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

// How far a HANDOFF got (enum nh_handoff_stage), in order.
enum class HandoffStage {
  kNothing,
  kQuiesced,
  kRerouted,
  kRingsWritten,
  kHandedOff,     // the CAS PREPARING -> HANDOFF won
  kDoorbellRung,  // and the target kernel's doorbell rang
};

struct HandoffReply {
  HandoffStage stage = HandoffStage::kNothing;
  uint64_t record = 0;              // the record word the CAS found
  std::vector<MsiVector> previous;  // what the reroute replaced
  DeviceStatus status;              // rings: where the driver stopped
};

// One entry of the kernel commit path's event log (enum nh_event_kind).
struct KernelEvent {
  enum class Kind { kUnknown, kCommitted, kNotCommitted };
  uint64_t seq = 0;  // from 1 per module load
  Kind kind = Kind::kUnknown;
  std::string dev;
  uint64_t epoch = 0;
  uint64_t record = 0;  // the record word as the kernel left or found it
  std::string reason;   // why not committed
};

struct EventLog {
  std::vector<KernelEvent> events;  // oldest first
  uint64_t newest_seq = 0;          // pass it as `after_seq` next time
};

// Requests, one per generic netlink command. Errors carry the module's
// extack message; codes follow ErrnoToStatusCode (a stale epoch is
// FAILED_PRECONDITION, a drain past its deadline DEADLINE_EXCEEDED, the
// module not loaded UNAVAILABLE). Calls that change a device carry a Fence:
// NH_ATTR_EPOCH, and NH_ATTR_OP_ID unless its op_id is 0; the module refuses
// a fence below the highest it accepted for the device (-ESTALE).
class HookClient {
 public:
  explicit HookClient(std::unique_ptr<Transport> transport);

  absl::StatusOr<DeviceStatus> Quiesce(const std::string& bdf, const Fence& fence,
                                       absl::Duration timeout);
  absl::StatusOr<DeviceStatus> Resume(const std::string& bdf, const Fence& fence);
  // `rings`: where the source's driver stopped (contract devices); empty for
  // a first start or a cold-mode device.
  absl::StatusOr<DeviceStatus> Attach(const std::string& bdf, const Fence& fence,
                                      const std::vector<RingState>& rings = {});
  absl::StatusOr<DeviceStatus> Release(const std::string& bdf, const Fence& fence);
  absl::StatusOr<DeviceStatus> Status(const std::string& bdf);
  // Every device the module knows (a dump: one message each).
  absl::StatusOr<std::vector<ListedDevice>> List();
  // Target side: vectors on this node for MSI-X entries 0..count-1; the
  // messages that reach them, in entry order. RESOURCE_EXHAUSTED (-ENOSPC)
  // when the node has too few free vectors, FAILED_PRECONDITION for a device
  // without a handover contract.
  absl::StatusOr<std::vector<MsiVector>> Reserve(const std::string& bdf, const Fence& fence,
                                                 uint32_t count);
  absl::StatusOr<DeviceStatus> Unreserve(const std::string& bdf, const Fence& fence);
  // Operator: take a released device back at a higher epoch (stays quiesced
  // until Resume).
  absl::StatusOr<DeviceStatus> Reclaim(const std::string& bdf, const Fence& fence);
  absl::StatusOr<std::vector<MsiVector>> ReadMsi(const std::string& bdf);

  // Kernel commit path (docs/hook.md). Record words are the machine's
  // encoding. Target: after Reserve at fence.epoch, take `handoff_word` to
  // `active_word` alone when the doorbell rings. FAILED_PRECONDITION
  // (-EOPNOTSUPP) for a driver without the kernel commit path.
  absl::StatusOr<DeviceStatus> Arm(const std::string& bdf, const Fence& fence,
                                   uint64_t handoff_word, uint64_t active_word);
  // Source: quiesce, raw reroute to `messages`, rings beside the record, CAS
  // `expected_word` -> `desired_word`, doorbell, release; one call.
  absl::StatusOr<HandoffReply> Handoff(const std::string& bdf, const Fence& fence,
                                       uint64_t expected_word, uint64_t desired_word,
                                       const std::vector<MsiWrite>& messages,
                                       absl::Duration drain_timeout);
  // The events after `after_seq`, waiting up to `wait` in the kernel for one
  // when there is none (zero: no wait).
  absl::StatusOr<EventLog> Events(uint64_t after_seq, absl::Duration wait);
  // Within one kernel: every vector to `cpu` through the kernel's affinity
  // API; the module verifies the messages it programmed.
  absl::StatusOr<RerouteResult> RerouteToCpu(const std::string& bdf, const Fence& fence,
                                             uint32_t cpu);
  // Across kernels: write `messages` raw (mask, write, read back, compare).
  absl::StatusOr<RerouteResult> RerouteRaw(const std::string& bdf, const Fence& fence,
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
  absl::StatusOr<DeviceStatus> CallWithFence(uint8_t cmd, const std::string& bdf,
                                             const Fence& fence);

  std::unique_ptr<Transport> transport_;
  uint16_t family_id_ = 0;
  uint32_t seq_ = 0;
};

// NH_ATTR_EPOCH and, for a nonzero op_id, NH_ATTR_OP_ID.
void PutFence(GenlMessageBuilder& m, const Fence& fence);

// Decoding helpers, exposed for tests.
absl::StatusOr<DeviceStatus> DecodeStatus(const AttrSet& attrs);
absl::StatusOr<std::vector<MsiVector>> DecodeMsiList(const Attr& list);
absl::StatusOr<std::vector<RingState>> DecodeRings(const Attr& list);
absl::StatusOr<ListedDevice> DecodeListedDevice(const AttrSet& attrs);
absl::StatusOr<EventLog> DecodeEventLog(const AttrSet& attrs);
// NH_ATTR_MSI_LIST as a raw write sends it.
void PutMsiWrites(GenlMessageBuilder& m, uint16_t type, const std::vector<MsiWrite>& messages);
// NH_ATTR_RINGS as the module reads it: a nested array, item i+1 per ring.
void PutRings(GenlMessageBuilder& m, const std::vector<RingState>& rings);

}  // namespace hook
}  // namespace nichandover

#endif  // NICHANDOVER_HOOK_CLIENT_HOOK_CLIENT_H_
