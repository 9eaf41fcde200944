// Serves the daemon's metrics over HTTP (GET /metrics) with libmicrohttpd,
// and probes the peers so nichandover_peer_up is current between handovers.
#ifndef NICHANDOVER_DAEMON_METRICS_SERVER_H_
#define NICHANDOVER_DAEMON_METRICS_SERVER_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/metrics.h"
#include "daemon/peer_client.h"

struct MHD_Daemon;

namespace nichandover {
namespace daemon {

class MetricsServer {
 public:
  struct Options {
    std::string listen;  // "host:port"; port 0 picks a free port
    Metrics* metrics = nullptr;       // not owned; outlives the server
    PeerClient* peers = nullptr;      // not owned; nullptr: no probes
    std::vector<std::string> peer_ids;
    absl::Duration probe_every = absl::Seconds(10);
    absl::Duration probe_timeout = absl::Seconds(2);
  };

  // Binds the address and starts serving; UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(Options options);
  ~MetricsServer();  // stops serving and probing
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The address served, with the port actually bound.
  const std::string& address() const { return address_; }

 private:
  explicit MetricsServer(Options options) : options_(std::move(options)) {}
  void ProbeLoop();

  Options options_;
  std::string address_;
  MHD_Daemon* httpd_ = nullptr;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread prober_;
};

}  // namespace daemon
}  // namespace nichandover

#endif  // NICHANDOVER_DAEMON_METRICS_SERVER_H_
