// The node engine: runs the pure HandoverMachine against the real world.
//
// One protocol thread steps the machine; everything the machine asks for is
// executed here, in the order of the persistence rule: the Ready's journal
// records are appended and synced first, then its platform operations run on
// a bounded pool of threads, its peer messages go out through the
// PeerTransport (from a second, smaller pool), its answers wake the waiting
// RPC handlers, its timers are armed on the injected Clock. Results come back
// as events on the same queue. Every platform call and peer send has a
// deadline: a call that hangs holds one pool thread until it returns, and the
// machine gets DEADLINE_EXCEEDED at the deadline instead of its result.
// The engine also owns time: it stamps the handovers' phases with the
// clock's times as it sees them change, and it pushes each phase change to
// the handover's watchers.
#ifndef NICHANDOVER_DAEMON_ENGINE_NODE_ENGINE_H_
#define NICHANDOVER_DAEMON_ENGINE_NODE_ENGINE_H_

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/engine/clock.h"
#include "daemon/engine/executor.h"
#include "daemon/engine/observer.h"
#include "daemon/engine/operation_sequencer.h"
#include "daemon/engine/peer_transport.h"
#include "daemon/journal/journal.h"
#include "daemon/platform/platform.h"
#include "daemon/protocol/handover_machine.h"
#include "nichandover/v1/node_service.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace engine {

struct Mailbox;

// Receives one handover's changes (NodeService.WatchHandover). Called from
// engine threads with engine locks held: implementations must be quick (queue
// the event, start a write) and must not call into the engine.
class HandoverWatcher {
 public:
  virtual ~HandoverWatcher() = default;
  // The handover's state when the watch began (message "current state"),
  // then each phase change and its end. After an event whose handover is
  // done() nothing more comes.
  virtual void OnEvent(const v1::HandoverEvent& event) = 0;
  // The engine stops; nothing more comes.
  virtual void OnEngineStopped() = 0;
};

class NodeEngine {
 public:
  struct Options {
    std::string node_id;
    std::vector<std::string> peers;
    protocol::Timeouts timeouts;
    // Not owned; outlives the engine and any call still running (hung) when
    // the engine goes.
    platform::Platform* platform = nullptr;
    journal::Journal* journal = nullptr;     // not owned
    PeerTransport* transport = nullptr;      // not owned
    // Optional. Shared: platform calls that outlive the engine still report.
    std::shared_ptr<EngineObserver> observer;
    // This start's incarnation (OperationSequencer::NextIncarnation): the
    // high half of the operation ids that fence the platform calls.
    uint32_t incarnation = 0;
    // Compact the journal when it holds more records than this.
    size_t compact_after_records = 512;
    // Finished handovers kept per NIC (protocol::MachineConfig).
    size_t history_per_nic = protocol::MachineConfig().history_per_nic;
    // Time and timers; a RealClock when not set. Tests pass a FakeClock.
    std::shared_ptr<Clock> clock;
    // Threads for platform calls: this many calls may run (or hang) at once;
    // more wait, in order, for a free thread until their deadline.
    size_t platform_threads = 16;
    // Threads that hand messages to the PeerTransport (which must not block).
    size_t peer_threads = 4;
    // Calls waiting for a thread, per pool; beyond it a call fails at once
    // with RESOURCE_EXHAUSTED.
    size_t max_queued_calls = 1024;
    // Deadline of each platform call (a quiesce gets its drain time on top).
    // Longer than the machine's own step timers, so that those decide a
    // handover's steps as before; it answers the calls the machine sets no
    // timer for (repairs, an operator's recovery, maintenance).
    absl::Duration platform_call_deadline = absl::Seconds(60);
    // How long after a peer send's own deadline the engine stops waiting for
    // the transport's answer and reports DEADLINE_EXCEEDED itself.
    absl::Duration peer_answer_grace = absl::Seconds(5);
    // The daemon's config allows the kernel commit path (DaemonConfig
    // kernel_commit); the machine takes it only when the platform has one
    // too (Platform::fast_path).
    bool kernel_commit = true;
    // The kernel-events reader (when the platform has a fast path): how long
    // one FastPath::WaitEvents call may wait. It also bounds how long Stop
    // waits for the reader, since a kernel's wait cannot be interrupted.
    absl::Duration kernel_event_wait = absl::Seconds(1);
    // After a failed WaitEvents the reader waits (on the clock) this long,
    // doubling per failure in a row up to the maximum.
    absl::Duration kernel_event_backoff = absl::Milliseconds(100);
    absl::Duration kernel_event_max_backoff = absl::Seconds(5);
  };

  // Recovers (inventory, ownership records, hook states, the journal's
  // records) and starts the protocol thread.
  static absl::StatusOr<std::unique_ptr<NodeEngine>> Start(
      Options options, const std::vector<std::string>& journal_records);
  ~NodeEngine();
  NodeEngine(const NodeEngine&) = delete;
  NodeEngine& operator=(const NodeEngine&) = delete;

  // NodeService. `wait` bounds how long the call waits for the machine.
  absl::StatusOr<v1::Handover> CreateHandover(const v1::CreateHandoverRequest& request,
                                              absl::Duration wait);
  absl::StatusOr<v1::Handover> CancelHandover(const std::string& handover_id,
                                              const std::string& reason, absl::Duration wait);
  // The operator's decision for a handover stuck without its peer.
  absl::StatusOr<v1::RecoverNicResponse> RecoverNic(const v1::RecoverNicRequest& request,
                                                    absl::Duration wait);
  // Maintenance quiesce / resume of a NIC this node owns (no handover); the
  // ownership record the hook call was made under.
  absl::StatusOr<v1::OwnershipRecord> QuiesceNic(const v1::QuiesceNicRequest& request,
                                                 absl::Duration wait);
  absl::StatusOr<v1::OwnershipRecord> ResumeNic(const v1::ResumeNicRequest& request,
                                                absl::Duration wait);
  absl::StatusOr<v1::Handover> GetHandover(const std::string& handover_id);
  std::vector<v1::Handover> ListHandovers(const std::string& bdf);
  // The last handover ids of `bdf`, newest first.
  std::vector<std::string> RecentHandoverIds(const std::string& bdf, size_t limit);
  bool HeldForMaintenance(const std::string& bdf);

  // WatchHandover: gives `watcher` the handover's current state at once (on
  // this thread), then each change as the engine publishes it, until the
  // handover is done, Unwatch, or the engine stops. Returns the id to pass
  // to Unwatch (0 when the first event already ended the watch: a finished
  // handover). NOT_FOUND for an unknown id, UNAVAILABLE after Stop.
  absl::StatusOr<uint64_t> Watch(const std::string& handover_id,
                                 std::shared_ptr<HandoverWatcher> watcher);
  // Ends a watch; no event is delivered after it returns. Harmless for an
  // ended one.
  void Unwatch(uint64_t watch_id);
  // Watches running now.
  size_t WatcherCount();

  // Nothing queued for or running on the protocol thread, no peer hand-off
  // running or waiting, no platform call waiting and at most
  // `running_platform_calls` running. Tests on a FakeClock advance time only
  // when every engine is idle (apart from the calls they hang on purpose).
  bool Idle(size_t running_platform_calls = 0);
  // The pools' state (tests, metrics).
  BoundedExecutor::Stats PlatformPoolStats() { return platform_pool_->GetStats(); }
  BoundedExecutor::Stats PeerPoolStats() { return peer_pool_->GetStats(); }

  // PeerService: hands the request to the machine and waits for its answer.
  absl::StatusOr<protocol::PeerResponseBody> HandlePeerRequest(const std::string& from_node,
                                                               protocol::PeerRequestBody body,
                                                               absl::Duration wait);

  // Stops the protocol thread. Platform operations still running finish in
  // the background and their results are dropped.
  void Stop();

 private:
  explicit NodeEngine(Options options);

  // Journal space for one more handover's records (RESOURCE_EXHAUSTED on a
  // full disk).
  static constexpr size_t kJournalHeadroomBytes = 64 << 10;
  absl::Status ReserveJournalSpace();
  // The handover a request_id already names, if any.
  absl::StatusOr<v1::Handover> ExistingHandoverOf(const std::string& request_id);

  void Post(protocol::Event event);
  // Tells the machine what the inventory says of `nic` now.
  void RefreshNic(const std::string& nic);
  // Posts a request event and waits up to `wait` for the machine's answer
  // to `token`; nullptr when none came.
  std::shared_ptr<struct PendingAnswer> Ask(uint64_t token, protocol::Event event,
                                            absl::Duration wait);
  void Loop();
  // The kernel-events reader's thread: forwards each KernelEvent that
  // FastPath::WaitEvents returns to the machine, until Stop.
  void ReadKernelEvents();
  // Waits `delay` on the clock, or less when Stop comes first; false then.
  bool BackOff(absl::Duration delay);
  void Execute(protocol::Ready ready);
  // Timers of the machine, on the clock; protocol thread only.
  void ArmTimer(uint64_t timer_id, absl::Duration after);
  void CancelTimer(uint64_t timer_id);
  // Runs one platform call on the pool, bounded by its deadline.
  void RunOp(const protocol::PlatformOp& op);
  absl::Duration CallDeadline(const protocol::PlatformOp& op) const;
  // Hands one peer message to the transport, bounded by its deadline.
  void Send(const protocol::PeerSend& send);
  void Publish(const std::vector<v1::Handover>& updates);
  // Forgets the stamps of handovers the machine no longer keeps (with
  // machine_mu_ and mu_ held).
  void ForgetTrimmedHandovers();
  v1::Handover Stamp(v1::Handover handover);
  uint64_t NextToken();

  Options options_;
  // The machine is stepped by the protocol thread and read by RPC threads;
  // steps are short and pure, so one lock is enough.
  std::mutex machine_mu_;
  std::unique_ptr<protocol::HandoverMachine> machine_;
  std::shared_ptr<Mailbox> mailbox_;
  std::shared_ptr<Clock> clock_;
  // The machine's timer ids and the clock's handles (protocol thread only).
  std::map<uint64_t, Clock::TimerHandle> armed_timers_;
  std::unique_ptr<BoundedExecutor> platform_pool_;
  std::unique_ptr<BoundedExecutor> peer_pool_;
  // Stamps the platform calls, on the protocol thread, in the order the
  // machine asked for them.
  OperationSequencer sequencer_;
  // The journal is written by the protocol thread and reserved by RPC threads.
  std::mutex journal_mu_;
  // Compact when the journal holds more records than this (protocol thread).
  size_t compact_above_;
  std::thread loop_;
  // The kernel-events reader: a thread of its own, not a pool slot, since
  // it waits in the kernel all the time. Null without a fast path.
  std::thread kernel_events_;
  // Set by Stop; wakes the reader's back-off.
  std::mutex reader_mu_;
  std::condition_variable reader_wake_;
  bool reader_stop_ = false;

  // Guards everything below (RPC threads read, the protocol thread writes).
  std::mutex mu_;
  std::condition_variable changed_;
  bool stopped_ = false;
  uint64_t next_token_ = 1;
  std::map<uint64_t, std::shared_ptr<struct PendingAnswer>> pending_;
  // Latest stamped snapshot per handover.
  std::map<std::string, v1::Handover> latest_;
  // Watchers by handover, and the handover of each watch id.
  uint64_t next_watch_id_ = 1;
  std::map<std::string, std::map<uint64_t, std::shared_ptr<HandoverWatcher>>> watchers_;
  std::map<uint64_t, std::string> watched_;
  // Wall-clock start of each phase index seen, per handover.
  std::map<std::string, std::vector<absl::Time>> phase_starts_;
  std::map<std::string, absl::Time> created_;
  // ForgetTrimmedHandovers looks when created_ grows past this.
  static constexpr size_t kForgetBatch = 256;
  size_t forget_above_ = kForgetBatch;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_NODE_ENGINE_H_
