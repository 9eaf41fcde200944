// The kernel commit path (docs/protocol.md, "The kernel commit path") under
// faults, on the simulated machine's real processes: nh-sim-machine, two
// nh-sim-kernel started with --fault-injection, two nichandoverd on the sim
// backend, nh-sim-traffic checking every packet both ways. Each test hands
// the NIC node0 -> node1 with `nicctl handover --commit-path kernel` and
// breaks it at one boundary of the new path:
//  - the source daemon SIGKILLed before its kernel call gets going
//    (handoff-entry), inside it between the HANDOFF CAS and the doorbell
//    (handoff-before-doorbell), or the target daemon after its kernel's CAS
//    before it hears of it (commit-after-cas): the kernels finish alone;
//  - the source kernel crashing between its CAS and the doorbell, the target
//    kernel crashing after its CAS before its attach: the daemons finish the
//    handover on the daemon path once an operator restarted the kernel;
//  - the target daemon SIGKILLed before the source's kernel call or between
//    its CAS and doorbell: the armed kernel commits alone;
//  - the target kernel SIGKILLed while armed: the daemons commit once it is
//    restarted;
//  - a lost doorbell: the target daemon commits on the source's Commit;
//  - a doorbell of a stale epoch, rung by hand while the target is armed:
//    ignored (counted, record unchanged), and the handover then completes.
// After each: exactly one owner (the record, the device, both kernels' hook
// state, both daemons' view of the handover), traffic through the owner
// only, and every packet delivered once and in order: the ring holds the
// whole blackout at these rates, and no fault here can lose a packet (see
// ExpectNothingLost).
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/sim_cluster.h"
#include "tests/sim_expect.h"
#include "tests/testing/node_client.h"

namespace nichandover {
namespace testing {
namespace {

using sim::OwnershipState;

// Long enough for a handover to settle on a loaded 2-core machine: a
// restarted daemon's recovery, the source's Commit retried until the target
// daemon is back, a step timeout (1 s) when a peer was down.
constexpr absl::Duration kSettle = absl::Seconds(90);
// 2,000 packets/s each way and 4,096 descriptors: the RX ring holds 2 s of
// inbound traffic, more than the longest blackout below (a kernel restarted
// by hand, then the daemon path's Commit and Attach); outbound packets wait
// in the socket, refused (and retried by the sender) when it is full.
constexpr int kPps = 2000;
constexpr uint32_t kRing = 4096;

struct Started {
  std::string handover_id;
  uint64_t epoch = 0;  // e1: the epoch the target runs the NIC at
};

std::string Field(const google::protobuf::Struct& doc, const std::string& key) {
  auto it = doc.fields().find(key);
  return it == doc.fields().end() ? "" : it->second.string_value();
}

class KernelCommitFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SimClusterOptions options;
    options.ring_size = kRing;
    options.kernel_flags = {"--fault-injection"};
    cluster_ = std::make_unique<SimCluster>(options);
    ASSERT_TRUE(cluster_->StartAll().ok()) << cluster_->Logs();
    ASSERT_TRUE(cluster_->StartTraffic(kPps).ok()) << cluster_->Logs();
    ASSERT_TRUE(WaitUntil([&] { return c().RxDelivered(0) > 0 && c().DriverXmits(0) > 0; },
                          absl::Seconds(30)))
        << "no traffic through node0 before the handover\n" << c().Logs();
  }

  SimCluster& c() { return *cluster_; }

  void Inject(int node, const std::string& point, const std::string& action) {
    absl::Status s = c().InjectFault(node, point, action);
    ASSERT_TRUE(s.ok()) << s << c().Logs();
  }

  // `nicctl handover --commit-path kernel --no-wait` from `source` to the
  // other node, as an operator starts one.
  Started StartKernelPathHandover(int source) {
    CommandResult r =
        c().Nicctl(source, {"--json", "handover", kSimNic, "--to", SimCluster::node_id(1 - source),
                            "--commit-path", "kernel", "--no-wait"});
    Started started;
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << c().Logs();
    google::protobuf::Struct doc;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &doc).ok()) << r.out;
    started.handover_id = Field(doc, "handover_id");
    EXPECT_TRUE(absl::SimpleAtoi(Field(doc, "to_epoch"), &started.epoch)) << r.out;
    EXPECT_FALSE(started.handover_id.empty()) << r.out;
    return started;
  }

  // Waits for a state of the ownership record (shared memory), as
  // `nh-sim-machine show` prints it.
  bool WaitRecord(OwnershipState state, int owner, uint64_t epoch) {
    return WaitUntil(
        [&] {
          sim::Ownership r = c().Record();
          return r.state == state && r.owner == owner && r.epoch == epoch;
        },
        kSettle, absl::Milliseconds(1));
  }

  // The record ACTIVE and neither daemon running a handover.
  bool Settled() {
    if (c().Record().state != OwnershipState::kActive) return false;
    for (int i = 0; i < c().nodes(); ++i) {
      absl::StatusOr<bool> live = AnyHandoverLive("unix:" + c().daemon_socket(i));
      if (!live.ok() || *live) return false;
    }
    return true;
  }

  void KillDaemon(int node) {
    c().daemon(node).Signal(SIGKILL);
    ASSERT_TRUE(c().daemon(node).Wait(absl::Seconds(30)).ok());
  }

  // A kernel that crashed at an injected point: its process is gone.
  void WaitKernelCrashed(int node) {
    absl::StatusOr<int> code = c().kernel(node).Wait(kSettle);
    ASSERT_TRUE(code.ok()) << SimCluster::node_id(node) << "'s kernel did not crash\n"
                           << c().Logs();
    EXPECT_EQ(*code, 128 + SIGKILL);
  }

  // The kernel blocks at `point` (hold) and says so in its log.
  bool WaitHeld(int node, const std::string& point) {
    const std::string said = absl::StrCat("fault injection holds at ", point);
    return WaitUntil([&] { return c().kernel(node).Stderr().find(said) != std::string::npos; },
                     kSettle);
  }

  // Exactly one owner: the record ACTIVE(owner, epoch); the device runs
  // there; the owner's kernel RUNNING at that epoch and the other's
  // DETACHED; both daemons report the handover COMMITTED; packets and
  // interrupts go through the owner only.
  void ExpectOneOwner(int owner, uint64_t epoch, const std::string& handover_id) {
    ASSERT_TRUE(WaitUntil([&] { return Settled(); }, kSettle, absl::Milliseconds(50)))
        << "not settled: record state " << static_cast<int>(c().Record().state) << "\n"
        << c().Logs();
    const sim::Ownership record = c().Record();
    EXPECT_EQ(record.state, OwnershipState::kActive);
    EXPECT_EQ(record.owner, owner);
    EXPECT_EQ(record.epoch, epoch);
    absl::StatusOr<sim::v1::StatusResponse> mine = c().KernelStatus(owner);
    absl::StatusOr<sim::v1::StatusResponse> other = c().KernelStatus(1 - owner);
    ASSERT_TRUE(mine.ok()) << mine.status();
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(mine->state(), sim::v1::HOOK_STATE_RUNNING) << mine->DebugString();
    EXPECT_EQ(mine->epoch(), epoch) << mine->DebugString();
    EXPECT_EQ(other->state(), sim::v1::HOOK_STATE_DETACHED) << other->DebugString();
    for (int node : {0, 1}) {
      CommandResult shown =
          c().Nicctl(node, {"--json", "handover", "show", handover_id});
      EXPECT_EQ(shown.exit_code, 0) << SimCluster::node_id(node) << ": " << shown.err;
      google::protobuf::Struct doc;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(shown.out, &doc).ok()) << shown.out;
      EXPECT_EQ(Field(doc, "phase"), "HANDOVER_PHASE_COMMITTED")
          << SimCluster::node_id(node) << ": " << shown.out;
    }
    ExpectTrafficOnExactlyOneNode(c(), owner);
  }

  // After the fault, the NIC moves on: a plain kernel-path handover back.
  void ExpectHandsBack(int owner) {
    CommandResult back = c().Nicctl(owner, {"handover", kSimNic, "--to",
                                            SimCluster::node_id(1 - owner), "--commit-path",
                                            "kernel"});
    EXPECT_EQ(back.exit_code, 0) << back.out << back.err << c().Logs();
  }

  // Nothing lost, duplicated or reordered, and the packets changed carrier
  // exactly as the handovers did. Also where a kernel crashed: the source
  // kernel crashes after its drain (its TX gate leaves held packets in the
  // socket, its RX went to the socket before the CAS) and the target kernel
  // before its attach (it took nothing yet), so neither holds a packet of
  // the NIC when it dies.
  void ExpectNothingLost(const std::vector<std::string>& carriers) {
    absl::StatusOr<TrafficResult> traffic = c().StopTraffic();
    ASSERT_TRUE(traffic.ok()) << traffic.status();
    ExpectExactlyOnceInOrder(traffic->inbound, "inbound", traffic->json);
    ExpectExactlyOnceInOrder(traffic->outbound, "outbound", traffic->json);
    EXPECT_EQ(traffic->rx_missed, 0u) << traffic->json;
    EXPECT_EQ(traffic->inbound.node_changes, carriers) << traffic->json;
    EXPECT_EQ(traffic->outbound.node_changes, carriers) << traffic->json;
  }

  const sim::HandoverTimeline& Timeline() { return c().machine().nic().timeline; }
  uint64_t StaleDoorbells(int node) {
    return c().machine().node(node).counters.stale_doorbells.load();
  }
  uint64_t HandoffDoorbells(int node) {
    return c().machine().node(node).counters.handoff_doorbells.load();
  }

  std::unique_ptr<SimCluster> cluster_;
};

const std::vector<std::string> kThereAndBack = {"node0->node1", "node1->node0"};

// (a) The source daemon dies with its HandOff call held at the kernel's
// entry, before the gates close. The call runs on without it: the source
// kernel hands off, rings, and the armed target kernel commits and attaches
// while the source daemon is still dead. The restarted daemon finds the NIC
// on node1 and finishes the handover as committed.
TEST_F(KernelCommitFaultTest, SourceDaemonKilledAtHandOffEntryTheKernelsFinishAlone) {
  Inject(0, "handoff-entry", "hold");
  const Started h = StartKernelPathHandover(0);
  ASSERT_TRUE(WaitHeld(0, "handoff-entry")) << c().Logs();
  ASSERT_EQ(c().Record().state, OwnershipState::kPreparing);
  KillDaemon(0);
  Inject(0, "handoff-entry", "release");

  ASSERT_TRUE(WaitRecord(OwnershipState::kActive, 1, h.epoch)) << c().Logs();
  ASSERT_TRUE(WaitUntil([&] { return c().machine().nic().running_node.load() == 1; }, kSettle))
      << "node1's kernel committed but does not run the NIC\n" << c().Logs();
  EXPECT_FALSE(c().daemon(0).running()) << "the kernels finished without the source daemon";

  ASSERT_TRUE(c().StartDaemon(0).ok()) << c().Logs();
  ExpectOneOwner(1, h.epoch, h.handover_id);
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

// (b) The source daemon dies inside its call, after the HANDOFF CAS (the
// commit point) and before the doorbell. The kernel rings on its own once
// released; the target kernel commits alone.
TEST_F(KernelCommitFaultTest, SourceDaemonKilledBetweenCasAndDoorbellTheTargetKernelCommits) {
  Inject(0, "handoff-before-doorbell", "hold");
  const Started h = StartKernelPathHandover(0);
  ASSERT_TRUE(WaitRecord(OwnershipState::kHandoff, 0, h.epoch)) << c().Logs();
  EXPECT_EQ(c().Record().target, 1);
  KillDaemon(0);
  EXPECT_EQ(Timeline().doorbell_ns.load(), 0) << "held before the doorbell";
  Inject(0, "handoff-before-doorbell", "release");

  ASSERT_TRUE(WaitRecord(OwnershipState::kActive, 1, h.epoch)) << c().Logs();
  ASSERT_TRUE(WaitUntil([&] { return c().machine().nic().running_node.load() == 1; }, kSettle))
      << c().Logs();
  EXPECT_FALSE(c().daemon(0).running());
  EXPECT_NE(Timeline().doorbell_ns.load(), 0);
  EXPECT_NE(Timeline().target_committed_ns.load(), 0);

  ASSERT_TRUE(c().StartDaemon(0).ok()) << c().Logs();
  ExpectOneOwner(1, h.epoch, h.handover_id);
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

// (c) The target daemon dies after its kernel's CAS HANDOFF -> ACTIVE and
// before it hears of it. The kernel attaches anyway; the restarted daemon
// reads the record (ACTIVE, its own) and finds the NIC running. So that the
// target daemon cannot hear early from the source's Commit (sent as soon as
// the source's call returns), the source daemon is stopped (SIGSTOP) while
// its call is held before the doorbell, and continued at the end.
TEST_F(KernelCommitFaultTest, TargetDaemonKilledAfterItsKernelsCasTheKernelAttachesAlone) {
  Inject(0, "handoff-before-doorbell", "hold");
  Inject(1, "commit-after-cas", "hold");
  const Started h = StartKernelPathHandover(0);
  ASSERT_TRUE(WaitRecord(OwnershipState::kHandoff, 0, h.epoch)) << c().Logs();
  c().daemon(0).Signal(SIGSTOP);
  Inject(0, "handoff-before-doorbell", "release");

  ASSERT_TRUE(WaitRecord(OwnershipState::kActive, 1, h.epoch)) << c().Logs();
  EXPECT_NE(c().machine().nic().running_node.load(), 1) << "held before the attach";
  KillDaemon(1);
  Inject(1, "commit-after-cas", "release");
  ASSERT_TRUE(WaitUntil([&] { return c().machine().nic().running_node.load() == 1; }, kSettle))
      << "node1's kernel did not attach without its daemon\n" << c().Logs();
  EXPECT_FALSE(c().daemon(1).running());

  ASSERT_TRUE(c().StartDaemon(1).ok()) << c().Logs();
  c().daemon(0).Signal(SIGCONT);
  ExpectOneOwner(1, h.epoch, h.handover_id);
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

// (c') The target daemon dies before the source's kernel call (armed, the
// call held at its entry), or between the source's CAS and its doorbell: a
// daemon crash never stops a kernel. The armed kernel is woken by the
// doorbell, commits and attaches while its daemon is dead; the restarted
// daemon reads the record (ACTIVE, its own) and finishes as committed.
class TargetDaemonKilledTest : public KernelCommitFaultTest {
 protected:
  void Run(const std::string& held_at) {
    Inject(0, held_at, "hold");
    const Started h = StartKernelPathHandover(0);
    ASSERT_TRUE(WaitHeld(0, held_at)) << c().Logs();
    absl::StatusOr<sim::v1::StatusResponse> target = c().KernelStatus(1);
    ASSERT_TRUE(target.ok()) << target.status();
    ASSERT_TRUE(target->armed()) << target->DebugString();
    KillDaemon(1);
    Inject(0, held_at, "release");

    ASSERT_TRUE(WaitRecord(OwnershipState::kActive, 1, h.epoch)) << c().Logs();
    ASSERT_TRUE(WaitUntil([&] { return c().machine().nic().running_node.load() == 1; }, kSettle))
        << "node1's armed kernel did not attach without its daemon\n" << c().Logs();
    EXPECT_FALSE(c().daemon(1).running()) << "the kernels finished without the target daemon";
    EXPECT_NE(Timeline().target_woken_ns.load(), 0) << "committed on the doorbell";

    ASSERT_TRUE(c().StartDaemon(1).ok()) << c().Logs();
    ExpectOneOwner(1, h.epoch, h.handover_id);
    ExpectHandsBack(1);
    ExpectNothingLost(kThereAndBack);
  }
};

TEST_F(TargetDaemonKilledTest, BeforeTheSourcesKernelCallTheArmedKernelCommitsAlone) {
  Run("handoff-entry");
}

TEST_F(TargetDaemonKilledTest, BetweenTheSourcesCasAndDoorbellTheArmedKernelCommitsAlone) {
  Run("handoff-before-doorbell");
}

// (d') The target kernel is SIGKILLed while armed, before the source's
// kernel call: the source hands off and rings a node whose kernel is gone.
// The record is HANDOFF(node0, node1, e1), past the commit point; the
// operator restarts node1's kernel (it comes up unarmed) and the daemons
// finish on the daemon path: the source's Commit, the target daemon's CAS
// and Attach from the rings beside the record.
TEST_F(KernelCommitFaultTest, TargetKernelKilledWhileArmedTheDaemonsCommitAfterItsRestart) {
  Inject(0, "handoff-entry", "hold");
  const Started h = StartKernelPathHandover(0);
  ASSERT_TRUE(WaitHeld(0, "handoff-entry")) << c().Logs();
  absl::StatusOr<sim::v1::StatusResponse> target = c().KernelStatus(1);
  ASSERT_TRUE(target.ok()) << target.status();
  ASSERT_TRUE(target->armed()) << target->DebugString();
  c().kernel(1).Signal(SIGKILL);
  ASSERT_TRUE(c().kernel(1).Wait(absl::Seconds(30)).ok());
  Inject(0, "handoff-entry", "release");

  // The source's call runs to the doorbell whatever the target's state.
  ASSERT_TRUE(WaitUntil([&] { return Timeline().doorbell_ns.load() != 0; }, kSettle))
      << c().Logs();
  const sim::Ownership rung = c().Record();
  EXPECT_EQ(rung.epoch, h.epoch);
  EXPECT_NE(c().machine().nic().running_node.load(), 1) << "no kernel on node1 to run it";
  ASSERT_TRUE(c().StartKernel(1).ok()) << c().Logs();

  ExpectOneOwner(1, h.epoch, h.handover_id);
  EXPECT_EQ(Timeline().target_woken_ns.load(), 0) << "no kernel was there to take the doorbell";
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

// (d) The source kernel crashes after its HANDOFF CAS, before the doorbell.
// The record says HANDOFF(node0, node1, e1): past the commit point, so the
// source daemon (its call failed) carries on with the commit on the daemon
// path: its Commit reaches node1's daemon, which CASes and attaches through
// its armed kernel. The operator restarts node0's kernel; it starts
// detached.
TEST_F(KernelCommitFaultTest, SourceKernelCrashedBetweenCasAndDoorbellTheDaemonsCommit) {
  Inject(0, "handoff-before-doorbell", "crash");
  const Started h = StartKernelPathHandover(0);
  WaitKernelCrashed(0);
  if (HasFatalFailure()) return;
  const sim::Ownership at_crash = c().Record();
  EXPECT_TRUE(at_crash.state == OwnershipState::kHandoff ||
              (at_crash.state == OwnershipState::kActive && at_crash.owner == 1))
      << "the crash came after the CAS";
  EXPECT_EQ(at_crash.epoch, h.epoch);
  ASSERT_TRUE(c().StartKernel(0).ok()) << c().Logs();

  ExpectOneOwner(1, h.epoch, h.handover_id);
  EXPECT_EQ(Timeline().doorbell_ns.load(), 0) << "the source never rang";
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

// (d) The target kernel crashes after its CAS HANDOFF -> ACTIVE(node1, e1),
// before its attach: the record names node1, which runs nothing. The
// operator restarts node1's kernel; node1's daemon (on the source's Commit
// or its commit-wait timer) reads the record, its own, and attaches the NIC
// from the rings beside it.
TEST_F(KernelCommitFaultTest, TargetKernelCrashedAfterItsCasItsDaemonAttachesOnRestart) {
  Inject(1, "commit-after-cas", "crash");
  const Started h = StartKernelPathHandover(0);
  WaitKernelCrashed(1);
  if (HasFatalFailure()) return;
  const sim::Ownership at_crash = c().Record();
  EXPECT_EQ(at_crash.state, OwnershipState::kActive);
  EXPECT_EQ(at_crash.owner, 1);
  EXPECT_EQ(at_crash.epoch, h.epoch);
  ASSERT_TRUE(c().StartKernel(1).ok()) << c().Logs();

  ExpectOneOwner(1, h.epoch, h.handover_id);
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

// (e) The doorbell is lost (the source kernel skips it): the armed target
// kernel never wakes, and the target daemon commits on the source's Commit,
// as on the daemon path.
TEST_F(KernelCommitFaultTest, LostDoorbellTheTargetDaemonCommits) {
  const uint64_t rung_before = HandoffDoorbells(1);
  Inject(0, "handoff-before-doorbell", "drop-doorbell");
  const Started h = StartKernelPathHandover(0);

  ExpectOneOwner(1, h.epoch, h.handover_id);
  EXPECT_EQ(HandoffDoorbells(1), rung_before) << "no doorbell reached node1";
  EXPECT_EQ(Timeline().doorbell_ns.load(), 0);
  EXPECT_EQ(Timeline().target_woken_ns.load(), 0);
  Inject(0, "handoff-before-doorbell", "release");
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

// (f) While node1 is armed for HANDOFF(node0, node1, e1) (the source's call
// held at its entry, the record PREPARING), doorbells rung by hand are
// ignored and counted: one of the epoch node0 runs the NIC at now (stale),
// one of e1 while the record is not yet the armed HANDOFF. The record does
// not move; released, the handover completes on the kernel path.
TEST_F(KernelCommitFaultTest, StaleDoorbellIsIgnoredAndTheHandoverThenCompletes) {
  Inject(0, "handoff-entry", "hold");
  const uint64_t running_epoch = c().Record().epoch;
  const Started h = StartKernelPathHandover(0);
  ASSERT_TRUE(WaitHeld(0, "handoff-entry")) << c().Logs();
  absl::StatusOr<sim::v1::StatusResponse> target = c().KernelStatus(1);
  ASSERT_TRUE(target.ok()) << target.status();
  ASSERT_TRUE(target->armed()) << "node1 is armed before the source's kernel call\n"
                               << target->DebugString();
  ASSERT_EQ(target->armed_epoch(), h.epoch);
  const sim::Ownership armed_for = c().Record();
  ASSERT_EQ(armed_for.state, OwnershipState::kPreparing);

  for (uint64_t epoch : {running_epoch, h.epoch}) {
    SCOPED_TRACE(absl::StrCat("doorbell at epoch ", epoch));
    const uint64_t stale_before = StaleDoorbells(1);
    ASSERT_TRUE(c().RingDoorbell(1, 0, epoch).ok());
    EXPECT_TRUE(WaitUntil([&] { return StaleDoorbells(1) > stale_before; }, kSettle))
        << "node1's kernel did not count the doorbell as stale\n" << c().Logs();
    EXPECT_EQ(c().Record(), armed_for) << "an ignored doorbell changes nothing";
    absl::StatusOr<sim::v1::StatusResponse> still = c().KernelStatus(1);
    ASSERT_TRUE(still.ok()) << still.status();
    EXPECT_EQ(still->state(), sim::v1::HOOK_STATE_DETACHED);
    EXPECT_TRUE(still->armed()) << "the arm stays until released";
  }

  const uint64_t rung_before = HandoffDoorbells(1);
  Inject(0, "handoff-entry", "release");
  ExpectOneOwner(1, h.epoch, h.handover_id);
  EXPECT_GT(HandoffDoorbells(1), rung_before) << "the source kernel rang node1";
  EXPECT_NE(Timeline().doorbell_ns.load(), 0);
  CommandResult shown = c().Nicctl(0, {"--json", "handover", "show", h.handover_id});
  EXPECT_NE(shown.out.find("COMMIT_PATH_KERNEL"), std::string::npos) << shown.out;
  ExpectHandsBack(1);
  ExpectNothingLost(kThereAndBack);
}

}  // namespace
}  // namespace testing
}  // namespace nichandover
