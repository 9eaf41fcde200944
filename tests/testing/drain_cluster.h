// Test support for node drains: a machine with several nodes and many NICs,
// its daemons and nicctl, behind an interface so the drain tests
// (tests/nicctl_drain_test.cc) take the cluster backend as a parameter. The
// fake platform implements it here; the simulated machine (sim/) under
// traffic in tests/sim_drain_cluster.h.
#ifndef NICHANDOVER_TESTS_TESTING_DRAIN_CLUSTER_H_
#define NICHANDOVER_TESTS_TESTING_DRAIN_CLUSTER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace testing {

// What the machine looks like at the start: `owners.size()` NICs, NIC i
// owned (and run) by node owners[i]; nodes "node0".."node{nodes-1}".
struct DrainMachineSpec {
  int nodes = 3;
  std::vector<int> owners;
};

// The BDF of NIC `i` of the fake backend's machine: "0000:10:00.0",
// "0000:11:00.0", ... (a test asks DrainCluster::nic_bdf).
std::string DrainNicBdf(int i);

class DrainCluster {
 public:
  virtual ~DrainCluster() = default;

  virtual int size() const = 0;
  virtual std::string node_id(int i) const = 0;
  // Where processes started for the test keep their output.
  virtual std::string dir() const = 0;
  // NIC i's BDF; BDF order is NIC order.
  virtual std::string nic_bdf(int i) const = 0;

  // Starts node i's daemon (and waits until it serves).
  virtual absl::Status Start(int i) = 0;
  // The machine and every daemon (the sim backend: traffic on every NIC too).
  virtual absl::Status StartAll();
  // SIGKILL of node i's daemon; waits for its exit.
  virtual absl::Status Kill(int i) = 0;

  // node i's NodeService address for a gRPC client ("unix:/...").
  virtual std::string address(int i) const = 0;
  // The command line that runs nicctl against node i, before nicctl's own
  // arguments ("/path/nicctl --server unix:/...").
  virtual std::vector<std::string> NicctlCommand(int i) const = 0;
  CommandResult Nicctl(int i, const std::vector<std::string>& args,
                       absl::Duration timeout = absl::Seconds(120));
  // nicctl in the background (for Ctrl-C).
  absl::StatusOr<Subprocess> StartNicctl(int i, const std::vector<std::string>& args);

  // The node that owns and runs `bdf`, when the NIC is settled: its record
  // ACTIVE, exactly that node running it, its interrupts routed there. An
  // error naming what is wrong otherwise.
  virtual absl::StatusOr<std::string> SettledOwner(const std::string& bdf) = 0;

  // gtest expectations on the traffic since StartAll or the last call, NIC
  // by NIC: nothing duplicated or reordered, every loss a counted drop.
  // Traffic runs on. Checks nothing on a backend without traffic.
  virtual void ExpectTrafficAccounted() = 0;

  // Holds on a node's platform calls, so a test can act mid-drain at a known
  // point: the target's attach (after the commit point) or the source's
  // quiesce (before it). Held calls wait until ReleaseHolds. UNIMPLEMENTED
  // when the backend has no such knob.
  virtual absl::Status HoldAttach(int node) = 0;
  virtual absl::Status HoldQuiesce(int node) = 0;
  // How many calls are held (or were) by the knob.
  virtual absl::StatusOr<int> HeldAttaches(int node) = 0;
  virtual absl::StatusOr<int> HeldQuiesces(int node) = 0;
  virtual absl::Status ReleaseHolds() = 0;
  // From now on node i refuses every offer for lack of interrupt vectors
  // (REFUSAL_REASON_NO_VECTORS). UNIMPLEMENTED when the backend cannot.
  virtual absl::Status ExhaustVectors(int node) = 0;
};

// The daemons' `timeouts` for a drain test: steps never time out by accident
// on a loaded machine; a held call holds a handover as long as a test needs.
inline constexpr char kDrainTestTimeouts[] =
    "timeouts { peer_call { seconds: 5 } quiesce { seconds: 60 } reroute { seconds: 30 } "
    "attach { seconds: 60 } handover { seconds: 120 } }";

using DrainClusterFactory =
    std::function<std::unique_ptr<DrainCluster>(const DrainMachineSpec& spec)>;

// Real nichandoverd processes on the fake platform (one shared machine file).
std::unique_ptr<DrainCluster> MakeFakeDrainCluster(const DrainMachineSpec& spec);

}  // namespace testing
}  // namespace nichandover

#endif  // NICHANDOVER_TESTS_TESTING_DRAIN_CLUSTER_H_
