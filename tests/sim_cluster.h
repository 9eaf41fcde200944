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
#include "kernel_control.pb.h"
#include "sim/machine.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace testing {

inline constexpr char kSimNic[] = "0000:03:00.0";  // NIC 0

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

// One NIC's part of the report: its flows (queues) summed.
struct NicTrafficResult {
  std::string bdf;
  TrafficDirection inbound;
  TrafficDirection outbound;
  uint64_t rx_missed = 0;        // this run, every queue of the NIC
  uint64_t rx_socket_drops = 0;  // this run
  double max_blackout_us = 0;    // the longest pause one of its flows saw
};

struct TrafficResult {
  TrafficDirection inbound;      // every NIC summed
  TrafficDirection outbound;
  uint64_t rx_missed = 0;        // the devices' RX rings were full
  uint64_t rx_socket_drops = 0;  // a kernel's socket receive buffer was full
  std::vector<NicTrafficResult> nics;
  std::string json;              // the report as written
};

struct SimClusterOptions {
  int nodes = 2;               // node0..; node i has APIC IDs 2i, 2i+1
  int nics = 1;                // NIC i is on bus 0x03 + i (NicBdf)
  uint32_t queues = 1;         // RX/TX queue pairs per NIC
  uint32_t ring_size = 1024;
  bool spread_owners = false;  // NIC i starts on node i % nodes; else every NIC on node0
  // When not empty (one entry per NIC): NIC i starts owned by node owners[i],
  // instead of spread_owners' rule or node0.
  std::vector<int> owners;
  // Appended to every daemon's config (e.g. a `timeouts { ... }` block).
  std::string extra_config;
  // Added to every nh-sim-kernel's command line, restarts included (e.g.
  // {"--fault-injection"}).
  std::vector<std::string> kernel_flags;
};

// The machine with its nodes, each a kernel and a daemon peered with every
// other node. By default two nodes: node0 (APIC IDs 0, 1) owns the one NIC,
// node1 has APIC IDs 2, 3.
class SimCluster {
 public:
  explicit SimCluster(uint32_t ring_size = 1024);
  explicit SimCluster(const SimClusterOptions& options);
  ~SimCluster();  // SIGKILLs whatever still runs; removes the files

  static std::string node_id(int i) { return "node" + std::to_string(i); }
  int nodes() const { return options_.nodes; }
  int nics() const { return options_.nics; }
  // NIC i's BDF (kSimNic for NIC 0).
  static std::string nic_bdf(int i);

  // Creates the machine and runs its device process.
  absl::Status StartMachine();
  // Starts node i's kernel (nh-sim-kernel's flags plus `extra_args`, e.g.
  // {"--vectors", "0x40-0x40"}) and waits for its control socket.
  absl::Status StartKernel(int i, const std::vector<std::string>& extra_args = {});
  // Starts node i's daemon and waits until it serves.
  absl::Status StartDaemon(int i);
  // Machine, every kernel, every daemon.
  absl::Status StartAll();

  Subprocess& kernel(int i) { return *kernels_[i]; }
  Subprocess& daemon(int i) { return *daemons_[i]; }
  sim::Machine& machine() { return *machine_; }

  CommandResult Nicctl(int i, const std::vector<std::string>& args,
                       absl::Duration timeout = absl::Seconds(30));

  // nh-sim-traffic at `pps` packets/s each way on every NIC (spread over
  // its queues), until StopTraffic.
  absl::Status StartTraffic(int pps);
  // SIGTERM; the sink waits for packets in flight, then reports.
  absl::StatusOr<TrafficResult> StopTraffic();

  // What the shared memory says now.
  sim::Ownership Record(int nic = 0) { return machine_->ReadOwnership(nic); }
  // The node the MSI-X entries of NIC `nic` route to when all name the same
  // node (sim::kNoNode otherwise, or when MSI-X is off).
  int InterruptNode(int nic) const;
  uint64_t Delivered(int node) const;      // interrupts, every vector
  uint64_t RxDelivered(int node) const;    // packets the node's NAPI delivered
  uint64_t DriverXmits(int node) const;    // packets the node's driver sent

  std::string Logs() const;  // every process's stderr, for failure messages

  // The kernel commit path's test hooks (docs/simulator.md). Node i's kernel
  // (started with --fault-injection) stops, crashes or skips its doorbell at
  // `point` ("handoff-entry", "handoff-before-doorbell", "commit-after-cas")
  // as `action` says ("hold", "release", "crash", "drop-doorbell").
  absl::Status InjectFault(int node, const std::string& point, const std::string& action);
  // What node i's kernel says about NIC `nic` (its hook state, epoch, ...).
  absl::StatusOr<sim::v1::StatusResponse> KernelStatus(int node, int nic = 0);
  // Rings node i's kernel doorbell for NIC `nic` at `epoch` by hand, as a
  // source kernel would (nh-sim-machine doorbell).
  absl::Status RingDoorbell(int node, int nic, uint64_t epoch);

  // Where things are, for a test that runs a node of its own (e.g. an
  // in-process daemon on another backend at daemon_socket(1)).
  const std::string& dir() const { return dir_; }
  const std::string& machine_path() const { return machine_path_; }
  std::string daemon_socket(int i) const;  // operators: NodeService
  std::string peer_socket(int i) const;    // the other node's daemon: PeerService

 private:
  std::string config_path(int i) const;
  std::string kernel_socket(int i) const;

  const SimClusterOptions options_;
  std::string dir_;
  std::string machine_path_;
  std::unique_ptr<sim::Machine> machine_;
  std::unique_ptr<Subprocess> device_;
  std::vector<std::unique_ptr<Subprocess>> kernels_;  // one per node
  std::vector<std::unique_ptr<Subprocess>> daemons_;
  std::unique_ptr<Subprocess> traffic_;
};

// Parses nh-sim-traffic's JSON report.
absl::StatusOr<TrafficResult> ParseTrafficReport(const std::string& json);

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_SIM_CLUSTER_H_
