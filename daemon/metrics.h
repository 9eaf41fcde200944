// The daemon's metrics, in Prometheus text exposition format (version 0.0.4).
//
// Metrics is the engine's observer: it counts handovers as they finish, and
// times journal syncs, platform calls and peer messages. The NIC gauges and
// build info are read when scraped. docs/operations.md lists every metric.
#ifndef NICHANDOVER_DAEMON_METRICS_H_
#define NICHANDOVER_DAEMON_METRICS_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "daemon/engine/observer.h"
#include "nichandover/v1/resources.pb.h"

namespace nichandover {
namespace daemon {

// How a node sees one NIC, for the nichandover_nics gauge. The states are
// exclusive, so the gauge sums to the number of NICs the node sees.
enum class NicMetricState {
  kRunningHere,         // ACTIVE record owned by this node, not held
  kHeldForMaintenance,  // owned by this node, quiesced by QuiesceNic
  kRunningElsewhere,    // ACTIVE record owned by another node
  kInHandover,          // PREPARING or HANDOFF record
  kNoRecord,            // no ownership record yet
};

class Metrics : public engine::EngineObserver {
 public:
  // Reads the state of every NIC; called on each scrape, outside any lock of
  // Metrics. Returns an error when the platform cannot be read.
  using NicReader = std::function<absl::Status(std::vector<NicMetricState>*)>;

  Metrics(std::string node_id, const std::vector<std::string>& peers, NicReader nics);

  // Whether `peer` answered the last message or probe: a peer that answers
  // with an error is up; one that cannot be reached (UNAVAILABLE,
  // DEADLINE_EXCEEDED) is down.
  void PeerReached(const std::string& peer, const absl::Status& status);

  // EngineObserver.
  void HandoverFinished(const v1::Handover& handover, bool is_source) override;
  void JournalSynced(absl::Duration latency, const absl::Status& status) override;
  void PlatformCallDone(protocol::OpKind kind, absl::Duration latency,
                        const absl::Status& status) override;
  void PeerCallDone(const std::string& peer, absl::Duration latency,
                    const absl::Status& status) override;
  void KernelEventStepped(const platform::KernelEvent& event) override;

  // Every metric, as a scrape answers it.
  std::string Render();

  // The label value of a phase: "quiescing" for HANDOVER_PHASE_QUIESCING.
  static std::string PhaseLabel(v1::HandoverPhase phase);

 private:
  using Labels = std::vector<std::string>;  // values, in the family's label order

  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket, not cumulative
    double sum = 0;
    uint64_t count = 0;
  };

  enum class Type { kCounter, kGauge, kHistogram };

  struct Family {
    std::string name;
    std::string help;
    Type type = Type::kCounter;
    std::vector<std::string> label_names;
    const std::vector<double>* buckets = nullptr;  // histograms
    std::map<Labels, double> values;               // counters, gauges
    std::map<Labels, Histogram> histograms;
  };

  Family* Add(std::string name, std::string help, Type type, std::vector<std::string> labels,
              const std::vector<double>* buckets = nullptr);
  // Called with mu_ held.
  void Observe(Family* family, const Labels& labels, absl::Duration value);
  static void RenderFamily(const Family& family, std::string* out);

  const std::string node_id_;
  const NicReader read_nics_;

  std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
  Family* build_info_;
  Family* handovers_;
  Family* handover_duration_;
  Family* phase_duration_;
  Family* blackout_;
  Family* journal_sync_;
  Family* journal_errors_;
  Family* platform_calls_;
  Family* platform_errors_;
  Family* peer_up_;
  Family* peer_messages_;
  Family* peer_errors_;
  Family* kernel_events_;
  Family* nics_;
  Family* nic_read_errors_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_METRICS_H_
