// What the engine tells whoever watches it (the daemon's metrics): handovers
// finishing, journal syncs, platform calls and peer messages, with their
// latencies. Called from the engine's threads; implementations must be
// thread-safe, quick and must not call back into the engine.
#ifndef NICHANDOVER_DAEMON_ENGINE_OBSERVER_H_
#define NICHANDOVER_DAEMON_ENGINE_OBSERVER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/protocol/events.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace engine {

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;

  // `handover` reached a terminal phase (COMMITTED, ROLLED_BACK, FAILED), as
  // stamped by this node: its phases carry durations. `is_source` tells this
  // node's role. A FAILED handover that an operator's recovery reopens is
  // reported again when it ends.
  virtual void HandoverFinished(const v1::Handover& handover, bool is_source) = 0;

  // One append + fsync of journal records.
  virtual void JournalSynced(absl::Duration latency, const absl::Status& status) = 0;

  // One platform call (hook, router, arbiter) made for the machine.
  virtual void PlatformCallDone(protocol::OpKind kind, absl::Duration latency,
                                const absl::Status& status) = 0;

  // One protocol message to a peer answered (or failed in transport).
  virtual void PeerCallDone(const std::string& peer, absl::Duration latency,
                            const absl::Status& status) = 0;

  // The machine stepped one event this node's kernel reported on the kernel
  // commit path (FastPath::WaitEvents), on the protocol thread.
  virtual void KernelEventStepped(const platform::KernelEvent& event) {}
};

// Passes every report to each of several observers, in order.
class ObserverFanout : public EngineObserver {
 public:
  explicit ObserverFanout(std::vector<std::shared_ptr<EngineObserver>> observers)
      : observers_(std::move(observers)) {}
  void HandoverFinished(const v1::Handover& handover, bool is_source) override {
    for (auto& o : observers_) o->HandoverFinished(handover, is_source);
  }
  void JournalSynced(absl::Duration latency, const absl::Status& status) override {
    for (auto& o : observers_) o->JournalSynced(latency, status);
  }
  void PlatformCallDone(protocol::OpKind kind, absl::Duration latency,
                        const absl::Status& status) override {
    for (auto& o : observers_) o->PlatformCallDone(kind, latency, status);
  }
  void PeerCallDone(const std::string& peer, absl::Duration latency,
                    const absl::Status& status) override {
    for (auto& o : observers_) o->PeerCallDone(peer, latency, status);
  }
  void KernelEventStepped(const platform::KernelEvent& event) override {
    for (auto& o : observers_) o->KernelEventStepped(event);
  }

 private:
  std::vector<std::shared_ptr<EngineObserver>> observers_;
};

}  // namespace engine
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_ENGINE_OBSERVER_H_
