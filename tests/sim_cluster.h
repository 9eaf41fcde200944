// Test support: the simulated machine as real processes (docs/simulator.md):
// the NIC (nh-sim-machine run), one nh-sim-kernel per node and one
// nichandoverd per node on the sim backend, peers over unix sockets; traffic
// (nh-sim-traffic) and nicctl against them. The test maps the machine's
// shared memory too, to read the ownership record and the per-node counters
// as a user of `nh-sim-machine show` would.
#ifndef NICHANDOVER_TESTS_SIM_CLUSTER_H_
#define NICHANDOVER_TESTS_SIM_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "sim/machine.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace testing {

inline constexpr char kSimNic[] = "0000:03:00.0";

// One direction of nh-sim-traffic's report.
struct TrafficDirection {
  uint64_t sent = 0;
  uint64_t refused = 0;
  uint64_t wire_drops = 0;
  uint64_t received = 0;
  uint64_t unique = 0;
  uint64_t duplicated = 0;
  uint64_t out_of_order = 0;
  uint64_t lost = 0;
  // "from->to" for every change of the node that carried the packets.
  std::vector<std::string> node_changes;
};

struct TrafficResult {
  TrafficDirection inbound;
  TrafficDirection outbound;
  uint64_t rx_missed = 0;        // the device's RX ring was full
  uint64_t rx_socket_drops = 0;  // a kernel's socket receive buffer was full
  std::string json;              // the report as written
};

// Two nodes: node0 (APIC IDs 0, 1) owns the NIC, node1 has APIC IDs 2, 3.
class SimCluster {
 public:
  explicit SimCluster(uint32_t ring_size = 1024);
  ~SimCluster();  // SIGKILLs whatever still runs; removes the files

  static constexpr int kNodes = 2;
  static std::string node_id(int i) { return "node" + std::to_string(i); }

  // Creates the machine and runs its device process.
  absl::Status StartMachine();
  // Starts node i's kernel and waits for its control socket.
  absl::Status StartKernel(int i);
  // Starts node i's daemon and waits until it serves.
  absl::Status StartDaemon(int i);
  // Machine, both kernels, both daemons.
  absl::Status StartAll();

  Subprocess& kernel(int i) { return *kernels_[i]; }
  Subprocess& daemon(int i) { return *daemons_[i]; }
  sim::Machine& machine() { return *machine_; }

  CommandResult Nicctl(int i, const std::vector<std::string>& args,
                       absl::Duration timeout = absl::Seconds(30));

  // nh-sim-traffic at `pps` packets/s each way, until StopTraffic.
  absl::Status StartTraffic(int pps);
  // SIGTERM; the sink waits for packets in flight, then reports.
  absl::StatusOr<TrafficResult> StopTraffic();

  // What the shared memory says now.
  sim::Ownership Record() { return machine_->ReadOwnership(); }
  uint64_t Delivered(int node) const;      // interrupts, every vector
  uint64_t RxDelivered(int node) const;    // packets the node's NAPI delivered
  uint64_t DriverXmits(int node) const;    // packets the node's driver sent

  std::string Logs() const;  // every process's stderr, for failure messages

  // Where things are, for a test that runs a node of its own (e.g. an
  // in-process daemon on another backend at daemon_socket(1)).
  const std::string& dir() const { return dir_; }
  const std::string& machine_path() const { return machine_path_; }
  std::string daemon_socket(int i) const;  // operators: NodeService
  std::string peer_socket(int i) const;    // the other node's daemon: PeerService

 private:
  std::string config_path(int i) const;
  std::string kernel_socket(int i) const;

  uint32_t ring_size_;
  std::string dir_;
  std::string machine_path_;
  std::unique_ptr<sim::Machine> machine_;
  std::unique_ptr<Subprocess> device_;
  std::unique_ptr<Subprocess> kernels_[kNodes];
  std::unique_ptr<Subprocess> daemons_[kNodes];
  std::unique_ptr<Subprocess> traffic_;
};

// Parses nh-sim-traffic's JSON report.
absl::StatusOr<TrafficResult> ParseTrafficReport(const std::string& json);

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_SIM_CLUSTER_H_
