// A seeded randomized soak over the simulated machine's real processes
// (tests/sim_cluster.h: nh-sim-machine, two nh-sim-kernel, two nichandoverd
// on the sim backend, nh-sim-traffic with sequence numbers): handovers back
// and forth, each with a random disturbance at a random moment of it — a
// daemon or a simulated kernel (source's or target's) SIGKILLed and
// restarted, or SIGSTOPped for a while and continued — or none.
//
// After every handover has settled:
//  - nothing is stuck: within a bound the record is ACTIVE and neither
//    daemon lists a running handover;
//  - one owner: the record names one node, the device runs on that node;
//  - its interrupts reach that node only, and packets flow both ways through
//    its kernel only (new packets received and sent);
//  - epochs never go back;
//  - polls while quiesced: none.
// The traffic runs in segments cut around each kernel SIGKILL; per segment,
// nothing is duplicated or reordered and every frame lost is one the machine
// counted (RX ring full, socket buffer full, wire). A segment with a kernel
// SIGKILL may also lose the packets that kernel held (a TX batch taken from
// the socket, an RX budget pushed to it), as a real crash does: at most
// kHeldByAKernel per direction and kill.
//
// NICHANDOVER_SOAK_HANDOVERS sets the number of handovers (40 here in CI;
// bench/sim_soak.sh runs 500 and more), NICHANDOVER_SEED replays a run.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/sim_cluster.h"
#include "tests/sim_expect.h"
#include "tests/testing/node_client.h"

namespace nichandover {
namespace testing {
namespace {

using sim::OwnershipState;

// The most packets one simulated kernel holds outside the shared memory per
// direction: a TX batch popped from the socket before its tail write, an RX
// poll's budget (sim/kernel.h: xmit_batch, napi_weight).
constexpr uint64_t kHeldByAKernel = 64;

enum class Disturbance {
  kNone,
  kKillDaemon,
  kStopDaemon,
  kKillKernel,
  kStopKernel,
};

const char* Name(Disturbance d) {
  switch (d) {
    case Disturbance::kNone: return "none";
    case Disturbance::kKillDaemon: return "SIGKILL daemon";
    case Disturbance::kStopDaemon: return "SIGSTOP daemon";
    case Disturbance::kKillKernel: return "SIGKILL kernel";
    case Disturbance::kStopKernel: return "SIGSTOP kernel";
  }
  return "?";
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  uint64_t value = fallback;
  const char* text = std::getenv(name);
  if (text != nullptr && !absl::SimpleAtoi(text, &value)) {
    ADD_FAILURE() << name << "=" << text << " is not a number";
  }
  return value;
}

// The record ACTIVE and neither daemon running a handover.
bool Settled(SimCluster& cluster) {
  if (cluster.Record().state != OwnershipState::kActive) return false;
  for (int i = 0; i < cluster.nodes(); ++i) {
    absl::StatusOr<bool> live = AnyHandoverLive("unix:" + cluster.daemon_socket(i));
    if (!live.ok() || *live) return false;
  }
  return true;
}

class SimSoak {
 public:
  SimSoak(uint32_t seed, int pps) : rng_(seed), pps_(pps) {}

  SimCluster& cluster() { return cluster_; }

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  Disturbance Pick() {
    // Half the handovers undisturbed, so the NIC really moves; the rest
    // spread over the four disturbances.
    const int draw = Uniform(0, 7);
    if (draw < 4) return Disturbance::kNone;
    return static_cast<Disturbance>(draw - 3);
  }

  absl::Status StartTraffic() {
    ++segments_;
    // nh-sim-traffic reports the machine's drop counters, which run across
    // segments: remember where this one starts (nothing flows now).
    rx_missed_at_start_ = cluster_.machine().nic().regs.rx_missed.load();
    socket_drops_at_start_ = SocketDrops();
    return cluster_.StartTraffic(pps_);
  }

  uint64_t SocketDrops() {
    uint64_t drops = 0;
    for (int i = 0; i < cluster_.nodes(); ++i) {
      drops += cluster_.machine().node(i).counters.rx_socket_drops.load();
    }
    return drops;
  }

  // Ends the current traffic segment and checks its accounting.
  void EndTrafficSegment(int kernel_kills) {
    absl::StatusOr<TrafficResult> r = cluster_.StopTraffic();
    ASSERT_TRUE(r.ok()) << r.status();
    r->rx_missed -= rx_missed_at_start_;
    r->rx_socket_drops -= socket_drops_at_start_;
    if (kernel_kills == 0) {
      ExpectExactAccounting(*r);
    } else {
      // What the crashes took is the only loss beyond the counted drops.
      const uint64_t counted = r->inbound.unique + r->inbound.wire_drops + r->rx_missed +
                               r->rx_socket_drops;
      ASSERT_LE(counted, r->inbound.sent) << r->json;
      const uint64_t crash_in = r->inbound.sent - counted;
      ASSERT_LE(r->outbound.unique, r->outbound.sent) << r->json;
      const uint64_t crash_out = r->outbound.sent - r->outbound.unique;
      EXPECT_LE(crash_in, kHeldByAKernel * kernel_kills) << r->json;
      EXPECT_LE(crash_out, kHeldByAKernel * kernel_kills) << r->json;
      crash_lost_ += crash_in + crash_out;
      for (const TrafficDirection* d : {&r->inbound, &r->outbound}) {
        EXPECT_EQ(d->duplicated, 0u) << r->json;
        EXPECT_EQ(d->out_of_order, 0u) << r->json;
      }
    }
    sent_ += r->inbound.sent + r->outbound.sent;
    received_ += r->inbound.unique + r->outbound.unique;
    ring_drops_ += r->rx_missed + r->rx_socket_drops + r->inbound.wire_drops;
  }

  // Restarts whatever of `node` the disturbance stopped or killed.
  absl::Status Revive(int node) {
    SimCluster& c = cluster_;
    c.kernel(node).Signal(SIGCONT);
    c.daemon(node).Signal(SIGCONT);
    if (!c.kernel(node).running()) {
      if (absl::Status s = c.StartKernel(node); !s.ok()) return s;
    }
    if (!c.daemon(node).running()) return c.StartDaemon(node);
    return absl::OkStatus();
  }

  uint64_t segments_ = 0, sent_ = 0, received_ = 0, ring_drops_ = 0, crash_lost_ = 0;

 private:
  std::mt19937 rng_;
  int pps_;
  SimCluster cluster_;
  uint64_t rx_missed_at_start_ = 0;
  uint64_t socket_drops_at_start_ = 0;
};

TEST(SimSoakTest, HandoversWithRandomKillsAndStopsOfDaemonsAndKernels) {
  uint32_t seed = static_cast<uint32_t>(absl::ToUnixNanos(absl::Now()));
  seed = static_cast<uint32_t>(EnvOr("NICHANDOVER_SEED", seed));
  const int handovers = static_cast<int>(EnvOr("NICHANDOVER_SOAK_HANDOVERS", 40));
  const int pps = static_cast<int>(EnvOr("NICHANDOVER_SOAK_PPS", 5000));
  // Settling includes a restarted daemon's recovery and a handover's own
  // deadline (30 s by default) when a stopped peer held it.
  const absl::Duration settle_bound = absl::Seconds(EnvOr("NICHANDOVER_SOAK_SETTLE_S", 90));
  std::printf("sim soak: seed %u (replay with NICHANDOVER_SEED=%u), %d handovers, %d pps\n",
              seed, seed, handovers, pps);
  std::fflush(stdout);
  SCOPED_TRACE(absl::StrCat("seed ", seed, " (rerun with NICHANDOVER_SEED=", seed, ")"));

  SimSoak soak(seed, pps);
  SimCluster& cluster = soak.cluster();
  ASSERT_TRUE(cluster.StartAll().ok()) << cluster.Logs();
  ASSERT_TRUE(soak.StartTraffic().ok());

  uint64_t last_epoch = cluster.Record().epoch;
  int moved = 0, refused = 0, kernel_kills_in_segment = 0, rounds_in_segment = 0;
  int by_kind[5] = {};
  absl::Duration longest_settle;
  const absl::Time soak_start = absl::Now();
  for (int round = 0; round < handovers; ++round) {
    const int source = cluster.Record().owner;
    const int target = 1 - source;
    const Disturbance disturbance = soak.Pick();
    const int victim = soak.Uniform(0, 1) == 0 ? source : target;
    // Up to 15 ms into the handover (≈ its whole length on this machine),
    // so every phase gets hit; a stop lasts up to 1.5 s, past the 1 s
    // step timeouts sometimes.
    const absl::Duration at = absl::Microseconds(soak.Uniform(0, 15000));
    const absl::Duration stop_for = absl::Milliseconds(soak.Uniform(1, 1500));
    SCOPED_TRACE(absl::StrCat("handover ", round, ": ", SimCluster::node_id(source), " -> ",
                              SimCluster::node_id(target), ", ", Name(disturbance), " of ",
                              SimCluster::node_id(victim), " at ", absl::FormatDuration(at)));
    ++by_kind[static_cast<int>(disturbance)];

    // A kernel crash loses what it held: cut the traffic there so the
    // other segments keep exact accounting.
    // (A segment that has just begun holds no undisturbed handover: kept.)
    if (disturbance == Disturbance::kKillKernel && kernel_kills_in_segment == 0 &&
        rounds_in_segment > 0) {
      soak.EndTrafficSegment(0);
      ASSERT_TRUE(soak.StartTraffic().ok());
      rounds_in_segment = 0;
    }
    ++rounds_in_segment;

    absl::StatusOr<v1::Handover> started =
        StartHandover("unix:" + cluster.daemon_socket(source), kSimNic,
                      SimCluster::node_id(target), absl::StrCat("soak-", seed, "-", round));
    // Refused up front is an answer too (e.g. the target still recovering
    // from the last disturbance); anything else is a failure.
    if (!started.ok()) {
      ASSERT_TRUE(started.status().code() == absl::StatusCode::kUnavailable ||
                  started.status().code() == absl::StatusCode::kFailedPrecondition ||
                  started.status().code() == absl::StatusCode::kAborted)
          << started.status() << cluster.Logs();
      ++refused;
    }

    absl::SleepFor(at);
    switch (disturbance) {
      case Disturbance::kNone:
        break;
      case Disturbance::kKillDaemon:
        cluster.daemon(victim).Signal(SIGKILL);
        ASSERT_TRUE(cluster.daemon(victim).Wait(absl::Seconds(10)).ok());
        break;
      case Disturbance::kStopDaemon:
        cluster.daemon(victim).Signal(SIGSTOP);
        absl::SleepFor(stop_for);
        break;
      case Disturbance::kKillKernel:
        cluster.kernel(victim).Signal(SIGKILL);
        ASSERT_TRUE(cluster.kernel(victim).Wait(absl::Seconds(10)).ok());
        ++kernel_kills_in_segment;
        break;
      case Disturbance::kStopKernel:
        cluster.kernel(victim).Signal(SIGSTOP);
        absl::SleepFor(stop_for);
        break;
    }
    ASSERT_TRUE(soak.Revive(victim).ok()) << cluster.Logs();

    const absl::Time settle_start = absl::Now();
    ASSERT_TRUE(WaitUntil([&] { return Settled(cluster); }, settle_bound, absl::Milliseconds(50)))
        << "stuck: not settled within " << settle_bound << "; record state "
        << static_cast<int>(cluster.Record().state) << "\n"
        << cluster.Logs();
    longest_settle = std::max(longest_settle, absl::Now() - settle_start);

    const sim::Ownership record = cluster.Record();
    ASSERT_GE(record.owner, 0);
    ASSERT_LT(record.owner, cluster.nodes());
    EXPECT_GE(record.epoch, last_epoch) << "epochs never go back";
    last_epoch = record.epoch;
    if (record.owner != source) ++moved;
    ExpectTrafficOnExactlyOneNode(cluster, record.owner, absl::Milliseconds(150));
    if (::testing::Test::HasFailure()) {
      std::printf("record: %s owner %d epoch %llu; device runs on %d\n%s\n",
                  record.state == OwnershipState::kActive ? "ACTIVE" : "not ACTIVE", record.owner,
                  static_cast<unsigned long long>(record.epoch),
                  cluster.machine().nic().running_node.load(), cluster.Logs().c_str());
      return;
    }

    if (kernel_kills_in_segment > 0) {
      soak.EndTrafficSegment(kernel_kills_in_segment);
      kernel_kills_in_segment = 0;
      ASSERT_TRUE(soak.StartTraffic().ok());
      rounds_in_segment = 0;
    }
  }
  soak.EndTrafficSegment(kernel_kills_in_segment);

  // The soak moved the NIC often enough to mean something.
  EXPECT_GE(moved, handovers / 4) << "moved " << moved << " of " << handovers;
  std::printf(
      "sim soak: seed %u: %d handovers in %s, %d moved the NIC, %d refused up front; "
      "disturbances: %d none, %d daemon SIGKILL, %d daemon SIGSTOP, %d kernel SIGKILL, "
      "%d kernel SIGSTOP; final epoch %llu; longest settle %s; traffic: %llu segments, "
      "%llu sent, %llu received, %llu counted drops, %llu lost in kernel crashes\n",
      seed, handovers, absl::FormatDuration(absl::Now() - soak_start).c_str(), moved, refused,
      by_kind[0], by_kind[1], by_kind[2], by_kind[3], by_kind[4],
      static_cast<unsigned long long>(last_epoch), absl::FormatDuration(longest_settle).c_str(),
      static_cast<unsigned long long>(soak.segments_), static_cast<unsigned long long>(soak.sent_),
      static_cast<unsigned long long>(soak.received_),
      static_cast<unsigned long long>(soak.ring_drops_),
      static_cast<unsigned long long>(soak.crash_lost_));
}

// Found by the soak: the target's kernel restarted after it reserved vectors
// for a handover (its daemon did not) loses the reservation; the source then
// routes the NIC's interrupts to those vectors and commits, and the target's
// Attach must still leave the NIC running on the target (or the handover roll
// back), never the record ACTIVE on a node that does not run it. The
// source's kernel is held (SIGSTOP) so the handover waits in PREPARING,
// after the reservation, while the target's kernel is killed and restarted.
TEST(SimSoakTest, TargetKernelRestartedAfterItsReservationLeavesTheNicRunning) {
  SimCluster cluster;
  ASSERT_TRUE(cluster.StartAll().ok()) << cluster.Logs();
  ASSERT_TRUE(cluster.StartTraffic(5000).ok());
  cluster.kernel(0).Signal(SIGSTOP);
  absl::StatusOr<v1::Handover> started =
      StartHandover("unix:" + cluster.daemon_socket(0), kSimNic, "node1", "reserved-then-killed");
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_TRUE(WaitUntil([&] { return cluster.Record().state == OwnershipState::kPreparing; },
                        absl::Seconds(30), absl::Milliseconds(1)))
      << cluster.Logs();
  cluster.kernel(1).Signal(SIGKILL);
  ASSERT_TRUE(cluster.kernel(1).Wait(absl::Seconds(10)).ok());
  ASSERT_TRUE(cluster.StartKernel(1).ok()) << cluster.Logs();
  cluster.kernel(0).Signal(SIGCONT);

  ASSERT_TRUE(WaitUntil([&] { return Settled(cluster); }, absl::Seconds(90),
                        absl::Milliseconds(50)))
      << cluster.Logs();
  const sim::Ownership record = cluster.Record();
  ExpectTrafficOnExactlyOneNode(cluster, record.owner);
  if (::testing::Test::HasFailure()) {
    std::printf("record owner %d epoch %llu; device runs on %d\n%s\n", record.owner,
                static_cast<unsigned long long>(record.epoch),
                cluster.machine().nic().running_node.load(), cluster.Logs().c_str());
  }
}

}  // namespace
}  // namespace testing
}  // namespace nichandover
