// Node drain: hands every NIC a node owns over to other nodes, each NIC by
// its own handover through the engine (the same machinery as
// CreateHandover), up to max_concurrent at once. The NodeService's
// DrainNode, GetDrain, WatchDrain and CancelDrain are thin wrappers.
//
// A drain is kept in memory only. What must survive a crash is already
// journalled by the engine: each handover. After a restart the drain is
// gone and its handovers finish or roll back on their own.
#ifndef NICHANDOVER_DAEMON_DRAIN_H_
#define NICHANDOVER_DAEMON_DRAIN_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/engine/node_engine.h"
#include "daemon/peer_client.h"
#include "daemon/platform/platform.h"
#include "nichandover/v1/config.pb.h"
#include "nichandover/v1/node_service.pb.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace daemon {

class DrainManager {
 public:
  static constexpr int kDefaultMaxConcurrent = 8;
  static constexpr int kMaxConcurrent = 64;
  // Done drains kept for GetDrain and request_id retries.
  static constexpr size_t kDoneDrainsKept = 16;

  struct Options {
    const v1::DaemonConfig* config = nullptr;  // not owned
    PeerClient* peers = nullptr;               // not owned
    platform::Platform* platform = nullptr;    // not owned
    engine::NodeEngine* engine = nullptr;      // not owned; outlives the manager
    // How long a reachability probe of a peer may take.
    absl::Duration probe_timeout = absl::Seconds(1);
    // How long CreateHandover may wait for the engine.
    absl::Duration create_wait = absl::Seconds(10);
  };

  explicit DrainManager(Options options);
  // Stops following the drains (no handover starts after it) and joins
  // their threads. Handovers in flight go on in the engine.
  ~DrainManager();
  DrainManager(const DrainManager&) = delete;
  DrainManager& operator=(const DrainManager&) = delete;

  // `request` has well-formed fields (checked by the NodeService);
  // `timeout` is its parsed timeout (zero: the daemon's default). Checks the
  // cluster state, plans the placement and starts the drain; errors as
  // NodeService.DrainNode documents, with nothing started.
  absl::StatusOr<v1::Drain> Start(const v1::DrainNodeRequest& request);
  // NOT_FOUND for an unknown id.
  absl::StatusOr<v1::Drain> Get(const std::string& drain_id);
  absl::StatusOr<v1::Drain> Cancel(const std::string& drain_id, const std::string& reason);
  // Calls `emit` with the current snapshot, then after every change, until
  // the drain is done, `emit` returns false, `cancelled` returns true or the
  // manager stops.
  absl::Status Watch(const std::string& drain_id, const std::function<bool(const v1::Drain&)>& emit,
                     const std::function<bool()>& cancelled);

 private:
  struct Run;

  // The NICs this node owns now, in BDF order; FAILED_PRECONDITION for one
  // held for maintenance or in a handover.
  absl::StatusOr<std::vector<std::string>> OwnedNics();
  // NICs owned (or being received) per peer, from the records of the NICs
  // this node sees.
  std::map<std::string, int> OwnedCounts();
  // The peers that answer Hello, probed at once.
  std::set<std::string> ReachablePeers(const std::vector<std::string>& peers);

  // With mu_ held: the spread rule's choice for NIC `index` of `run`, "" when
  // no candidate is left. Counts the choice.
  std::string PlaceLocked(Run& run, size_t index);
  void Coordinate(std::shared_ptr<Run> run);
  // Runs NIC `index` to a terminal state (several handovers when targets
  // refuse and the drain spreads).
  void DrainOneNic(Run& run, size_t index);
  // With mu_ held: NIC `index`'s target did not take it; leave that target
  // out for this NIC (or, `for_whole_drain`, for every NIC) and place the
  // NIC again.
  void ExcludeTargetLocked(Run& run, size_t index, bool for_whole_drain);
  void FinishNicLocked(Run& run, size_t index, v1::DrainNicState state);
  void ChangedLocked(Run& run);
  v1::Drain SnapshotLocked(const Run& run) const;
  std::shared_ptr<Run> FindLocked(const std::string& drain_id);
  // Joins the coordinator threads of done drains.
  void JoinDoneThreads();

  Options options_;
  // Serializes Start: the "one drain at a time" check, probes and planning.
  std::mutex start_mu_;

  std::mutex mu_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::map<std::string, std::shared_ptr<Run>> runs_;  // by drain_id
  std::map<std::string, std::string> by_request_id_;  // request_id -> drain_id
  std::deque<std::string> done_order_;                // oldest first
  // Coordinator threads by drain_id; a done drain's is joined by the next
  // Start (or the destructor), so finished threads do not pile up.
  std::map<std::string, std::thread> threads_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_DRAIN_H_
