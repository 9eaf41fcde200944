// A stand-in for the nichandover_hook kernel module behind hook::Transport,
// for the backend's tests. It answers the generic netlink controller and the
// family's commands the way hook/kmod/nh_genl.c does -- the same epoch and
// operation id// fencing, state rules, errno values and extack texts, the same reply
// attributes -- over state the test sets up and inspects. Every connection
// (TransportFactory call) reaches the same module, like sockets to one
// kernel.
#ifndef NICHANDOVER_DAEMON_PLATFORM_LINUX_FAKE_HOOK_MODULE_H_
#define NICHANDOVER_DAEMON_PLATFORM_LINUX_FAKE_HOOK_MODULE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/platform/linux/module_connection.h"
#include "hook/client/hook_client.h"
#include "hook/client/netlink_codec.h"

namespace nichandover {
namespace platform {
namespace linux_backend {
namespace testing {

// The simulated machine's ownership record word and the rings beside it, as
// a driver's struct nh_commit_ops reaches them: shared by the fake modules
// of one test's nodes, like the machine's memory by their kernels.
struct FakeMachineRecord {
  absl::Mutex mu;
  uint64_t word = 0;
  uint64_t rings_epoch = 0;  // 0: none written
  uint64_t rings_op_id = 0;
  std::vector<hook::RingState> rings;
};

// One device as the module sees it: a PCI function it holds in cold mode
// (the default, like e1000e), or a contract driver's device.
struct FakeFunction {
  std::string ifname = "eth0";
  uint32_t ifindex = 2;
  hook::MsiMode msi_mode = hook::MsiMode::kMsix;
  std::vector<hook::MsiVector> vectors;  // in the order READ_MSI lists them
  hook::DeviceState state = hook::DeviceState::kRunning;
  hook::HandoverMode handover_mode = hook::HandoverMode::kCold;
  // What LIST reports besides the status.
  uint16_t vendor_id = 0x8086;
  uint16_t device_id = 0x10d3;
  std::string driver = "e1000e";
  uint32_t queue_count = 1;
  std::vector<uint8_t> config;  // contract devices: their config space

  // Contract devices: the driver's ring state. QUIESCE reports it, ATTACH
  // replaces it with what it is given.
  std::vector<hook::RingState> rings;
  // RESERVE: entries the device's MSI-X table has, vectors this node has
  // free, and the messages it hands out (APIC ID, first x86 vector).
  uint32_t msix_entries = 5;
  uint32_t free_vectors = 16;
  uint32_t reserve_apic_id = 2;
  uint32_t first_reserved_vector = 0x40;
  // The current reservation (messages for entries 0..n-1).
  std::vector<hook::MsiVector> reserved;
  uint64_t max_epoch = 0;
  uint64_t max_op_id = 0;       // highest NH_ATTR_OP_ID accepted at max_epoch
  hook::DeviceStatus counters;  // counters of the last quiesce

  // What the next QUIESCE finds.
  uint64_t drain_tx_bytes = 0;
  uint64_t drain_tx_packets = 0;
  uint64_t drain_rx_packets = 0;
  uint64_t xmits_to_hold = 0;
  bool drain_times_out = false;
  // A broken gate: calls counted after it closed.
  uint64_t leaked_xmits = 0;
  uint64_t leaked_polls = 0;
  // Interrupt remapping on: messages are IRTE handles (address bit 4).
  bool interrupt_remapping = false;
  // A faulty module that acknowledges a raw write but reports other
  // messages read back.
  bool misreport_read_back = false;

  // Kernel commit path (contract devices whose driver has struct
  // nh_commit_ops): the machine's record, and whether the target's
  // doorbell can be rung (a simulated kernel's node has no doorbell vector).
  bool kernel_commit = false;
  std::shared_ptr<FakeMachineRecord> record;
  bool doorbell_unreachable = false;
  uint64_t reserved_epoch = 0;  // the epoch of the reservation in force
  // The ARM in force (armed_epoch 0: none).
  uint64_t armed_epoch = 0;
  uint64_t armed_op_id = 0;
  uint64_t armed_handoff = 0;
  uint64_t armed_active = 0;
  uint64_t doorbells_ignored = 0;
};

// What the module saw of one request of its family.
struct FakeRequest {
  uint8_t cmd = 0;
  std::string dev;
  std::optional<uint64_t> epoch;
  std::optional<uint64_t> op_id;
  std::optional<uint32_t> timeout_ms;
  std::optional<uint32_t> reroute_mode;
  std::optional<uint32_t> vector_count;
  std::vector<hook::MsiWrite> messages;
  std::optional<std::vector<hook::RingState>> rings;  // NH_ATTR_RINGS, when sent
  std::optional<uint64_t> record_expected;             // ARM, HANDOFF
  std::optional<uint64_t> record_desired;
  std::optional<uint64_t> event_seq;  // EVENTS
  bool dump = false;                  // NLM_F_DUMP
};

// Thread-safe like a kernel: exchanges are serialised (a daemon calls from
// several threads). The accessors that hand out references are for a test's
// own thread while nothing else calls; Snapshot copies under the lock.
class FakeHookModule {
 public:
  void AddFunction(const std::string& bdf, FakeFunction function) {
    absl::MutexLock lock(&mu_);
    functions_[bdf] = function;
  }
  // Dies (test failure) when there is no such function.
  FakeFunction& function(const std::string& bdf);
  FakeFunction Snapshot(const std::string& bdf);
  // An unloaded module: the family is not registered.
  void set_loaded(bool loaded) {
    absl::MutexLock lock(&mu_);
    loaded_ = loaded;
  }

  TransportFactory Factory();
  const std::vector<FakeRequest>& requests() const { return requests_; }
  int connections() const { return connections_; }

  // The module's side of one request/answer exchange.
  absl::StatusOr<hook::Bytes> Exchange(const hook::Bytes& request);

  // Kernel commit path. The driver's doorbell interrupt for `bdf`, `epoch`
  // in its mailbox: runs what nh_commit_work does (at once) and logs the
  // event. Where this module's HANDOFF rings the target's doorbell: another
  // fake module's RingDoorbell (called after this module's lock is dropped);
  // unset, the doorbell reaches nobody.
  void RingDoorbell(const std::string& bdf, uint64_t epoch);
  void set_doorbell(std::function<void(const std::string& bdf, uint64_t epoch)> ring) {
    absl::MutexLock lock(&mu_);
    doorbell_ = std::move(ring);
  }
  std::vector<hook::KernelEvent> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  struct Answer;
  Answer Handle(const FakeRequest& request, FakeFunction& f);
  // A request past the fences; `held_epoch` as below.
  Answer Change(const FakeRequest& request, FakeFunction& f, uint64_t held_epoch);
  // `held_epoch` is the device's highest epoch before the request.
  Answer Reroute(const FakeRequest& request, FakeFunction& f, uint64_t held_epoch);
  Answer Attach(const FakeRequest& request, FakeFunction& f, uint64_t held_epoch);
  Answer Reserve(const FakeRequest& request, FakeFunction& f);
  Answer Arm(const FakeRequest& request, FakeFunction& f);
  Answer Handoff(const FakeRequest& request, FakeFunction& f, uint64_t held_epoch);
  absl::StatusOr<hook::Bytes> ExchangeLocked(const hook::Bytes& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  hook::Bytes Events(const FakeRequest& request, uint32_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Emit(const std::string& bdf, hook::KernelEvent::Kind kind, uint64_t epoch, uint64_t record,
            std::string reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  hook::Bytes List(uint32_t seq) const;

  absl::Mutex mu_;
  std::map<std::string, FakeFunction> functions_;
  std::vector<FakeRequest> requests_;
  bool loaded_ = true;
  int connections_ = 0;
  std::vector<hook::KernelEvent> events_;  // the log, seq from 1
  std::function<void(const std::string&, uint64_t)> doorbell_;
  std::optional<std::pair<std::string, uint64_t>> pending_doorbell_;  // rung after the lock
};

}  // namespace testing
}  // namespace linux_backend
}  // namespace platform
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_PLATFORM_LINUX_FAKE_HOOK_MODULE_H_
