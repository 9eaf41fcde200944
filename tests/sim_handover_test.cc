// Handovers on the simulated machine through the real processes: the NIC,
// two simulated kernels, two nichandoverd on the sim backend, nicctl, and
// nh-sim-traffic checking every packet in both directions.
#include <signal.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/sim_cluster.h"
#include "tests/sim_expect.h"

namespace nichandover {
namespace testing {
namespace {

using sim::OwnershipState;

CommandResult Handover(SimCluster& cluster, int from, int to) {
  return cluster.Nicctl(from, {"handover", kSimNic, "--to", SimCluster::node_id(to)});
}

TEST(SimHandoverTest, UnderTrafficEveryPacketArrivesOnceAndInOrderBothWays) {
  // The largest ring: at 20,000 packets/s it holds 200 ms, the blackout plus
  // the moments a loaded 2-core machine leaves a simulated kernel unscheduled
  // (1024 held 51 ms, and lost packets, all counted as rx_missed, under load).
  SimCluster cluster(/*ring_size=*/4096);
  ASSERT_TRUE(cluster.StartAll().ok()) << cluster.Logs();
  ASSERT_TRUE(cluster.StartTraffic(20000).ok());
  absl::SleepFor(absl::Milliseconds(300));
  CommandResult there = Handover(cluster, 0, 1);
  ASSERT_EQ(there.exit_code, 0) << there.out << there.err << cluster.Logs();
  EXPECT_NE(there.out.find("committed"), std::string::npos) << there.out;
  absl::SleepFor(absl::Milliseconds(300));
  CommandResult back = Handover(cluster, 1, 0);
  ASSERT_EQ(back.exit_code, 0) << back.out << back.err << cluster.Logs();
  absl::SleepFor(absl::Milliseconds(300));
  auto traffic = cluster.StopTraffic();
  ASSERT_TRUE(traffic.ok()) << traffic.status();

  ExpectExactlyOnceInOrder(traffic->inbound, "inbound", traffic->json);
  ExpectExactlyOnceInOrder(traffic->outbound, "outbound", traffic->json);
  // The packets really changed carrier twice: node0 -> node1 -> node0.
  const std::vector<std::string> carriers = {"node0->node1", "node1->node0"};
  EXPECT_EQ(traffic->inbound.node_changes, carriers) << traffic->json;
  EXPECT_EQ(traffic->outbound.node_changes, carriers) << traffic->json;
  EXPECT_EQ(cluster.Record().epoch, 3u);
}

TEST(SimHandoverTest, AfterRerouteInterruptsArriveAtTheTargetOnly) {
  SimCluster cluster;
  ASSERT_TRUE(cluster.StartAll().ok()) << cluster.Logs();
  ASSERT_TRUE(cluster.StartTraffic(10000).ok());
  ASSERT_TRUE(WaitUntil([&] { return cluster.Delivered(0) > 0; }, absl::Seconds(30)))
      << "node0 runs the NIC but took no interrupt";
  ASSERT_EQ(cluster.Delivered(1), 0u);

  for (auto [source, target] : {std::pair{0, 1}, std::pair{1, 0}}) {
    SCOPED_TRACE(absl::StrCat(SimCluster::node_id(source), " -> ", SimCluster::node_id(target)));
    CommandResult r = Handover(cluster, source, target);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << cluster.Logs();
    // Let an interrupt raised before the reroute finish its delivery.
    absl::SleepFor(absl::Milliseconds(50));
    const uint64_t at_source = cluster.Delivered(source);
    const uint64_t at_target = cluster.Delivered(target);
    const uint64_t spurious = cluster.machine().node(0).spurious.load() +
                              cluster.machine().node(1).spurious.load();
    absl::SleepFor(absl::Milliseconds(500));  // a window for a stray interrupt to show
    EXPECT_TRUE(WaitUntil([&] { return cluster.Delivered(target) > at_target; },
                          absl::Seconds(30)))
        << "the target takes none";
    EXPECT_EQ(cluster.Delivered(source), at_source) << "the source still takes interrupts";
    EXPECT_EQ(cluster.machine().node(0).spurious.load() + cluster.machine().node(1).spurious.load(),
              spurious);
    EXPECT_EQ(cluster.machine().layout().unroutable_msi.load(), 0u);
  }
  auto traffic = cluster.StopTraffic();
  ASSERT_TRUE(traffic.ok()) << traffic.status();
  ExpectExactlyOnceInOrder(traffic->inbound, "inbound", traffic->json);
  ExpectExactlyOnceInOrder(traffic->outbound, "outbound", traffic->json);
}

// The source's kernel is stopped (SIGSTOP), so the source daemon's Quiesce
// cannot finish: the handover is held with the record in PREPARING. The
// source daemon is killed there, the kernel continues, the daemon restarts
// and recovers: the NIC is ACTIVE on exactly one node and traffic flows
// there only.
TEST(SimHandoverTest, SourceDaemonKilledMidHandoverRecoversToOneRunningNode) {
  SimCluster cluster;
  ASSERT_TRUE(cluster.StartAll().ok()) << cluster.Logs();
  ASSERT_TRUE(cluster.StartTraffic(5000).ok());
  absl::SleepFor(absl::Milliseconds(200));

  cluster.kernel(0).Signal(SIGSTOP);
  CommandResult started =
      cluster.Nicctl(0, {"handover", kSimNic, "--to", "node1", "--no-wait"});
  EXPECT_EQ(started.exit_code, 0) << started.out << started.err;
  ASSERT_TRUE(WaitUntil([&] { return cluster.Record().state == OwnershipState::kPreparing; },
                        absl::Seconds(5), absl::Milliseconds(1)))
      << "the handover never reached PREPARING\n" << cluster.Logs();
  const uint64_t epoch = cluster.Record().epoch;
  absl::SleepFor(absl::Milliseconds(20));  // the daemon is inside Quiesce now
  ASSERT_EQ(cluster.Record().state, OwnershipState::kPreparing);
  cluster.daemon(0).Signal(SIGKILL);
  ASSERT_TRUE(cluster.daemon(0).Wait(absl::Seconds(5)).ok());
  cluster.kernel(0).Signal(SIGCONT);
  EXPECT_TRUE(cluster.kernel(0).running()) << "the kernel must outlive its daemon";

  ASSERT_TRUE(cluster.StartDaemon(0).ok()) << cluster.Logs();
  ASSERT_TRUE(WaitUntil([&] { return cluster.Record().state == OwnershipState::kActive; },
                        absl::Seconds(20)))
      << cluster.Logs();
  // Before HANDOFF only the source can end it, by rolling back: node0 keeps
  // the NIC at the rollback epoch, one past the handover's
  // (docs/protocol.md: e1 = e+1, ea = e+2).
  sim::Ownership record = cluster.Record();
  EXPECT_EQ(record.owner, 0);
  EXPECT_EQ(record.epoch, epoch + 1);
  absl::SleepFor(absl::Milliseconds(200));  // resume and a first poll
  ExpectTrafficOnExactlyOneNode(cluster, record.owner);

  auto traffic = cluster.StopTraffic();
  ASSERT_TRUE(traffic.ok()) << traffic.status();
  ExpectExactAccounting(*traffic);
  EXPECT_TRUE(traffic->inbound.node_changes.empty()) << traffic->json;

  // The NIC can be handed over again afterwards.
  CommandResult again = Handover(cluster, 0, 1);
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err << cluster.Logs();
}

// The source daemon is killed at a random moment of a handover (any phase,
// including after the commit point), then restarted; a few rounds. Each time
// the record ends ACTIVE on one node and traffic flows through that node's
// kernel only; over all rounds nothing is duplicated or reordered, and every
// drop is counted.
TEST(SimHandoverTest, SourceDaemonKilledAtRandomPointsAlwaysLeavesOneRunningNode) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 random(seed);
  SimCluster cluster;
  ASSERT_TRUE(cluster.StartAll().ok()) << cluster.Logs();
  ASSERT_TRUE(cluster.StartTraffic(10000).ok());
  absl::SleepFor(absl::Milliseconds(200));

  for (int round = 0; round < 4; ++round) {
    const int source = cluster.Record().owner;
    const int target = 1 - source;
    const absl::Duration kill_after =
        absl::Microseconds(std::uniform_int_distribution<int>(0, 12000)(random));
    SCOPED_TRACE(absl::StrCat("round ", round, ": ", SimCluster::node_id(source), " killed ",
                              absl::FormatDuration(kill_after), " into the handover"));
    CommandResult started = cluster.Nicctl(
        source, {"handover", kSimNic, "--to", SimCluster::node_id(target), "--no-wait"});
    ASSERT_EQ(started.exit_code, 0) << started.out << started.err << cluster.Logs();
    absl::SleepFor(kill_after);
    cluster.daemon(source).Signal(SIGKILL);
    ASSERT_TRUE(cluster.daemon(source).Wait(absl::Seconds(5)).ok());
    ASSERT_TRUE(cluster.StartDaemon(source).ok()) << cluster.Logs();
    ASSERT_TRUE(WaitUntil([&] { return cluster.Record().state == OwnershipState::kActive; },
                          absl::Seconds(20)))
        << cluster.Logs();
    absl::SleepFor(absl::Milliseconds(200));
    ExpectTrafficOnExactlyOneNode(cluster, cluster.Record().owner);
    if (::testing::Test::HasFatalFailure()) return;
  }
  auto traffic = cluster.StopTraffic();
  ASSERT_TRUE(traffic.ok()) << traffic.status();
  ExpectExactAccounting(*traffic);
}

}  // namespace
}  // namespace testing
}  // namespace nichandover
