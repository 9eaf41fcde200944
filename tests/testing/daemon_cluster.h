// Test support: N real nichandoverd processes on one machine, each with a
// unix socket for nicctl and a loopback TCP port for its peers.
#ifndef NICHANDOVER_TESTS_TESTING_DAEMON_CLUSTER_H_
#define NICHANDOVER_TESTS_TESTING_DAEMON_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace testing {

struct NodeSpec {
  std::string node_id;
  std::vector<std::pair<int, int>> cpus;  // (cpu, apic_id)
};

// One NIC of the fake machine: an e1000e-like MSI-X function owned by node0.
inline constexpr char kDefaultFakeNics[] =
    "nics { bdf: \"0000:03:00.0\" vendor_id: 0x8086 device_id: 0x10d3 class_code: 0x020000 "
    "queue_count: 1 mode: INTERRUPT_MODE_MSIX vector_count: 3 owner_node: \"node0\" "
    "default_driver: \"e1000e\" }";

struct ClusterOptions {
  std::vector<NodeSpec> nodes;
  // The body of each config's platform field; "{dir}" becomes the cluster
  // directory.
  std::string platform_block = "fake { state_path: \"{dir}/machine.state\" }";
  // With the fake platform: the machine's NICs (FakeNicSpec text, see
  // daemon/platform/fake/machine_state.proto). The machine file is created
  // from the nodes (their CPUs) and these NICs by the fake_machine tool.
  std::string fake_nics = kDefaultFakeNics;
  // Appended to every node's config (e.g. "timeouts { ... }").
  std::string extra_config;
  // DaemonConfig.kernel_commit of every node. Off unless a test asks: most
  // tests hold the daemon path's steps with its fault points (a hung
  // reroute, the REROUTING phase), which the kernel commit path does in one
  // call; the kernel path's own tests turn it on.
  bool kernel_commit = false;
};

class DaemonCluster {
 public:
  // Writes one config per node into a fresh directory (and the fake machine).
  explicit DaemonCluster(ClusterOptions options);
  explicit DaemonCluster(std::vector<NodeSpec> nodes)
      : DaemonCluster(ClusterOptions{std::move(nodes)}) {}
  ~DaemonCluster();

  const std::string& dir() const { return dir_; }
  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& node_id(int i) const { return nodes_[i].node_id; }
  std::string config_path(int i) const;
  // The cluster secret every node's peer_auth names (clusters of 2+ nodes).
  std::string secret_path() const;
  // Operators (NodeService) on a unix socket and a loopback TCP port; the
  // other nodes' daemons (PeerService) on a unix socket of its own.
  std::string socket_address(int i) const;  // "unix:/.../node0.sock"
  std::string tcp_address(int i) const;     // "127.0.0.1:PORT"
  std::string peer_address(int i) const;    // "unix:/.../node0.peer.sock"

  // Starts node i and waits until its health service says SERVING.
  absl::Status Start(int i);
  absl::Status StartAll();
  // SIGTERM (clean) or SIGKILL (crash); waits for the exit.
  absl::StatusOr<int> Stop(int i, int sig);
  Subprocess& process(int i) { return *processes_[i]; }
  bool running(int i) const;

  // Runs the fake_machine tool on the cluster's machine file:
  // FakeMachine({"set-fault", "--op", "quiesce", "--node", "node0", "--hang"}).
  CommandResult FakeMachine(const std::vector<std::string>& args);
  std::string machine_path() const { return dir_ + "/machine.state"; }

  // Runs nicctl against node i.
  CommandResult Nicctl(int i, const std::vector<std::string>& args,
                       absl::Duration timeout = absl::Seconds(30));

 private:
  std::vector<NodeSpec> nodes_;
  std::string dir_;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<Subprocess>> processes_;
};

// True when the daemon at `address` answers grpc.health.v1.Health/Check with
// SERVING for `service` ("" = the server as a whole).
bool IsServing(const std::string& address, const std::string& service = "",
               absl::Duration timeout = absl::Milliseconds(500));

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_TESTING_DAEMON_CLUSTER_H_
