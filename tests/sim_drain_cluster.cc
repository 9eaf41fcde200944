#include "tests/sim_drain_cluster.h"

#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/sim_cluster.h"
#include "tests/sim_expect.h"
#include "tests/testing/process.h"

namespace nichandover {
namespace testing {
namespace {

// Packets per second each way on every NIC (spread over its queues): 16
// NICs of them keep every node's data path busy without starving a loaded
// 2-core machine.
constexpr int kPacketsPerSecondPerNic = 200;
// RX/TX queue pairs per NIC: an MSI-X vector each, plus the misc vector.
constexpr uint32_t kQueuesPerNic = 2;

class SimDrainCluster : public DrainCluster {
 public:
  explicit SimDrainCluster(const DrainMachineSpec& spec) : cluster_(Options(spec)) {}

  int size() const override { return cluster_.nodes(); }
  std::string node_id(int i) const override { return SimCluster::node_id(i); }
  std::string dir() const override { return cluster_.dir(); }
  std::string nic_bdf(int i) const override { return SimCluster::nic_bdf(i); }

  absl::Status StartAll() override {
    if (absl::Status s = cluster_.StartAll(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(s.message(), "\n", cluster_.Logs()));
    }
    if (absl::Status s = cluster_.StartTraffic(kPacketsPerSecondPerNic); !s.ok()) return s;
    // The drains start under traffic: every node that runs a NIC moves
    // packets before StartAll returns.
    for (int node = 0; node < cluster_.nodes(); ++node) {
      if (!RunsANic(node)) continue;
      if (!WaitUntil([&] { return cluster_.RxDelivered(node) > 0; }, absl::Seconds(30))) {
        return absl::UnavailableError(absl::StrCat(SimCluster::node_id(node),
                                                   " moves no packets\n", cluster_.Logs()));
      }
    }
    return absl::OkStatus();
  }
  absl::Status Start(int i) override { return cluster_.StartDaemon(i); }
  absl::Status Kill(int i) override {
    cluster_.daemon(i).Signal(SIGKILL);
    return cluster_.daemon(i).Wait(absl::Seconds(30)).status();
  }

  std::string address(int i) const override { return "unix:" + cluster_.daemon_socket(i); }
  std::vector<std::string> NicctlCommand(int i) const override {
    return {RunfilePath("cli/nicctl"), "--server", address(i)};
  }

  // What the machine's memory says: the record ACTIVE, the NIC's driver
  // running on that node's kernel, every MSI-X vector routed there.
  absl::StatusOr<std::string> SettledOwner(const std::string& bdf) override {
    const int nic = NicIndex(bdf);
    if (nic < 0) return absl::NotFoundError(absl::StrCat("no NIC ", bdf));
    const sim::Ownership record = cluster_.Record(nic);
    if (record.state != sim::OwnershipState::kActive) {
      return absl::FailedPreconditionError(
          absl::StrCat(bdf, "'s record is not ACTIVE (state ", static_cast<int>(record.state),
                       ", owner ", record.owner, ", target ", record.target, ")"));
    }
    const int running = cluster_.machine().nic(nic).running_node.load();
    if (running != record.owner) {
      return absl::FailedPreconditionError(absl::StrCat(
          bdf, " is owned by ", SimCluster::node_id(record.owner), " but runs on node index ",
          running));
    }
    const int interrupts = cluster_.InterruptNode(nic);
    if (interrupts != record.owner) {
      return absl::FailedPreconditionError(absl::StrCat(
          bdf, " is owned by ", SimCluster::node_id(record.owner),
          " but its interrupts do not all route there (node index ", interrupts, ")"));
    }
    return SimCluster::node_id(record.owner);
  }

  void ExpectTrafficAccounted() override {
    absl::StatusOr<TrafficResult> traffic = cluster_.StopTraffic();
    ASSERT_TRUE(traffic.ok()) << traffic.status() << "\n" << cluster_.Logs();
    ASSERT_EQ(traffic->nics.size(), static_cast<size_t>(cluster_.nics())) << traffic->json;
    for (const NicTrafficResult& nic : traffic->nics) {
      SCOPED_TRACE(nic.bdf);
      TrafficResult one;
      one.inbound = nic.inbound;
      one.outbound = nic.outbound;
      one.rx_missed = nic.rx_missed;
      one.rx_socket_drops = nic.rx_socket_drops;
      one.json = traffic->json;
      ExpectExactAccounting(one);
      // The packets' last carrier is the node the NIC settled on.
      absl::StatusOr<std::string> owner = SettledOwner(nic.bdf);
      if (!owner.ok()) continue;  // the caller's placement check reports it
      for (const TrafficDirection* d : {&nic.inbound, &nic.outbound}) {
        if (d->node_changes.empty()) continue;
        EXPECT_TRUE(absl::EndsWith(d->node_changes.back(), "->" + *owner))
            << d->node_changes.back() << " is not to " << *owner;
      }
    }
    ASSERT_TRUE(cluster_.StartTraffic(kPacketsPerSecondPerNic).ok()) << cluster_.Logs();
  }

  absl::Status HoldAttach(int) override { return NoKnob("hold a platform call"); }
  absl::Status HoldQuiesce(int) override { return NoKnob("hold a platform call"); }
  absl::StatusOr<int> HeldAttaches(int) override { return NoKnob("hold a platform call"); }
  absl::StatusOr<int> HeldQuiesces(int) override { return NoKnob("hold a platform call"); }
  absl::Status ReleaseHolds() override { return NoKnob("hold a platform call"); }
  // node's kernel restarted with one vector per CPU (two): a NIC of
  // kQueuesPerNic queue pairs needs three or more, so every reserve
  // fails for lack of vectors. Only on a node that runs no NIC (its
  // kernel's restart would stop them).
  absl::Status ExhaustVectors(int node) override {
    if (RunsANic(node)) {
      return absl::FailedPreconditionError(
          absl::StrCat(SimCluster::node_id(node), " runs NICs; its kernel cannot restart"));
    }
    cluster_.kernel(node).Signal(SIGKILL);
    if (absl::Status s = cluster_.kernel(node).Wait(absl::Seconds(30)).status(); !s.ok()) {
      return s;
    }
    return cluster_.StartKernel(node, {"--vectors", "0x40-0x40"});
  }

 private:
  static SimClusterOptions Options(const DrainMachineSpec& spec) {
    SimClusterOptions options;
    options.nodes = spec.nodes;
    options.nics = static_cast<int>(spec.owners.size());
    options.queues = kQueuesPerNic;
    options.owners = spec.owners;
    options.extra_config = kDrainTestTimeouts;
    return options;
  }

  static absl::Status NoKnob(const std::string& what) {
    return absl::UnimplementedError(absl::StrCat("the simulated machine cannot ", what));
  }

  bool RunsANic(int node) {
    for (int nic = 0; nic < cluster_.nics(); ++nic) {
      if (cluster_.Record(nic).owner == node) return true;
    }
    return false;
  }

  int NicIndex(const std::string& bdf) const {
    for (int i = 0; i < cluster_.nics(); ++i) {
      if (SimCluster::nic_bdf(i) == bdf) return i;
    }
    return -1;
  }

  SimCluster cluster_;
};

}  // namespace

std::unique_ptr<DrainCluster> MakeSimDrainCluster(const DrainMachineSpec& spec) {
  return std::make_unique<SimDrainCluster>(spec);
}

}  // namespace testing
}  // namespace nichandover
