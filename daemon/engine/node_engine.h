// The node engine: runs the pure HandoverMachine against the real world.
//
// One protocol thread steps the machine; everything the machine asks for is
// executed here, in the order of the persistence rule: the Ready's journal
// records are appended and synced first, then its platform operations run on
// worker threads, its peer messages go out through the PeerTransport, its
// answers wake the waiting RPC handlers, its timers are armed. Results come
// back as events on the same queue. The engine also owns time: it stamps the
// handovers' phases with wall-clock times as it sees them change.
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

class TimerQueue;
struct Mailbox;

class NodeEngine {
 public:
  struct Options {
    std::string node_id;
    std::vector<std::string> peers;
    protocol::Timeouts timeouts;
    platform::Platform* platform = nullptr;  // not owned; outlives the engine
    journal::Journal* journal = nullptr;     // not owned
    PeerTransport* transport = nullptr;      // not owned
    // Optional. Shared: platform calls that outlive the engine still report.
    std::shared_ptr<EngineObserver> observer;
    // This start's incarnation (OperationSequencer::NextIncarnation): the
    // high half of the operation ids that fence the platform calls.
    uint32_t incarnation = 0;
    // Compact the journal when it holds more records than this.
    size_t compact_after_records = 512;
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

  // WatchHandover: calls `emit` with the current state, then with every
  // change, until the handover is done, `emit` returns false, `cancelled`
  // returns true, or the engine stops. NOT_FOUND for an unknown id.
  absl::Status Watch(const std::string& handover_id,
                     const std::function<bool(const v1::HandoverEvent&)>& emit,
                     const std::function<bool()>& cancelled);

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
  void Execute(protocol::Ready ready);
  void RunOp(const protocol::PlatformOp& op);
  void Publish(const std::vector<v1::Handover>& updates);
  v1::Handover Stamp(v1::Handover handover);
  uint64_t NextToken();

  Options options_;
  // The machine is stepped by the protocol thread and read by RPC threads;
  // steps are short and pure, so one lock is enough.
  std::mutex machine_mu_;
  std::unique_ptr<protocol::HandoverMachine> machine_;
  std::shared_ptr<Mailbox> mailbox_;
  std::unique_ptr<TimerQueue> timers_;
  // Stamps the platform calls, on the protocol thread, in the order the
  // machine asked for them.
  OperationSequencer sequencer_;
  // The journal is written by the protocol thread and reserved by RPC threads.
  std::mutex journal_mu_;
  std::thread loop_;

  // Guards everything below (RPC threads read, the protocol thread writes).
  std::mutex mu_;
  std::condition_variable changed_;
  bool stopped_ = false;
  uint64_t next_token_ = 1;
  std::map<uint64_t, std::shared_ptr<struct PendingAnswer>> pending_;
  // Latest stamped snapshot per handover and the change sequence watchers follow.
  std::map<std::string, v1::Handover> latest_;
  std::map<std::string, std::vector<v1::HandoverEvent>> events_;
  // Wall-clock start of each phase index seen, per handover.
  std::map<std::string, std::vector<absl::Time>> phase_starts_;
  std::map<std::string, absl::Time> created_;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_NODE_ENGINE_H_
