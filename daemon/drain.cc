#include "daemon/drain.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/proto_time.h"

namespace nichandover {
namespace daemon {
namespace {

// A drain worker's view of one handover: each event goes to `on_event`, and
// `wake` runs when the handover ended or the engine stopped, so the worker
// blocked on DrainManager::changed_ looks again.
class PhaseFollower final : public engine::HandoverWatcher {
 public:
  PhaseFollower(std::function<void(const v1::HandoverEvent&)> on_event,
                std::function<void()> wake)
      : on_event_(std::move(on_event)), wake_(std::move(wake)) {}

  void OnEvent(const v1::HandoverEvent& event) override {
    on_event_(event);
    if (event.handover().done()) End();
  }
  void OnEngineStopped() override { End(); }
  bool ended() const { return ended_.load(); }

 private:
  void End() {
    ended_.store(true);
    wake_();
  }

  std::function<void(const v1::HandoverEvent&)> on_event_;
  std::function<void()> wake_;
  std::atomic<bool> ended_{false};
};

std::string NewDrainId() {
  std::random_device random;
  uint64_t value = (static_cast<uint64_t>(random()) << 32) ^ random();
  return absl::StrFormat("drain-%012x", value & 0xffffffffffffULL);
}

std::string DrainId(const std::string& id_or_name) {
  absl::string_view id = id_or_name;
  absl::ConsumePrefix(&id, "drains/");
  return std::string(id);
}

absl::Status UnknownDrain(const std::string& drain_id, size_t kept) {
  return absl::NotFoundError(absl::StrCat("drain_id: no drain '", DrainId(drain_id),
                                          "' on this daemon (it keeps the running drain and "
                                          "the last ",
                                          kept, " done ones)"));
}

bool IsTerminal(v1::DrainNicState state) {
  return state == v1::DRAIN_NIC_STATE_MOVED || state == v1::DRAIN_NIC_STATE_STAYED ||
         state == v1::DRAIN_NIC_STATE_NEEDS_RECOVERY || state == v1::DRAIN_NIC_STATE_NOT_STARTED;
}

// The same drain is asked for again: every argument that shapes it matches.
bool SameArguments(const v1::Drain& drain, const v1::DrainNodeRequest& request,
                   int max_concurrent) {
  return drain.node() == request.node() && drain.to_node() == request.to_node() &&
         drain.max_concurrent() == max_concurrent &&
         drain.timeout().seconds() == request.timeout().seconds() &&
         drain.timeout().nanos() == request.timeout().nanos();
}

void SetError(v1::Error* error, absl::StatusCode code, const std::string& reason,
              const std::string& message) {
  error->set_code(static_cast<int32_t>(code));
  error->set_reason(reason);
  error->set_message(message);
}

}  // namespace

// One drain. Everything but `coordinator` is guarded by DrainManager::mu_.
struct DrainManager::Run {
  v1::Drain drain;
  uint64_t version = 0;
  // The peers the spread rule may still pick (reachable, not out of
  // capacity), and per NIC the peers that refused that NIC.
  std::set<std::string> candidates;
  std::vector<std::set<std::string>> refused_by;
  // NICs owned per peer (records plus the drain's placements).
  std::map<std::string, int> owned;
  size_t next_nic = 0;
  std::string cancel_reason;
  std::vector<absl::Time> nic_start;
};

DrainManager::DrainManager(Options options) : options_(std::move(options)) {}

DrainManager::~DrainManager() {
  std::map<std::string, std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  changed_.notify_all();
  for (auto& [id, t] : threads) t.join();
}

absl::StatusOr<std::vector<std::string>> DrainManager::OwnedNics() {
  const std::string& self = options_.config->node_id();
  auto nics = options_.platform->inventory->ListNics();
  if (!nics.ok()) return nics.status();
  std::vector<std::string> owned;
  for (const auto& nic : *nics) {
    auto record = options_.platform->arbiter->Read(nic.bdf);
    if (!record.ok()) {
      if (record.status().code() == absl::StatusCode::kNotFound) continue;  // unmanaged
      return record.status();
    }
    if (record->owner_node() != self) continue;
    if (record->state() != v1::OWNERSHIP_STATE_ACTIVE) {
      return absl::FailedPreconditionError(
          absl::StrCat("a handover of ", nic.bdf, " to ", record->target_node(),
                       " runs; drain the node after it ends ('nicctl handover list')"));
    }
    if (options_.engine->HeldForMaintenance(nic.bdf)) {
      return absl::FailedPreconditionError(
          absl::StrCat(nic.bdf, " is held for maintenance; resume it first ('nicctl nic resume ",
                       nic.bdf, "')"));
    }
    owned.push_back(nic.bdf);
  }
  std::sort(owned.begin(), owned.end());
  return owned;
}

std::map<std::string, int> DrainManager::OwnedCounts() {
  std::map<std::string, int> counts;
  auto nics = options_.platform->inventory->ListNics();
  if (!nics.ok()) return counts;
  for (const auto& nic : *nics) {
    auto record = options_.platform->arbiter->Read(nic.bdf);
    if (!record.ok()) continue;
    // A NIC on its way to a node counts for where it goes.
    const std::string& holder = record->state() == v1::OWNERSHIP_STATE_ACTIVE
                                    ? record->owner_node()
                                    : record->target_node();
    ++counts[holder];
  }
  return counts;
}

std::set<std::string> DrainManager::ReachablePeers(const std::vector<std::string>& peers) {
  std::vector<std::future<bool>> probes;
  for (const auto& id : peers) {
    probes.push_back(std::async(std::launch::async, [this, id] {
      auto hello = options_.peers->Hello(id, options_.probe_timeout);
      return hello.ok() && hello->node_id() == id;
    }));
  }
  std::set<std::string> reachable;
  for (size_t i = 0; i < peers.size(); ++i) {
    if (probes[i].get()) reachable.insert(peers[i]);
  }
  return reachable;
}

void DrainManager::JoinDoneThreads() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = threads_.begin(); it != threads_.end();) {
      auto run = runs_.find(it->first);
      // A drain trimmed from runs_ was done long ago.
      if (run == runs_.end() || run->second->drain.done()) {
        done.push_back(std::move(it->second));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Done is set as the coordinator's last step: these joins return at once.
  for (auto& t : done) t.join();
}

absl::StatusOr<v1::Drain> DrainManager::Start(const v1::DrainNodeRequest& request) {
  std::lock_guard<std::mutex> start_lock(start_mu_);
  JoinDoneThreads();
  const int max_concurrent =
      request.max_concurrent() == 0 ? kDefaultMaxConcurrent : request.max_concurrent();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("the daemon is shutting down");
    auto it = by_request_id_.find(request.request_id());
    if (it != by_request_id_.end()) {
      auto run = FindLocked(it->second);
      if (run != nullptr) {
        if (!SameArguments(run->drain, request, max_concurrent)) {
          return absl::AlreadyExistsError(absl::StrCat("request_id '", request.request_id(),
                                                       "' started drain ", it->second,
                                                       " with other arguments"));
        }
        return SnapshotLocked(*run);
      }
    }
  }
  const v1::DaemonConfig& config = *options_.config;
  std::vector<std::string> peers;
  for (const auto& peer : config.peers()) peers.push_back(peer.node_id());
  auto is_peer = [&](const std::string& id) {
    return std::find(peers.begin(), peers.end(), id) != peers.end();
  };
  if (request.node() != config.node_id()) {
    if (is_peer(request.node())) {
      return absl::FailedPreconditionError(
          absl::StrCat("node: this daemon is node '", config.node_id(), "'; node '", request.node(),
                       "' is drained by its own daemon"));
    }
    return absl::NotFoundError(
        absl::StrCat("node: no node '", request.node(), "' in this daemon's configuration"));
  }
  if (request.to_node() == config.node_id()) {
    return absl::InvalidArgumentError("to_node: must be another node than the drained one");
  }
  if (!request.to_node().empty() && !is_peer(request.to_node())) {
    return absl::NotFoundError(
        absl::StrCat("to_node: no node '", request.to_node(), "' in this daemon's configuration"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, run] : runs_) {
      if (!run->drain.done()) {
        return absl::FailedPreconditionError(
            absl::StrCat("drain ", id, " of this node runs; wait for it or cancel it"));
      }
    }
  }
  absl::StatusOr<std::vector<std::string>> nics = OwnedNics();
  if (!nics.ok()) return nics.status();

  auto run = std::make_shared<Run>();
  v1::Drain& drain = run->drain;
  drain.set_drain_id(NewDrainId());
  drain.set_name(absl::StrCat("drains/", drain.drain_id()));
  drain.set_request_id(request.request_id());
  drain.set_node(request.node());
  drain.set_to_node(request.to_node());
  drain.set_max_concurrent(max_concurrent);
  *drain.mutable_timeout() = request.timeout();
  *drain.mutable_create_time() = ToProto(absl::Now());
  if (!nics->empty()) {
    std::set<std::string> reachable = ReachablePeers(
        request.to_node().empty() ? peers : std::vector<std::string>{request.to_node()});
    if (!request.to_node().empty() && reachable.empty()) {
      return absl::UnavailableError(
          absl::StrCat("to_node: node '", request.to_node(), "' does not answer"));
    }
    if (reachable.empty()) {
      return absl::FailedPreconditionError(
          "no other node answers; nothing can take this node's NICs");
    }
    run->candidates = reachable;
    run->owned = OwnedCounts();
  }
  run->refused_by.resize(nics->size());
  run->nic_start.resize(nics->size());
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < nics->size(); ++i) {
    v1::DrainNic* nic = drain.add_nics();
    nic->set_bdf((*nics)[i]);
    nic->set_state(v1::DRAIN_NIC_STATE_WAITING);
    nic->set_owner_node(config.node_id());
    // The plan: shown at once, revised only when a target refuses.
    nic->set_target_node(request.to_node().empty() ? PlaceLocked(*run, i) : request.to_node());
  }
  if (nics->empty()) {
    drain.set_done(true);
    *drain.mutable_end_time() = drain.create_time();
  }
  runs_[drain.drain_id()] = run;
  by_request_id_[request.request_id()] = drain.drain_id();
  NH_LOG(INFO) << "drain " << drain.drain_id() << " of " << drain.node() << ": " << nics->size()
               << " NICs"
               << (drain.to_node().empty() ? ", spread" : absl::StrCat(" to ", drain.to_node()));
  if (drain.done()) {
    done_order_.push_back(drain.drain_id());
  } else {
    threads_[drain.drain_id()] = std::thread([this, run] { Coordinate(run); });
  }
  return SnapshotLocked(*run);
}

std::string DrainManager::PlaceLocked(Run& run, size_t index) {
  std::string best;
  for (const auto& node : run.candidates) {  // node_id order: ties go to the smaller
    if (run.refused_by[index].count(node) > 0) continue;
    if (best.empty() || run.owned[node] < run.owned[best]) best = node;
  }
  if (!best.empty()) ++run.owned[best];
  return best;
}

void DrainManager::Coordinate(std::shared_ptr<Run> run) {
  std::vector<std::thread> workers;
  for (int w = 0; w < run->drain.max_concurrent(); ++w) {
    workers.emplace_back([this, run] {
      while (true) {
        size_t index;
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (stopping_ || run->drain.cancel_requested() ||
              run->next_nic >= static_cast<size_t>(run->drain.nics_size())) {
            return;
          }
          index = run->next_nic++;
        }
        DrainOneNic(*run, index);
      }
    });
  }
  for (auto& w : workers) w.join();
  std::lock_guard<std::mutex> lock(mu_);
  v1::Drain& drain = run->drain;
  for (int i = 0; i < drain.nics_size(); ++i) {
    v1::DrainNic* nic = drain.mutable_nics(i);
    if (IsTerminal(nic->state())) continue;
    // Only waiting NICs are left when cancelled; a stopping daemon leaves
    // running handovers to the engine and the drain ends with them unknown.
    if (nic->state() == v1::DRAIN_NIC_STATE_WAITING) {
      SetError(nic->mutable_error(), absl::StatusCode::kCancelled, "DRAIN_CANCELLED",
               stopping_ ? "the daemon stopped before this NIC's handover started"
                         : absl::StrCat("the drain was cancelled before this NIC's handover "
                                        "started: ",
                                        run->cancel_reason));
      FinishNicLocked(*run, i, v1::DRAIN_NIC_STATE_NOT_STARTED);
    }
  }
  drain.set_done(true);
  *drain.mutable_end_time() = ToProto(absl::Now());
  done_order_.push_back(drain.drain_id());
  while (done_order_.size() > kDoneDrainsKept) {
    auto old = runs_.find(done_order_.front());
    if (old != runs_.end()) {
      by_request_id_.erase(old->second->drain.request_id());
      runs_.erase(old);
    }
    done_order_.pop_front();
  }
  NH_LOG(INFO) << "drain " << drain.drain_id() << " done: " << SnapshotLocked(*run).moved()
               << " of " << drain.nics_size() << " NICs moved";
  ChangedLocked(*run);
}

void DrainManager::DrainOneNic(Run& run, size_t index) {
  const bool spread = run.drain.to_node().empty();
  for (int attempt = 1;; ++attempt) {
    v1::CreateHandoverRequest request;
    {
      std::lock_guard<std::mutex> lock(mu_);
      v1::DrainNic* nic = run.drain.mutable_nics(index);
      if (stopping_) return;
      if (run.drain.cancel_requested()) {
        SetError(nic->mutable_error(), absl::StatusCode::kCancelled, "DRAIN_CANCELLED",
                 absl::StrCat("the drain was cancelled: ", run.cancel_reason));
        FinishNicLocked(
            run, index,
            attempt == 1 ? v1::DRAIN_NIC_STATE_NOT_STARTED : v1::DRAIN_NIC_STATE_STAYED);
        return;
      }
      // A planned target that left the candidates meanwhile (it stopped
      // answering another NIC's handover): place the NIC again first.
      if (spread && !nic->target_node().empty() && run.candidates.count(nic->target_node()) == 0) {
        ExcludeTargetLocked(run, index, /*for_whole_drain=*/false);
      }
      if (nic->target_node().empty()) {
        if (!nic->has_error()) {
          SetError(nic->mutable_error(), absl::StatusCode::kFailedPrecondition, "NO_TARGET",
                   "no reachable node with capacity is left to take it");
        }
        FinishNicLocked(run, index, v1::DRAIN_NIC_STATE_STAYED);
        return;
      }
      if (attempt == 1) run.nic_start[index] = absl::Now();
      nic->set_state(v1::DRAIN_NIC_STATE_RUNNING);
      nic->set_phase(v1::HANDOVER_PHASE_PENDING);
      ChangedLocked(run);
      request.set_request_id(absl::StrCat(run.drain.drain_id(), ".", nic->bdf(), ".", attempt));
      request.set_nic(nic->bdf());
      request.set_target_node(nic->target_node());
      *request.mutable_timeout() = run.drain.timeout();
    }
    absl::StatusOr<v1::Handover> created =
        options_.engine->CreateHandover(request, options_.create_wait);
    bool cancel_now = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      v1::DrainNic* nic = run.drain.mutable_nics(index);
      if (!created.ok()) {
        SetError(nic->mutable_error(), created.status().code(), "CREATE_FAILED",
                 std::string(created.status().message()));
        if (spread && created.status().code() == absl::StatusCode::kUnavailable &&
            !run.drain.cancel_requested()) {
          // The target stopped answering before the offer: as a rollback
          // for PEER_UNAVAILABLE, the NIC goes to the next candidate.
          ExcludeTargetLocked(run, index, /*for_whole_drain=*/true);
          continue;
        }
        FinishNicLocked(run, index, v1::DRAIN_NIC_STATE_STAYED);
        return;
      }
      nic->set_handover_id(created->handover_id());
      nic->add_handover_ids(created->handover_id());
      nic->set_phase(created->phase());
      // A cancel that came while the handover was being created did not see
      // its id: this thread asks for the rollback instead.
      cancel_now = run.drain.cancel_requested();
      ChangedLocked(run);
    }
    const std::string id = created->handover_id();
    if (cancel_now) {
      (void)options_.engine->CancelHandover(id, run.cancel_reason, absl::Seconds(5));
    }
    // Follow the handover's phases until it ends or the daemon stops; the
    // engine pushes each change to the watcher (changed_ wakes this thread).
    auto watcher = std::make_shared<PhaseFollower>(
        [this, &run, index](const v1::HandoverEvent& event) {
          std::lock_guard<std::mutex> lock(mu_);
          v1::DrainNic* nic = run.drain.mutable_nics(index);
          if (nic->phase() != event.handover().phase()) {
            nic->set_phase(event.handover().phase());
            ChangedLocked(run);
          }
        },
        [this] {
          // Under mu_, so the worker cannot miss it between its look and its wait.
          std::lock_guard<std::mutex> lock(mu_);
          changed_.notify_all();
        });
    absl::StatusOr<uint64_t> watch = options_.engine->Watch(id, watcher);
    if (watch.ok()) {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stopping_ || watcher->ended(); });
    }
    if (watch.ok() && *watch != 0) options_.engine->Unwatch(*watch);
    absl::StatusOr<v1::Handover> final = options_.engine->GetHandover(id);
    std::lock_guard<std::mutex> lock(mu_);
    v1::DrainNic* nic = run.drain.mutable_nics(index);
    if (!final.ok() || !final->done()) return;  // the daemon stops; the engine goes on
    nic->set_phase(final->phase());
    if (final->phase() == v1::HANDOVER_PHASE_COMMITTED) {
      nic->set_owner_node(final->target_node());
      nic->clear_error();
      if (final->stats().has_blackout()) *nic->mutable_blackout() = final->stats().blackout();
      FinishNicLocked(run, index, v1::DRAIN_NIC_STATE_MOVED);
      return;
    }
    *nic->mutable_error() = final->error();
    if (final->phase() == v1::HANDOVER_PHASE_FAILED) {
      nic->set_owner_node("");  // undecided until an operator recovers it
      FinishNicLocked(run, index, v1::DRAIN_NIC_STATE_NEEDS_RECOVERY);
      return;
    }
    // Rolled back: the NIC still runs here. When spreading, a refusal or an
    // unreachable target moves the NIC to the next candidate.
    const std::string& reason = final->error().reason();
    const bool refused = reason == "TARGET_REFUSED";
    const bool unreachable = reason == "PEER_UNAVAILABLE";
    if (!spread || (!refused && !unreachable) || run.drain.cancel_requested()) {
      FinishNicLocked(run, index, v1::DRAIN_NIC_STATE_STAYED);
      return;
    }
    const v1::RefusalReason why = final->error().refusal_reason();
    ExcludeTargetLocked(run, index,
                        unreachable || why == v1::REFUSAL_REASON_NO_VECTORS ||
                            why == v1::REFUSAL_REASON_NOT_ACCEPTING);
  }
}

void DrainManager::ExcludeTargetLocked(Run& run, size_t index, bool for_whole_drain) {
  v1::DrainNic* nic = run.drain.mutable_nics(index);
  const std::string target = nic->target_node();
  if (for_whole_drain) run.candidates.erase(target);
  run.refused_by[index].insert(target);
  --run.owned[target];
  NH_LOG(INFO) << "drain " << run.drain.drain_id() << ": " << nic->bdf() << " not taken by "
               << target << " (" << nic->error().reason() << "); placing it again";
  nic->set_target_node(PlaceLocked(run, index));
  ChangedLocked(run);
}

void DrainManager::FinishNicLocked(Run& run, size_t index, v1::DrainNicState state) {
  v1::DrainNic* nic = run.drain.mutable_nics(index);
  nic->set_state(state);
  if (run.nic_start[index] != absl::Time()) {
    *nic->mutable_duration() = ToProto(absl::Now() - run.nic_start[index]);
  }
  ChangedLocked(run);
}

void DrainManager::ChangedLocked(Run& run) {
  ++run.version;
  changed_.notify_all();
}

v1::Drain DrainManager::SnapshotLocked(const Run& run) const {
  v1::Drain out = run.drain;
  for (const auto& nic : out.nics()) {
    switch (nic.state()) {
      case v1::DRAIN_NIC_STATE_WAITING:
        out.set_waiting(out.waiting() + 1);
        break;
      case v1::DRAIN_NIC_STATE_RUNNING:
        out.set_running(out.running() + 1);
        break;
      case v1::DRAIN_NIC_STATE_MOVED:
        out.set_moved(out.moved() + 1);
        break;
      case v1::DRAIN_NIC_STATE_STAYED:
        out.set_stayed(out.stayed() + 1);
        break;
      case v1::DRAIN_NIC_STATE_NEEDS_RECOVERY:
        out.set_needs_recovery(out.needs_recovery() + 1);
        break;
      case v1::DRAIN_NIC_STATE_NOT_STARTED:
        out.set_not_started(out.not_started() + 1);
        break;
      default:
        break;
    }
  }
  return out;
}

std::shared_ptr<DrainManager::Run> DrainManager::FindLocked(const std::string& drain_id) {
  auto it = runs_.find(DrainId(drain_id));
  return it == runs_.end() ? nullptr : it->second;
}

absl::StatusOr<v1::Drain> DrainManager::Get(const std::string& drain_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto run = FindLocked(drain_id);
  if (run == nullptr) return UnknownDrain(drain_id, kDoneDrainsKept);
  return SnapshotLocked(*run);
}

absl::StatusOr<v1::Drain> DrainManager::Cancel(const std::string& drain_id,
                                               const std::string& reason) {
  std::vector<std::string> running;
  std::shared_ptr<Run> run;
  {
    std::lock_guard<std::mutex> lock(mu_);
    run = FindLocked(drain_id);
    if (run == nullptr) return UnknownDrain(drain_id, kDoneDrainsKept);
    if (run->drain.done() || run->drain.cancel_requested()) return SnapshotLocked(*run);
    run->drain.set_cancel_requested(true);
    run->cancel_reason = reason.empty() ? "cancelled by the operator" : reason;
    for (const auto& nic : run->drain.nics()) {
      if (nic.state() == v1::DRAIN_NIC_STATE_RUNNING && !nic.handover_id().empty()) {
        running.push_back(nic.handover_id());
      }
    }
    ChangedLocked(*run);
  }
  NH_LOG(INFO) << "drain " << run->drain.drain_id() << " cancelled; rolling back " << running.size()
               << " running handovers where still possible";
  // Past its commit point a handover refuses the cancel and finishes.
  for (const auto& id : running) {
    (void)options_.engine->CancelHandover(id, run->cancel_reason, absl::Seconds(5));
  }
  std::lock_guard<std::mutex> lock(mu_);
  return SnapshotLocked(*run);
}

absl::Status DrainManager::Watch(const std::string& drain_id,
                                 const std::function<bool(const v1::Drain&)>& emit,
                                 const std::function<bool()>& cancelled) {
  std::shared_ptr<Run> run;
  {
    std::lock_guard<std::mutex> lock(mu_);
    run = FindLocked(drain_id);
  }
  if (run == nullptr) return UnknownDrain(drain_id, kDoneDrainsKept);
  bool first = true;
  uint64_t seen = 0;
  while (true) {
    v1::Drain snapshot;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!first) {
        changed_.wait_for(lock, std::chrono::milliseconds(200),
                          [&] { return stopping_ || run->version != seen; });
      }
      if (stopping_ && !run->drain.done()) {
        return absl::UnavailableError("the daemon is shutting down");
      }
      if (first || run->version != seen) snapshot = SnapshotLocked(*run);
      seen = run->version;
      first = false;
    }
    if (!snapshot.drain_id().empty()) {
      if (!emit(snapshot)) return absl::OkStatus();
      if (snapshot.done()) return absl::OkStatus();
    }
    if (cancelled()) return absl::CancelledError("the client went away");
  }
}

}  // namespace daemon
}  // namespace nichandover
